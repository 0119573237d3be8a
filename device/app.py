"""Device sub-commands: ``smartshelf run``, ``demo``, ``replay`` and ``analyze``."""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from smartshelf.core.config import DEFAULT_CONFIG_PATH, Config, load_config, load_effective_config
from smartshelf.core.errors import CameraError, ConfigError, ImageError, PortUnavailable, SmartShelfError
from smartshelf.core.types import Capture, Decision, Frame

if TYPE_CHECKING:
    from device.display.leds import TerminalIndicator
    from device.sensors.replay import ReplayCamera

logger = logging.getLogger(__name__)

DEFAULT_DEMO_PORT = 8081


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
    demo.add_argument("--port", type=int, default=None,
                      help="kiosk page port on 127.0.0.1; fails if taken (default: 8081, else any free port; 0: any)")
    demo.add_argument("--data-dir", type=Path, default=None, help="keep the demo's data here (default: a temp dir)")
    demo.set_defaults(func=cmd_demo)

    replay = subparsers.add_parser(
        "replay",
        help="run recorded footage (a folder of frames or a video file) through the real shelf loop",
        description="Replays SOURCE through the real controller (detector, age/gender, visits, gate, ranker) on "
        "frame time, so it decides exactly as the shelf would at the source's frame rate, however fast it runs. "
        "One line per decision; with --json the demo's JSON plus 'frame' (index of the source frame it was made "
        "on). Nothing is written: no events, no status, no frames.",
    )
    replay.add_argument("source", type=Path, help="a folder of images (sorted by name) or a video file")
    replay.add_argument(
        "--config", type=Path, default=None,
        help="take models, [visit], [recommend], camera size and the store (data_dir) from this config "
        "(default: the demo store and default settings)",
    )
    replay.add_argument("--json", action="store_true", help="one JSON line per decision on stdout")
    replay.add_argument("--fast", action="store_true", help="do not pace frames at the source's frame rate")
    replay.add_argument(
        "--fps", type=float, default=None,
        help="frame rate of SOURCE (default: the video's own, else camera.fps of the config)",
    )
    replay.set_defaults(func=cmd_replay)

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
    from device.inference import MODELS_DIR, detector_files
    from device.inference.runtime import verify_model
    from device.recommend.factors import FactorModel

    models_dir = Path(config.models.dir or MODELS_DIR)
    for name in detector_files(config.models.detector, search=config.models.search):
        verify_model(models_dir / name)
    verify_model(models_dir / config.models.age_gender)
    public_key = None
    if config.recommend.public_key is not None:
        from device.recommend.signing import load_public_key

        public_key = load_public_key(config.recommend.public_key)
    if config.factors_path.exists():
        FactorModel.load(config.factors_path, public_key=public_key)
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
        if args.port is not None and not 0 <= args.port <= 65535:
            raise ConfigError(f"--port {args.port}: must be 0-65535")
        port = DEFAULT_DEMO_PORT if args.port is None else args.port
        config = prepare_demo(data_dir, kiosk_port=port, loop=args.serve or bool(args.frames))
        n_clip = len(list(FRAMES_DIR.glob("*.jpg")))
        total = args.frames if args.frames is not None else n_clip
        # Frame time, not wall time, drives the visit logic: the demo decides the same way at any speed.
        frame_time = [0.0]
        indicator = TerminalIndicator(config.slots)
        try:
            shelf = build_shelf(config, indicator=indicator, clock=lambda: frame_time[0])
        except PortUnavailable as exc:
            if args.port is not None:  # a port asked for is that port or an error, never another one
                raise
            logger.info("%s; the demo uses a free port instead", exc)
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


# ------------------------------------------------------------------------------------- replay
def replay_config(config: Config, source: Path) -> Config:
    """``config`` with the camera replaced by SOURCE played once, and nothing that writes or serves."""
    from dataclasses import replace

    camera = replace(config.camera, type="replay", source=str(source), loop=False)
    # A recording has no PIR or ultrasonic sensor to ask: presence from the frames themselves.
    presence = config.presence if config.presence.type in ("camera_motion", "always") else replace(
        config.presence, type="camera_motion"
    )
    return config.replace(
        camera=camera,
        presence=presence,
        leds=replace(config.leds, type="none"),
        kiosk=replace(config.kiosk, enabled=False),
    )


class _EndOfSource(Exception):
    """The replayed source has no more frames (not a camera failure: nothing to reopen)."""


class _PlayOnce:
    """A ReplayCamera for ``smartshelf replay``: its end stops the loop, an unreadable frame stops the
    command with the file named (a live shelf would instead reopen the camera and start again)."""

    def __init__(self, camera: ReplayCamera) -> None:
        self.camera = camera

    def open(self) -> None:
        self.camera.open()

    def read(self) -> Frame | Capture:
        try:
            return self.camera.read()
        except CameraError as exc:
            if self.camera.ended:
                raise _EndOfSource from None
            raise ImageError(f"frame {self.camera.frames_read}: {exc}") from None

    def close(self) -> None:
        self.camera.close()


def cmd_replay(args: argparse.Namespace) -> int:
    from device.demo.store import prepare_demo
    from device.sensors.replay import ReplayCamera
    from device.shelf import build_shelf

    source: Path = args.source
    if not source.exists():
        raise ImageError(f"{source}: replay source does not exist (give a folder of images or a video file)")
    if args.fps is not None and not 0.5 <= args.fps <= 240:
        raise ImageError(f"--fps {args.fps:g} is out of range [0.5, 240]")
    with tempfile.TemporaryDirectory(prefix="smartshelf-replay-") as tmp:
        if args.config is not None:
            base = load_config(args.config)
            if not base.data_dir.is_dir():
                raise ConfigError(
                    f"{args.config}: shelf.data_dir = {str(base.data_dir)!r} does not exist; replay reads the store "
                    "and factor file from there (leave out --config to replay against the demo store)"
                )
        else:
            demo = prepare_demo(Path(tmp))
            base = demo.replace(visit=Config().visit)  # the shipped visit settings, not the demo's short clip ones
        config = replay_config(base, source)
        cam = config.camera
        camera = ReplayCamera(source, loop=False, size=(cam.width, cam.height), full_size=cam.full_size)
        camera.open()  # a folder without images or an unreadable video fails here, before any model loads
        fps = args.fps or camera.fps or cam.fps
        camera.close()
        frame_time = [0.0]
        shelf = build_shelf(
            config, camera=_PlayOnce(camera), serve_kiosk=False, record_events=False,
            clock=lambda: frame_time[0], wall_clock=lambda: frame_time[0],
        )
        try:
            shelf.camera.open()
            period = 1.0 / fps
            decisions = 0
            while True:
                started = time.monotonic()
                try:
                    decision = shelf.controller.step()
                except _EndOfSource:
                    break
                if decision is not None:
                    decisions += 1
                    row = {"frame": camera.frames_read - 1, **decision_json(decision)}
                    if args.json:
                        print(json.dumps(row), flush=True)
                    else:
                        print(f"frame {row['frame']} ({row['time']:.1f} s): visit {row['visit']} {row['segment']} "
                              f"({row['reason']}, confidence {row['confidence']:.2f}) -> slots "
                              f"{', '.join(row['slots']) or 'none'}", flush=True)
                frame_time[0] += period
                if not args.fast:
                    time.sleep(max(0.0, period - (time.monotonic() - started)))
            stats = shelf.controller.stats
            logger.info("%s: %d frames, %d with a face, %d decision(s)", source, stats.frames, stats.faces, decisions)
            if not args.json:
                print(f"{stats.frames} frames at {fps:g} fps, {stats.faces} with a face, {decisions} decision(s)")
        finally:
            shelf.close()
    return 0


# ------------------------------------------------------------------------------------ analyze
@contextlib.contextmanager
def _native_stderr_silenced() -> Iterator[None]:
    """Send what C/C++ libraries print on file descriptor 2 (TFLite's "Created TensorFlow Lite XNNPACK
    delegate") to /dev/null for the block; Python's own errors are raised, not printed, meanwhile."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)


def cmd_analyze(args: argparse.Namespace) -> int:
    import cv2

    from device.shelf import open_models

    with contextlib.suppress(AttributeError):  # OpenCV's own warnings ("imread_: can't open/read file"): we say it
        cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)
    config = _config_from(args.config)
    with _native_stderr_silenced():
        detector, age_gender = open_models(config.models)
    failed = 0
    try:
        for path in args.images:
            try:
                if not path.is_file():
                    raise ImageError(f"{path}: no such file")
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
