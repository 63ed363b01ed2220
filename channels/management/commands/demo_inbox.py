from accounts.management.base import AuditedCommand, get_workspace
from channels.demo_inbox import DEMO_CONFIGURATIONS, configure_demo_channels
from core.context import workspace_scope


class Command(AuditedCommand):
    help = ("Give a workspace demo-provider channel configurations for email, SMS, WhatsApp and push: what they "
            "send is stored and shown in the console's demo inbox, never sent (safe to run again). For "
            "development only.")

    def add_arguments(self, parser):
        super().add_arguments(parser)
        parser.add_argument("workspace", nargs="?", default="demo", help="Workspace slug or id (default: demo)")

    def handle(self, *args, **opts):
        workspace = get_workspace(opts["workspace"])
        with workspace_scope(workspace):
            created = configure_demo_channels(workspace=workspace)
        names = ", ".join(name for _, name, _ in DEMO_CONFIGURATIONS)
        self.stdout.write(f"Demo inbox in {workspace.slug}: {len(created)} channel configuration(s) created "
                          f"({names}); messages they send appear at /admin/channels/demomessage/, nothing leaves Ulak.")
