"""An ingest operation kind whose handler fails on demand (the `failing` fixture, registered in
the root conftest), and dead letters made with it."""

import pytest

from profiles import services
from profiles.ingest.processor import HANDLERS, process_pending, register_operation_handler
from profiles.ingest.store import stage_operations
from profiles.models import IngestDeadLetter

KIND = "test_dead_letter_op"  # registered by the `failing` fixture only, removed after each test
T = 1_700_000_000


class Failing:
    """A handler that raises while `broken`; once fixed it stores one event per application (no
    dedupe id, so applying twice would show as two events)."""

    def __init__(self):
        self.broken = True
        self.calls = 0

    def __call__(self, workspace, op):
        self.calls += 1
        if self.broken:
            # A change made before the failure: its rows and feed rows must roll back with it.
            services.identify(workspace, {"op": "identify", "person": {"id": f"victim-{op['n']}"}, "ts": T,
                                          "attributes": {"half": "done"}})
            raise RuntimeError(f"boom {op['n']}")
        services.record_events(workspace, [{"op": "event", "person": op["person"], "name": f"fixed-{op['n']}",
                                            "type": "event", "data": {}, "timestamp": T}])


@pytest.fixture
def failing():
    handler = Failing()
    register_operation_handler(KIND, handler)
    yield handler
    HANDLERS.pop(KIND, None)


def failing_op(n, person="u1") -> dict:
    return {"op": KIND, "person": {"id": person}, "n": n}


def make_dead_letters(workspace, *ops, source="test") -> list[IngestDeadLetter]:
    """Stage `ops` and run the processor (with the `failing` handler broken): the dead letters."""
    stage_operations(workspace=workspace, operations=list(ops), source=source)
    process_pending(workspace)
    return list(IngestDeadLetter.unscoped.filter(workspace=workspace).order_by("pk"))
