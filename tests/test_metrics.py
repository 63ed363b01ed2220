"""/metrics: Prometheus text format, ingest gauges read at scrape time, only for allowed addresses."""

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.test import Client
from prometheus_client.parser import text_string_to_metric_families

from profiles.ingest.dead_letters import discard_dead_letter, replay_dead_letter
from profiles.ingest.store import stage_operations
from tests.support.dead_letters import failing_op, make_dead_letters

pytestmark = pytest.mark.django_db


def samples(response) -> dict:
    found = {}
    for family in text_string_to_metric_families(response.content.decode()):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def dead(state):
    return ("ulak_ingest_dead_letters", (("state", state),))


STAGED = ("ulak_ingest_staged_operations", ())


def test_the_gauges_are_totals_over_every_workspace_in_the_text_format(two_tenants, failing,
                                                                       django_assert_num_queries):
    tenant_a, tenant_b = two_tenants
    a1, a2, a3, _ = make_dead_letters(tenant_a.workspace, *(failing_op(n) for n in range(4)))
    make_dead_letters(tenant_b.workspace, failing_op(9))
    replay_dead_letter(dead_letter=a1)  # staged again: one operation in the backlog
    discard_dead_letter(dead_letter=a2)
    discard_dead_letter(dead_letter=a3)
    stage_operations(workspace=tenant_b.workspace, operations=[{"op": "identify", "person": {"id": "x"}}] * 2,
                     source="test")

    with django_assert_num_queries(2):  # one grouped query for the dead letters, one count
        response = Client().get("/metrics")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain; version=0.0.4")
    assert "no-cache" in response["Cache-Control"]
    text = response.content.decode()
    assert "# TYPE ulak_ingest_dead_letters gauge" in text and "# TYPE ulak_ingest_staged_operations gauge" in text
    values = samples(response)
    assert values[dead("dead")] == 2  # one in A, one in B
    assert values[dead("replayed")] == 1 and values[dead("discarded")] == 2
    assert values[STAGED] == 3
    assert "workspace" not in text


def test_states_without_dead_letters_read_zero(db):
    values = samples(Client().get("/metrics"))
    assert values == {dead("dead"): 0, dead("replayed"): 0, dead("discarded"): 0, STAGED: 0}


def test_openmetrics_when_the_scraper_asks(db):
    response = Client().get("/metrics", HTTP_ACCEPT="application/openmetrics-text; version=1.0.0")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("application/openmetrics-text")
    assert response.content.decode().endswith("# EOF\n")


@pytest.mark.parametrize("remote_addr", ["127.0.0.1", "::1", "::ffff:127.0.0.1"])
def test_loopback_is_allowed_by_default(db, remote_addr):
    assert Client(REMOTE_ADDR=remote_addr).get("/metrics").status_code == 200


@pytest.mark.parametrize("remote_addr", ["10.0.0.5", "127.0.0.2", "192.168.1.10", "2001:db8::1", "", "not-an-ip"])
def test_other_addresses_get_a_404(db, remote_addr):
    response = Client(REMOTE_ADDR=remote_addr).get("/metrics")
    assert response.status_code == 404
    assert response.json()["meta"]["error"]
    assert b"ulak_ingest" not in response.content


@pytest.mark.parametrize("header", ["HTTP_X_FORWARDED_FOR", "HTTP_FORWARDED", "HTTP_X_REAL_IP"])
def test_a_request_through_a_proxy_is_refused_even_from_loopback(db, header):
    assert Client(REMOTE_ADDR="127.0.0.1", **{header: "203.0.113.9"}).get("/metrics").status_code == 404


def test_the_allowlist_is_configurable(db, settings):
    settings.ULAK_METRICS_ALLOWLIST = ["10.0.0.0/8", "2001:db8::/32"]
    assert Client(REMOTE_ADDR="10.0.0.5").get("/metrics").status_code == 200
    assert Client(REMOTE_ADDR="2001:db8::1").get("/metrics").status_code == 200
    assert Client(REMOTE_ADDR="127.0.0.1").get("/metrics").status_code == 404
    settings.ULAK_METRICS_ALLOWLIST = []
    assert Client(REMOTE_ADDR="127.0.0.1").get("/metrics").status_code == 404


def test_a_bad_allowlist_entry_is_a_configuration_error(db, settings):
    settings.ULAK_METRICS_ALLOWLIST = ["127.0.0.1/33"]
    with pytest.raises(ImproperlyConfigured, match="ULAK_METRICS_ALLOWLIST"):
        Client(raise_request_exception=True).get("/metrics")


def test_only_get(db):
    assert Client().post("/metrics").status_code == 405
