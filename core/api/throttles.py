"""Per-API-key request rate limits kept in Redis (fixed one-second windows)."""

import time

from django.conf import settings
from django.core.cache import cache
from rest_framework.throttling import BaseThrottle


class ApiKeyRateThrottle(BaseThrottle):
    def allow_request(self, request, view):
        api_key = request.auth
        if api_key is None:
            return True
        limit = api_key.rate_limit or settings.ULAK_INGEST_RATE_LIMIT
        window = int(time.time())
        key = cache.make_and_validate_key(f"rate:{api_key.pk}:{window}")
        client = cache._cache.get_client(key, write=True)
        pipe = client.pipeline()
        pipe.incr(key)
        pipe.expire(key, 2)
        count, _ = pipe.execute()
        return count <= limit

    def wait(self):
        return 1
