"""The device half of ``smartshelf bench``, run in its own process so its peak RSS is honest.

``python -m tools.bench.device_run OUT.json --frames N --spawned-at EPOCH`` builds the real shelf
with :func:`device.shelf.build_shelf` (replay camera over the demo frames that contain the shopper,
camera-motion presence, BlazeFace, the int8 age/gender model, the demo factor file and store, gpiozero
LEDs on MockFactory pins, the kiosk screen state without its HTTP server, the TinyDB event log) and
drives ``ShelfController.step()`` with a frame clock that lets each shopper leave between frames, so
every frame with a face is a new visit and ends in a decision (visit.min_frames = 1). It writes one
JSON object: start-up time to the first decision, the controller's per-stage timings of every
decision, the wall time of each step (frame -> decision + event written), alignment and age/gender
timed on their own on the same frames, and the process's peak RSS (``getrusage`` ru_maxrss).

Nothing but that JSON is written: no frame or crop goes to disk (the demo frames are symlinked).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sqlite3
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

#: Seconds of frame time per step: longer than the bench config's visit.leave_after_s, so each
#: frame with a face starts a new visit and decides (the real device sees ~10 fps).
FRAME_STEP_S = 0.2
BENCH_LEAVE_AFTER_S = 0.1


def bench_config(data_dir: Path, replay_dir: Path) -> Any:
    """The demo config with every frame deciding: min_frames 1, no wait for a confident estimate
    (decide_within_s 0), shopper gone after 0.1 s of frame time."""
    import dataclasses

    from device.demo.store import prepare_demo
    from smartshelf.core.config import KioskConfig, LedsConfig, PresenceConfig, VisitConfig

    config = prepare_demo(data_dir, loop=True)
    return config.replace(
        camera=dataclasses.replace(config.camera, source=str(replay_dir), loop=True),
        # Motion presence stays in the path; a long hold keeps the (mostly still) shopper present.
        presence=PresenceConfig(type="camera_motion", hold_s=600.0),
        visit=VisitConfig(min_frames=1, leave_after_s=BENCH_LEAVE_AFTER_S, max_revisions=100, decide_within_s=0.0),
        # Real gpiozero LEDs on mock pins. Idle "off": here every frame ends a visit, and restarting 12
        # software "breathe" threads per frame would measure the forced visit churn, not the shelf.
        leds=LedsConfig(type="gpio", pwm=True, idle="off"),
        kiosk=KioskConfig(enabled=False),
    )


def run(
    frames: int, spawned_at: float, *, face_frames: Sequence[str] = (), warmup: int = 5
) -> dict[str, Any]:
    """Measure the shelf on the demo frames named in ``face_frames`` (default: the whole clip)."""
    t_main = time.time()
    import cv2
    from gpiozero.pins.mock import MockFactory, MockPWMPin

    from device.demo.store import FRAMES_DIR
    from device.display.screen import KioskScreen
    from device.inference.align import align_face
    from device.shelf import build_shelf
    from smartshelf.core.errors import SmartShelfError

    t_imported = time.time()
    result: dict[str, Any] = {"pid": os.getpid(), "frames_requested": frames}
    with tempfile.TemporaryDirectory(prefix="smartshelf-bench-") as tmp:
        tmp_path = Path(tmp)
        replay_dir = tmp_path / "frames"
        replay_dir.mkdir()
        faces = [FRAMES_DIR / name for name in face_frames] or sorted(FRAMES_DIR.glob("*.jpg"))
        for path in faces:
            if not path.is_file():
                raise SmartShelfError(f"demo frame {path} does not exist")
            (replay_dir / path.name).symlink_to(path)
        data_dir = tmp_path / "data"
        frame_time = [0.0]
        config = bench_config(data_dir, replay_dir)
        shelf = build_shelf(
            config,
            pin_factory=MockFactory(pin_class=MockPWMPin),
            screen=KioskScreen(config.shelf.name),
            serve_kiosk=False,
            clock=lambda: frame_time[0],
        )
        t_built = time.time()
        try:
            controller = shelf.controller
            t_first_step = time.time()
            first = None
            startup_steps = 0
            while first is None and startup_steps < 10 * len(faces):
                first = controller.step()
                frame_time[0] += FRAME_STEP_S
                startup_steps += 1
            t_first = time.time()
            if first is None:
                raise SmartShelfError(f"the shelf made no decision on {len(faces)} demo frame(s)")
            result["startup"] = {
                "to_first_decision_s": round(t_first - spawned_at, 4),
                "interpreter_and_imports_s": round(t_imported - spawned_at, 4),
                "python_start_s": round(t_main - spawned_at, 4),
                "build_shelf_s": round(t_built - t_imported, 4),
                "first_decision_after_build_s": round(t_first - t_first_step, 4),
                "steps_to_first_decision": startup_steps,
            }
            for _ in range(warmup):
                controller.step()
                frame_time[0] += FRAME_STEP_S
            step_ms: list[float] = []
            step_decided: list[bool] = []
            decision_timings: list[dict[str, float]] = []
            no_decision = 0
            started = time.perf_counter()
            for _ in range(frames):
                t = time.perf_counter()
                decision = controller.step()
                step_ms.append((time.perf_counter() - t) * 1000.0)
                frame_time[0] += FRAME_STEP_S
                step_decided.append(decision is not None)
                if decision is None:
                    no_decision += 1
                else:
                    decision_timings.append(dict(decision.timings_ms))
            elapsed = time.perf_counter() - started
            result["loop"] = {
                "frames": frames,
                "decisions": len(decision_timings),
                "frames_without_decision": no_decision,
                "seconds": round(elapsed, 4),
                "fps": round(frames / elapsed, 2) if elapsed > 0 else None,
                "step_ms": step_ms,
                "step_decided": step_decided,
                "decision_timings_ms": decision_timings,
            }
            # Alignment and the model alone, on the same frames and faces (the loop times them together).
            age_gender = controller.age_gender
            detector = controller.detector
            align_ms: list[float] = []
            model_ms: list[float] = []
            rounds = max(1, frames // len(faces))
            images = []
            for path in faces:
                rgb = cv2.cvtColor(cv2.imread(str(path), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
                found = detector.detect(rgb)
                if found:
                    images.append((rgb, found[0]))
            if not images:
                raise SmartShelfError("no face found in the demo frames to time alignment and age/gender on")
            for _ in range(rounds):
                for rgb, face in images:
                    t = time.perf_counter()
                    crop = align_face(rgb, face, age_gender.input_size)
                    t2 = time.perf_counter()
                    age_gender.estimate_crop(crop)
                    t3 = time.perf_counter()
                    align_ms.append((t2 - t) * 1000.0)
                    model_ms.append((t3 - t2) * 1000.0)
            result["direct"] = {"align_ms": align_ms, "age_gender_ms": model_ms}
            if controller.events is not None:
                controller.events.close()  # flush before the file sizes are read
            events = sorted(data_dir.glob("events.sqlite3*"))
            with sqlite3.connect(data_dir / "events.sqlite3") as conn:
                count = int(conn.execute("SELECT count(*) FROM events").fetchone()[0])
            result["events"] = {
                "files": len(events),
                "bytes": sum(p.stat().st_size for p in events),
                "count": count,
            }
            result["face_frames"] = len(faces)
            result["config"] = {
                "detector": config.models.detector,
                "age_gender": config.models.age_gender,
                "threads": config.models.threads,
                "camera": f"replay of {len(faces)} demo frames {images[0][0].shape[1]}x{images[0][0].shape[0]}",
                "presence": config.presence.type,
                "leds": "gpio (gpiozero MockFactory, PWMLED, idle off)",
            }
        finally:
            shelf.close()
    rss_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    result["peak_rss_mb"] = round(rss_kb / 1024.0, 1)  # Linux reports kilobytes
    return result


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.bench.device_run")
    parser.add_argument("out", type=Path)
    parser.add_argument("--frames", type=int, default=300)
    parser.add_argument(
        "--spawned-at", type=float, default=None, help="time.time() when the parent started us"
    )
    parser.add_argument(
        "--face-frames", default="", help="comma-separated demo frame names to replay (default: all)"
    )
    args = parser.parse_args(argv)
    if args.frames < 1:
        parser.error(f"--frames must be >= 1, got {args.frames}")
    spawned_at = args.spawned_at if args.spawned_at is not None else time.time()
    names = [n for n in args.face_frames.split(",") if n]
    result = run(args.frames, spawned_at, face_frames=names)
    args.out.write_text(json.dumps(result), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
