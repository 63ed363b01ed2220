import json
import secrets

from django.core.exceptions import ValidationError
from django.core.management.base import CommandError
from django.db import transaction

from accounts import services
from accounts.models import ApiKeyKind, AppScope
from accounts.management.base import AuditedCommand


class Command(AuditedCommand):
    help = ("Create a workspace, its owner, and one key of each kind (App API key with every scope). An "
            "installation operator's act: --actor-email is only recorded in the audit log, and every key is "
            "within the new owner's rights.")

    def add_arguments(self, parser):
        super().add_arguments(parser)
        parser.add_argument("name")
        parser.add_argument("--owner-email", required=True)
        parser.add_argument("--password", help="Owner password for a new user (generated and printed if omitted).")
        parser.add_argument("--slug")
        parser.add_argument("--time-zone", default="UTC")
        parser.add_argument("--json", action="store_true", help="Print exactly one JSON object.")

    def handle(self, *args, **opts):
        try:
            with transaction.atomic():
                password = opts["password"]
                owner, created = services.get_or_create_user(email=opts["owner_email"], password=password)
                if created and not password:
                    password = secrets.token_urlsafe(12)
                    owner.set_password(password)
                    owner.save(update_fields=["password"])
                workspace = services.create_workspace(
                    name=opts["name"], owner=owner, slug=opts["slug"], time_zone=opts["time_zone"]
                )
                _, track_key = services.create_api_key(workspace=workspace, kind=ApiKeyKind.TRACK, name="Track API")
                _, cdp_key = services.create_api_key(workspace=workspace, kind=ApiKeyKind.CDP, name="CDP write key")
                _, app_key = services.create_api_key(
                    workspace=workspace, kind=ApiKeyKind.APP, name="App API", scopes=AppScope.values
                )
        except ValidationError as exc:
            raise CommandError("; ".join(f"{k}: {', '.join(v)}" for k, v in exc.message_dict.items())) from exc

        result = {
            "workspace_id": workspace.pk,
            "site_id": workspace.site_id,
            "track_api_key": track_key,
            "app_api_key": app_key,
            "cdp_write_key": cdp_key,
        }
        if opts["json"]:
            self.stdout.write(json.dumps(result))
            return
        self.stdout.write(f"Workspace “{workspace.name}” (id {workspace.pk}, slug {workspace.slug})")
        self.stdout.write(f"Owner: {owner.email}" + (f"  password: {password}" if created else " (existing user)"))
        for key, value in result.items():
            self.stdout.write(f"  {key}: {value}")
        self.stdout.write("Keys are shown once; store them now.")
