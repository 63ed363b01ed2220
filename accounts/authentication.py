"""DRF authentication for the three kinds of API key.

- Track API (/api/v1, /api/v2): HTTP Basic `site_id:track_api_key`, as Customer.io.
- CDP (/cdp/v1): HTTP Basic `write_key:` (empty password), or `writeKey` in the JSON body, as Segment.
- App API (/v1): `Authorization: Bearer <key>`.

Lookups go by the SHA-256 digest of the secret and are cached for a short time; revoking a key
clears its cache entry on commit, so a revoked key stops working at once.
"""

import base64
import binascii
import hmac
import time

from django.conf import settings
from django.core.cache import cache
from django.utils import timezone
from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication, get_authorization_header

from accounts.models import ApiKey, ApiKeyKind
from accounts.services import api_key_cache_key
from accounts.tokens import hash_secret

LAST_USED_RESOLUTION_SECONDS = 60


class ApiKeyPrincipal:
    """`request.user` for API-key requests: the key, and the workspace it belongs to."""

    is_authenticated = True
    is_anonymous = False
    is_active = True
    is_superuser = False

    def __init__(self, api_key: ApiKey):
        self.api_key = api_key
        self.workspace = api_key.workspace

    def __str__(self):
        return f"api-key:{self.api_key.prefix}"


def lookup_api_key(secret: str, kind: str) -> ApiKey | None:
    if not secret:
        return None
    digest = hash_secret(secret)
    cache_key = api_key_cache_key(digest)
    api_key = cache.get(cache_key)
    if api_key is None:
        api_key = _from_database(digest)  # cached there
        if api_key is None:
            return None
    if api_key.kind != kind or api_key.revoked_at is not None:
        return None
    _record_use(api_key)
    return api_key


_recorded_at: dict[int, float] = {}  # per process: when this process last recorded a key's use


def _record_use(api_key: ApiKey) -> None:
    # At most one write per key per minute, whatever the request rate and however many processes.
    now = time.monotonic()
    if now - _recorded_at.get(api_key.pk, float("-inf")) < LAST_USED_RESOLUTION_SECONDS:
        return
    _recorded_at[api_key.pk] = now
    if cache.add(f"apikey-used:{api_key.pk}", 1, LAST_USED_RESOLUTION_SECONDS):
        ApiKey.objects.for_workspace(api_key.workspace_id).filter(pk=api_key.pk).update(last_used_at=timezone.now())


def _basic_credentials(request) -> tuple[str, str] | None:
    return _parse_basic(get_authorization_header(request))


def basic_credentials_from_meta(request) -> tuple[str, str] | None:
    """`_basic_credentials`, reading the header from `request.META` (as the WSGI server gave it)
    rather than building `request.headers` from every header: the ingest fast path."""
    auth = request.META.get("HTTP_AUTHORIZATION", b"")
    if isinstance(auth, str):
        auth = auth.encode("iso-8859-1")  # as get_authorization_header (HTTP_HEADER_ENCODING)
    return _parse_basic(auth)


def _parse_basic(header: bytes) -> tuple[str, str] | None:
    auth = header.split()
    if not auth or auth[0].lower() != b"basic":
        return None
    if len(auth) != 2:
        raise exceptions.AuthenticationFailed("Malformed Basic authorization header.")
    try:
        decoded = base64.b64decode(auth[1], validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError) as exc:
        raise exceptions.AuthenticationFailed("Malformed Basic authorization header.") from exc
    username, sep, password = decoded.partition(":")
    if not sep:
        raise exceptions.AuthenticationFailed("Malformed Basic authorization header.")
    return username, password


class _KeyAuthentication(BaseAuthentication):
    realm = "Ulak"

    def authenticate_header(self, request):
        return f'Basic realm="{self.realm}"'

    def _principal(self, api_key: ApiKey | None):
        if api_key is None:
            raise exceptions.AuthenticationFailed("Invalid or revoked API credentials.")
        return ApiKeyPrincipal(api_key), api_key


class TrackApiAuthentication(_KeyAuthentication):
    realm = "Ulak Track API"

    def authenticate(self, request):
        credentials = _basic_credentials(request)
        if credentials is None:
            return None
        site_id, secret = credentials
        api_key = lookup_api_key(secret, ApiKeyKind.TRACK)
        if api_key is not None and not hmac.compare_digest(api_key.workspace.site_id, site_id):
            api_key = None
        return self._principal(api_key)


class CdpWriteKeyAuthentication(_KeyAuthentication):
    realm = "Ulak CDP"

    def authenticate(self, request):
        credentials = _basic_credentials(request)
        if credentials is not None:
            write_key = credentials[0]
        else:
            data = request.data if hasattr(request, "data") else None
            write_key = data.get("writeKey") if isinstance(data, dict) else None
            if not write_key:
                return None
            if not isinstance(write_key, str):
                raise exceptions.AuthenticationFailed("writeKey must be a string.")
        return self._principal(lookup_api_key(write_key, ApiKeyKind.CDP))


class AppApiKeyAuthentication(_KeyAuthentication):
    realm = "Ulak App API"

    def authenticate_header(self, request):
        return f'Bearer realm="{self.realm}"'

    def authenticate(self, request):
        auth = get_authorization_header(request).split()
        if not auth or auth[0].lower() != b"bearer":
            return None
        if len(auth) != 2:
            raise exceptions.AuthenticationFailed("Malformed Bearer authorization header.")
        try:
            secret = auth[1].decode("ascii")
        except UnicodeDecodeError as exc:
            raise exceptions.AuthenticationFailed("Malformed Bearer authorization header.") from exc
        return self._principal(lookup_api_key(secret, ApiKeyKind.APP))


# --- the ingest fast path: key lookup and rate count in one Redis round trip -----------------------

# What this process learned about a secret's digest: the key's id and its workspace's (they never
# change for a digest), and the last cached value it unpickled with the key it gave.
_known_digests: dict[str, tuple[int, int]] = {}
_unpickled: dict[str, tuple[bytes, ApiKey]] = {}

# GET the cached key, count the request in the rate window exactly as ApiKeyRateThrottle does
# (INCR, EXPIRE 2), and report whether an optional flag key exists.
_LOOKUP_AND_COUNT = """
local value = redis.call('GET', KEYS[1])
local count = redis.call('INCR', KEYS[2])
redis.call('EXPIRE', KEYS[2], 2)
local flag = 0
if KEYS[3] then flag = redis.call('EXISTS', KEYS[3]) end
return {value or false, count, flag}
"""
_scripts: dict[int, object] = {}


def _rate_key(api_key_id: int) -> str:
    # The counter of core.api.throttles.ApiKeyRateThrottle: the same key, so both paths share it.
    return cache.make_key(f"rate:{api_key_id}:{int(time.time())}")


def _script(client):
    script = _scripts.get(id(client))
    if script is None:
        script = _scripts[id(client)] = client.register_script(_LOOKUP_AND_COUNT)
    return script


def _from_database(digest: str) -> ApiKey | None:
    api_key = ApiKey.unscoped.select_related("workspace").filter(secret_hash=digest, revoked_at__isnull=True).first()
    if api_key is not None:
        cache.set(api_key_cache_key(digest), api_key, settings.ULAK_API_KEY_CACHE_SECONDS)
    return api_key


def lookup_api_key_counted(secret: str, kind: str, *, workspace_flag: str | None = None
                           ) -> tuple[ApiKey | None, int, bool | None]:
    """`lookup_api_key`, and the request counted in the key's rate window (the counter
    ApiKeyRateThrottle keeps): `(api_key or None, count, flag)`.

    Once this process has seen the key, it costs one Redis round trip (a script: GET the cached
    key, INCR and EXPIRE the counter, EXISTS `workspace_flag.format(workspace_id)`), and the
    cached value is unpickled only when it changed. `flag` is None when it was not asked (the
    first request of a process for the key, or none given). A key that is not cached any more
    (expired, or revoked: revocation deletes the entry) is looked up in PostgreSQL as before,
    so a revoked key is refused at once."""
    if not secret:
        return None, 0, None
    digest = hash_secret(secret)
    known = _known_digests.get(digest)
    if known is None:
        api_key = lookup_api_key(secret, kind)
        if api_key is None:
            return None, 0, None
        _known_digests[digest] = (api_key.pk, api_key.workspace_id)
        rate_key = _rate_key(api_key.pk)
        pipe = cache._cache.get_client(rate_key, write=True).pipeline()
        pipe.incr(rate_key)
        pipe.expire(rate_key, 2)
        count, _ = pipe.execute()
        return api_key, count, None
    api_key_id, workspace_id = known
    cache_key = cache.make_key(api_key_cache_key(digest))
    keys = [cache_key, _rate_key(api_key_id)]
    if workspace_flag is not None:
        keys.append(cache.make_key(workspace_flag.format(workspace_id)))
    raw, count, flag = _script(cache._cache.get_client(cache_key, write=True))(keys=keys)
    if raw is None:
        _unpickled.pop(digest, None)
        api_key = _from_database(digest)
    else:
        seen = _unpickled.get(digest)
        if seen is not None and seen[0] == raw:
            api_key = seen[1]
        else:
            api_key = cache._cache._serializer.loads(raw)
            _unpickled[digest] = (raw, api_key)
    if api_key is None or api_key.kind != kind or api_key.revoked_at is not None:
        return None, count, None
    _record_use(api_key)
    return api_key, count, (bool(flag) if workspace_flag is not None else None)
