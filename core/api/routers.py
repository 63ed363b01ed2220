from rest_framework.routers import SimpleRouter


class OptionalSlashRouter(SimpleRouter):
    """Customer.io paths have no trailing slash; accept both forms without a redirect."""

    def __init__(self):
        super().__init__()
        self.trailing_slash = "/?"
