"""Operational endpoints: liveness, readiness and Prometheus metrics."""

import ipaddress
import logging

from django.conf import settings
from django.core.cache import cache
from django.core.exceptions import ImproperlyConfigured
from django.db import connection
from django.http import Http404, HttpResponse, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET
from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.exposition import choose_encoder

from config.celery import app as celery_app
from profiles.ingest.dead_letters import ingest_gauges

logger = logging.getLogger(__name__)


@never_cache
@require_GET
def healthz(request):
    return JsonResponse({"status": "ok"})


def _check_database() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")


def _check_cache() -> None:
    cache.set("readyz", "1", 5)


def _check_broker() -> None:
    with celery_app.connection_for_write() as conn:
        conn.ensure_connection(max_retries=1, timeout=2)


@never_cache
@require_GET
def readyz(request):
    checks, ready = {}, True
    for name, check in (("database", _check_database), ("cache", _check_cache), ("broker", _check_broker)):
        try:
            check()
            checks[name] = "ok"
        except Exception as exc:  # any failure means "not ready"; the reason goes to the log
            logger.warning("readiness check failed", extra={"check": name, "error": str(exc)})
            checks[name] = "unavailable"
            ready = False
    return JsonResponse({"status": "ok" if ready else "unavailable", "checks": checks}, status=200 if ready else 503)


# --- /metrics (Prometheus) -------------------------------------------------------------------------

class IngestCollector:
    """Gauges read from PostgreSQL when scraped: totals over every workspace, no per-workspace
    labels (one series per dead-letter state, one for the backlog)."""

    def collect(self):
        by_state, staged = ingest_gauges()
        dead = GaugeMetricFamily("ulak_ingest_dead_letters",
                                 "Ingest operations whose handler raised, kept as dead letters, by state.",
                                 labels=["state"])
        for state, count in by_state.items():
            dead.add_metric([state], count)
        yield dead
        yield GaugeMetricFamily("ulak_ingest_staged_operations",
                                "Ingest operations accepted and staged, not applied yet (the backlog).", value=staged)


class DeliveryCollector:
    """Delivery counts: events and hand-off times from Redis (channels/metrics.py, every process's
    counts), the backlog from PostgreSQL (one grouped query over queued and sending deliveries)."""

    def collect(self):
        from channels import metrics
        from channels.selectors import pending_deliveries

        events = CounterMetricFamily("ulak_delivery_events", "Delivery events recorded, by channel and kind "
                                     "(queued, sent, delivered, opened, bounced, failed, retry...).",
                                     labels=["channel", "kind"])
        for (channel, kind), count in sorted(metrics.event_counts().items()):
            events.add_metric([channel, kind], count)
        yield events
        handoff = HistogramMetricFamily("ulak_delivery_handoff_seconds", "Seconds from a delivery becoming due "
                                        "to its provider accepting it.", labels=["channel"])
        bounds = [*(f"{bound:g}" for bound in metrics.HANDOFF_BUCKETS), "+Inf"]
        for channel, (counts, total) in sorted(metrics.handoff_histograms().items()):
            cumulative, running = [], 0
            for bound, count in zip(bounds, counts):
                running += count
                cumulative.append((bound, running))
            handoff.add_metric([channel], cumulative, total)
        yield handoff
        pending = GaugeMetricFamily("ulak_deliveries_pending", "Deliveries waiting (queued) or being handed to "
                                    "their provider (sending), by channel.", labels=["channel", "status"])
        for (channel, status), count in sorted(pending_deliveries().items()):
            pending.add_metric([channel, status], count)
        yield pending


METRICS = CollectorRegistry()  # its own registry: nothing is collected at import, only when scraped
METRICS.register(IngestCollector())
METRICS.register(DeliveryCollector())
# A request that names a client address in these headers came through a proxy: REMOTE_ADDR is the
# proxy's, not the client's, so it says nothing about who is asking.
PROXY_HEADERS = ("HTTP_X_FORWARDED_FOR", "HTTP_FORWARDED", "HTTP_X_REAL_IP")


def _metrics_networks():
    networks = []
    for entry in settings.ULAK_METRICS_ALLOWLIST:
        try:
            networks.append(ipaddress.ip_network(entry, strict=False))
        except ValueError as exc:
            raise ImproperlyConfigured(f"ULAK_METRICS_ALLOWLIST: {entry!r} is not a CIDR") from exc
    return networks


def metrics_allowed(request) -> bool:
    """The connection comes straight (no proxy headers) from an address in ULAK_METRICS_ALLOWLIST."""
    if any(request.META.get(header) for header in PROXY_HEADERS):
        return False
    try:
        address = ipaddress.ip_address(request.META.get("REMOTE_ADDR") or "")
    except ValueError:
        return False
    addresses = [address]
    if address.version == 6 and address.ipv4_mapped is not None:  # ::ffff:127.0.0.1 on a dual-stack socket
        addresses.append(address.ipv4_mapped)
    return any(a in network for network in _metrics_networks() for a in addresses if a.version == network.version)


@never_cache
@require_GET
def metrics(request):
    """Prometheus text format (OpenMetrics when the scraper asks for it). Anyone not allowed gets
    the same 404 as a path that does not exist."""
    if not metrics_allowed(request):
        raise Http404
    encoder, content_type = choose_encoder(request.META.get("HTTP_ACCEPT", ""))
    return HttpResponse(encoder(METRICS), content_type=content_type)
