"""The errors services raise for bad input, shared by every layer.

Each one knows its HTTP status and its `[{"field", "message"}]` list, so one exception handler
(core/api/exceptions.py) turns any of them into the JSON error shape; views never catch them.
Admin pages and management commands show the same messages.
"""

from __future__ import annotations


class ApiError(Exception):
    """Base of errors a request can cause. `errors()` names each offending field (dotted path)."""

    status: int = 400

    def errors(self) -> list[dict]:
        return [{"field": None, "message": str(self)}]


class InvalidInput(ApiError):
    """Bad input, naming the offending field. Nothing of the request is stored."""

    def __init__(self, field: str | None, message: str, status: int = 400):
        super().__init__(message)
        self.field = field
        self.message = message
        self.status = status

    def prefixed(self, prefix: str) -> InvalidInput:
        field = f"{prefix}.{self.field}" if self.field else prefix
        return InvalidInput(field, self.message, self.status)

    def errors(self) -> list[dict]:
        return [{"field": self.field, "message": self.message}]


class InvalidFields(ApiError):
    """Several fields are wrong at once: `errors` is [{"field", "message"}]."""

    def __init__(self, errors: list[dict]):
        super().__init__(errors[0]["message"] if errors else "invalid")
        self._errors = errors

    def errors(self) -> list[dict]:
        return list(self._errors)


class Conflict(ApiError):
    """The request conflicts with the current state (a row still used by others): 409."""

    status = 409
