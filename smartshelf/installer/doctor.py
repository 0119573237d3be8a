"""`smartshelf doctor`: a self-check of the installed shelf, one line per check with the fix.

Checks (names for ``--skip``): config, runtime, camera, gpio, models, factors, shelf, data_dir,
time_sync, admin_port. Every check runs even when an earlier one failed; a check that raises
becomes a failed line with the error's text. The exit status is 1 when any check failed
(warnings do not fail), so installers and ``smartshelf update`` can gate on it.

While the device service runs it holds the camera and the LED pins; doctor then reads the
device's ``status.json`` for the camera instead of opening it, and says so.
"""

from __future__ import annotations

import argparse
import atexit
import errno
import json
import logging
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

from smartshelf.core.config import DEFAULT_CONFIG_PATH, Config, load_config, resolve_config_path
from smartshelf.core.types import Capture

logger = logging.getLogger(__name__)

Status = Literal["ok", "warn", "fail", "skip"]
CHECK_NAMES = (
    "config",
    "runtime",
    "camera",
    "gpio",
    "models",
    "factors",
    "shelf",
    "data_dir",
    "time_sync",
    "admin_port",
)
#: The installer's hardware checklist (``--hardware``; smartshelf.installer.hardware).
HARDWARE_NAMES = ("camera_grab", "leds", "screen", "clock", "sd_card", "cpu")
SUPERSEDED_BY_HARDWARE = ("camera", "gpio", "time_sync", "data_dir")
#: Below this the data dir fails the check (events, backups and TinyDB writes need room).
MIN_FREE_BYTES = 50 * 1024 * 1024
WARN_FREE_BYTES = 500 * 1024 * 1024
CAMERA_TIMEOUT_S = 15.0
STATUS_FRESH_S = 30.0
TIMESYNC_FLAG = Path("/run/systemd/timesync/synchronized")


@dataclass(frozen=True)
class CheckResult:
    name: str
    status: Status
    detail: str
    fix: str = ""


class Skipped(Exception):
    """Raised inside a check to report it as skipped (with the reason)."""


class Warn(Exception):
    """Raised inside a check to report a warning: (detail, fix)."""

    def __init__(self, detail: str, fix: str = "") -> None:
        super().__init__(detail)
        self.detail = detail
        self.fix = fix


class Fail(Exception):
    """Raised inside a check to report a failure: (detail, fix)."""

    def __init__(self, detail: str, fix: str = "") -> None:
        super().__init__(detail)
        self.detail = detail
        self.fix = fix


@dataclass
class Context:
    """What the checks share; everything injectable for tests."""

    config: Config
    config_path: Path | None
    config_error: str | None = None
    pin_factory: Any = None
    timesync_flag: Path = TIMESYNC_FLAG
    timedatectl: str | None = "timedatectl"
    camera_timeout_s: float = CAMERA_TIMEOUT_S


# --- the checks ---------------------------------------------------------------------------------


def check_config(ctx: Context) -> str:
    if ctx.config_error:
        raise Fail(ctx.config_error, "correct the named key (every key is documented in config.example.toml)")
    if ctx.config_path is None:
        raise Warn(
            f"no config file ({DEFAULT_CONFIG_PATH} missing); using the defaults",
            f"sudo cp config.example.toml {DEFAULT_CONFIG_PATH} and edit it",
        )
    return f"{ctx.config_path} is valid (shelf {ctx.config.shelf.name!r})"


def check_runtime(ctx: Context) -> str:
    import numpy

    parts = [f"python {sys.version.split()[0]}", f"numpy {numpy.__version__}"]
    try:
        import cv2
    except ImportError as exc:
        raise Fail(
            f"OpenCV is not importable: {exc}", "sudo apt-get install python3-opencv (on the Pi)"
        ) from None
    parts.append(f"opencv {cv2.__version__}")
    try:
        import ai_edge_litert  # noqa: F401

        parts.append("ai_edge_litert")
    except ImportError:
        try:
            import tflite_runtime  # noqa: F401

            parts.append("tflite_runtime")
        except ImportError:
            raise Fail(
                "no TFLite runtime (ai_edge_litert or tflite_runtime)",
                "pip install ai-edge-litert in the venv",
            ) from None
    return ", ".join(parts)


def _device_status(config: Config) -> dict[str, Any] | None:
    """The running device's status.json if it is fresh and its pid is alive, else None."""
    path = config.runtime_dir / "status.json"
    try:
        status = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(status, dict):
        return None
    updated = status.get("updated_at")
    pid = status.get("pid")
    if not isinstance(updated, (int, float)) or time.time() - updated > STATUS_FRESH_S:
        return None
    if isinstance(pid, int) and pid > 0 and pid != os.getpid():
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        except PermissionError:
            pass
    return status


def check_camera(ctx: Context) -> str:
    cfg = ctx.config.camera
    status = _device_status(ctx.config)
    if status is not None:
        camera = status.get("camera") or {}
        state = camera.get("state")
        if state in ("ok", "paused"):
            return f"the running device reports camera {camera.get('type', cfg.type)} {state} at {camera.get('fps', '?')} fps"
        raise Fail(
            f"the running device reports camera state {state!r}: {camera.get('error')}",
            "check the cable and camera.type; journalctl -u smartshelf-device",
        )
    from device.sensors import create_camera

    camera_obj = create_camera(cfg)
    result: dict[str, Any] = {}

    def grab() -> None:
        try:
            camera_obj.open()
            start = time.monotonic()
            frame = camera_obj.read()
            result["frame"] = frame
            result["elapsed"] = time.monotonic() - start
        except BaseException as exc:  # noqa: BLE001 - reported below as a failed line
            result["error"] = exc

    thread = threading.Thread(target=grab, name="doctor-camera", daemon=True)
    thread.start()
    thread.join(ctx.camera_timeout_s)
    if thread.is_alive():
        raise Fail(
            f"{cfg.type} camera gave no frame within {ctx.camera_timeout_s:g}s",
            "check the ribbon cable / USB camera; is another program using it? (sudo systemctl stop smartshelf-device)",
        )
    try:
        camera_obj.close()
    except Exception as exc:  # noqa: BLE001 - a close error must not hide the result
        logger.debug("camera close failed: %s", exc)
    if "error" in result:
        exc = result["error"]
        raise Fail(
            f"{cfg.type} camera: {type(exc).__name__}: {exc}",
            _camera_fix(cfg.type),
        )
    frame = result.get("frame")
    extra = ""
    if isinstance(frame, Capture):  # a two-stream camera
        if frame.full is not None:
            extra = f" (faces cropped from {frame.full.shape[1]}x{frame.full.shape[0]})"
        frame = frame.view
    shape = getattr(frame, "shape", None)
    if shape is None or len(shape) < 2 or shape[0] == 0 or shape[1] == 0:
        raise Fail(f"{cfg.type} camera returned no image ({frame!r:.60})", _camera_fix(cfg.type))
    return f"{cfg.type} camera delivered a {shape[1]}x{shape[0]} frame{extra} in {result['elapsed']:.2f}s"


def check_range(ctx: Context) -> str:
    from device.inference.reach import camera_reach

    cfg = ctx.config
    reach = camera_reach(cfg.camera, cfg.models.detector, cfg.visit.min_face_px, search=cfg.models.search)
    want = cfg.shelf.working_distance_m
    text = f"{reach.describe()}; shelf.working_distance_m = {want:g} m"
    if want > reach.personalised_m:
        raise Warn(
            f"{text}: shoppers at {want:g} m are " + ("not found" if want > reach.found_m else "found but not personalised"),
            reach.advice(want),
        )
    if cfg.models.search and not reach.refined:
        raise Warn(
            f"{text}: models.search is on without two streams refined, so nothing drops the false faces it "
            "reports (about half of empty shop frames in docs/vision-at-distance.md)",
            "two streams (camera.full_width/full_height) with camera.refine = true, or models.search = false "
            "where shoppers stand within the detector's reach",
        )
    return text


def _camera_fix(camera_type: str) -> str:
    if camera_type == "picamera2":
        return (
            "rpicam-hello --list-cameras must list the camera; check the ribbon cable; "
            "sudo apt-get install python3-picamera2; the service user must be in group video"
        )
    if camera_type == "opencv":
        return (
            "check camera.source (index, file or URL) and that the user is in group video (ls -l /dev/video*)"
        )
    return "check camera.source names a folder of images or a video file"


def _slot_pins(config: Config) -> dict[str, int]:
    """The LED wiring the device uses: the admin's slot table if it has pins, else config [slots]."""
    path = config.data_dir / "store.json"
    try:
        data = json.loads(path.read_text())
        table = data.get("slots", {}) if isinstance(data, dict) else {}
        pins = {
            str(doc["slot"]): int(doc["pin"])
            for doc in table.values()
            if isinstance(doc, dict) and doc.get("slot") and isinstance(doc.get("pin"), int)
        }
        if table:
            return pins
    except (OSError, ValueError, AttributeError):
        pass
    return dict(config.slots)


def default_pin_factory() -> Any:
    """gpiozero's default pin factory; when there is none, a Fail that says why each backend was
    passed over (gpiozero only says "Unable to load any default pin factory!")."""
    import warnings

    from gpiozero import Device
    from gpiozero.exc import BadPinFactory

    # lgpio creates notification pipes in the working directory (or $LG_WD), which may not be
    # writable for the service user (sudo -u smartshelf from a home directory): use a private one.
    workdir = tempfile.mkdtemp(prefix="smartshelf-doctor-")
    atexit.register(shutil.rmtree, workdir, True)
    os.environ.setdefault("LG_WD", workdir)
    previous_cwd = os.getcwd()
    os.chdir(workdir)
    try:
        with warnings.catch_warnings(record=True) as caught:  # one warning per backend passed over
            warnings.simplefilter("always")
            try:
                Device.ensure_pin_factory()
            except BadPinFactory as exc:
                reasons = "; ".join(dict.fromkeys(str(w.message) for w in caught))
                raise Fail(f"{exc} ({reasons})" if reasons else str(exc), FIX_ON_ERROR["gpio"]) from None
    finally:
        try:
            os.chdir(previous_cwd)
        except OSError:  # not ours to enter again: sudo -u smartshelf from a 0700 home (Trixie's default)
            os.chdir("/")
    return Device.pin_factory


def check_gpio(ctx: Context) -> list[CheckResult]:
    leds = ctx.config.leds
    if leds.type != "gpio":
        raise Skipped(f"leds.type = {leds.type!r}: no GPIO used")
    if _device_status(ctx.config) is not None:
        raise Skipped(
            "the device service is running and holds the LED pins (sudo systemctl stop smartshelf-device to test them)"
        )
    factory = ctx.pin_factory or default_pin_factory()
    backend = type(factory).__name__
    pins = _slot_pins(ctx.config)
    results = [CheckResult("gpio", "ok", f"GPIO backend {backend}; {len(pins)} slot pin(s)")]
    if not pins:
        results[0] = CheckResult(
            "gpio",
            "warn",
            f"GPIO backend {backend}; no slot pins configured",
            "map slots to pins on the admin page (Slots)",
        )
    from device.display import create_indicator

    for slot, pin in sorted(pins.items()):
        name = f"gpio.{slot}"
        try:
            indicator = create_indicator(leds, {slot: pin}, pin_factory=factory)
            indicator.close()
            results.append(CheckResult(name, "ok", f"slot {slot}: GPIO{pin} can drive an LED"))
        except Exception as exc:  # noqa: BLE001 - one failed line per pin
            results.append(
                CheckResult(
                    name,
                    "fail",
                    f"slot {slot}: GPIO{pin}: {type(exc).__name__}: {exc}",
                    "is the pin used twice or by another program? the service user must be in group gpio",
                )
            )
    return results


def check_models(ctx: Context) -> list[CheckResult]:
    from device.inference import detector_files
    from device.inference.runtime import MODELS_DIR, verify_model

    cfg = ctx.config.models
    models_dir = Path(cfg.dir) if cfg.dir else MODELS_DIR
    results = []
    detector = detector_files(cfg.detector, search=cfg.search)
    # a cascade has two detector files: the second gets its own line name (models.detector.full_range)
    files = [("detector", detector[0])] + [(f"detector.{Path(f).stem.removeprefix('face_detection_')}", f)
                                           for f in detector[1:]] + [("age_gender", cfg.age_gender)]
    for label, file_name in files:
        name = f"models.{label}"
        try:
            entry = verify_model(models_dir / file_name)
            results.append(
                CheckResult(name, "ok", f"{file_name}: sha256 matches the manifest ({entry['name']})")
            )
        except Exception as exc:  # noqa: BLE001 - one failed line per model
            results.append(
                CheckResult(
                    name,
                    "fail",
                    f"{type(exc).__name__}: {exc}",
                    "reinstall the release (smartshelf update --from ...) or fix models.dir in the config",
                )
            )
    return results


def check_factors(ctx: Context) -> str:
    from device.recommend import FactorModel

    path = ctx.config.factors_path
    if not path.exists():
        raise Warn(
            f"factor file {path} not found: the shelf suggests its products from their details (gender, "
            "category, price, what sells) until the nightly retrain has learned from enough sales",
            "nothing to do on a new shop: check that the retrain is scheduled (systemctl list-timers "
            "smartshelf-retrain.timer); or copy a trained factor file there",
        )
    model = FactorModel.load(path)
    n_items = getattr(model, "n_items", "?")
    rank = getattr(model, "rank", "?")
    return f"{path}: {n_items} items, rank {rank}, checksum ok"


def check_shelf(ctx: Context) -> str:
    """Can the shelf suggest the products staff put on it (store.json, read-only)?"""
    from smartshelf.core.readiness import learned_ids, shelf_readiness
    from smartshelf.core.storage import open_db

    path = ctx.config.data_dir / "store.json"
    if not path.exists():
        raise Warn(
            "no products yet: the shelf has nothing to suggest",
            "add products and put them on slots on the admin page (or import a product CSV)",
        )
    db = open_db(path, read_only=True)
    try:
        products = [dict(d) for d in db.table("products").all()]
        slots = [str(d["slot"]) for d in db.table("slots").all()] or list(ctx.config.slots)
    finally:
        db.close()
    readiness = shelf_readiness(products, slots, learned=learned_ids(ctx.config.factors_path))
    if readiness.problems:
        raise Warn(
            " ".join(readiness.problems),
            "on the admin page: restock, or put products that are in stock on the shelf's slots",
        )
    return f"{len(readiness.suggestable)} product(s) on slots can be suggested. " + " ".join(readiness.notes)


def check_data_dir(ctx: Context) -> str:
    data_dir = ctx.config.data_dir
    if not data_dir.is_dir():
        raise Fail(
            f"data dir {data_dir} does not exist",
            f"sudo install -d -o smartshelf -g smartshelf -m 0750 {data_dir}",
        )
    probe = data_dir / f".doctor-{os.getpid()}"
    try:
        probe.write_bytes(b"ok")
        os.fsync(os.open(probe, os.O_RDONLY))
    except OSError as exc:
        raise Fail(
            f"data dir {data_dir} is not writable: {exc.strerror}",
            f"sudo chown -R smartshelf:smartshelf {data_dir} (run doctor as the service user: sudo -u smartshelf)",
        ) from None
    finally:
        try:
            probe.unlink()
        except OSError:
            pass
    free = shutil.disk_usage(data_dir).free
    text = f"{data_dir} writable, {free / 2**20:.0f} MiB free"
    if free < MIN_FREE_BYTES:
        raise Fail(text, "free space: smartshelf admin backup, then remove old backups/ and events/")
    if free < WARN_FREE_BYTES:
        raise Warn(text + " (low)", "free space on the SD card")
    return text


def check_time_sync(ctx: Context) -> str:
    if ctx.timesync_flag.exists():
        return f"clock synchronised ({ctx.timesync_flag} present)"
    exe = shutil.which(ctx.timedatectl) if ctx.timedatectl else None
    if exe:
        try:
            out = subprocess.run(
                [exe, "show", "--property=NTPSynchronized", "--value"],
                capture_output=True,
                text=True,
                timeout=5,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise Warn(f"timedatectl failed: {exc}", "sudo timedatectl set-ntp true") from None
        if out.returncode == 0 and out.stdout.strip() == "yes":
            return "clock synchronised (timedatectl NTPSynchronized=yes)"
        if out.returncode == 0:
            raise Warn(
                "the shelf's clock is not set: it has not synchronised with a time server since it started "
                "(a Raspberry Pi has no battery clock). Until it does, the times of new events are marked "
                "as unreliable and card terminals' sales may be refused because the shelf's time is wrong, "
                "not the terminal's",
                "connect the shelf to a network that reaches a time server; check with `timedatectl` "
                "and `sudo timedatectl set-ntp true`",
            )
    raise Warn(
        "cannot tell whether the shelf's clock is set (no systemd-timesyncd flag file, no timedatectl)",
        "enable NTP (systemd-timesyncd) so the shelf's clock is set after every power cut",
    )


def check_admin_port(ctx: Context) -> str:
    host, port = ctx.config.admin.host, ctx.config.admin.port
    probe_host = "127.0.0.1" if host in ("0.0.0.0", "", "::") else host
    try:
        with socket.create_connection((probe_host, port), timeout=2):
            return f"admin page answers on {probe_host}:{port}"
    except OSError:
        pass
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EACCES:
                raise Fail(
                    f"port {port} needs privileges to bind", "use admin.port >= 1024 (default 8080)"
                ) from None
            if exc.errno == errno.EADDRNOTAVAIL:
                raise Fail(
                    f"admin.host = {host!r} is not an address of this machine", "use 0.0.0.0"
                ) from None
            raise Fail(
                f"port {host}:{port} is taken by another program but does not answer",
                f"sudo ss -ltnp 'sport = :{port}' shows who; or change admin.port",
            ) from None
    raise Warn(
        f"nothing listens on {host}:{port} (the port is free): the admin service is not running",
        "sudo systemctl start smartshelf-admin; journalctl -u smartshelf-admin",
    )


CheckFn = Callable[[Context], "str | list[CheckResult]"]
CHECKS: dict[str, CheckFn] = {
    "config": check_config,
    "runtime": check_runtime,
    "camera": check_camera,
    "range": check_range,
    "gpio": check_gpio,
    "models": check_models,
    "factors": check_factors,
    "shelf": check_shelf,
    "data_dir": check_data_dir,
    "time_sync": check_time_sync,
    "admin_port": check_admin_port,
}

FIX_ON_ERROR = {
    "camera": "see journalctl -u smartshelf-device; check camera.type and the cable",
    "gpio": "on the Pi: sudo apt-get install python3-lgpio, venv with --system-site-packages (setup.sh), user in group gpio",
    "factors": "replace the factor file with a good one (the device keeps its last good copy)",
}


def run_one(name: str, fn: CheckFn, ctx: Context) -> list[CheckResult]:
    try:
        value = fn(ctx)
    except Skipped as exc:
        return [CheckResult(name, "skip", str(exc))]
    except Warn as exc:
        return [CheckResult(name, "warn", exc.detail, exc.fix)]
    except Fail as exc:
        return [CheckResult(name, "fail", exc.detail, exc.fix)]
    except Exception as exc:  # a check that raises is a failed line, never a crash
        logger.debug("check %s raised", name, exc_info=True)
        return [CheckResult(name, "fail", f"{type(exc).__name__}: {exc}", FIX_ON_ERROR.get(name, ""))]
    if isinstance(value, list):
        return value
    return [CheckResult(name, "ok", str(value))]


def run_checks(ctx: Context, skip: Iterable[str] = ()) -> list[CheckResult]:
    skipped = set(skip)
    results: list[CheckResult] = []
    for name, fn in CHECKS.items():
        if name in skipped:
            results.append(CheckResult(name, "skip", "skipped (--skip)"))
            continue
        results.extend(run_one(name, fn, ctx))
    return results


def make_context(config_path: Path | None, *, explicit: bool, **overrides: Any) -> Context:
    """Load the config for the checks; a bad or missing explicit config becomes the config check's failure."""
    path = config_path if explicit else resolve_config_path(config_path)
    error = None
    config = Config()
    if path is not None:
        try:
            config = load_config(path)
        except Exception as exc:  # noqa: BLE001 - becomes the config check's failure
            error = str(exc)
            path = None if not explicit else path
    return Context(config=config, config_path=path, config_error=error, **overrides)


SYMBOL = {"ok": "OK  ", "warn": "WARN", "fail": "FAIL", "skip": "SKIP"}


def format_text(results: Iterable[CheckResult]) -> str:
    lines = []
    for r in results:
        line = f"{SYMBOL[r.status]} {r.name:<20} {r.detail}"
        if r.fix and r.status in ("fail", "warn"):
            line += f" -- fix: {r.fix}"
        lines.append(line)
    return "\n".join(lines)


def summary(results: list[CheckResult]) -> dict[str, Any]:
    counts = {s: sum(1 for r in results if r.status == s) for s in ("ok", "warn", "fail", "skip")}
    return {"ok": counts["fail"] == 0, "counts": counts, "checks": [asdict(r) for r in results]}


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "doctor", help="check camera, GPIO, models, factor file, data dir, clock and admin port"
    )
    p.add_argument(
        "--config",
        type=Path,
        default=None,
        help=f"config to check (default {DEFAULT_CONFIG_PATH} if present)",
    )
    p.add_argument("--json", action="store_true", help="machine-readable report on stdout")
    p.add_argument(
        "--hardware",
        action="store_true",
        help="also the installer's hardware checklist: grab a camera frame (not kept), light each slot's LED "
        "in turn, screen, clock, SD card space and write rate, CPU temperature and throttling",
    )
    p.add_argument(
        "--blink",
        type=float,
        default=1.0,
        metavar="S",
        help="with --hardware: seconds each slot's LED stays lit (default 1)",
    )
    p.add_argument(
        "--skip",
        action="append",
        default=[],
        metavar="NAME[,NAME]",
        help=f"skip checks: {', '.join(CHECK_NAMES)}; with --hardware also {', '.join(HARDWARE_NAMES)}",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace, out: Any = None) -> int:
    out = out or sys.stdout
    skip = {s.strip() for value in args.skip for s in value.split(",") if s.strip()}
    hardware = getattr(args, "hardware", False)
    names = CHECK_NAMES + (HARDWARE_NAMES if hardware else ())
    unknown = skip - set(names)
    if unknown:
        from smartshelf.core.errors import ConfigError

        raise ConfigError(f"--skip {min(unknown)!r} is not a check; choose from {', '.join(names)}")
    ctx = make_context(args.config, explicit=args.config is not None)
    if hardware:
        from smartshelf.installer.hardware import HardwareContext, run_hardware_checks

        # the checklist's camera_grab, leds, clock and sd_card do what these do, and more
        results = [
            r
            for r in run_checks(ctx, skip | set(SUPERSEDED_BY_HARDWARE))
            if r.name not in SUPERSEDED_BY_HARDWARE
        ]
        results += run_hardware_checks(HardwareContext(ctx, blink_s=getattr(args, "blink", 1.0)), skip)
    else:
        results = run_checks(ctx, skip)
    report = summary(results)
    if args.json:
        print(json.dumps(report, indent=2), file=out)
    else:
        print(format_text(results), file=out)
        c = report["counts"]
        print(f"{c['ok']} ok, {c['warn']} warnings, {c['fail']} failed, {c['skip']} skipped", file=out)
        todo = list(dict.fromkeys(r.fix for r in results if r.status in ("warn", "fail") and r.fix))
        if hardware and todo:
            print("\nto fix:", file=out)
            print("\n".join(f"  - {line}" for line in todo), file=out)
    return 0 if report["ok"] else 1
