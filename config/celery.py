"""The Celery app. Queues are split by kind of work so each can scale on its own."""

import logging
import os

from celery import Celery
from celery.signals import after_setup_logger, task_prerun, worker_process_shutdown, worker_shutdown
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


# --- routine beat tasks log at DEBUG --------------------------------------------------------------
# Celery writes three INFO lines per task run (beat: "Sending due task", worker: "received",
# "succeeded"); the beat schedule's routine sweeps run every few seconds (journeys.tick every
# second), which would bury everything else. Those lines are DEBUG for the schedule's tasks (shown
# with ULAK_LOG_LEVEL=DEBUG); other tasks' lines, and every warning or error, keep their level.
ROUTINE_LOGGERS = ("celery.beat", "celery.worker.strategy", "celery.app.trace")


def routine_task_names() -> frozenset:
    return frozenset(entry["task"] for entry in (app.conf.beat_schedule or {}).values() if entry.get("task"))


def _task_of(record) -> str | None:
    args = record.args
    if isinstance(args, dict):  # worker: "Task %(name)s[%(id)s] received" / "... succeeded in ..."
        return args.get("name")
    if isinstance(args, tuple) and len(args) == 2 and record.msg.startswith("Scheduler: Sending due task"):
        return args[1]  # beat: (entry name, task name)
    return None


class RoutineTaskLogFilter(logging.Filter):
    def filter(self, record):
        if record.levelno != logging.INFO or _task_of(record) not in routine_task_names():
            return True
        record.levelno, record.levelname = logging.DEBUG, logging.getLevelName(logging.DEBUG)
        return logging.getLogger(record.name).isEnabledFor(logging.DEBUG)


def quiet_routine_tasks(**kwargs):
    for name in ROUTINE_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, RoutineTaskLogFilter) for f in logger.filters):
            logger.addFilter(RoutineTaskLogFilter())


quiet_routine_tasks()
after_setup_logger.connect(quiet_routine_tasks, weak=False)  # worker and beat, once their logging is set up
