"""Celery discovers tasks here; each area keeps its own module."""

from compliance.deletion_tasks import *  # noqa: F401,F403
from compliance.retention_tasks import *  # noqa: F401,F403
