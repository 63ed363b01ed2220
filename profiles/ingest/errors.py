class InvalidInput(Exception):
    """Bad input, naming the offending field. Nothing of the request is stored."""

    def __init__(self, field: str | None, message: str, status: int = 400):
        super().__init__(message)
        self.field = field
        self.message = message
        self.status = status

    def prefixed(self, prefix: str) -> "InvalidInput":
        field = f"{prefix}.{self.field}" if self.field else prefix
        return InvalidInput(field, self.message, self.status)
