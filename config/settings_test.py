"""Settings for the test suite: real PostgreSQL and Redis, nothing faked."""

import os

os.environ.setdefault("SECRET_KEY", "test-secret-key-not-for-production")
os.environ.setdefault("ULAK_FERNET_KEYS", "aW5zZWN1cmUtdGVzdC1rZXktMDAwMDAwMDAwMDAwMDA=")
os.environ.setdefault("ULAK_CACHE_PREFIX", f"ulak-test-{os.getpid()}")
os.environ.setdefault("ULAK_LOG_FORMAT", "text")
os.environ.setdefault("ULAK_LOG_LEVEL", "WARNING")

from config.settings import *  # noqa: E402,F401,F403

ALLOWED_HOSTS = ["testserver", "localhost", "127.0.0.1"]

# Each pytest-xdist worker gets its own Redis databases (cache and broker), so tests may clear
# the cache and real Celery workers started by different test processes never share tasks.
_worker_index = int(os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw") or 0) % 7
_redis_base = os.environ.get("TEST_REDIS_BASE_URL", "redis://127.0.0.1:6379")
CACHES["default"]["LOCATION"] = f"{_redis_base}/{1 + 2 * _worker_index}"  # noqa: F405
CELERY_BROKER_URL = f"{_redis_base}/{2 + 2 * _worker_index}"
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
SESSION_COOKIE_SECURE = False
CSRF_COOKIE_SECURE = False
STORAGES["staticfiles"]["BACKEND"] = "django.contrib.staticfiles.storage.StaticFilesStorage"  # noqa: F405
# Provider fakes listen on loopback; production refuses it (SSRF guard).
ULAK_SSRF_ALLOWLIST = ["127.0.0.1/32"]
