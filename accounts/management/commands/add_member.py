from django.core.exceptions import PermissionDenied, ValidationError
from django.core.management.base import CommandError

from accounts import services
from accounts.roles import Role
from accounts.management.base import AuditedCommand, get_workspace


class Command(AuditedCommand):
    help = ("Add a user (created if new) to a workspace with a role, or change their role. With --actor-email "
            "that user must be allowed to grant the role (docs/roles.md); without it the command acts as the "
            "trusted operator.")

    def add_arguments(self, parser):
        super().add_arguments(parser)
        parser.add_argument("workspace", help="Workspace slug or id")
        parser.add_argument("email")
        parser.add_argument("--role", required=True, choices=Role.values)
        parser.add_argument("--password", help="Password for a new user")

    def handle(self, *args, **opts):
        from accounts.models import Membership

        workspace = get_workspace(opts["workspace"])
        existing = Membership.objects.for_workspace(workspace).filter(user__email__iexact=opts["email"]).first()
        try:
            if existing:
                services.change_member_role(membership=existing, role=opts["role"], acting_user=self.actor)
                self.stdout.write(f"{opts['email']} is now {opts['role']} in {workspace.slug}")
            else:
                services.add_member(
                    workspace=workspace, email=opts["email"], role=opts["role"], password=opts["password"],
                    acting_user=self.actor,
                )
                self.stdout.write(f"Added {opts['email']} as {opts['role']} to {workspace.slug}")
        except ValidationError as exc:
            raise CommandError("; ".join(exc.messages)) from exc
        except PermissionDenied as exc:
            raise CommandError(str(exc)) from exc
