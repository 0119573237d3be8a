"""The shelf's side of the store bus (MQTT, ``paho-mqtt`` 2.x): off unless ``[bus] enabled = true``.

What it does (topics and payloads: :mod:`smartshelf.core.bus_schema`):

- receives its products and slot map (retained ``stock``) and writes them to ``<data_dir>/store.json``,
  the file the shelf reads anyway (:class:`device.inventory.StoreView`); in a store the bus client is
  that file's one writer (no admin runs on the shelf), and the file is the shelf's last state when the
  hub is gone;
- receives the store's signed factor file (retained ``store/factors``), verifies it (checksum and,
  with ``recommend.public_key``, the signature) and installs it atomically where the shelf's
  :class:`~device.recommend.factors.FactorWatcher` picks it up; a refused file changes nothing and is
  reported in the status;
- runs staff commands (identify, pause, resume, reload) through the controller and acknowledges them;
- publishes its status (retained; a will marks it offline if the connection drops) and every decision
  event (QoS 1, checked anonymous by :func:`~smartshelf.core.bus_schema.check_event`).

A persistent session (``clean_start=False``, a session expiry) lets the broker queue what an offline
shelf missed; paho keeps the shelf's unacknowledged QoS-1 messages and resends them on reconnect.
Losing the broker never stops the shelf: it keeps serving from its last store.json and factor file and
says so in :meth:`ShelfBus.describe` (the shelf's status).
"""

from __future__ import annotations

import itertools
import logging
import os
import queue
import ssl
import tempfile
import threading
import time
from collections.abc import Callable, Mapping
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
    ack_payload,
    check_command,
    check_event,
    check_status,
    check_stock,
    decode,
    encode,
)
from smartshelf.core.config import BusConfig
from smartshelf.core.errors import ConfigError, ModelError
from smartshelf.core.storage import atomic_write_bytes, atomic_write_json

logger = logging.getLogger(__name__)

CommandHandler = Callable[[str, dict[str, Any]], dict[str, Any]]


def read_password(path: Path) -> str:
    try:
        text = Path(path).read_text().strip()
    except OSError as exc:
        raise ConfigError(f"bus.password_file {path}: cannot read: {exc.strerror}") from None
    if not text:
        raise ConfigError(f"bus.password_file {path} is empty")
    return text


def store_json_from_stock(stock: Mapping[str, Any]) -> dict[str, Any]:
    """The stock message as the TinyDB tables StoreView reads (``products`` and ``slots``)."""
    products = {str(i + 1): dict(p) for i, p in enumerate(stock["products"])}
    slots = {str(i + 1): {"slot": s, "pin": pin} for i, (s, pin) in enumerate(sorted(stock["slots"].items()))}
    return {"products": products, "slots": slots, "bus": {"1": {"stock_version": stock["version"]}}}


def session_properties() -> Properties:
    props = Properties(PacketTypes.CONNECT)
    props.SessionExpiryInterval = SESSION_EXPIRY_S
    return props


def make_client(client_id: str, user: str, password: str, *, tls: bool = False, ca_file: Path | None = None) -> mqtt.Client:
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
    client.username_pw_set(user, password)
    if tls:
        client.tls_set(ca_certs=str(ca_file) if ca_file else None, tls_version=ssl.PROTOCOL_TLS_CLIENT)
    client.reconnect_delay_set(min_delay=1, max_delay=10)
    client.max_inflight_messages_set(100)
    return client


class ShelfBus:
    """One shelf's MQTT client. ``start()`` connects in the background (never blocks the shelf)."""

    def __init__(
        self,
        cfg: BusConfig,
        shelf: str,
        *,
        data_dir: Path,
        factors_path: Path,
        on_command: CommandHandler,
        status: Callable[[], Mapping[str, Any]] | None = None,
        public_key: Any = None,
        password: str | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.cfg = cfg
        self.shelf = shelf
        self.topics = Topics(cfg.topic_root)
        self.store_path = Path(data_dir) / "store.json"
        self.factors_path = Path(factors_path)
        self.on_command = on_command
        self.status_source = status
        self.public_key = public_key
        self.clock = clock
        self.connected = False
        self.since: float | None = None
        self.last_error: str | None = "not connected yet"
        self.stock_version: int | None = None
        self.factors_rejected: str | None = None
        self.factors_installed_at: float | None = None
        self.commands_run = 0
        # Unique over restarts without a file: start from the clock in microseconds.
        self._seq = itertools.count(time.time_ns() // 1000)
        self._commands: queue.Queue[tuple[str, str, dict[str, Any]] | None] = queue.Queue()
        self._worker = threading.Thread(target=self._run_commands, name=f"bus-commands-{shelf}", daemon=True)
        self._lock = threading.Lock()
        password = password if password is not None else read_password(cfg.password_file)  # type: ignore[arg-type]
        self.client = make_client(f"shelf-{shelf}", cfg.user, password, tls=cfg.tls, ca_file=cfg.ca_file)
        self.client.will_set(self.topics.status(shelf), encode({"shelf": shelf, "online": False}), qos=1, retain=True)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_message = self._on_message
        self.client.message_callback_add(self.topics.stock(shelf), self._on_stock)
        self.client.message_callback_add(self.topics.cmd(shelf), self._on_cmd)
        self.client.message_callback_add(self.topics.factors, self._on_factors)

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> ShelfBus:
        self._worker.start()
        self.client.connect_async(
            self.cfg.host, self.cfg.port, keepalive=self.cfg.keepalive_s, clean_start=False,
            properties=session_properties(),
        )
        self.client.loop_start()
        logger.info("store bus: connecting to %s:%d as shelf %r", self.cfg.host, self.cfg.port, self.shelf)
        return self

    def close(self) -> None:
        """Say offline (retained), disconnect, stop the threads. Safe twice."""
        if self._worker.is_alive():
            self._commands.put(None)
            self._worker.join(5)
        if self.connected:
            info = self.client.publish(self.topics.status(self.shelf), encode(self._status(online=False)), 1, True)
            info.wait_for_publish(2)
        self.connected = False
        self.client.disconnect()
        self.client.loop_stop()
        self.connected = False

    # ------------------------------------------------------------------ callbacks (paho's thread)
    def _on_connect(self, client: mqtt.Client, _userdata: Any, flags: Any, reason: Any, _props: Any) -> None:
        if reason.is_failure:
            self.last_error = f"broker refused the connection: {reason}"
            logger.error("store bus: %s (check bus.user and the password file)", self.last_error)
            return
        self.connected, self.since, self.last_error = True, self.clock(), None
        client.subscribe([(self.topics.stock(self.shelf), 1), (self.topics.cmd(self.shelf), 1), (self.topics.factors, 1)])
        logger.info("store bus: connected to %s:%d (session %s)", self.cfg.host, self.cfg.port,
                    "resumed" if flags.session_present else "new")
        self.publish_status()

    def _on_disconnect(self, _client: mqtt.Client, _userdata: Any, _flags: Any, reason: Any, _props: Any) -> None:
        if self.connected:
            logger.warning("store bus: lost the broker (%s); serving from the last stock and factor file", reason)
        self.connected, self.since = False, self.clock()
        self.last_error = f"disconnected: {reason}"

    def _on_message(self, _client: mqtt.Client, _userdata: Any, msg: mqtt.MQTTMessage) -> None:
        logger.warning("store bus: unexpected message on %s ignored", msg.topic)

    def _on_stock(self, _client: mqtt.Client, _userdata: Any, msg: mqtt.MQTTMessage) -> None:
        try:
            stock = check_stock(msg.topic, decode(msg.topic, msg.payload))
            atomic_write_json(self.store_path, store_json_from_stock(stock))
        except (BusPayloadError, OSError) as exc:
            logger.error("store bus: stock update refused, keeping the last one: %s", exc)
            return
        self.stock_version = stock["version"]
        logger.info("store bus: stock version %d (%d products)", stock["version"], len(stock["products"]))
        self.publish_status()

    def _on_cmd(self, _client: mqtt.Client, _userdata: Any, msg: mqtt.MQTTMessage) -> None:
        try:
            command_id, name, body = check_command(msg.topic, decode(msg.topic, msg.payload))
        except BusPayloadError as exc:
            logger.error("store bus: %s", exc)
            return
        self._commands.put((command_id, name, body))

    def _on_factors(self, _client: mqtt.Client, _userdata: Any, msg: mqtt.MQTTMessage) -> None:
        self.install_factors(msg.payload)

    # ------------------------------------------------------------------ work
    def install_factors(self, data: bytes) -> bool:
        """Verify a factor file (checksum, signature when a key is configured) and install it atomically."""
        from device.recommend.factors import FactorModel

        self.factors_path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".incoming-", suffix=".npz", dir=self.factors_path.parent)
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
            model = FactorModel.load(tmp, public_key=self.public_key)
        except ModelError as exc:
            self.factors_rejected = str(exc).replace(tmp, "the announced factor file")
            logger.error("store bus: factor file refused, keeping the current one: %s", self.factors_rejected)
            self.publish_status()
            return False
        finally:
            Path(tmp).unlink(missing_ok=True)
        atomic_write_bytes(self.factors_path, data, mode=0o644)
        self.factors_rejected, self.factors_installed_at = None, self.clock()
        logger.info("store bus: installed factor file (%d items, signed by %s)", model.n_items, model.signed_by)
        self.publish_status()
        return True

    def _run_commands(self) -> None:
        while (item := self._commands.get()) is not None:
            command_id, name, body = item
            try:
                result = self.on_command(name, body)
                payload = ack_payload(command_id, ok=True, result=result)
            except Exception as exc:  # noqa: BLE001 - any failure is answered, not raised on a worker thread
                logger.warning("store bus: command %s %s failed: %s", name, command_id, exc)
                payload = ack_payload(command_id, ok=False, error=str(exc))
            self.commands_run += 1
            self.client.publish(self.topics.ack(self.shelf), encode(payload), qos=1)
            self.publish_status()

    def publish_event(self, event: Mapping[str, Any]) -> None:
        """Queue one decision event (QoS 1); paho sends it now or when the broker is back."""
        payload = check_event({**event, "shelf": self.shelf, "seq": next(self._seq)})
        self.client.publish(self.topics.event(self.shelf), encode(payload), qos=1)

    def _status(self, *, online: bool = True) -> dict[str, Any]:
        base = dict(self.status_source()) if self.status_source else {}
        status = {k: base[k] for k in ("paused", "decisions", "errors", "last_decision_at", "version") if k in base}
        if "camera" in base:
            status["camera"] = {k: base["camera"].get(k) for k in ("state", "fps", "error")}
        if "factors" in base:
            status["factors"] = {k: base["factors"].get(k) for k in ("signed_by", "rejected", "in_memory_prior")}
        status.update(shelf=self.shelf, online=online, updated_at=self.clock(), stock_version=self.stock_version,
                      bus={"factors_rejected": self.factors_rejected, "commands_run": self.commands_run})
        return check_status(status)

    def publish_status(self) -> None:
        with self._lock:
            self.client.publish(self.topics.status(self.shelf), encode(self._status()), qos=1, retain=True)

    def describe(self) -> dict[str, Any]:
        """For the shelf's local status: connected or not, since when, and what it serves from."""
        return {
            "enabled": True,
            "hub": f"{self.cfg.host}:{self.cfg.port}",
            "shelf": self.shelf,
            "connected": self.connected,
            "since": self.since,
            "error": self.last_error,
            "serving": "live" if self.connected else "last stock and factor file (hub unreachable)",
            "stock_version": self.stock_version,
            "factors_rejected": self.factors_rejected,
        }


def controller_commands(command: Callable[[str, dict[str, Any]], dict[str, Any]]) -> CommandHandler:
    """The bus's commands over :meth:`device.controller.ShelfController.command` (which runs them on the
    loop's own thread): resume is pause with ``paused: false``."""

    def handle(name: str, body: dict[str, Any]) -> dict[str, Any]:
        if name == "resume":
            return command("pause", {"paused": False})
        if name == "pause":
            return command("pause", {"paused": True})
        return command(name, body)

    return handle


class TeeEvents:
    """The device's event log plus the bus: every decision event is written locally (as a single shelf
    does) and published (QoS 1). A bus that refuses an event never stops the local record."""

    def __init__(self, log: Any, bus: ShelfBus) -> None:
        self.log, self.bus = log, bus

    def record(self, event: dict[str, Any]) -> None:
        self.log.record(event)
        try:
            self.bus.publish_event(event)
        except BusPayloadError as exc:
            logger.error("store bus: event not published: %s", exc)

    def close(self) -> None:
        self.log.close()
