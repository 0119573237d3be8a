"""The store-bus soak on a small scale (5 shelves, a few seconds): the correctness half of its report.
Latency figures come from running the command (docs/store-and-chain.md), never asserted here."""

from __future__ import annotations

import pytest

from tools import bus_soak
from tools.servers import mosquitto_binary

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.mark.skipif(mosquitto_binary() is None, reason="mosquitto is not installed")
def test_soak_loses_nothing_across_a_restart_and_an_offline_shelf() -> None:
    report = bus_soak.run(shelves=5, duration_s=4.0, stock_rate=10, event_rate=20, restart_at=0.5,
                          offline_s=1.5, settle_s=20)
    assert report["events_sent"] > 0 and report["stock_changes"] > 0
    assert report["events_lost"] == 0 and report["event_duplicates_stored"] == 0
    assert report["stock_missing"] == 0
    assert report["broker_restart_at_s"] is not None
    offline = report["offline_shelf"]
    assert offline["received_after_return"] == offline["stock_sent_while_offline"]
    assert report["memory_per_shelf_client"]["rss_kib"] is not None
