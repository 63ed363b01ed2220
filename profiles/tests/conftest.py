import pytest
from rest_framework.test import APIClient

from profiles.ingest.processor import process_pending
from tests.helpers import basic_auth


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
    """Apply what was staged, as the ingest worker would."""

    def run(*tenants):
        for tenant in tenants:
            process_pending(tenant.workspace)

    return run
