"""The hub's side of the store bus: pairing shelves (broker users, passwords, ACL) and the hub's client.

One machine in the store (the hub) runs Mosquitto and this admin: one inventory (``store.json``), one
slot map per shelf (the registry below assigns each of the store's slots to one shelf), one till link.

- :class:`ShelfRegistry` (``<data_dir>/bus/``): ``shelves.json`` (name -> slots), the broker's password
  file (hashed by ``mosquitto_passwd``) and ACL file, and the hub's own broker password. Pairing a shelf
  generates its password once (shown once, like a terminal secret); its ACL confines it to its own
  topics (:meth:`smartshelf.core.bus_schema.Topics.shelf_acl`).
- :class:`StoreHub`: the hub's MQTT client (persistent session). Publishes each shelf's stock (retained)
  when the inventory changes, commands and the store's signed factor file; receives statuses, acks and
  decision events. Events go to an append-only SQLite file (``bus_events.sqlite``, WAL) *before* paho
  acknowledges them (paho sends PUBACK after ``on_message`` returns), keyed by (shelf, seq) so a
  redelivered QoS-1 message is stored once.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import shutil
import sqlite3
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from smartshelf.core.bus_schema import (
    SESSION_EXPIRY_S,
    BusPayloadError,
    Topics,
    check_event,
    check_name,
    command_payload,
    decode,
    encode,
    stock_payload,
)
from smartshelf.core.errors import ConfigError, SmartShelfError
from smartshelf.core.storage import FileLock, atomic_write_bytes, atomic_write_json, open_db

logger = logging.getLogger(__name__)

BUS_DIR = "bus"
HUB_USER = "hub"


class BusError(SmartShelfError, RuntimeError):
    """The broker tool is missing, a shelf is unknown, or a command got no answer in time."""


def mosquitto_passwd() -> str:
    found = shutil.which("mosquitto_passwd") or shutil.which("mosquitto_passwd", path="/usr/bin:/usr/sbin")
    if found is None:
        raise BusError("mosquitto_passwd not found: install the mosquitto package on the hub (setup.sh --hub)")
    return found


class ShelfRegistry:
    """The store's shelves, their slots and their broker credentials (``<data_dir>/bus/``)."""

    def __init__(self, data_dir: str | os.PathLike[str], topics: Topics | None = None) -> None:
        self.dir = Path(data_dir) / BUS_DIR
        self.topics = topics or Topics()
        self.shelves_path = self.dir / "shelves.json"
        self.password_file = self.dir / "passwd"
        self.acl_file = self.dir / "acl"
        self.hub_password_file = self.dir / "hub-password"
        self._lock = FileLock(self.dir / "registry")

    def shelves(self) -> dict[str, dict[str, Any]]:
        try:
            data = json.loads(self.shelves_path.read_text())
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            raise BusError(f"{self.shelves_path}: cannot read the shelf registry: {exc}") from None
        return {str(k): dict(v) for k, v in data.items()}

    def shelf_of_slot(self) -> dict[str, str]:
        return {slot: name for name, doc in self.shelves().items() for slot in doc.get("slots", [])}

    def _run_passwd(self, *args: str) -> None:
        result = subprocess.run([mosquitto_passwd(), *args], capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise BusError(f"mosquitto_passwd {args[0]} failed: {result.stderr.strip() or result.stdout.strip()}")

    def _set_password(self, user: str, password: str) -> None:
        if not self.password_file.exists():
            atomic_write_bytes(self.password_file, b"", mode=0o640)
        self._run_passwd("-b", str(self.password_file), user, password)
        os.chmod(self.password_file, 0o640)  # the broker reads it through the group

    def _write_acl(self, shelves: Mapping[str, Any]) -> None:
        lines = ["# written by smartshelf (admin_web.store_bus); edits are overwritten", f"user {HUB_USER}"]
        lines += self.topics.hub_acl()
        for name in sorted(shelves):
            lines += ["", f"user {shelves[name]['user']}", *self.topics.shelf_acl(name)]
        atomic_write_bytes(self.acl_file, ("\n".join(lines) + "\n").encode(), mode=0o640)

    def hub_password(self) -> str:
        """The hub client's broker password, created on first use (0600)."""
        self.dir.mkdir(parents=True, exist_ok=True)
        with self._lock:
            if self.hub_password_file.exists():
                return self.hub_password_file.read_text().strip()
            password = secrets.token_urlsafe(24)
            self._set_password(HUB_USER, password)
            atomic_write_bytes(self.hub_password_file, password.encode(), mode=0o600)
            self._write_acl(self.shelves())
            return password

    def add_shelf(self, name: str, slots: Iterable[str] = ()) -> str:
        """Pair a shelf: its broker user (= name), a new password (returned, shown once) and its ACL."""
        check_name(name)
        slots = [str(s) for s in slots]
        self.hub_password()
        with self._lock:
            shelves = self.shelves()
            taken = {s: n for n, d in shelves.items() if n != name for s in d.get("slots", [])}
            clash = [s for s in slots if s in taken]
            if clash:
                raise ConfigError(f"slot {clash[0]} already belongs to shelf {taken[clash[0]]}")
            password = secrets.token_urlsafe(24)
            self._set_password(name, password)
            shelves[name] = {"user": name, "slots": slots, "paired_at": time.time()}
            atomic_write_json(self.shelves_path, shelves, indent=1)
            self._write_acl(shelves)
        logger.info("paired shelf %s (slots %s)", name, ", ".join(slots) or "none")
        return password

    def set_slots(self, name: str, slots: Iterable[str]) -> None:
        with self._lock:
            shelves = self.shelves()
            if name not in shelves:
                raise ConfigError(f"no shelf named {name!r}; paired shelves: {', '.join(sorted(shelves)) or 'none'}")
            slots = [str(s) for s in slots]
            taken = {s: n for n, d in shelves.items() if n != name for s in d.get("slots", [])}
            clash = [s for s in slots if s in taken]
            if clash:
                raise ConfigError(f"slot {clash[0]} already belongs to shelf {taken[clash[0]]}")
            shelves[name]["slots"] = slots
            atomic_write_json(self.shelves_path, shelves, indent=1)

    def remove_shelf(self, name: str) -> None:
        with self._lock:
            shelves = self.shelves()
            if shelves.pop(name, None) is None:
                raise ConfigError(f"no shelf named {name!r}")
            self._run_passwd("-D", str(self.password_file), name)
            atomic_write_json(self.shelves_path, shelves, indent=1)
            self._write_acl(shelves)


# ------------------------------------------------------------------------------ events
class BusEventStore:
    """Append-only SQLite (WAL) of the shelves' decision events; one row per (shelf, seq)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS events (shelf TEXT NOT NULL, seq INTEGER NOT NULL, time REAL, segment TEXT,"
            " reason TEXT, items TEXT, payload TEXT NOT NULL, received_at REAL NOT NULL, PRIMARY KEY (shelf, seq))"
        )
        self._lock = threading.Lock()

    def add(self, event: Mapping[str, Any], received_at: float) -> bool:
        """Store an event; False if it was already stored (a QoS-1 redelivery)."""
        with self._lock:
            cur = self._db.execute(
                "INSERT OR IGNORE INTO events VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (event["shelf"], int(event["seq"]), event.get("time"), event.get("segment"), event.get("reason"),
                 json.dumps(event.get("items", [])), json.dumps(event, sort_keys=True), received_at),
            )
            return cur.rowcount == 1

    def counts(self) -> dict[str, int]:
        with self._lock:
            return dict(self._db.execute("SELECT shelf, COUNT(*) FROM events GROUP BY shelf").fetchall())

    def seqs(self, shelf: str) -> list[int]:
        with self._lock:
            return [r[0] for r in self._db.execute("SELECT seq FROM events WHERE shelf = ? ORDER BY seq", (shelf,))]

    def recent(self, n: int = 20) -> list[dict[str, Any]]:
        with self._lock:
            rows = self._db.execute("SELECT payload FROM events ORDER BY received_at DESC LIMIT ?", (n,)).fetchall()
        return [json.loads(r[0]) for r in rows]

    def close(self) -> None:
        with self._lock:
            self._db.close()


# ------------------------------------------------------------------------------ the hub client
def stock_by_shelf(
    products: Iterable[Mapping[str, Any]], slots: Iterable[Mapping[str, Any]], shelf_of_slot: Mapping[str, str],
    shelves: Iterable[str],
) -> dict[str, tuple[list[dict[str, Any]], dict[str, int | None]]]:
    """Split the store's one inventory and slot table into each shelf's products and slot map."""
    out: dict[str, tuple[list[dict[str, Any]], dict[str, int | None]]] = {name: ([], {}) for name in shelves}
    for slot in slots:
        shelf = shelf_of_slot.get(str(slot.get("slot")))
        if shelf in out:
            out[shelf][1][str(slot["slot"])] = slot.get("pin")
    for product in products:
        shelf = shelf_of_slot.get(str(product.get("slot")))
        if shelf in out:
            out[shelf][0].append(dict(product))
    return out


class StoreHub:
    """The hub's MQTT client: ``start()``, then publish stock/commands/factors and read the shelves."""

    def __init__(
        self,
        data_dir: str | os.PathLike[str],
        *,
        host: str = "127.0.0.1",
        port: int = 1883,
        topics: Topics | None = None,
        password: str | None = None,
        client_id: str = "hub",
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.data_dir = Path(data_dir)
        self.topics = topics or Topics()
        self.registry = ShelfRegistry(self.data_dir, self.topics)
        self.host, self.port, self.clock = host, port, clock
        self.events = BusEventStore(self.data_dir / "bus_events.sqlite")
        self.statuses: dict[str, dict[str, Any]] = {}
        self.acks: dict[str, dict[str, Any]] = {}
        self.connected = False
        self._cond = threading.Condition()
        self._published_stock: dict[str, str] = {}
        self._stock_version = int(time.time())
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
        self.client.username_pw_set(HUB_USER, password if password is not None else self.registry.hub_password())
        self.client.reconnect_delay_set(1, 10)
        self.client.max_inflight_messages_set(200)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.message_callback_add(self.topics.any_shelf("status"), self._on_status)
        self.client.message_callback_add(self.topics.any_shelf("event"), self._on_event)
        self.client.message_callback_add(self.topics.any_shelf("ack"), self._on_ack)

    def start(self, *, wait_s: float | None = 10.0) -> StoreHub:
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = SESSION_EXPIRY_S
        self.client.connect_async(self.host, self.port, keepalive=30, clean_start=False, properties=props)
        self.client.loop_start()
        if wait_s:
            self.wait_for(lambda: self.connected, wait_s, "the hub to connect to the broker")
        return self

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()
        self.events.close()

    def wait_for(self, predicate: Callable[[], bool], timeout: float, what: str) -> None:
        with self._cond:
            if not self._cond.wait_for(predicate, timeout):
                raise BusError(f"timed out after {timeout:g} s waiting for {what}")

    # ------------------------------------------------------------------ callbacks
    def _on_connect(self, client: mqtt.Client, _u: Any, _flags: Any, reason: Any, _p: Any) -> None:
        if reason.is_failure:
            logger.error("store hub: broker refused the connection: %s", reason)
            return
        client.subscribe([(self.topics.any_shelf(k), 1) for k in ("status", "event", "ack")])
        with self._cond:
            self.connected = True
            self._cond.notify_all()

    def _on_disconnect(self, _c: mqtt.Client, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        with self._cond:
            self.connected = False
            self._cond.notify_all()
        logger.warning("store hub: disconnected from the broker (%s)", reason)

    def _shelf_of(self, topic: str) -> str | None:
        parsed = self.topics.parse(topic)
        return parsed[0] if parsed else None

    def _on_status(self, _c: mqtt.Client, _u: Any, msg: mqtt.MQTTMessage) -> None:
        shelf = self._shelf_of(msg.topic)
        try:
            status = decode(msg.topic, msg.payload)
        except BusPayloadError as exc:
            logger.warning("store hub: %s", exc)
            return
        with self._cond:
            self.statuses[str(shelf)] = {**status, "received_at": self.clock()}
            self._cond.notify_all()

    def _on_event(self, _c: mqtt.Client, _u: Any, msg: mqtt.MQTTMessage) -> None:
        shelf = self._shelf_of(msg.topic)
        try:
            event = check_event(decode(msg.topic, msg.payload))
            if event.get("shelf") != shelf or not isinstance(event.get("seq"), int):
                raise BusPayloadError(f"{msg.topic}: event shelf/seq do not match the topic")
        except BusPayloadError as exc:
            logger.warning("store hub: event refused: %s", exc)
            return
        # Stored before this callback returns, i.e. before paho acknowledges the message.
        self.events.add(event, self.clock())
        with self._cond:
            self._cond.notify_all()

    def _on_ack(self, _c: mqtt.Client, _u: Any, msg: mqtt.MQTTMessage) -> None:
        try:
            ack = decode(msg.topic, msg.payload)
        except BusPayloadError as exc:
            logger.warning("store hub: %s", exc)
            return
        with self._cond:
            self.acks[str(ack.get("id"))] = {**ack, "shelf": self._shelf_of(msg.topic)}
            self._cond.notify_all()

    # ------------------------------------------------------------------ to the shelves
    def command(self, shelf: str, name: str, body: Mapping[str, Any] | None = None, *,
                wait_s: float | None = 5.0) -> dict[str, Any]:
        """Send identify/pause/resume/reload; with ``wait_s`` wait for the shelf's ack (BusError if none)."""
        if shelf not in self.registry.shelves():
            raise BusError(f"no shelf named {shelf!r} in this store")
        command_id = uuid.uuid4().hex
        self.client.publish(self.topics.cmd(shelf), encode(command_payload(command_id, name, body)), qos=1)
        if not wait_s:
            return {"id": command_id, "sent": True}
        self.wait_for(lambda: command_id in self.acks, wait_s, f"shelf {shelf} to answer {name}")
        return self.acks[command_id]

    def publish_stock(self, shelf: str, products: list[Mapping[str, Any]], slots: Mapping[str, int | None],
                      *, force: bool = False) -> bool:
        """Retained stock for one shelf; skipped when it did not change since the last publish."""
        body = stock_payload(0, products, slots)
        key = json.dumps(body, sort_keys=True)
        if not force and self._published_stock.get(shelf) == key:
            return False
        self._stock_version += 1
        body["version"] = self._stock_version
        self.client.publish(self.topics.stock(shelf), encode(body), qos=1, retain=True)
        self._published_stock[shelf] = key
        return True

    def publish_inventory(self, *, force: bool = False) -> list[str]:
        """Read the admin's store.json and publish every shelf whose products or slots changed."""
        db = open_db(self.data_dir / "store.json", read_only=True)
        try:
            products = [dict(d) for d in db.table("products").all()]
            slots = [dict(d) for d in db.table("slots").all()]
        finally:
            db.close()
        shelves = self.registry.shelves()
        split = stock_by_shelf(products, slots, self.registry.shelf_of_slot(), shelves)
        return [name for name, (p, s) in split.items() if self.publish_stock(name, p, s, force=force)]

    def publish_factors(self, data: bytes) -> mqtt.MQTTMessageInfo:
        """The store's (signed) factor file, retained: every shelf, also one that joins later, gets it."""
        return self.client.publish(self.topics.factors, data, qos=1, retain=True)

    # ------------------------------------------------------------------ dashboard
    def dashboard(self, *, stale_s: float = 60.0) -> dict[str, Any]:
        now = self.clock()
        counts = self.events.counts()
        rows = []
        for name, doc in sorted(self.registry.shelves().items()):
            status = self.statuses.get(name, {})
            online = bool(status.get("online")) and now - float(status.get("received_at", 0)) < stale_s * 10
            rows.append({
                "shelf": name, "slots": doc.get("slots", []), "online": online,
                "paused": status.get("paused"), "decisions": status.get("decisions"),
                "events": counts.get(name, 0), "stock_version": status.get("stock_version"),
                "factors": status.get("factors"), "bus": status.get("bus"),
                "seen_at": status.get("updated_at"),
            })
        return {
            "hub_connected": self.connected,
            "shelves": rows,
            "store": {
                "shelves": len(rows),
                "online": sum(r["online"] for r in rows),
                "paused": sum(bool(r["paused"]) for r in rows),
                "events": sum(counts.values()),
            },
        }
