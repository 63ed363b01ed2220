import json

from django.core.exceptions import PermissionDenied, ValidationError
from django.core.management.base import CommandError

from accounts import services
from accounts.models import ApiKey, ApiKeyKind, AppScope
from accounts.management.base import AuditedCommand, get_workspace


class Command(AuditedCommand):
    help = ("Create, list, rotate or revoke API keys of a workspace. With --actor-email the user's role must hold "
            "every scope of the key (docs/roles.md); without it the command acts as the trusted operator.")

    def add_arguments(self, parser):
        super().add_arguments(parser)
        parser.add_argument("action", choices=["create", "list", "rotate", "revoke"])
        parser.add_argument("workspace", help="Workspace slug or id")
        parser.add_argument("--kind", choices=ApiKeyKind.values)
        parser.add_argument("--name")
        parser.add_argument("--scope", action="append", choices=AppScope.values, dest="scopes")
        parser.add_argument("--key", help="Key id or prefix (rotate/revoke)")

    def handle(self, *args, **opts):
        workspace = get_workspace(opts["workspace"])
        action = opts["action"]
        try:
            if action == "list":
                for key in ApiKey.objects.for_workspace(workspace).order_by("created_at"):
                    state = "revoked" if key.revoked_at else "active"
                    self.stdout.write(f"{key.pk}\t{key.kind}\t{key.prefix}…\t{key.name}\t{','.join(key.scopes)}\t{state}")
            elif action == "create":
                if not opts["kind"] or not opts["name"]:
                    raise CommandError("create needs --kind and --name")
                key, secret = services.create_api_key(
                    workspace=workspace, kind=opts["kind"], name=opts["name"], scopes=opts["scopes"] or [],
                    acting_user=self.actor,
                )
                self.stdout.write(json.dumps({"id": key.pk, "kind": key.kind, "site_id": workspace.site_id, "secret": secret}))
            else:
                key = self._find(workspace, opts["key"])
                if action == "revoke":
                    services.revoke_api_key(api_key=key, acting_user=self.actor)
                    self.stdout.write(f"Revoked key {key.pk} ({key.prefix}…)")
                else:
                    new, secret = services.rotate_api_key(api_key=key, acting_user=self.actor)
                    self.stdout.write(json.dumps({"id": new.pk, "kind": new.kind, "site_id": workspace.site_id,
                                                  "secret": secret, "revoked": key.pk}))
        except ValidationError as exc:
            raise CommandError("; ".join(exc.messages)) from exc
        except PermissionDenied as exc:
            raise CommandError(str(exc)) from exc

    def _find(self, workspace, ref):
        if not ref:
            raise CommandError("--key is required")
        keys = ApiKey.objects.for_workspace(workspace)
        key = keys.filter(pk=int(ref)).first() if ref.isdigit() else keys.filter(prefix__startswith=ref).first()
        if key is None:
            raise CommandError(f"No key {ref!r} in workspace {workspace.slug}")
        return key
