"""Management commands act as source "cli" in the audit log, optionally on behalf of a user.

Without --actor-email a command is the installation's trusted operator: whoever can run
manage.py already holds the database. With --actor-email it acts for that console user, whose
rights apply to what it grants (accounts/grants.py): `self.actor` is that user, or None.
"""

from django.core.management.base import BaseCommand, CommandError

from accounts.models import User, Workspace
from core.context import Actor, acting_as


class AuditedCommand(BaseCommand):
    def add_arguments(self, parser):
        parser.add_argument(
            "--actor-email",
            help="Record this console user as the actor in the audit log. Commands that grant keys or roles "
                 "(api_key, add_member) then act with that user's rights in the workspace.")

    def execute(self, *args, **options):
        user = None
        if options.get("actor_email"):
            user = User.objects.filter(email__iexact=options["actor_email"]).first()
            if user is None:
                raise CommandError(f"No user with email {options['actor_email']}")
        self.actor = user
        with acting_as(Actor(source="cli", user=user)):
            return super().execute(*args, **options)


def get_workspace(ref: str):
    workspace = Workspace.objects.filter(slug=ref).first()
    if workspace is None and ref.isdigit():
        workspace = Workspace.objects.filter(pk=int(ref)).first()
    if workspace is None:
        raise CommandError(f"No workspace with slug or id {ref!r}")
    return workspace
