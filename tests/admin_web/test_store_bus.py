"""A store of shelves on a real Mosquitto: pairing, stock to shelves, events to the hub, commands,
ACLs, a broker restart and an offline shelf catching up. Hub = admin_web.store_bus, shelves =
device.bus (each with its own data dir, the files the shelf runtime reads)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from admin_web.repository import InventoryRepository
from admin_web.store_bus import StoreHub
from device.bus import ShelfBus
from device.inventory import StoreView
from device.recommend.factors import FactorWatcher
from device.recommend.signing import load_public_key
from smartshelf.core.bus_schema import Topics, encode
from smartshelf.core.config import BusConfig
from tools.factor_signing import generate_key, load_private_key, signed_bytes
from tools.recommender.synthetic import make_model

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def until(predicate: Callable[[], Any], timeout: float = 10.0, what: str = "condition") -> Any:
    """Poll with a deadline (no fixed sleeps)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


class FakeController:
    """The command side of a ShelfController (identify, pause, resume) without the camera loop."""

    def __init__(self) -> None:
        self.paused = False
        self.identified: list[str] = []

    def command(self, name: str, body: dict[str, Any]) -> dict[str, Any]:
        if name == "identify":
            self.identified.append(str(body["slot"]))
            return {"ok": True, "slot": body["slot"]}
        if name in ("pause", "resume"):
            self.paused = name == "pause"
            return {"ok": True, "paused": self.paused}
        raise KeyError(f"unknown command {name}")


class Store:
    """A hub (admin data dir + StoreHub) and its broker, and shelves joined with their passwords."""

    def __init__(self, root: Path, mosquitto: Callable[..., Any]) -> None:
        self.root = root
        self.hub_dir = root / "hub"
        self.hub_dir.mkdir()
        self.repo = InventoryRepository(self.hub_dir)
        from admin_web.store_bus import ShelfRegistry

        self.registry = ShelfRegistry(self.hub_dir)
        self.registry.hub_password()
        self.broker = mosquitto(password_file=self.registry.password_file, acl_file=self.registry.acl_file)
        self.passwords: dict[str, str] = {}
        self.shelves: dict[str, ShelfBus] = {}
        self.controllers: dict[str, FakeController] = {}
        self.hub: StoreHub | None = None

    def pair(self, name: str, slots: list[str]) -> str:
        self.passwords[name] = self.registry.add_shelf(name, slots)
        self.broker.reload()
        return self.passwords[name]

    def start_hub(self) -> StoreHub:
        self.hub = StoreHub(self.hub_dir, host="127.0.0.1", port=self.broker.port).start()
        return self.hub

    def join(self, name: str, public_key: Any = None) -> ShelfBus:
        data_dir = self.root / name
        data_dir.mkdir(exist_ok=True)
        cfg = BusConfig(enabled=True, host="127.0.0.1", port=self.broker.port, shelf=name, user=name,
                        keepalive_s=5)
        controller = self.controllers.setdefault(name, FakeController())
        bus = ShelfBus(cfg, name, data_dir=data_dir, factors_path=data_dir / "factors.npz",
                       on_command=controller.command, status=lambda: {"paused": controller.paused},
                       public_key=public_key, password=self.passwords[name]).start()
        self.shelves[name] = bus
        until(lambda: bus.connected, what=f"shelf {name} to connect")
        return bus

    def close(self) -> None:
        for bus in self.shelves.values():
            bus.close()
        if self.hub is not None:
            self.hub.close()
        self.repo.close()


@pytest.fixture
def store(tmp_path: Path, mosquitto: Callable[..., Any]) -> Iterator[Store]:
    s = Store(tmp_path, mosquitto)
    yield s
    s.close()


def add_product(repo: InventoryRepository, sku: str, slot: str, stock: int = 5) -> None:
    repo.set_slot({"slot": slot, "pin": None})
    repo.create_product({"sku": sku, "name": f"Product {sku}", "stock": stock, "price": 100, "slot": slot,
                         "item_id": f"item-{sku}"})


def test_a_store_of_three_shelves_run_from_the_hub(store: Store) -> None:
    for name, slots in (("aisle-1", ["A1", "A2"]), ("aisle-2", ["B1"]), ("aisle-3", ["C1"])):
        store.pair(name, slots)
    add_product(store.repo, "SKU-A1", "A1")
    add_product(store.repo, "SKU-A2", "A2")
    add_product(store.repo, "SKU-B1", "B1")
    store.repo.set_slot({"slot": "C1", "pin": None})
    hub = store.start_hub()
    shelves = {name: store.join(name) for name in ("aisle-1", "aisle-2", "aisle-3")}
    assert sorted(hub.publish_inventory()) == ["aisle-1", "aisle-2", "aisle-3"]

    # Each shelf gets only its own slots' products, in the file its StoreView reads.
    views = {name: StoreView(store.root / name / "store.json") for name in shelves}
    until(lambda: all(v.refresh() or v.products for v in views.values() if v is not views["aisle-3"])
          and (store.root / "aisle-3" / "store.json").exists(), what="stock on every shelf")
    assert set(views["aisle-1"].products) == {"SKU-A1", "SKU-A2"}
    assert set(views["aisle-2"].products) == {"SKU-B1"}
    views["aisle-3"].refresh(force=True)
    assert views["aisle-3"].products == {} and set(views["aisle-3"].slot_pins) == {"C1"}

    # A stock change on the hub's one inventory reaches the affected shelf, and only that one.
    store.repo.restock("SKU-B1", 7)
    assert hub.publish_inventory() == ["aisle-2"]
    until(lambda: views["aisle-2"].refresh() and views["aisle-2"].products["SKU-B1"].stock == 12,
          what="restock to reach aisle-2")

    # Decision events reach the hub's dashboard.
    shelves["aisle-1"].publish_event({"time": 1.0, "segment": "female/25-34", "reason": "personalised",
                                      "items": ["item-SKU-A1"], "slots": ["A1"], "confidence": 0.8})
    shelves["aisle-2"].publish_event({"time": 2.0, "segment": None, "reason": "generic", "items": [], "slots": []})
    until(lambda: sum(hub.events.counts().values()) == 2, what="events at the hub")
    board = hub.dashboard()
    assert board["store"]["events"] == 2 and board["store"]["shelves"] == 3
    until(lambda: hub.dashboard()["store"]["online"] == 3, what="three shelves online")

    # Identify, pause and resume any shelf from the hub; acks come back.
    ack = hub.command("aisle-1", "identify", {"slot": "A2"})
    assert ack["ok"] and store.controllers["aisle-1"].identified == ["A2"]
    assert hub.command("aisle-3", "pause")["result"]["paused"] is True
    assert store.controllers["aisle-3"].paused and not store.controllers["aisle-2"].paused
    until(lambda: hub.statuses.get("aisle-3", {}).get("paused") is True, what="aisle-3's status to say paused")
    assert hub.command("aisle-3", "resume")["result"]["paused"] is False
    assert hub.dashboard()["store"]["paused"] == 0 or until(lambda: hub.dashboard()["store"]["paused"] == 0)


def test_acl_confines_a_shelf_to_its_own_topics(store: Store) -> None:
    store.pair("aisle-1", ["A1"])
    store.pair("aisle-2", ["B1"])
    hub = store.start_hub()
    own = store.join("aisle-1")
    topics = Topics()
    # aisle-1 forges an event and a status on aisle-2's topics, and a stock message to itself.
    forged = {"shelf": "aisle-2", "seq": 1, "segment": "male/25-34", "reason": "personalised"}
    own.client.publish(topics.event("aisle-2"), encode(forged), qos=1).wait_for_publish(5)
    own.client.publish(topics.status("aisle-2"), encode({"shelf": "aisle-2", "online": True}), qos=1)
    own.client.publish(topics.stock("aisle-1"), encode({"version": 1, "products": [], "slots": {}}), qos=1)
    # Then a legitimate event: MQTT keeps one client's order, so once it arrives the forgeries had their chance.
    own.publish_event({"time": 1.0, "segment": None, "reason": "generic"})
    until(lambda: hub.events.counts().get("aisle-1") == 1, what="aisle-1's own event")
    assert "aisle-2" not in hub.events.counts() and "aisle-2" not in hub.statuses
    assert not (store.root / "aisle-1" / "store.json").exists()
    # A wrong password is refused outright.
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="intruder", protocol=mqtt.MQTTv5)
    client.username_pw_set("aisle-2", "not-the-password")
    with pytest.raises(Exception):  # noqa: B017 - paho raises a ConnectionRefused-like error on CONNACK
        client.connect("127.0.0.1", store.broker.port)
        client.loop_start()
        until(lambda: client.is_connected(), timeout=2)
    client.loop_stop()


def test_broker_restart_loses_no_qos1_event_and_an_offline_shelf_catches_up(store: Store) -> None:
    store.pair("aisle-1", ["A1"])
    store.pair("aisle-2", ["B1"])
    add_product(store.repo, "SKU-A1", "A1", stock=3)
    hub = store.start_hub()
    a = store.join("aisle-1")
    b = store.join("aisle-2")
    hub.publish_inventory()
    until(lambda: (store.root / "aisle-2" / "store.json").exists(), what="first stock")

    # Events published around a broker restart: all arrive, each once.
    for i in range(20):
        a.publish_event({"time": float(i), "reason": "generic"})
    store.broker.restart()
    for i in range(20, 40):
        a.publish_event({"time": float(i), "reason": "generic"})
    until(lambda: hub.events.counts().get("aisle-1") == 40, timeout=30, what="40 events after the restart")
    assert len(set(hub.events.seqs("aisle-1"))) == 40
    until(lambda: a.connected and b.connected and hub.connected, timeout=20, what="everyone back")

    # aisle-2 goes offline; the hub changes its stock and sends a command; it gets both on return.
    b.close()
    store.repo.set_slot({"slot": "B1", "pin": None})
    store.repo.create_product({"sku": "SKU-B1", "name": "B", "stock": 9, "price": 1, "slot": "B1", "item_id": "b"})
    assert hub.publish_inventory() == ["aisle-2"]
    sent = hub.command("aisle-2", "pause", wait_s=None)
    b2 = store.join("aisle-2")  # same client id, persistent session: the queued command comes too
    view = StoreView(store.root / "aisle-2" / "store.json")
    until(lambda: view.refresh() or "SKU-B1" in view.products, what="the missed stock")
    assert view.products["SKU-B1"].stock == 9
    until(lambda: sent["id"] in hub.acks, what="the missed command's ack")
    assert store.controllers["aisle-2"].paused
    # A shelf that lost the broker keeps serving and says so.
    store.broker.stop()
    until(lambda: not b2.connected, timeout=15, what="the shelf to notice")
    status = b2.describe()
    assert status["connected"] is False and "last stock" in status["serving"]
    assert StoreView(store.root / "aisle-2" / "store.json").refresh(force=True)


def test_factor_announcement_is_verified_before_it_is_installed(store: Store, tmp_path: Path) -> None:
    private, public = generate_key(tmp_path / "keys" / "store.key")
    store.pair("aisle-1", ["A1"])
    hub = store.start_hub()
    shelf = store.join("aisle-1", public_key=load_public_key(public))
    good = make_model([[1.0, 0.0], [0.0, 1.0]], item_ids=["a", "b"], metadata={"method": "chain"})
    hub.publish_factors(signed_bytes(good, load_private_key(private)))
    path = store.root / "aisle-1" / "factors.npz"
    until(lambda: path.exists(), what="the factor file")
    watcher = FactorWatcher(path, public_key=load_public_key(public))
    assert watcher.current.metadata["method"] == "chain"
    before = path.read_bytes()
    # An unsigned file is refused: the installed one stays, the shelf says why.
    hub.publish_factors(make_model([[1.0]], item_ids=["x"]).save(tmp_path / "u.npz").read_bytes())
    until(lambda: shelf.factors_rejected, what="the refusal")
    assert "not signed" in shelf.factors_rejected and path.read_bytes() == before
    until(lambda: (hub.statuses.get("aisle-1", {}).get("bus") or {}).get("factors_rejected"),
          what="the refusal in the hub's view of the shelf")


def test_no_frame_crop_or_embedding_can_be_published(store: Store) -> None:
    import numpy as np

    from smartshelf.core.bus_schema import BusPayloadError

    store.pair("aisle-1", ["A1"])
    shelf = store.join("aisle-1")
    for bad in ({"frame": "..."}, {"crop": [1, 2]}, {"embedding": [0.1] * 128}, {"face_id": "x"},
                {"segment": np.zeros((4, 4)).tolist()}, {"items": [[0.1, 0.2]]}, {"timings_ms": {"x": [1.0]}},
                {"segment": "x" * 1000}):
        with pytest.raises(BusPayloadError):
            shelf.publish_event({"time": 1.0, **bad})
    json.dumps(shelf.describe())


def test_the_store_page_runs_the_store(tmp_path: Path, mosquitto: Callable[..., Any]) -> None:
    """The admin as hub (STORE_HUB): /store lists the shelves, pause/identify go through the broker, and a
    stock change made in the admin's inventory reaches the shelf without anyone publishing by hand."""
    import re

    from admin_web import create_app
    from admin_web.accounts import AccountStore
    from admin_web.store_bus import ShelfRegistry
    from admin_web.views.store import close_app
    from tests.helpers import ADMIN_PASSWORD, ADMIN_USER, AuthActions, csrf_token_of

    hub_dir = tmp_path / "hub"
    registry = ShelfRegistry(hub_dir)
    password = registry.add_shelf("aisle-1", ["A1"])
    broker = mosquitto(password_file=registry.password_file, acl_file=registry.acl_file)
    AccountStore(hub_dir).set_password(ADMIN_USER, ADMIN_PASSWORD)
    app = create_app({"TESTING": True, "DATA_DIR": str(hub_dir), "DEVICE_URL": "http://127.0.0.1:9",
                      "STORE_HUB": True, "BROKER_PORT": broker.port})
    controller = FakeController()
    cfg = BusConfig(enabled=True, host="127.0.0.1", port=broker.port, shelf="aisle-1", user="aisle-1")
    shelf = ShelfBus(cfg, "aisle-1", data_dir=tmp_path / "shelf", factors_path=tmp_path / "shelf" / "f.npz",
                     on_command=controller.command, status=lambda: {"paused": controller.paused},
                     password=password)
    (tmp_path / "shelf").mkdir()
    shelf.start()
    try:
        hub = app.extensions["smartshelf.store_hub"]
        until(lambda: hub.connected and shelf.connected, what="hub and shelf connected")
        client = app.test_client()
        AuthActions(client).login()
        with app.app_context():
            from admin_web.db import get_repository

            add_product(get_repository(), "SKU-1", "A1", stock=2)
        view = StoreView(tmp_path / "shelf" / "store.json")
        until(lambda: view.refresh() or "SKU-1" in view.products, what="the inventory at the shelf")
        page = client.get("/store/")
        assert page.status_code == 200 and b'data-shelf="aisle-1"' in page.data
        until(lambda: hub.dashboard()["store"]["online"] == 1, what="the shelf online")
        token = csrf_token_of(client)
        response = client.post("/store/aisle-1/pause", data={"csrf_token": token})
        assert response.status_code == 302 and controller.paused
        response = client.post("/store/aisle-1/identify", data={"csrf_token": token, "slot": "A1"})
        assert controller.identified == ["A1"]
        page = client.get("/store/")
        assert re.search(rb"aisle-1: identify done", page.data)
        assert client.get("/store/api").get_json()["store"]["shelves"] == 1
    finally:
        shelf.close()
        close_app(app)


def test_the_store_page_is_absent_on_a_lone_shelf(client: Any, auth: Any) -> None:
    auth.login()
    assert client.get("/store/").status_code == 404
