"""Reads of reverse ETL sources and runs for the App API and the console."""

from django.db.models import Max

from profiles.sources.models import DataSource, SyncRun

MAX_PK = 2**63 - 1


def sources(workspace):
    return DataSource.objects.for_workspace(workspace).order_by("name", "pk")


def find_source(workspace, pk: int) -> DataSource | None:
    if not 0 < pk <= MAX_PK:
        return None
    return DataSource.objects.for_workspace(workspace).filter(pk=pk).first()


def last_runs(workspace, source_ids) -> dict[int, SyncRun]:
    """The newest run of each source, in one query for the ids and one for the rows."""
    newest = (SyncRun.objects.for_workspace(workspace).filter(source_id__in=list(source_ids))
              .values("source_id").annotate(last=Max("pk")).values_list("last", flat=True))
    return {run.source_id: run for run in SyncRun.objects.for_workspace(workspace).filter(pk__in=list(newest))}


def runs(workspace, source: DataSource, *, before: int | None = None):
    """The source's runs, newest first (those with an id below `before`)."""
    queryset = SyncRun.objects.for_workspace(workspace).filter(source=source).order_by("-pk")
    return queryset.filter(pk__lt=before) if before is not None else queryset


def find_run(workspace, source: DataSource, pk: int) -> SyncRun | None:
    if not 0 < pk <= MAX_PK:
        return None
    return SyncRun.objects.for_workspace(workspace).filter(source=source, pk=pk).first()
