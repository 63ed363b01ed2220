"""The change feed: a durable record of what changed, written in the same transaction as the change,
for higher layers (the journey engine) to consume at least once, in order, and idempotently.

    recording.py   writing: set-based rows for events and segment moves, noted rows for the rest
    consumers.py   reading: registered consumers, cursors, the beat jobs (drive, prune)

What is recorded and the shape of each kind: docs/change-feed.md.
"""

from profiles.changefeed.consumers import (  # noqa: F401
    Consumer,
    RunResult,
    get_consumer,
    register_consumer,
    registered_consumers,
    rewind,
    run_consumer,
    unregister_consumer,
)
