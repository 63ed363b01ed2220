"""A change feed consumer for tests, and the tables it writes to.

The handler records every row it is handed in `test_feed_deliveries` (no constraint: a row handed
over twice shows up twice) and applies it to `test_feed_applied` keyed by the change id, as
docs/change-feed.md asks of consumers (ON CONFLICT DO NOTHING on the id).

A real Celery worker imports this module with `--include`; with ULAK_TEST_CHANGE_FEED_CONSUMER set
it registers the consumer at import (the test process registers it through a fixture instead).
With ULAK_TEST_CHANGE_FEED_BLOCK=<path> the handler, after writing, creates that file and sleeps:
its transaction stays open until the test kills the worker.
"""

import os
import time
from pathlib import Path

from django.db import connection

NAME = "test-applier"
TABLES = """
CREATE TABLE IF NOT EXISTS test_feed_deliveries (
    n bigserial PRIMARY KEY, consumer text NOT NULL, workspace_id bigint NOT NULL, change_id bigint NOT NULL,
    kind text NOT NULL);
CREATE TABLE IF NOT EXISTS test_feed_applied (
    consumer text NOT NULL, change_id bigint NOT NULL, workspace_id bigint NOT NULL, kind text NOT NULL,
    PRIMARY KEY (consumer, change_id));
"""


def create_tables() -> None:
    with connection.cursor() as cursor:
        cursor.execute(TABLES)


def drop_tables() -> None:
    with connection.cursor() as cursor:
        cursor.execute("DROP TABLE IF EXISTS test_feed_deliveries, test_feed_applied")


def make_handler(name: str, *, before=None):
    def handle(workspace, changes):
        if before is not None:
            before(changes)
        ids, kinds = [c.pk for c in changes], [c.kind for c in changes]
        with connection.cursor() as cursor:
            cursor.execute("INSERT INTO test_feed_deliveries (consumer, workspace_id, change_id, kind)"
                           " SELECT %s, %s, unnest(%s::bigint[]), unnest(%s::text[])",
                           [name, workspace.pk, ids, kinds])
            cursor.execute("INSERT INTO test_feed_applied (consumer, workspace_id, change_id, kind)"
                           " SELECT %s, %s, unnest(%s::bigint[]), unnest(%s::text[]) ON CONFLICT DO NOTHING",
                           [name, workspace.pk, ids, kinds])
        block = os.environ.get("ULAK_TEST_CHANGE_FEED_BLOCK")
        if block:
            Path(block).write_text(str(len(changes)))
            time.sleep(120)

    return handle


def deliveries(name: str = NAME) -> list[int]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT change_id FROM test_feed_deliveries WHERE consumer = %s ORDER BY n", [name])
        return [row[0] for row in cursor.fetchall()]


def applied(name: str = NAME) -> list[int]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT change_id FROM test_feed_applied WHERE consumer = %s ORDER BY change_id", [name])
        return [row[0] for row in cursor.fetchall()]


if os.environ.get("ULAK_TEST_CHANGE_FEED_CONSUMER"):
    from profiles.changefeed import register_consumer

    register_consumer(NAME, make_handler(NAME), batch_size=int(os.environ.get("ULAK_TEST_CHANGE_FEED_BATCH", "10")))
