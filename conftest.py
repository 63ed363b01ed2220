"""Shared fixtures: two fully set-up workspaces, API clients for each, and member users."""

from dataclasses import dataclass

import pytest
from rest_framework.test import APIClient

from accounts import services
from accounts.models import ApiKeyKind, AppScope, User, Workspace
from compliance.deletion import run_deletion
from compliance.models import DeletionRecord
from tests.support.factories import UserFactory, WorkspaceFactory
from profiles.ingest.processor import process_pending
from tests.helpers import basic_auth
from tests.support.dead_letters import failing  # noqa: F401  (a fixture: an ingest kind that fails on demand)


@dataclass
class Tenant:
    workspace: Workspace
    owner: User
    app_key: str
    track_key: str
    cdp_key: str

    @property
    def site_id(self) -> str:
        return self.workspace.site_id

    def app_client(self, key: str | None = None) -> APIClient:
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {key or self.app_key}")
        return client


def make_tenant(name: str) -> Tenant:
    owner = UserFactory()
    workspace = services.create_workspace(name=name, owner=owner)
    _, app_key = services.create_api_key(workspace=workspace, kind=ApiKeyKind.APP, name="app", scopes=AppScope.values)
    _, track_key = services.create_api_key(workspace=workspace, kind=ApiKeyKind.TRACK, name="track")
    _, cdp_key = services.create_api_key(workspace=workspace, kind=ApiKeyKind.CDP, name="cdp")
    return Tenant(workspace=workspace, owner=owner, app_key=app_key, track_key=track_key, cdp_key=cdp_key)


@pytest.fixture
def tenant_a(db) -> Tenant:
    return make_tenant("Acme")


@pytest.fixture
def tenant_b(db) -> Tenant:
    return make_tenant("Globex")


@pytest.fixture
def two_tenants(tenant_a, tenant_b) -> tuple[Tenant, Tenant]:
    return tenant_a, tenant_b


@pytest.fixture(autouse=True)
def _clear_cache():
    from django.core.cache import cache

    from accounts import authentication

    from channels import metrics

    metrics.flush()  # what an earlier test gathered goes before the cache is emptied
    cache.clear()
    authentication._recorded_at.clear()
    yield


@pytest.fixture(autouse=True)
def _close_kept_connections():
    """Outbound HTTP connections are kept per process (channels.safe_http): none outlives its test."""
    yield
    from channels.safe_http import close_kept_clients

    close_kept_clients()


@pytest.fixture
def broker():
    """The Celery broker's Redis database (this test process's own), emptied before and after."""
    import redis
    from django.conf import settings

    client = redis.Redis.from_url(settings.CELERY_BROKER_URL)
    client.flushdb()
    yield client
    client.flushdb()


@pytest.fixture
def workspace_factory(db):
    return WorkspaceFactory


# --- ingestion: Track API clients and applying what was staged ------------------------------------

@pytest.fixture
def track(tenant_a):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=basic_auth(tenant_a.site_id, tenant_a.track_key))
    return client


@pytest.fixture
def track_b(tenant_b):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=basic_auth(tenant_b.site_id, tenant_b.track_key))
    return client


@pytest.fixture
def process(django_capture_on_commit_callbacks):
    """Apply what was staged, as the ingest worker would, and run the deletions it requested, as the
    compliance worker would."""

    def run(*tenants):
        for tenant in tenants:
            process_pending(tenant.workspace)
            for record in DeletionRecord.unscoped.filter(workspace=tenant.workspace).exclude(status="completed"):
                run_deletion(record)

    return run
