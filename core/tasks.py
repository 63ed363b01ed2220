"""Celery base tasks: repeat-safe delivery rules and the workspace scope for tenant work."""

import logging
from datetime import datetime, timedelta

from celery.contrib.django.task import DjangoTask
from django.conf import settings
from django.core.cache import cache
from django.utils import timezone

from core.context import Actor, acting_as

logger = logging.getLogger(__name__)

DELIVERY_COUNTER_TTL = 24 * 3600


class TaskDelayTooLong(ValueError):
    """Due times longer than a few minutes belong in PostgreSQL, not in broker ETAs."""


def _check_delay(options: dict) -> None:
    limit = settings.ULAK_TASK_MAX_COUNTDOWN_SECONDS
    countdown = options.get("countdown")
    if countdown is not None and countdown > limit:
        raise TaskDelayTooLong(f"countdown {countdown}s exceeds {limit}s; store a due time instead")
    eta = options.get("eta")
    if eta is not None:
        if isinstance(eta, str):
            eta = datetime.fromisoformat(eta)
        if eta > timezone.now() + timedelta(seconds=limit):
            raise TaskDelayTooLong(f"eta {eta.isoformat()} is more than {limit}s away")


class UlakTask(DjangoTask):
    """Base of every Ulak task.

    Messages are acknowledged late and re-queued when a worker dies (settings), so a task may
    start more than once. Each start is counted in Redis; the count is cleared whenever the task
    body finishes (returns or raises). Only a start whose worker died leaves it behind, so after
    ULAK_TASK_MAX_DELIVERIES lost workers the message is dropped as poison instead of looping.
    """

    abstract = True

    def apply_async(self, args=None, kwargs=None, **options):
        _check_delay(options)
        return super().apply_async(args, kwargs, **options)

    def retry(self, *args, countdown=None, eta=None, **kwargs):
        _check_delay({"countdown": countdown, "eta": eta})
        return super().retry(*args, countdown=countdown, eta=eta, **kwargs)

    def _delivery_key(self) -> str | None:
        task_id = getattr(self.request, "id", None)
        return f"task-deliveries:{task_id}" if task_id else None

    def __call__(self, *args, **kwargs):
        key = self._delivery_key()
        if key is not None:
            cache.add(key, 0, DELIVERY_COUNTER_TTL)
            deliveries = cache.incr(key)
            if deliveries > settings.ULAK_TASK_MAX_DELIVERIES:
                logger.error(
                    "task dropped after repeated worker loss",
                    extra={"task": self.name, "task_id": self.request.id, "deliveries": deliveries},
                )
                cache.delete(key)
                return None
        try:
            with acting_as(Actor(source="system")):
                return super().__call__(*args, **kwargs)
        finally:
            if key is not None:
                cache.delete(key)
