"""Device sub-commands: ``smartshelf run``, ``smartshelf demo`` and ``smartshelf analyze``."""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from smartshelf.core.config import DEFAULT_CONFIG_PATH, Config, load_effective_config
from smartshelf.core.errors import ImageError, SmartShelfError
from smartshelf.core.types import Decision

if TYPE_CHECKING:
    from device.display.leds import TerminalIndicator

logger = logging.getLogger(__name__)


def register(subparsers: Any) -> None:
    run = subparsers.add_parser("run", help="run the shelf (the device service)")
    run.add_argument("--config", type=Path, default=None, help=f"TOML config (default {DEFAULT_CONFIG_PATH} if it exists)")
    run.add_argument("--check-config", action="store_true", help="validate the config, models and factor file, then exit")
    run.set_defaults(func=cmd_run)

    demo = subparsers.add_parser("demo", help="run the whole loop on the bundled demo shopper and store")
    demo.add_argument("--frames", type=int, default=None, help="frames to process (default: the whole clip once)")
    demo.add_argument("--json", action="store_true", help="one JSON line per decision on stdout")
    demo.add_argument("--fast", action="store_true", help="do not pace frames at the camera's frame rate")
    demo.add_argument("--serve", action="store_true", help="keep replaying and serving the kiosk page until Ctrl-C")
    demo.add_argument("--port", type=int, default=8081, help="kiosk page port on 127.0.0.1 (0: any free port)")
    demo.add_argument("--data-dir", type=Path, default=None, help="keep the demo's data here (default: a temp dir)")
    demo.set_defaults(func=cmd_demo)

    analyze = subparsers.add_parser("analyze", help="face detection + age/gender on still images")
    analyze.add_argument("images", nargs="+", type=Path)
    analyze.add_argument("--json", action="store_true", help="one JSON line per image (the default output)")
    analyze.add_argument("--config", type=Path, default=None, help="take model settings from this config")
    analyze.set_defaults(func=cmd_analyze)


def _config_from(path: Path | None) -> Config:
    return load_effective_config(path)


# ---------------------------------------------------------------------------------------- run
def cmd_run(args: argparse.Namespace) -> int:
    from device.sdnotify import Watchdog
    from device.shelf import build_shelf

    config = _config_from(args.config)
    if args.check_config:
        return _check(config)
    watchdog = Watchdog()
    stop = threading.Event()

    def on_signal(signum: int, _frame: Any) -> None:
        logger.info("signal %d: stopping", signum)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    shelf = build_shelf(config)
    try:
        shelf.camera.open()
    except BaseException:
        shelf.close()
        raise
    logger.info("shelf %r running (camera %s, presence %s)", config.shelf.name, config.camera.type, config.presence.type)
    watchdog.ready(f"running; kiosk {shelf.kiosk.url if shelf.kiosk else 'off'}")

    def on_step(decision: Decision | None) -> None:
        watchdog.ping()
        shelf.write_status()
        if decision is not None:
            watchdog.status(f"last decision {decision.segment_label} -> {', '.join(decision.slots) or 'none'}")

    try:
        shelf.controller.run(stop, on_step=on_step)
    finally:
        watchdog.stopping()
        shelf.controller.indicator.idle()
        shelf.write_status(every_s=0)
        shelf.close()
    return 0


def _check(config: Config) -> int:
    """Validate what start-up needs without opening hardware (ExecStartPre)."""
    from device.inference import DETECTOR_FILES, MODELS_DIR
    from device.inference.runtime import verify_model
    from device.recommend.factors import FactorModel

    models_dir = Path(config.models.dir or MODELS_DIR)
    verify_model(models_dir / DETECTOR_FILES[config.models.detector])
    verify_model(models_dir / config.models.age_gender)
    if config.factors_path.exists():
        FactorModel.load(config.factors_path)
    else:
        logger.warning(
            "no factor file at %s: the shelf ranks the products on its slots with the catalogue prior (their "
            "gender, category, price and sales) until the nightly retrain (smartshelf-retrain.timer) installs one",
            config.factors_path,
        )
    print(f"config OK: {config.source or 'defaults'}")
    return 0


# --------------------------------------------------------------------------------------- demo
def decision_json(decision: Decision) -> dict[str, Any]:
    return {
        "time": round(decision.time, 3),
        "visit": decision.visit_id,
        "segment": decision.segment_label,
        "confidence": round(decision.confidence, 3),
        "reason": decision.reason,
        "items": list(decision.items),
        "slots": list(decision.slots),
        "timings_ms": {k: round(v, 2) for k, v in decision.timings_ms.items()},
    }


def cmd_demo(args: argparse.Namespace) -> int:
    from device.demo.store import FRAMES_DIR, prepare_demo
    from device.display.leds import TerminalIndicator
    from device.shelf import build_shelf

    with tempfile.TemporaryDirectory(prefix="smartshelf-demo-") as tmp:
        data_dir = args.data_dir or Path(tmp)
        config = prepare_demo(data_dir, kiosk_port=args.port, loop=args.serve or bool(args.frames))
        n_clip = len(list(FRAMES_DIR.glob("*.jpg")))
        total = args.frames if args.frames is not None else n_clip
        # Frame time, not wall time, drives the visit logic: the demo decides the same way at any speed.
        frame_time = [0.0]
        indicator = TerminalIndicator(config.slots)
        try:
            shelf = build_shelf(config, indicator=indicator, clock=lambda: frame_time[0])
        except OSError as exc:  # the kiosk port is taken: any free one will do for a demo
            logger.warning("kiosk port %d unavailable (%s); using a free port", args.port, exc)
            config = config.replace(kiosk=type(config.kiosk)(port=0))
            shelf = build_shelf(config, indicator=indicator, clock=lambda: frame_time[0])
        try:
            if shelf.kiosk:
                print(f"kiosk page: {shelf.kiosk.url}", file=sys.stderr)
            period = 1.0 / config.camera.fps
            i = 0
            while args.serve or i < total:
                started = time.monotonic()
                decision = shelf.controller.step()
                frame_time[0] += period
                i += 1
                if decision is not None:
                    _print_decision(decision, shelf, indicator, as_json=args.json)
                if not args.fast:
                    time.sleep(max(0.0, period - (time.monotonic() - started)))
            if not args.json:
                stats = shelf.controller.stats
                kept = f"events in {data_dir / 'events.sqlite3'}" if args.data_dir else "use --data-dir to keep the events"
                print(f"{stats.frames} frames, {stats.faces} with a face, {stats.decisions} decision(s); {kept}")
        except KeyboardInterrupt:
            pass
        finally:
            shelf.close()
    return 0


def _print_decision(decision: Decision, shelf: Any, leds: TerminalIndicator, *, as_json: bool) -> None:
    if as_json:
        print(json.dumps(decision_json(decision)), flush=True)
        return
    products = shelf.controller.store.products
    names = [f"{products[s].name} (slot {products[s].slot})" for s in decision.items if s in products]
    timing = ", ".join(f"{k} {v:.1f} ms" for k, v in decision.timings_ms.items())
    print(f"visit {decision.visit_id}: {decision.segment_label} (confidence {decision.confidence:.2f}, "
          f"{decision.reason})")
    for name in names:
        print(f"  -> {name}")
    print(f"  LEDs: {leds.render()}")
    print(f"  timings: {timing}", flush=True)


# ------------------------------------------------------------------------------------ analyze
def cmd_analyze(args: argparse.Namespace) -> int:
    import cv2

    from device.shelf import open_models

    config = _config_from(args.config)
    detector, age_gender = open_models(config.models)
    failed = 0
    try:
        for path in args.images:
            try:
                bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
                if bgr is None:
                    raise ImageError(f"{path}: not a readable image")
                frame = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
                faces = []
                for face in detector.detect(frame):
                    est = age_gender.estimate(frame, face)
                    faces.append(
                        {
                            "box": list(face.box),
                            "score": round(face.score, 4),
                            "gender": est.gender.value,
                            "p_female": round(est.p_female, 4),
                            "age": round(est.age, 1),
                            "age_bracket": est.age_bracket,
                            "confidence": round(est.confidence, 3),
                        }
                    )
                print(json.dumps({"image": str(path), "faces": faces}), flush=True)
            except SmartShelfError as exc:
                failed += 1
                print(f"smartshelf: error: {exc}", file=sys.stderr)
    finally:
        detector.close()
        age_gender.close()
    return 1 if failed else 0
