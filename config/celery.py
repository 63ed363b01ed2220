"""The Celery app. Queues are split by kind of work so each can scale on its own."""

import os

from celery import Celery
from celery.signals import worker_process_shutdown, worker_shutdown
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
    """Say QUIT on the SMTP connections this process kept open (channels/providers/smtp_pool.py)."""
    from channels.providers.smtp_pool import close_all

    close_all()
