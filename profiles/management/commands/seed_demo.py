from accounts.management.base import AuditedCommand, get_workspace
from profiles.demo import seed_demo_people


class Command(AuditedCommand):
    help = "Fill a workspace with realistic demo people and events (safe to run again)."

    def add_arguments(self, parser):
        super().add_arguments(parser)
        parser.add_argument("workspace", nargs="?", default="demo", help="Workspace slug or id (default: demo)")
        parser.add_argument("--people", type=int, default=200)
        parser.add_argument("--events-per-person", type=int, default=20)
        parser.add_argument("--seed", type=int, default=7)

    def handle(self, *args, **opts):
        workspace = get_workspace(opts["workspace"])
        counts = seed_demo_people(
            workspace=workspace, people=opts["people"], events_per_person=opts["events_per_person"], seed=opts["seed"]
        )
        self.stdout.write(f"Demo data in {workspace.slug}: {counts['people']} people, {counts['events']} events, "
                          f"{counts['devices']} devices")
