"""The Celery app. Queues are split by kind of work so each can scale on its own."""

import os

from celery import Celery
from celery.signals import task_prerun, worker_process_shutdown, worker_shutdown
from kombu import Queue

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

QUEUES = (
    "default",
    "ingest",
    "segments",
    "journeys",
    "email",
    "sms",
    "whatsapp",
    "push",
    "in_app",
    "webhooks",
    "compliance",
)

app = Celery("ulak", task_cls="core.tasks:UlakTask")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.conf.task_queues = tuple(Queue(name) for name in QUEUES)
# A task goes to the queue named by the first part of its name (e.g. "ingest.process_batch").
app.conf.task_routes = (lambda name, args, kwargs, options, task=None, **kw: (
    {"queue": name.split(".", 1)[0]} if name.split(".", 1)[0] in QUEUES else None
),)
app.autodiscover_tasks()


@worker_process_shutdown.connect  # a prefork pool process stopping
@worker_shutdown.connect  # the worker itself (solo and thread pools send from it)
def close_kept_connections(**kwargs):
    """Say QUIT on the SMTP connections this process kept open (channels/providers/smtp_pool.py),
    close its kept HTTP connections (channels/safe_http.py) and write its last delivery metrics."""
    from channels import metrics
    from channels.providers.smtp_pool import close_all
    from channels.safe_http import close_kept_clients

    close_all()
    close_kept_clients()
    metrics.flush()


@task_prerun.connect
def close_old_database_connections(sender=None, **kwargs):
    """Database connections outlive a task (CELERY_DB_REUSE_MAX); as between web requests, one past
    DATABASE_CONN_MAX_AGE or left unusable by an error is closed before the next task. Not for a
    task run eagerly (`apply()`), which runs inside its caller's transaction."""
    if sender is None or getattr(sender.request, "is_eager", False):
        return
    from django.db import close_old_connections

    close_old_connections()
