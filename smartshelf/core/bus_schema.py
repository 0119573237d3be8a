"""The store bus's contract: topic names and payload schemas, the only thing the shelf (``device.bus``)
and the hub (``admin_web.store_bus``) share.

Topics (``ROOT`` = ``bus.topic_root``, default ``smartshelf``; ``S`` = a shelf name):

=============================  =========  ======  ===========================================
topic                          publisher  QoS     payload
=============================  =========  ======  ===========================================
ROOT/shelf/S/status            shelf      1, ret  :func:`status_payload` (a will sets offline)
ROOT/shelf/S/event             shelf      1       one anonymous decision event (:data:`EVENT_KEYS`)
ROOT/shelf/S/ack               shelf      1       answer to a command (:func:`ack_payload`)
ROOT/shelf/S/stock             hub        1, ret  the shelf's products and slot map
ROOT/shelf/S/cmd               hub        1       identify / pause / resume / reload
ROOT/store/factors             hub        1, ret  a signed factor file (.npz bytes)
=============================  =========  ======  ===========================================

Privacy: an event may carry only the keys in :data:`EVENT_KEYS`, each a JSON scalar, a list of
strings or (``timings_ms``) a flat mapping of numbers; :func:`check_event` refuses anything else
(a frame, a face crop or an embedding has no key to go in and no shape that passes). Every
payload but the factor file is UTF-8 JSON.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from smartshelf.core.errors import ConfigError, SmartShelfError

DEFAULT_ROOT = "smartshelf"
#: Shelf names become topic levels and broker user names: no wildcards, separators or spaces.
NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,31}$")

#: What a decision event on the bus may carry (the device's event log keys, plus the shelf and a
#: per-shelf sequence number that makes redelivered QoS-1 messages idempotent at the hub).
EVENT_KEYS = frozenset(
    {"time", "visit_id", "segment", "confidence", "reason", "variant", "items", "slots", "timings_ms",
     "clock_synced", "shelf", "seq"}
)
COMMANDS = ("identify", "pause", "resume", "reload")
STATUS_KEYS = frozenset({
    "shelf", "online", "paused", "updated_at", "version", "decisions", "errors", "last_decision_at",
    "camera", "factors", "bus", "stock_version",
})
SESSION_EXPIRY_S = 7 * 86400
"""How long the broker keeps an offline client's session (subscriptions and queued QoS-1 messages)."""


class BusPayloadError(SmartShelfError, ValueError):
    """A bus message that does not match its schema (named with the topic and the key at fault)."""


def check_name(name: str, what: str = "shelf name") -> str:
    if not isinstance(name, str) or not NAME_RE.match(name):
        raise ConfigError(
            f"{what} {name!r} must be 1-32 characters of a-z, 0-9, '-' or '_', starting with a letter or digit"
        )
    return name


class Topics:
    """Topic names under one root."""

    def __init__(self, root: str = DEFAULT_ROOT) -> None:
        if not root or any(c in root for c in "+#") or root.startswith("/") or root.endswith("/"):
            raise ConfigError(f"bus.topic_root {root!r} must be a plain topic prefix without + # or edge '/'")
        self.root = root

    def shelf(self, shelf: str, kind: str) -> str:
        return f"{self.root}/shelf/{check_name(shelf)}/{kind}"

    def status(self, shelf: str) -> str:
        return self.shelf(shelf, "status")

    def event(self, shelf: str) -> str:
        return self.shelf(shelf, "event")

    def ack(self, shelf: str) -> str:
        return self.shelf(shelf, "ack")

    def stock(self, shelf: str) -> str:
        return self.shelf(shelf, "stock")

    def cmd(self, shelf: str) -> str:
        return self.shelf(shelf, "cmd")

    @property
    def factors(self) -> str:
        return f"{self.root}/store/factors"

    def any_shelf(self, kind: str) -> str:
        return f"{self.root}/shelf/+/{kind}"

    def parse(self, topic: str) -> tuple[str, str] | None:
        """``(shelf, kind)`` of a shelf topic; None for anything else."""
        parts = topic.split("/")
        prefix = self.root.split("/")
        if parts[: len(prefix)] != prefix or len(parts) != len(prefix) + 3 or parts[len(prefix)] != "shelf":
            return None
        return parts[-2], parts[-1]

    def shelf_acl(self, shelf: str) -> list[str]:
        """Mosquitto ACL lines for one shelf: its own topics and the store's factor file, nothing else."""
        return [
            f"topic write {self.status(shelf)}",
            f"topic write {self.event(shelf)}",
            f"topic write {self.ack(shelf)}",
            f"topic read {self.stock(shelf)}",
            f"topic read {self.cmd(shelf)}",
            f"topic read {self.factors}",
        ]

    def hub_acl(self) -> list[str]:
        return [f"topic readwrite {self.root}/#"]


# --------------------------------------------------------------------------------- payloads
def encode(payload: Mapping[str, Any]) -> bytes:
    return json.dumps(payload, separators=(",", ":"), allow_nan=False).encode("utf-8")


def decode(topic: str, data: bytes) -> dict[str, Any]:
    try:
        payload = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BusPayloadError(f"{topic}: payload is not UTF-8 JSON: {exc}") from None
    if not isinstance(payload, dict):
        raise BusPayloadError(f"{topic}: payload must be a JSON object, got {type(payload).__name__}")
    return payload


_SCALARS = (str, int, float, bool, type(None))


def check_event(event: Mapping[str, Any]) -> dict[str, Any]:
    """The event if it is an anonymous aggregate; :class:`BusPayloadError` naming the key otherwise."""
    unexpected = sorted(set(event) - EVENT_KEYS)
    if unexpected:
        raise BusPayloadError(f"event has keys that may not go on the bus: {unexpected}")
    for key, value in event.items():
        if key in ("items", "slots"):
            if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) and len(v) <= 128 for v in value):
                raise BusPayloadError(f"event {key} must be a list of ids (strings), got {type(value).__name__}")
            if len(value) > 64:
                raise BusPayloadError(f"event {key} has {len(value)} entries; at most 64")
        elif key == "timings_ms":
            if not isinstance(value, Mapping) or not all(
                isinstance(k, str) and isinstance(v, (int, float)) and not isinstance(v, bool)
                for k, v in value.items()
            ) or len(value) > 16:
                raise BusPayloadError("event timings_ms must be a flat mapping of stage -> milliseconds")
        elif not isinstance(value, _SCALARS) or (isinstance(value, str) and len(value) > 128):
            raise BusPayloadError(f"event {key} must be a short scalar, got {type(value).__name__}")
    return dict(event)


def check_status(status: Mapping[str, Any]) -> dict[str, Any]:
    unexpected = sorted(set(status) - STATUS_KEYS)
    if unexpected:
        raise BusPayloadError(f"status has keys that may not go on the bus: {unexpected}")
    return dict(status)


def command_payload(command_id: str, name: str, body: Mapping[str, Any] | None = None) -> dict[str, Any]:
    if name not in COMMANDS:
        raise BusPayloadError(f"unknown command {name!r}; expected one of {', '.join(COMMANDS)}")
    return {"id": str(command_id), "name": name, "body": dict(body or {})}


def check_command(topic: str, payload: Mapping[str, Any]) -> tuple[str, str, dict[str, Any]]:
    name, command_id, body = payload.get("name"), payload.get("id"), payload.get("body", {})
    if name not in COMMANDS:
        raise BusPayloadError(f"{topic}: unknown command {name!r}; expected one of {', '.join(COMMANDS)}")
    if not isinstance(command_id, str) or not command_id:
        raise BusPayloadError(f"{topic}: command id must be a non-empty string")
    if not isinstance(body, dict):
        raise BusPayloadError(f"{topic}: command body must be an object")
    return command_id, str(name), body


def ack_payload(command_id: str, *, ok: bool, result: Any = None, error: str | None = None) -> dict[str, Any]:
    return {"id": command_id, "ok": ok, "result": result, "error": error}


PRODUCT_KEYS = ("sku", "name", "stock", "price", "currency", "brand", "gender", "category", "slot", "item_id", "image")


def stock_payload(version: int, products: list[Mapping[str, Any]], slots: Mapping[str, int | None]) -> dict[str, Any]:
    """One shelf's products (by sku, the shop's fields only) and its slot map."""
    return {
        "version": int(version),
        "products": [{k: p.get(k) for k in PRODUCT_KEYS if k in p} for p in products],
        "slots": {str(k): v for k, v in slots.items()},
    }


def check_stock(topic: str, payload: Mapping[str, Any]) -> dict[str, Any]:
    products, slots = payload.get("products"), payload.get("slots")
    if not isinstance(payload.get("version"), int):
        raise BusPayloadError(f"{topic}: stock version must be an integer")
    if not isinstance(products, list) or not all(isinstance(p, dict) and isinstance(p.get("sku"), str) for p in products):
        raise BusPayloadError(f"{topic}: stock products must be a list of objects with a sku")
    for p in products:
        if not isinstance(p.get("stock", 0), int):
            raise BusPayloadError(f"{topic}: product {p['sku']}: stock {p.get('stock')!r} is not a whole number")
    if not isinstance(slots, dict) or not all(v is None or isinstance(v, int) for v in slots.values()):
        raise BusPayloadError(f"{topic}: stock slots must map slot -> pin (or null)")
    return dict(payload)
