"""Refuses request input PostgreSQL could not store, before any view runs.

JSON bodies are checked by the project's JSON parser (core/api/parsers.py). This covers what does
not go through it: a NUL character (or a lone surrogate) in the path, in a query parameter (an
`?email=` lookup), in a header (`Idempotency-Key`), or in a form field posted to an admin page or
by a provider (Twilio's status and inbound webhooks post forms).
Django decodes paths, query strings and form bodies with replacement characters for bytes that are
not UTF-8, so only NUL (`%00`) can arrive there; headers and the path are checked for both.

An API request gets the JSON error shape naming the parameter (`{"field": "email", ...}`); an admin
page a plain 400 page saying which field to fix (JSON typed into an admin form is checked by the
form itself: core/admin.py).
"""

from django.http import HttpResponseBadRequest, JsonResponse
from django.utils.html import format_html

from core.api.exceptions import error_body
from core.api.parsers import text_problem

ADMIN_PREFIX = "/admin/"
FORM_CONTENT_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")


def _header_name(meta_key: str) -> str:
    return meta_key.removeprefix("HTTP_").replace("_", "-").title()


def _first_in(pairs) -> tuple[str, str] | None:
    """(name, problem) of the first key or value of `pairs` ((key, [values]) items) that cannot be
    stored."""
    for key, values in pairs:
        for text in (key, *values):
            problem = text_problem(text) if isinstance(text, str) else None
            if problem:
                return key, problem
    return None


def input_problem(request) -> tuple[str, str] | None:
    """(field, message) for the first part of the request that cannot be stored, or None."""
    problem = text_problem(request.path_info)
    if problem:
        return "path", problem
    query = request.META.get("QUERY_STRING", "")
    if "%00" in query or "\x00" in query:
        found = _first_in(request.GET.lists())
        if found:
            return found
    for key, value in request.META.items():
        if key.startswith("HTTP_") and isinstance(value, str):
            problem = text_problem(value)
            if problem:
                return _header_name(key), problem
    if request.method == "POST" and request.content_type in FORM_CONTENT_TYPES:
        # Admin forms, and form posts from providers (Twilio status and inbound webhooks).
        return _first_in(request.POST.lists())
    return None


class StorableInputMiddleware:
    """A 400 for input `input_problem` refuses; everything else goes on unchanged."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        problem = input_problem(request)
        if problem is None:
            return self.get_response(request)
        field, message = problem
        shown = field.replace("\x00", "\\u0000").encode("utf-8", "backslashreplace").decode("utf-8")
        if request.path_info.startswith(ADMIN_PREFIX):
            return HttpResponseBadRequest(format_html(
                "<!doctype html><title>Bad request</title><h1>Bad request</h1>"
                "<p>“{}” {}. Go back, remove it and send the form again.</p>", shown, message))
        return JsonResponse(error_body([{"field": shown, "message": message}]), status=400)
