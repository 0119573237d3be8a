"""The last retrain's outcome: written by ``smartshelf factors retrain``, shown on the admin dashboard.

A small JSON file next to the factor file (``retrain-report.json``), replaced atomically on every
run whatever the outcome::

    {"outcome": "replaced" | "kept" | "waiting" | "failed" | "rolled_back", "finished_at": unix seconds,
     "message": str, "sales": int, "new_sales": int | null, "min_new_sales": int,
     "candidate_ndcg": float | null, "current_ndcg": float | null, "items": int | null,
     "previous_items": int | null, "factors": path, "rollback": path | null}
"""

from __future__ import annotations

import json
import logging
import os
from datetime import datetime
from pathlib import Path
from typing import Any

from smartshelf.core.storage import atomic_write_json

logger = logging.getLogger(__name__)

REPORT_NAME = "retrain-report.json"
OUTCOMES = ("replaced", "kept", "waiting", "failed", "rolled_back")


def report_path(factors_path: str | os.PathLike[str]) -> Path:
    return Path(factors_path).with_name(REPORT_NAME)


def previous_path(factors_path: str | os.PathLike[str]) -> Path:
    """Where a retrain keeps the file it replaced (for ``smartshelf factors rollback``)."""
    path = Path(factors_path)
    return path.with_name(path.name + ".prev")


def write_retrain_report(factors_path: str | os.PathLike[str], report: dict[str, Any]) -> Path:
    if report.get("outcome") not in OUTCOMES:
        raise ValueError(f"retrain report outcome must be one of {', '.join(OUTCOMES)}, got {report.get('outcome')!r}")
    path = report_path(factors_path)
    atomic_write_json(path, report)
    return path


_HEADLINES = {
    "replaced": "The shelf learned from the latest sales: the new model is in use.",
    "kept": "The shelf kept its current model: the one learned from the latest sales was not better.",
    "waiting": "Not enough new sales yet to learn from; the shelf keeps its current model.",
    "failed": "The last retrain failed; the shelf keeps its current model.",
    "rolled_back": "The shelf was rolled back to the model it used before the last retrain.",
}


def read_retrain_report(factors_path: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The last report plus words for staff (``headline``, ``detail``, ``finished_at_local``,
    ``can_roll_back``); None when there is none or it cannot be read (logged)."""
    path = report_path(factors_path)
    try:
        report = json.loads(path.read_bytes())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        logger.warning("cannot read %s: %s", path, exc)
        return None
    if not isinstance(report, dict) or report.get("outcome") not in OUTCOMES:
        logger.warning("%s is not a retrain report", path)
        return None
    out = dict(report)
    out["headline"] = _HEADLINES[report["outcome"]]
    detail = []
    if report.get("candidate_ndcg") is not None and report.get("current_ndcg") is not None:
        detail.append(
            f"On the {report.get('holdout_sales', '?')} most recent sales the new model scored "
            f"{report['candidate_ndcg']:.3f} against {report['current_ndcg']:.3f} for the one before."
        )
    if report["outcome"] == "waiting" and report.get("new_sales") is not None:
        detail.append(f"{report['new_sales']} new sale(s) of the {report.get('min_new_sales', '?')} needed.")
    if report.get("items") is not None:
        detail.append(f"The model covers {report['items']} product(s).")
    if report["outcome"] == "failed":
        detail.append(str(report.get("message") or ""))
    out["detail"] = " ".join(detail)
    try:
        out["finished_at_local"] = datetime.fromtimestamp(float(report["finished_at"])).astimezone().strftime(
            "%Y-%m-%d %H:%M"
        )
    except (KeyError, TypeError, ValueError, OverflowError):
        out["finished_at_local"] = "unknown time"
    out["can_roll_back"] = report["outcome"] in ("replaced", "rolled_back") and previous_path(factors_path).exists()
    return out
