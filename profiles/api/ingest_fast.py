"""The lean path for Track v1/v2 and CDP requests: the same answers as the DRF views, less CPU.

`lean(ViewClass, **initkwargs)` is what the ingest URL modules route to. For the view's own
methods (PUT/POST/DELETE) with an ordinary `Accept` and no query string it serves the request
itself; anything else (OPTIONS, a 405, content negotiation, `?format=`) goes to the DRF view
unchanged. The DRF view stays the single description of the endpoint: OpenAPI is generated
from it (the returned function carries its `cls` and `initkwargs`), and its handler method —
validation by profiles/ingest, staging by `IngestView.stage` — is what runs here too, called on
a view instance with the parsed body.

What it leaves out is DRF's per-request machinery (Request wrapper, negotiation, the
authentication, permission and throttle class loops, Response finalisation) and two of the three
Redis round trips: the key lookup, the rate count and "is the processor already scheduled" are one
script (`accounts.authentication.lookup_api_key_counted`). The order of the checks, and so which
error a bad request gets, is DRF's: credentials (401), rate (429), body (400/413), operations
(400/413/207). Errors are built by the same exception handler and renderer as DRF's, with the
same headers (`WWW-Authenticate`, `Retry-After`, `Allow`). docs/ingestion.md "How a request is
served".
"""

import hmac

from django.conf import settings
from django.http import HttpResponse
from django.views.decorators.csrf import csrf_exempt
from rest_framework import exceptions
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response

from accounts.authentication import ApiKeyPrincipal, basic_credentials_from_meta, lookup_api_key_counted
from accounts.models import ApiKeyKind
from core.api.exceptions import json_exception_handler
from core.context import Actor, enter_actor, enter_workspace, exit_actor, exit_workspace, request_ip
from profiles.ingest.store import SCHEDULE_KEY

_RENDERER = JSONRenderer()
_JSON_ACCEPTS = {"*/*", "application/*", "application/json"}
_FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")


class _Parsed:
    """What a DRF handler method reads of its request: the parsed body."""

    __slots__ = ("data",)

    def __init__(self, data):
        self.data = data


def _plain(request) -> bool:
    """Whether DRF would answer JSON without options: no query string (`?format=`), an Accept
    that JSON satisfies without parameters (`; indent=` changes DRF's output), and a body that
    is not an empty form (DRF makes that an empty QueryDict)."""
    meta = request.META
    if meta.get("QUERY_STRING"):
        return False
    accept = meta.get("HTTP_ACCEPT", "")
    if accept and (";" in accept or not any(part.strip() in _JSON_ACCEPTS for part in accept.split(","))):
        return False
    return not (meta.get("CONTENT_TYPE", "").startswith(_FORM_TYPES) and _content_length(request) == 0)


def _content_length(request) -> int:
    try:
        return int(request.META.get("CONTENT_LENGTH", 0))
    except (ValueError, TypeError):
        return 0


class _Endpoint:
    def __init__(self, view_class, initkwargs: dict):
        self.view_class = view_class
        self.initkwargs = initkwargs
        probe = view_class(**initkwargs)
        self.methods = {name for name in ("put", "post", "delete") if hasattr(probe, name)}
        self.allow = ", ".join(probe.allowed_methods)
        self.kind = probe.key_kind
        self.authenticator = view_class.authentication_classes[0]()
        self.parser = view_class.parser_classes[0]()
        self.drf = view_class.as_view(**initkwargs)

    def render(self, data, status: int, headers=None) -> HttpResponse:
        response = HttpResponse(_RENDERER.render(data), status=status, content_type="application/json")
        response["Allow"] = self.allow
        for name, value in (headers or {}).items():
            response[name] = value
        return response

    def refused(self, request, exc) -> HttpResponse:
        """As APIView.handle_exception and the project's exception handler answer `exc`."""
        if isinstance(exc, (exceptions.NotAuthenticated, exceptions.AuthenticationFailed)):
            exc.auth_header = self.authenticator.authenticate_header(request)
        response = json_exception_handler(exc, {"view": None, "args": (), "kwargs": {}, "request": request})
        if response is None:
            raise exc
        headers = {name: response[name] for name in ("WWW-Authenticate", "Retry-After") if response.has_header(name)}
        return self.render(response.data, response.status_code, headers)

    def parse(self, request, view):
        if _content_length(request) == 0:
            return {}
        return self.parser.parse(request, None, {"request": request, "view": view})

    def serve(self, request, method: str, args, kwargs) -> HttpResponse:
        view = self.view_class(**self.initkwargs)
        view.args, view.kwargs = args, kwargs
        tokens = []
        try:
            data = None
            credentials = basic_credentials_from_meta(request)
            if credentials is not None:  # Track: `site_id:key`; CDP: `write_key:`
                secret = credentials[0] if self.kind == ApiKeyKind.CDP else credentials[1]
            elif self.kind == ApiKeyKind.CDP:  # `writeKey` in the body, as CdpWriteKeyAuthentication
                data = self.parse(request, view)
                secret = data.get("writeKey") if isinstance(data, dict) else None
                if not secret:
                    raise exceptions.NotAuthenticated()
                if not isinstance(secret, str):
                    raise exceptions.AuthenticationFailed("writeKey must be a string.")
            else:
                raise exceptions.NotAuthenticated()
            api_key, count, scheduled = lookup_api_key_counted(secret, self.kind, workspace_flag=SCHEDULE_KEY)
            if (api_key is not None and self.kind == ApiKeyKind.TRACK
                    and not hmac.compare_digest(api_key.workspace.site_id, credentials[0])):
                api_key = None
            if api_key is None:
                raise exceptions.AuthenticationFailed("Invalid or revoked API credentials.")
            request.user, request.auth = ApiKeyPrincipal(api_key), api_key  # as DRF leaves them
            tokens.append((exit_workspace, enter_workspace(api_key.workspace)))
            tokens.append((exit_actor, enter_actor(Actor(source="api", api_key=api_key,
                                                         remote_addr=request_ip(request)))))
            if count > (api_key.rate_limit or settings.ULAK_INGEST_RATE_LIMIT):
                raise exceptions.Throttled(1)
            if data is None:
                data = self.parse(request, view)
            view.schedule_processor = not scheduled
            answer: Response = getattr(view, method)(_Parsed(data), *args, **kwargs)
        except Exception as exc:  # noqa: BLE001 — re-raised unless the exception handler answers it
            return self.refused(request, exc)
        finally:
            for reset, token in reversed(tokens):
                reset(token)
        return self.render(answer.data, answer.status_code)


def lean(view_class, **initkwargs):
    """The URL callback for an ingest view: the lean path for its own methods, DRF otherwise."""
    endpoint = _Endpoint(view_class, initkwargs)
    drf = endpoint.drf

    def view(request, *args, **kwargs):
        method = request.method.lower()
        if method in endpoint.methods and _plain(request):
            return endpoint.serve(request, method, args, kwargs)
        return drf(request, *args, **kwargs)

    view.__dict__.update(drf.__dict__)  # cls, initkwargs, view_class...: OpenAPI reads the DRF view
    view.__doc__, view.__module__, view.__name__ = drf.__doc__, drf.__module__, drf.__name__
    return csrf_exempt(view)
