"""Every API error is JSON: {"meta": {"error": "..."}, "errors": [{"field", "message"}]}.

`meta.error` is what Customer.io clients read; `errors` names each offending field.
"""

import logging

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404, JsonResponse
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from core.context import NoWorkspaceInScope
from core.errors import ApiError

logger = logging.getLogger(__name__)


def flatten_errors(detail, prefix: str | None = None) -> list[dict]:
    if isinstance(detail, dict):
        out = []
        for key, value in detail.items():
            name = None if key in ("non_field_errors", "__all__", "detail") else str(key)
            field = ".".join(p for p in (prefix, name) if p) or None
            out.extend(flatten_errors(value, field))
        return out
    if isinstance(detail, list):
        if detail and all(isinstance(item, (str, exceptions.ErrorDetail)) for item in detail):
            return [{"field": prefix, "message": str(item)} for item in detail]
        out = []
        for index, item in enumerate(detail):
            out.extend(flatten_errors(item, f"{prefix}.{index}" if prefix else str(index)))
        return out
    return [{"field": prefix, "message": str(detail)}]


def error_body(errors: list[dict]) -> dict:
    first = errors[0] if errors else {"field": None, "message": "Request failed."}
    summary = f"{first['field']}: {first['message']}" if first["field"] else first["message"]
    return {"meta": {"error": summary}, "errors": errors}


def error_response(message: str, *, field: str | None = None, status_code: int = 400, headers=None) -> Response:
    return Response(error_body([{"field": field, "message": message}]), status=status_code, headers=headers)


def json_exception_handler(exc, context):
    """The one mapping of exceptions to the JSON error shape (settings: EXCEPTION_HANDLER)."""
    if isinstance(exc, ApiError):
        return Response(error_body(exc.errors()), status=exc.status)
    if isinstance(exc, DjangoValidationError):
        detail = exc.message_dict if hasattr(exc, "error_dict") else {"detail": exc.messages}
        exc = exceptions.ValidationError(detail)
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied(str(exc) or None)
    elif isinstance(exc, NoWorkspaceInScope):
        logger.error("workspace-scoped query without a workspace", exc_info=exc)
        return Response(error_body([{"field": None, "message": "Internal error."}]), status=500)
    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    response.data = error_body(flatten_errors(response.data))
    return response


def _json_page(message: str, status_code: int) -> JsonResponse:
    return JsonResponse(error_body([{"field": None, "message": message}]), status=status_code)


def not_found(request, exception=None):
    if isinstance(exception, Http404) and request.path.startswith("/admin/"):
        from django.views.defaults import page_not_found

        return page_not_found(request, exception)
    return _json_page("Not found.", status.HTTP_404_NOT_FOUND)


def bad_request(request, exception=None):
    """Django's own refusals (a body over DATA_UPLOAD_MAX_MEMORY_SIZE, a bad host) as JSON, except
    on admin pages."""
    from django.core.exceptions import RequestDataTooBig

    if request.path.startswith("/admin/"):
        from django.views.defaults import bad_request as html_bad_request

        return html_bad_request(request, exception)
    if isinstance(exception, RequestDataTooBig):
        return _json_page("Request body is too large.", status.HTTP_413_REQUEST_ENTITY_TOO_LARGE)
    return _json_page("Bad request.", status.HTTP_400_BAD_REQUEST)


def server_error(request):
    return _json_page("Internal error.", status.HTTP_500_INTERNAL_SERVER_ERROR)
