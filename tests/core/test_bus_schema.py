"""The bus's event schema follows the device's event log: every key a shelf records can go on the bus
(nothing more), so a new event key cannot silently stop a store's events."""

from __future__ import annotations

import pytest

from device.events import EVENT_KEYS as LOG_KEYS
from smartshelf.core.bus_schema import EVENT_KEYS, BusPayloadError, Topics, check_event, check_name
from smartshelf.core.errors import ConfigError


def test_every_event_log_key_may_go_on_the_bus() -> None:
    assert LOG_KEYS <= EVENT_KEYS
    assert EVENT_KEYS - LOG_KEYS == {"shelf", "seq"}
    check_event({"time": 1.0, "clock_synced": True, "segment": "male/25-34", "shelf": "a", "seq": 3})


def test_names_and_topics() -> None:
    topics = Topics("chain/store-7")
    assert topics.event("aisle-1") == "chain/store-7/shelf/aisle-1/event"
    assert topics.parse("chain/store-7/shelf/aisle-1/status") == ("aisle-1", "status")
    assert topics.parse("other/shelf/aisle-1/status") is None
    for bad in ("Aisle 1", "a/b", "+", "#", "", "x" * 40):
        with pytest.raises(ConfigError):
            check_name(bad)
    with pytest.raises(ConfigError):
        Topics("root/#")
    with pytest.raises(BusPayloadError, match="frame"):
        check_event({"frame": "..."})
