"""``smartshelf recommend`` and ``smartshelf factors ...`` end to end on files made in the test."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pytest

from device.recommend import cli
from device.recommend.data import SEGMENT_LABELS
from device.recommend.factors import FactorModel
from smartshelf.core.errors import SmartShelfError
from tools.recommender import cli as recommender_cli
from tools.recommender.synthetic import (
    flipped_taste_model,
    make_model,
    two_group_interactions,
    write_ledger,
    write_movielens,
)


def run(argv: list[str]) -> int:
    """Parse with the shipped and the development sub-commands (as smartshelf.cli does) and run the handler."""
    parser = argparse.ArgumentParser(prog="smartshelf")
    subparsers = parser.add_subparsers(dest="command")
    cli.register(subparsers)
    recommender_cli.register(subparsers)
    args = parser.parse_args(argv)
    return args.func(args)


def test_recommend_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    factors = np.zeros((6, 2))
    factors[:3, 0] = [3.0, 2.0, 1.0]
    factors[3:, 1] = [3.0, 2.0, 1.0]
    factors[:, 0] += np.linspace(0, 0.01, 6)  # keep the items distinct for the diversity rule
    vectors = {label: ([1.0, 0.0] if label.startswith("female/") else [0.0, 1.0]) for label in SEGMENT_LABELS}
    make_model(factors, item_ids=list("abcdef"), segment_vectors=vectors).save(tmp_path / "f.npz")

    def recommend(*args: str) -> dict:
        assert run(["recommend", "--factors", str(tmp_path / "f.npz"), *args, "--json"]) == 0
        return json.loads(capsys.readouterr().out)

    out = recommend("--age", "29", "--gender", "female", "--top", "2", "--diversity", "0")
    assert out == {"items": ["a", "b"], "names": [None, None], "segment": "female/25-34"}  # no names known
    out = recommend("--age", "70", "--gender", "male", "--top", "3")
    # d, e, f point the same way: the third pick is not a third near-identical item.
    assert out == {"items": ["d", "e", "a"], "names": [None, None, None], "segment": "male/65+"}


def test_recommend_prints_product_names(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    catalog = tmp_path / "catalog.csv"
    catalog.write_text("sku,name,gender,price\na,Silk scarf,Women,1000\nb,Wool hat,Men,800\n")
    factors = np.array([[3.0, 0.0], [2.0, 0.1], [0.0, 1.0]])
    make_model(factors, item_ids=["a", "b", "c"],
               segment_vectors={label: [1.0, 0.0] for label in SEGMENT_LABELS}).save(tmp_path / "f.npz")
    assert run(["recommend", "--factors", str(tmp_path / "f.npz"), "--age", "30", "--gender", "female",
                "--top", "3", "--diversity", "0", "--catalog", str(catalog)]) == 0
    lines = capsys.readouterr().out.splitlines()[1:]
    assert lines[0].startswith("  1. Silk scarf  [a]") and lines[1].startswith("  2. Wool hat  [b]")
    assert lines[2].startswith("  3. (name unknown)  [c]")


def test_recommend_rejects_bad_input(tmp_path: Path) -> None:
    with pytest.raises(SmartShelfError, match="does not exist"):
        run(["recommend", "--factors", str(tmp_path / "none.npz"), "--age", "30", "--gender", "male"])
    with pytest.raises(SmartShelfError, match="--age"):
        run(["recommend", "--factors", "x", "--age", "-3", "--gender", "male"])
    with pytest.raises(SystemExit):
        run(["recommend", "--factors", "x", "--age", "3", "--gender", "robot"])


def test_train_from_csv_and_inspect(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = two_group_interactions(n_users=90, seed=2)
    lines = ["user,item,value,time"] + [
        f"u{u},item{i},{int(v)},{int(t)}"
        for u, i, v, t in zip(data.users, data.items, data.values, data.times)
    ]
    (tmp_path / "i.csv").write_text("\n".join(lines) + "\n")
    users = ["user,segment"] + [f"u{u},{SEGMENT_LABELS[s]}" for u, s in enumerate(data.user_segment)]
    (tmp_path / "u.csv").write_text("\n".join(users) + "\n")
    assert (
        run(
            [
                "factors",
                "train",
                "--interactions",
                str(tmp_path / "i.csv"),
                "--users",
                str(tmp_path / "u.csv"),
                "--like-threshold",
                "4",
                "--out",
                str(tmp_path / "f.npz"),
            ]
        )
        == 0
    )
    model = FactorModel.load(tmp_path / "f.npz")
    top = {model.item_ids[i] for i in np.argsort(-model.scores("male/35-44"))[:10]}
    assert len(top & {f"item{i}" for i in range(10, 20)}) >= 9
    capsys.readouterr()
    assert run(["factors", "inspect", str(tmp_path / "f.npz")]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["checksum"] == "ok" and info["metadata"]["n_users"] == 90


@pytest.mark.slow
def test_evaluate_on_a_small_movielens_dir(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ml = write_movielens(tmp_path / "ml", two_group_interactions(n_users=160, seed=3))
    assert run(["factors", "evaluate", "--movielens", str(ml), "--seed", "1", "--no-surprise", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    methods = {r["method"]: r for r in out["ranking"]}
    assert set(methods) == {
        "global popularity",
        "segment popularity",
        "segment popularity, most rated",
        "plain SVD segment vectors",
        "SVD + age/gender kernel (best)",
    }
    # Tastes split by gender: anything that knows the segment beats global popularity by far.
    assert methods["segment popularity"]["ndcg@10"] > methods["global popularity"]["ndcg@10"] + 0.2
    assert (
        methods["SVD + age/gender kernel (best)"]["ndcg@10"] > methods["global popularity"]["ndcg@10"] + 0.2
    )
    assert all(0.0 <= r["precision@10"] <= 1.0 for r in out["ranking"])
    rmse = {r["method"]: r["rmse"] for r in out["rmse"]}
    assert rmse["biased MF (funk-SVD model, ALS)"] < rmse["global mean"]
    assert "scikit-surprise SVD" not in rmse
    assert run(["factors", "evaluate", "--movielens", str(ml), "--seeds", "1,2", "--no-rmse"]) == 0
    assert "segment popularity" in capsys.readouterr().out


@pytest.mark.slow
def test_evaluate_learning_curve(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ml = write_movielens(tmp_path / "ml", two_group_interactions(n_users=160, seed=3))
    args = ["factors", "evaluate", "--movielens", str(ml), "--seed", "1", "--no-rmse", "--learning-curve"]
    assert run([*args, "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    curve = out["learning_curve"]
    assert curve["train_users"] == sorted(curve["train_users"]) and curve["train_users"][-1] == 128
    assert len(curve["segment_popularity_ndcg@10"]) == 5
    # The best method is trained on the same subsets; with tastes split by gender it is close to the top
    # even on the smallest subset, and its gain is measured against segment popularity on those subsets.
    assert len(curve["best_method_ndcg@10"]) == len(curve["best_method_vs_segment_popularity"]) == 5
    assert min(curve["best_method_ndcg@10"]) > 0.5
    full = {r["method"]: r["ndcg@10"] for r in out["ranking"]}
    assert curve["best_method_ndcg@10"][-1] == pytest.approx(full["SVD + age/gender kernel (best)"], abs=1e-4)
    assert run(args) == 0
    out = capsys.readouterr().out
    assert "unlimited users" in out and "vs segpop" in out
    assert run([*args, "--curve-method-repeats", "0"]) == 0
    assert "unlimited users" in capsys.readouterr().out


@pytest.mark.slow
def test_evaluate_camera_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ml = write_movielens(tmp_path / "ml", two_group_interactions(n_users=160, seed=3))
    args = ["factors", "evaluate", "--movielens", str(ml), "--seed", "1", "--no-rmse", "--camera-error"]

    def rows(*extra: str) -> dict[str, float]:
        assert run([*args, *extra, "--json"]) == 0
        camera = json.loads(capsys.readouterr().out)["camera_error"]
        return {r["method"]: r["ndcg@10"] for r in camera["rows"]}

    # Tastes split by gender (no item liked by both): a camera wrong on 40% of genders loses much of what
    # knowing the segment is worth, hard segment or expected over both genders alike.
    poor = rows("--gender-accuracy", "0.6")
    for method in ("segment popularity", "SVD + age/gender kernel (best)"):
        assert poor[f"{method}, estimated segment"] < poor[f"{method}, true segment"] - 0.1
        assert poor[f"{method}, expected over the estimate"] < poor[f"{method}, true segment"] - 0.1
    # A nearly perfect camera changes nothing.
    sharp = rows("--gender-accuracy", "0.9999", "--age-sd", "0.01")
    for method in ("segment popularity", "SVD + age/gender kernel (best)"):
        assert sharp[f"{method}, estimated segment"] == pytest.approx(
            sharp[f"{method}, true segment"], abs=0.01
        )
        assert sharp[f"{method}, expected over the estimate"] == pytest.approx(
            sharp[f"{method}, true segment"], abs=0.01
        )
    assert run(args) == 0
    assert "With the camera's error (age sd 6.2 y, gender accuracy 0.945" in capsys.readouterr().out
    with pytest.raises(SmartShelfError, match="gender-accuracy"):
        run([*args, "--gender-accuracy", "1.5"])


def test_prior_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "c.csv").write_text(
        "sku,name,brand,gender,category,price,colour\n"
        "1,Women Top,B,Women,casual,799,Blue\n2,Men Shirt,B,Men,casual,999,Blue\n3,Girls Dress,B,Girls,,499,Red\n"
    )
    assert (
        run(["factors", "prior", "--catalog", str(tmp_path / "c.csv"), "--out", str(tmp_path / "p.npz")]) == 0
    )
    assert "wrote" in capsys.readouterr().out
    assert (
        run(
            [
                "recommend",
                "--factors",
                str(tmp_path / "p.npz"),
                "--age",
                "8",
                "--gender",
                "female",
                "--top",
                "1",
                "--json",
            ]
        )
        == 0
    )
    assert json.loads(capsys.readouterr().out) == {"items": ["3"], "names": [None], "segment": "female/0-12"}
    assert (
        run(
            [
                "recommend",
                "--factors",
                str(tmp_path / "p.npz"),
                "--age",
                "40",
                "--gender",
                "male",
                "--top",
                "1",
                "--json",
            ]
        )
        == 0
    )
    assert json.loads(capsys.readouterr().out) == {"items": ["2"], "names": [None], "segment": "male/35-44"}


def test_retrain_command_refusal_exit_code(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ledger, users = write_ledger(tmp_path, flip_recent=True)
    current = flipped_taste_model().save(tmp_path / "factors.npz")
    before = current.read_bytes()
    code = run(
        [
            "factors",
            "retrain",
            "--ledger",
            str(ledger),
            "--users",
            str(users),
            "--current",
            str(current),
            "--holdout",
            "0.3",
        ]
    )
    assert code == 3
    assert "retrain refused" in capsys.readouterr().err
    assert current.read_bytes() == before


def test_bench_command_runs(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["factors", "bench", "--items", "500", "--rank", "8", "--repeat", "20", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["items"] == 500 and len(out["results"]) == 5
