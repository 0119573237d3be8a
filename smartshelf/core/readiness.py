"""Can the shelf suggest the products staff put on it? In words a shop assistant understands.

Pure: takes the product documents of store.json, the slot names of the shelf and (optionally) the
ids the recommendation model has learned; used by the admin dashboard and by ``smartshelf doctor``.
The device suggests a product when it is on a slot and in stock, whatever ids it has (products the
model has not learned are suggested from their details: gender, category, price, what sells).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Readiness:
    """``problems``: products on slots the shelf cannot suggest, and why; ``notes``: how it suggests."""

    suggestable: tuple[str, ...]
    problems: tuple[str, ...] = ()
    notes: tuple[str, ...] = field(default=())

    @property
    def dark(self) -> bool:
        """True when the shelf can suggest nothing at all (every shopper sees the welcome page)."""
        return not self.suggestable


def _name(doc: Mapping[str, Any]) -> str:
    return f"“{doc.get('name') or doc.get('sku')}” ({doc.get('sku')})"


def _stock(doc: Mapping[str, Any]) -> int:
    try:
        return int(doc.get("stock") or 0)
    except (TypeError, ValueError):
        return 0


def shelf_readiness(
    products: Iterable[Mapping[str, Any]],
    slots: Collection[str] = (),
    *,
    learned: Collection[str] | None = None,
) -> Readiness:
    """What the shelf can suggest now, and what staff can do about the rest.

    ``slots``: the shelf's slot names (empty: not checked). ``learned``: item ids and skus the
    recommendation model was trained on (None: no model file yet).
    """
    docs = list(products)
    on_slots = [d for d in docs if d.get("slot")]
    problems: list[str] = []
    notes: list[str] = []
    suggestable: list[str] = []
    for doc in sorted(on_slots, key=lambda d: str(d.get("slot"))):
        slot = str(doc["slot"])
        if slots and slot not in slots:
            problems.append(
                f"{_name(doc)} is on slot {slot}, which this shelf does not have, so no light can show it: "
                f"choose one of {', '.join(sorted(slots))}."
            )
            continue
        if _stock(doc) <= 0:
            problems.append(
                f"Slot {slot}: {_name(doc)} is out of stock, so the shelf will not suggest it: restock it or "
                f"put another product on {slot}."
            )
            continue
        suggestable.append(str(doc["sku"]))
    if not on_slots:
        problems.insert(
            0,
            "No product is on a slot, so the shelf has nothing to suggest and shoppers only see the "
            "welcome page: put products on slots (Slots page).",
        )
    elif not suggestable:
        problems.insert(0, "The shelf cannot suggest anything right now: no product on a slot is in stock.")
    unplaced = [d for d in docs if not d.get("slot") and _stock(d) > 0]
    if unplaced:
        notes.append(
            f"{len(unplaced)} product(s) in stock are not on any slot; the shelf only suggests products on its slots."
        )
    if suggestable:
        if learned is None:
            notes.append(
                "No sales model yet: the shelf suggests products from their details (gender, category, price) "
                "and what sells; the nightly retrain learns from sales once there are enough."
            )
        else:
            by_sku = {str(d["sku"]): d for d in on_slots}
            guessed = [
                s for s in suggestable
                if s not in learned and str(by_sku[s].get("item_id") or "") not in learned
            ]
            if guessed:
                notes.append(
                    f"{len(guessed)} product(s) on slots have no sales in the model yet; the shelf suggests them "
                    "from their details until the nightly retrain learns from their sales."
                )
    return Readiness(tuple(suggestable), tuple(problems), tuple(notes))


def learned_ids(path: str | os.PathLike[str]) -> frozenset[str] | None:
    """The item ids of a factor file (None: no file, or one that cannot be read; the device says why)."""
    import numpy as np

    try:
        with np.load(path, allow_pickle=False) as data:
            return frozenset(str(i) for i in data["item_ids"].tolist())
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError) as exc:
        logger.warning("cannot read the item ids of %s: %s", path, exc)
        return None
