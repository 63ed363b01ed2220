"""Who still uses a channel configuration or a subscription topic, across layers.

A row that others point at cannot be deleted. Channels counts its own users (deliveries, inbound
messages); higher layers that point at configurations or topics (transactional messages, and
next campaign steps) register a counter in their AppConfig.ready(), so the refusal can say what
is in the way without channels importing them.
"""

from collections.abc import Callable

# counter(row) -> {"what": count}; row is a ChannelConfig or a SubscriptionTopic
_COUNTERS: list[Callable] = []


def register_usage_counter(counter: Callable) -> None:
    if counter not in _COUNTERS:
        _COUNTERS.append(counter)


def registered_users(row) -> dict[str, int]:
    found: dict[str, int] = {}
    for counter in _COUNTERS:
        for what, count in counter(row).items():
            if count:
                found[what] = found.get(what, 0) + count
    return found
