"""Guarded retraining from a sales ledger: swaps in a better model, refuses a worse one untouched."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from device.recommend.data import SEGMENT_LABELS, load_csv
from device.recommend.factors import FactorModel
from device.recommend.retrain import RetrainRefused, retrain
from device.recommend.train import TrainParams, build_model
from tools.recommender.synthetic import (
    flipped_taste_model,
    make_model,
    two_group_interactions,
    write_admin_export,
    write_ledger,
)


def test_refuses_a_worse_model_and_leaves_the_file_untouched(tmp_path: Path) -> None:
    ledger, users = write_ledger(tmp_path, flip_recent=True)
    current = flipped_taste_model().save(tmp_path / "factors.npz")
    before = current.read_bytes()
    mtime = current.stat().st_mtime_ns
    with pytest.raises(RetrainRefused, match="worse") as info:
        retrain(load_csv(ledger, users), current, holdout=0.3, candidate_out=tmp_path / "candidate.npz")
    assert current.read_bytes() == before and current.stat().st_mtime_ns == mtime
    assert not (tmp_path / "factors.npz.prev").exists()
    report = info.value.report
    assert report.accepted is False and report.candidate.ndcg < report.current.ndcg
    FactorModel.load(tmp_path / "candidate.npz")  # the candidate was kept for review
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "candidate.npz",
        "factors.npz",
        "ledger.csv",
        "users.csv",
    ]


def test_swaps_in_a_better_model_atomically_and_keeps_a_backup(tmp_path: Path) -> None:
    ledger, users = write_ledger(tmp_path, flip_recent=False)
    current = flipped_taste_model().save(tmp_path / "factors.npz")
    before = current.read_bytes()
    report = retrain(load_csv(ledger, users), current, holdout=0.3)
    assert report.accepted and report.candidate.ndcg > report.current.ndcg
    new = FactorModel.load(current)
    assert new.metadata["metrics"]["candidate"]["ndcg"] == report.candidate.ndcg
    assert new.metadata["n_interactions"] > report.train_rows  # refitted on the whole ledger
    assert (tmp_path / "factors.npz.prev").read_bytes() == before
    scores = new.scores("female/25-34")
    assert {new.item_ids[i] for i in np.argsort(-scores)[:10]} == {f"item{i}" for i in range(10)}
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_force_replaces_even_a_worse_model(tmp_path: Path) -> None:
    ledger, users = write_ledger(tmp_path, flip_recent=True)
    current = flipped_taste_model().save(tmp_path / "factors.npz")
    report = retrain(load_csv(ledger, users), current, holdout=0.3, force=True)
    assert report.accepted and FactorModel.load(current).metadata["method"] != "current"


def test_first_install_and_segment_only_ledger(tmp_path: Path) -> None:
    data = two_group_interactions(n_users=100, seed=4)
    rows = ["segment,item,time"] + [
        f"{SEGMENT_LABELS[data.user_segment[u]]},item{i},{t}"
        for t, (u, i) in enumerate(zip(data.users, data.items))
    ]
    (tmp_path / "ledger.csv").write_text("\n".join(rows) + "\n")
    report = retrain(load_csv(tmp_path / "ledger.csv"), tmp_path / "new" / "factors.npz")
    assert report.accepted and report.current is None
    FactorModel.load(tmp_path / "new" / "factors.npz")


def test_unreadable_current_file_is_not_replaced_without_force(tmp_path: Path) -> None:
    ledger, users = write_ledger(tmp_path, flip_recent=False)
    (tmp_path / "factors.npz").write_bytes(b"junk")
    from smartshelf.core.errors import ModelError

    with pytest.raises(ModelError):
        retrain(load_csv(ledger, users), tmp_path / "factors.npz")
    assert (tmp_path / "factors.npz").read_bytes() == b"junk"


def test_build_model_params_are_recorded() -> None:
    model = build_model(two_group_interactions(seed=5), TrainParams(rank=2))
    assert model.metadata["params"]["rank"] == 2


def test_only_sales_newer_than_the_current_model_are_used_to_judge_it(tmp_path: Path) -> None:
    from device.recommend.data import DataError

    ledger, users = write_ledger(tmp_path, flip_recent=False)
    lines = ledger.read_text().splitlines()
    header, rows = lines[0], lines[1:]
    first, later = rows[:-200], rows[-200:]
    ledger.write_text("\n".join([header, *first]) + "\n")
    target = tmp_path / "factors.npz"
    retrain(load_csv(ledger, users), target)  # first install
    until = FactorModel.load(target).metadata["data_until"]
    assert until == max(float(r.rsplit(",", 1)[1]) for r in first)
    before = target.read_bytes()
    # Ten new sales are too few to compare the models: stop, file untouched.
    ledger.write_text("\n".join([header, *first, *later[:10]]) + "\n")
    with pytest.raises(DataError, match="only 10 sales are newer"):
        retrain(load_csv(ledger, users), target)
    assert target.read_bytes() == before
    # With 200 new sales the comparison runs on those only.
    ledger.write_text("\n".join([header, *first, *later]) + "\n")
    data = load_csv(ledger, users)
    report = retrain(data, target, holdout=0.1)
    assert report.holdout_rows == min(200, max(round(0.1 * data.users.size), 20))


def test_admin_export_retrain(tmp_path: Path) -> None:
    interactions, users = write_admin_export(tmp_path, seed=1)
    target = tmp_path / "factors.npz"
    flipped_taste_model().save(target)
    report = retrain(load_csv(interactions, users), target)
    assert report.accepted
    model = FactorModel.load(target)
    assert model.metadata["method"] == "segment-share-svd"
    assert model.metadata["metrics"]["level"] == "segment"
    assert report.candidate.users > 50  # held-out sale lines, each scored as one shopper


def test_a_model_that_knows_few_items_gets_no_credit_for_empty_slots(tmp_path: Path) -> None:
    from device.recommend.retrain import score_model

    data = two_group_interactions(seed=8)
    tiny = make_model([[1.0], [0.5]], item_ids=["item0", "item25"])  # knows 2 of the 30 items
    scores = score_model(tiny, data)
    full = score_model(build_model(data, TrainParams(rank=2)), data)
    assert scores.hit_rate < full.hit_rate
    # Only item0 and item25 can ever be hits (the other 8 slots are empty, not filled with unknown items).
    liked = data.liked
    buyers = {int(u) for u, i in zip(data.users[liked], data.items[liked]) if i in (0, 25)}
    assert scores.hit_rate == pytest.approx(len(buyers) / scores.users, abs=1e-4)


# --------------------------------------------------------------- the closed loop (issue 15 item 2)
def write_items(path: Path, n: int, *, sold: dict[str, int] | None = None) -> Path:
    """The export's items.csv: every product, sold or not (genders unknown: the prior cannot guess well)."""
    rows = ["item,sku,name,gender,category,price,currency,sold"]
    rows += [f"item{i},item{i},Product {i},,,{10 + i}.50,EUR,{(sold or {}).get(f'item{i}', 0)}" for i in range(n)]
    path.write_text("\n".join(rows) + "\n")
    return path


def retrain_cli(tmp_path: Path, interactions: Path, users: Path, items: Path, current: Path) -> int:
    from smartshelf.cli import main

    return main(["factors", "retrain", "--interactions", str(interactions), "--users", str(users),
                 "--items", str(items), "--current", str(current)])


def test_a_few_sales_never_replace_the_catalogue_prior(tmp_path: Path) -> None:
    """The issue's case: 7 sales, a 3-item catalogue prior as the current file -> nothing written."""
    from device.recommend.prior import CatalogItem, build_prior
    from smartshelf.core.retrain_report import read_retrain_report

    (tmp_path / "interactions.csv").write_text(
        "user,item,value,time\n" + "".join(f"female/25-34,item{i % 2},1,{1_700_000_000 + i}\n" for i in range(7))
    )
    (tmp_path / "users.csv").write_text("user,segment\nfemale/25-34,female/25-34\n")
    items = write_items(tmp_path / "items.csv", 3)
    prior = build_prior([CatalogItem(f"item{i}", f"Product {i}", "unisex", "other", 10 + i) for i in range(3)])
    current = prior.save(tmp_path / "factors.npz")
    before = current.read_bytes()
    assert retrain_cli(tmp_path, tmp_path / "interactions.csv", tmp_path / "users.csv", items, current) == 4
    assert current.read_bytes() == before and not (tmp_path / "factors.npz.prev").exists()
    report = read_retrain_report(current)
    assert report is not None and report["outcome"] == "waiting" and report["new_sales"] == 7
    assert "7 new sale(s) of the 20 needed" in report["detail"]
    # No file at all: the shelf's in-memory prior is the current model, judged the same way.
    current.unlink()
    assert retrain_cli(tmp_path, tmp_path / "interactions.csv", tmp_path / "users.csv", items, current) == 4
    assert not current.exists()


def test_retrain_keeps_every_product_and_rolls_back_in_one_command(tmp_path: Path) -> None:
    from smartshelf.cli import main
    from smartshelf.core.retrain_report import read_retrain_report

    interactions, users = write_admin_export(tmp_path, seed=3)  # items 0..29 sell, by gender
    items = write_items(tmp_path / "items.csv", 35)  # items 30..34 are in the shop but never sold
    current = tmp_path / "factors.npz"
    assert retrain_cli(tmp_path, interactions, users, items, current) == 0, "a trained model beats the blind prior"
    first = FactorModel.load(current)
    assert set(first.item_ids) == {f"item{i}" for i in range(35)}, "the catalogue never shrinks"
    assert first.metadata["blend"]["by_prior"] >= 5
    unsold = first.item_index["item31"]
    assert np.linalg.norm(first.item_factors[unsold]) > 0, "an unsold product keeps a prior vector: it can be picked"
    assert read_retrain_report(current)["outcome"] == "replaced"
    # More sales later: the next retrain compares against the trained file and keeps a .prev of it.
    later = tmp_path / "later"
    later.mkdir()
    more, _ = write_admin_export(later, seed=4)
    lines = interactions.read_text().splitlines() + [
        f"{u},{i},{v},{int(t) + 60_000}" for u, i, v, t in (row.split(",") for row in more.read_text().splitlines()[1:])
    ]
    interactions.write_text("\n".join(lines) + "\n")
    code = retrain_cli(tmp_path, interactions, users, items, current)
    assert code == 0, "the same tastes with twice the sales: the refit is not worse"
    report = read_retrain_report(current)
    assert report["outcome"] == "replaced" and report["can_roll_back"]
    assert report["candidate_ndcg"] is not None and report["current_ndcg"] is not None
    replaced = current.read_bytes()
    assert set(FactorModel.load(current).item_ids) >= set(first.item_ids)
    assert main(["factors", "rollback", "--current", str(current)]) == 0
    assert FactorModel.load(current).metadata["data_until"] == first.metadata["data_until"]
    assert read_retrain_report(current)["outcome"] == "rolled_back", "the dashboard says so"
    assert main(["factors", "rollback", "--current", str(current)]) == 0
    assert current.read_bytes() == replaced, "a second rollback undoes the first"


def test_rollback_without_a_previous_file_says_so(tmp_path: Path) -> None:
    from smartshelf.cli import main

    make_model([[1.0], [0.5]], item_ids=["a", "b"]).save(tmp_path / "factors.npz")
    assert main(["factors", "rollback", "--current", str(tmp_path / "factors.npz")]) == 1
