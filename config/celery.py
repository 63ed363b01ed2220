"""The Celery app. Queues are split by kind of work so each can scale on its own."""

import os

from celery import Celery
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
