"""Retraining from the store's sales ledger with a safety check before the live file is replaced.

1. The most recent ``holdout`` share of the ledger (by time) is set aside. If the current file records
   the last sale it was trained on (``data_until`` in its metadata), only newer sales are held out, so
   the current model is never judged on sales it has seen; with fewer than ``min_holdout`` such sales
   the retrain stops (DataError) unless forced.
2. A candidate is trained on the older sales (parameters validated on folds of those users, or of the
   sale lines for a segment-level ledger such as the admin's export).
3. Candidate and current file are scored on the held-out recent sales: for each shopper (or sale line)
   with a known segment, the segment's top 10 over the ledger's items against what was bought
   (NDCG@10, hit rate@10, overall and by segment).
4. If the candidate is not worse (NDCG@10 >= current - tolerance), the same parameters are refitted on
   the whole ledger and written over the current path atomically (temp + fsync + ``os.replace``); the
   old file is kept next to it as ``<name>.prev``. Otherwise nothing is written to the current path and
   :class:`RetrainRefused` is raised.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from device.recommend.blas import single_threaded_blas
from device.recommend.blend import blend
from device.recommend.data import SEGMENT_LABELS, DataError, Interactions
from device.recommend.factors import FactorModel, _file_mode
from device.recommend.metrics import SparseRelevance, hit_rate, precision_ndcg, top_n
from device.recommend.prior import CatalogItem, build_prior, lenient_item, with_sold
from device.recommend.train import TrainParams, build_model, is_segment_level, search
from smartshelf.core.errors import ModelError, SmartShelfError
from smartshelf.core.storage import atomic_write_bytes

logger = logging.getLogger(__name__)


class NotEnoughEvidence(DataError):
    """Too few new sales to judge the current model; nothing was written."""

    def __init__(self, message: str, *, new_sales: int, needed: int) -> None:
        super().__init__(message)
        self.new_sales = new_sales
        self.needed = needed


class RetrainRefused(SmartShelfError, RuntimeError):
    """The retrained model scored worse than the current one on recent sales; nothing was replaced."""

    def __init__(self, message: str, report: RetrainReport) -> None:
        super().__init__(message)
        self.report = report


@dataclass(frozen=True)
class Scores:
    ndcg: float
    hit_rate: float
    users: int
    by_segment: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class RetrainReport:
    accepted: bool
    candidate: Scores
    current: Scores | None
    params: TrainParams
    train_rows: int
    holdout_rows: int
    written: Path | None
    message: str

    def to_dict(self) -> dict[str, object]:
        out = asdict(self)
        out["written"] = str(self.written) if self.written else None
        return out


def split_recent(
    data: Interactions, holdout: float, *, after: float | None = None, min_rows: int = 20
) -> tuple[Interactions, Interactions]:
    """(older, most recent) by interaction time; the recent part is about ``holdout`` of the rows.

    With ``after`` (the last sale time the current model was trained on), only newer sales may be held
    out, so the current model is never scored on sales it has seen: at least ``min_rows`` are needed.
    """
    if not 0.0 < holdout < 1.0:
        raise DataError(f"holdout must be between 0 and 1, got {holdout}")
    order = np.argsort(data.times, kind="stable")
    n_recent = max(1, round(data.users.size * holdout))
    if after is not None:
        n_new = int((data.times > after).sum())
        if n_new < min_rows:
            if np.isfinite(after):
                when = datetime.fromtimestamp(after, UTC).isoformat(timespec="seconds")
                what = f"only {n_new} sales are newer than the current model's data (up to {when})"
            else:
                what = f"only {n_new} sales to judge the current model (it was learned from no sales)"
            raise NotEnoughEvidence(
                f"{what}; at least {min_rows} are needed to compare the models: nothing written "
                "(--force replaces without this check)",
                new_sales=n_new,
                needed=min_rows,
            )
        n_recent = min(n_new, max(n_recent, min_rows))
    recent = np.zeros(data.users.size, dtype=bool)
    recent[order[-n_recent:]] = True
    return data.subset_rows(~recent), data.subset_rows(recent)


def score_model(model: FactorModel, holdout: Interactions, *, per_row: bool = False) -> Scores:
    """Segment top-10 lists over the ledger's items vs what each held-out shopper bought.

    ``per_row``: each sale line is its own shopper (for segment-level ledgers without shopper ids).
    """
    if per_row:
        holdout = holdout.per_row()
    item_rows = np.array([model.item_index.get(i, -1) for i in holdout.item_ids])
    known_items = item_rows >= 0
    liked = holdout.liked
    # One extra, never relevant, column stands for "no item": the list slots a model cannot fill.
    rel = SparseRelevance(holdout.users[liked], holdout.items[liked], holdout.n_users, holdout.n_items + 1)
    has_sales = np.bincount(holdout.users, minlength=holdout.n_users) > 0
    users = np.flatnonzero((holdout.user_segment >= 0) & has_sales)
    if users.size == 0:
        raise DataError("no recent sales with a known shopper segment to validate on")
    seg_scores = np.full((len(SEGMENT_LABELS), holdout.n_items), -np.inf)
    for s, label in enumerate(SEGMENT_LABELS):
        full = model.scores(label)
        seg_scores[s, known_items] = full[item_rows[known_items]]
    seg_lists = top_n(seg_scores, 10)
    filled = np.isfinite(np.take_along_axis(seg_scores, seg_lists, axis=1))
    seg_lists = np.where(filled, seg_lists, holdout.n_items)
    lists = seg_lists[holdout.user_segment[users]]
    rel = rel[users]
    _, ndcg, counted = precision_ndcg(lists, rel, 10)
    by_segment: dict[str, float] = {}
    for s, label in enumerate(SEGMENT_LABELS):
        mask = holdout.user_segment[users] == s
        if mask.any():
            by_segment[label] = round(precision_ndcg(lists[mask], rel[mask], 10)[1], 4)
    return Scores(round(ndcg, 5), round(hit_rate(lists, rel, 10), 5), counted, by_segment)


def _choose_params(data: Interactions, seed: int, level: str) -> TrainParams:
    try:
        params, _, _ = search(data, seed=seed, level=level)
        return params
    except DataError as exc:
        fallback = TrainParams(rank=max(1, min(8, data.n_users - 1, data.n_items - 1)))
        logger.warning("too little data to validate parameters (%s); using %s", exc, fallback)
        return fallback


def cover_catalogue(
    model: FactorModel,
    data: Interactions,
    catalogue: Sequence[CatalogItem] = (),
    sold: Sequence[int] = (),
    *,
    keep: Iterable[str] = (),
) -> FactorModel:
    """``model`` extended so that no item is lost: every item of ``catalogue``, of ``keep`` (the current
    file's items) and of ``data``. Items nobody bought in ``data`` (the SVD gives them next to nothing)
    and items ``model`` lacks are scored by the catalogue prior, blended in
    (:func:`device.recommend.blend.blend`), so a product that has not sold yet can still be picked."""
    by_id = {it.sku: it for it in catalogue}
    ids = list(dict.fromkeys([*data.item_ids, *by_id, *keep]))
    bought = set(np.asarray(data.item_ids)[np.unique(data.items[data.liked])].tolist()) if data.items.size else set()
    rows = [model.item_index.get(i) if i in bought else None for i in ids]
    units = dict(zip((it.sku for it in catalogue), sold, strict=False))
    names = dict(zip(data.item_ids, data.item_names, strict=False)) if data.item_names else {}
    items = [by_id.get(i) or lenient_item(i, names.get(i, "")) for i in ids]
    prior = with_sold(build_prior(items, source="retrain catalogue"), [units.get(i, 0) for i in ids])
    if not any(r is not None for r in rows):
        meta = dict(model.metadata)
        meta["blend"] = {"by_factor_file": 0, "by_prior": len(ids)}
        return FactorModel(prior.item_ids, prior.item_factors, prior.segment_ids, prior.segment_vectors,
                           prior.global_vector, prior.popularity, metadata=meta)
    return blend(ids, rows, model, prior)


@single_threaded_blas()
def retrain(
    data: Interactions,
    current_path: str | os.PathLike[str],
    *,
    holdout: float = 0.2,
    tolerance: float = 0.0,
    candidate_out: str | os.PathLike[str] | None = None,
    force: bool = False,
    seed: int = 0,
    level: str = "auto",
    min_holdout: int = 20,
    catalogue: Sequence[CatalogItem] = (),
    sold: Sequence[int] = (),
) -> RetrainReport:
    """Validate a retrained model against the current one and swap it in only if not worse.

    The current model is the file at ``current_path``, else (no file yet: what the shelf ranks with)
    the catalogue prior of ``catalogue``. Whatever it is, at least ``min_holdout`` sales it has not
    seen are needed to judge it (:class:`NotEnoughEvidence` otherwise, nothing written). The written
    model covers every item of ``catalogue``, of the current file and of the sales (never fewer).
    """
    current_path = Path(current_path)
    current: FactorModel | None = None
    if current_path.exists():
        try:
            current = FactorModel.load(current_path)
        except ModelError:
            if not force:
                raise
            logger.warning(
                "current factor file %s is unreadable; replacing it because of --force", current_path
            )
    elif catalogue:
        current = with_sold(build_prior(list(catalogue), source="catalogue (the shelf's in-memory prior)"),
                            list(sold))
    seen_until = current.metadata.get("data_until") if current is not None else None
    if not isinstance(seen_until, (int, float)):
        seen_until = None if current is None else float("-inf")
    if force:
        seen_until = None
    older, recent = split_recent(data, holdout, after=seen_until, min_rows=min_holdout)
    judged = int((recent.user_segment[recent.users] >= 0).sum())
    if judged == 0 and not force:
        raise NotEnoughEvidence(
            f"none of the {recent.users.size} most recent sales followed a shopper the shelf saw (no segment "
            "to judge the models on): nothing written",
            new_sales=0,
            needed=min_holdout,
        )
    keep = current.item_ids if current is not None else ()
    if level == "auto":
        level = "segment" if is_segment_level(data) else "user"
    params = _choose_params(older, seed, level)
    candidate = cover_catalogue(build_model(older, params, level=level), older, catalogue, sold, keep=keep)
    candidate_scores = score_model(candidate, recent, per_row=level == "segment")
    current_scores = score_model(current, recent, per_row=level == "segment") if current is not None else None
    final = cover_catalogue(build_model(data, params, level=level), data, catalogue, sold, keep=keep)
    meta = dict(final.metadata)
    meta["metrics"] = {
        "validation": "most recent sales held out",
        "level": level,
        "holdout_rows": int(recent.users.size),
        "candidate": asdict(candidate_scores),
        "previous": asdict(current_scores) if current_scores else None,
    }
    final = replace(final, metadata=meta)
    if candidate_out is not None:
        final.save(candidate_out)
    worse = current_scores is not None and candidate_scores.ndcg < current_scores.ndcg - tolerance
    if worse and not force:
        message = (
            f"retrained model is worse on the {recent.users.size} most recent sales: NDCG@10 "
            f"{candidate_scores.ndcg:.4f} vs current {current_scores.ndcg:.4f} (tolerance {tolerance}); "  # type: ignore[union-attr]
            f"{current_path} left unchanged"
        )
        report = RetrainReport(
            False,
            candidate_scores,
            current_scores,
            params,
            int(older.users.size),
            int(recent.users.size),
            None,
            message,
        )
        raise RetrainRefused(message, report)
    lost = set(keep) - set(final.item_ids)
    if lost:  # cover_catalogue makes this impossible; never shrink the catalogue whatever happens
        raise ModelError(f"retrained model would drop {len(lost)} item(s) such as {sorted(lost)[:3]}; nothing written")
    if current_path.exists():
        try:
            atomic_write_bytes(
                current_path.with_name(current_path.name + ".prev"),
                current_path.read_bytes(),
                mode=_file_mode(),
            )
        except OSError as exc:  # StorageError is an OSError
            logger.warning("could not keep a backup of %s: %s", current_path, exc)
    final.save(current_path)
    if current_scores is None:
        message = f"installed {current_path} (no current model to compare; candidate NDCG@10 {candidate_scores.ndcg:.4f})"
    else:
        message = (
            f"replaced {current_path}: NDCG@10 {candidate_scores.ndcg:.4f} vs previous {current_scores.ndcg:.4f} "
            f"on the {recent.users.size} most recent sales"
        )
    return RetrainReport(
        True,
        candidate_scores,
        current_scores,
        params,
        int(older.users.size),
        int(recent.users.size),
        current_path,
        message,
    )


def rollback(current_path: str | os.PathLike[str]) -> Path:
    """Put back the factor file the last retrain replaced (``<name>.prev``); the replaced file becomes
    the new ``.prev``, so a second rollback undoes the first. Both are verified before anything moves."""
    current_path = Path(current_path)
    prev = current_path.with_name(current_path.name + ".prev")
    if not prev.exists():
        raise ModelError(f"no previous factor file {prev} to roll back to (a retrain keeps one when it replaces)")
    FactorModel.load(prev)
    previous_bytes = prev.read_bytes()
    current_bytes = current_path.read_bytes() if current_path.exists() else None
    atomic_write_bytes(current_path, previous_bytes, mode=_file_mode())
    if current_bytes is not None:
        atomic_write_bytes(prev, current_bytes, mode=_file_mode())
    else:
        prev.unlink()
    logger.info("rolled %s back to its previous file", current_path)
    return current_path
