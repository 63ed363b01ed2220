from celery import shared_task
from profiles.segment_tasks import *  # noqa: F401,F403  (Celery finds segment tasks here)
from accounts.tasks import WorkspaceTask
from core.context import current_workspace
from core.tasks import UlakTask
from profiles.ingest.processor import WorkspaceBusy, process_pending


@shared_task(base=WorkspaceTask, bind=True, name="ingest.process_inbound", max_retries=None)
def process_inbound(self, *, workspace_id):
    try:
        process_pending(self.workspace)
    except WorkspaceBusy:
        # The running processor may be about to finish; look again shortly.
        raise self.retry(countdown=1) from None


@shared_task(base=UlakTask, name="ingest.sweep_inbound")
def sweep_inbound():
    """Safety net: schedule every workspace that still has staged operations."""
    from profiles.ingest.store import schedule_processing
    from profiles.models import InboundOperation

    for workspace_id in InboundOperation.unscoped.values_list("workspace_id", flat=True).distinct():
        schedule_processing(workspace_id)


# --- CSV imports of people (profiles/imports.py) ---------------------------------------------------------

@shared_task(base=UlakTask, name="default.run_people_import")
def run_people_import(*, import_id):
    from profiles.imports import run_import

    run_import(import_id)


@shared_task(base=UlakTask, name="default.resume_people_imports")
def resume_people_imports():
    """Safety net: imports queued or running with no progress for two minutes (their task lost,
    or its worker killed) are run again; they resume after the last chunk they committed."""
    from profiles.imports import resume_stalled

    resume_stalled()


# --- the change feed (profiles/changefeed, docs/change-feed.md) -------------------------------------

@shared_task(base=UlakTask, name="default.drive_change_feed")
def drive_change_feed():
    """Beat job (every 5 s): a consume task for each registered consumer and workspace with rows."""
    from profiles.changefeed.consumers import drive

    return drive()


@shared_task(base=WorkspaceTask, name="default.consume_change_feed")
def consume_change_feed(*, workspace_id, consumer):
    """Apply one consumer to one workspace's rows. Sent to the consumer's own queue (its
    registration says which); running it twice, or concurrently, applies each row once."""
    from profiles.changefeed.consumers import consume

    result = consume(current_workspace(), consumer)
    return {"delivered": result.delivered, "batches": result.batches, "busy": result.busy, "more": result.more}


@shared_task(base=UlakTask, name="default.prune_change_feed")
def prune_change_feed():
    """Beat job (every 15 minutes): delete rows every consumer has passed, once past retention."""
    from profiles.changefeed.consumers import prune

    return prune()


# --- reverse ETL (profiles/sources, docs/reverse-etl.md) ------------------------------------------------

@shared_task(base=UlakTask, name="default.run_data_source_sync")
def run_data_source_sync(*, workspace_id, run_id):
    """Run one queued sync of a data source (claimed with SKIP LOCKED: a second delivery of this
    message finds it taken or over and does nothing)."""
    from profiles.sources.services import run_sync

    run = run_sync(workspace_id, run_id)
    return None if run is None else {"status": run.status, "rows_read": run.rows_read}


@shared_task(base=UlakTask, name="default.sync_data_sources")
def sync_data_sources():
    """Beat job (every 30 s): queue the syncs whose schedule is due, enqueue again queued runs no
    worker took, and fail runs whose worker died (their cursor kept)."""
    from profiles.sources.services import recover_runs, start_due_syncs

    return {"started": start_due_syncs(), **recover_runs()}
