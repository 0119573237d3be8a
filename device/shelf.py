"""Assemble a ShelfController from a Config: the one place that picks every backend.

``smartshelf run``, ``smartshelf demo``, the benchmark and the tests all build the shelf here,
so they run the same code; hardware backends are chosen by the config and imported lazily.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from device.controller import ShelfController
from device.display.kiosk import KioskServer
from device.display.leds import Indicator, create_indicator
from device.display.screen import KioskScreen, NullScreen, Screen
from device.events import EventLog
from device.inference import create_age_gender, create_detector, create_refiner, detector_files
from device.inference.age_gender import AgeGenderModel
from device.inference.detector import BlazeFaceDetector, CascadeDetector, FaceSearch
from device.inventory import STORE_FILE, StoreView
from device.recommend.blend import Coverage, model_key, store_model
from device.recommend.factors import FactorModel, FactorWatcher
from device.recommend.ranker import Ranker
from device.sensors.camera import Camera, ReconnectingCamera, create_camera
from device.sensors.presence import create_presence
from smartshelf.core import __version__
from smartshelf.core.atomic import file_stamp
from smartshelf.core.config import Config, ModelsConfig
from smartshelf.core.control import load_or_create_secret
from smartshelf.core.errors import ModelError
from smartshelf.core.storage import atomic_write_json

logger = logging.getLogger(__name__)

STATUS_FILE = "status.json"
#: Whether staff paused the camera: survives restarts and reboots (status.json lives in /run).
PAUSE_FILE = "paused.json"


class FactorRankers:
    """RankerSource over the store's products and the factor file (when there is one).

    With a store, the shelf ranks its own products, whatever ids they have
    (:func:`device.recommend.blend.store_model`): products the factor file knows (by item id, else by
    sku) are scored by it, the others (all of them, before a factor file exists) by the catalogue
    prior built in memory, blended in. The model is rebuilt when the products on slots or the factor
    file change (not on stock changes); a factor file installed later is picked up without a restart.
    A factor file that exists but is corrupt still stops start-up.

    Without a store (tools, the bench), it ranks the factor file's items directly.
    """

    def __init__(self, path: Path, store: StoreView | None = None, *, public_key: Any = None) -> None:
        self.path = Path(path)
        self.store = store
        #: Ed25519 public key every factor file must be signed with (None: not required).
        self.public_key = public_key
        self._rejected: str | None = None
        self._rejected_stamp: tuple[int, int] | None = None
        self.watcher: FactorWatcher | None = None
        self._model: FactorModel | None = None
        self._ranker: Ranker | None = None
        self._built_for: tuple[int, int] | None = None
        self._key: tuple[Any, ...] | None = None
        self.coverage: Coverage = Coverage((), ())
        if store is None or self.path.exists():
            self.watcher = FactorWatcher(self.path, public_key=public_key)
        else:
            logger.warning(
                "no factor file at %s: ranking the store's products with the catalogue prior until one is "
                "installed (smartshelf factors retrain)", self.path,
            )

    def _factors(self) -> FactorModel | None:
        return self.watcher.current if self.watcher is not None else None

    def _rebuild(self) -> None:
        assert self.store is not None
        factors = self._factors()
        stamp = (self.store.version, id(factors))
        if stamp == self._built_for:
            return
        self._built_for = stamp
        products = self.store.on_slots()
        key = (id(factors), model_key(products, {p.sku: p.sold for p in products}))
        if key == self._key:
            return
        self._key = key
        model, self.coverage = store_model(products, factors)
        self._model = model
        self._ranker = Ranker(model) if model is not None else None
        if model is not None:
            logger.info(
                "ranking %d product(s) on slots: %d by the factor file, %d by the catalogue prior",
                model.n_items, len(self.coverage.by_factor_file), len(self.coverage.by_prior),
            )

    def ranker(self) -> Ranker:
        if self.store is None:
            assert self.watcher is not None
            if self.watcher.current is not self._model:
                self._model = self.watcher.current
                self._ranker = Ranker(self._model)
            assert self._ranker is not None
            return self._ranker
        self._rebuild()
        if self._ranker is None:
            raise ModelError("no products are on a slot: nothing to rank")
        return self._ranker

    def maybe_reload(self) -> bool:
        if self.watcher is not None:
            return self.watcher.maybe_reload()
        if self.path.exists():
            stamp = file_stamp(self.path)
            if stamp is not None and stamp == self._rejected_stamp:
                return False
            try:
                self.watcher = FactorWatcher(self.path, public_key=self.public_key)
            except ModelError as exc:
                logger.error("NOT using the new factor file: %s; keeping the catalogue prior", exc)
                self._rejected, self._rejected_stamp = str(exc), stamp
                return False
            self._rejected = None
            logger.info("factor file %s installed; products it does not know keep the catalogue prior", self.path)
            return True
        return False

    def describe(self) -> dict[str, Any]:
        if self.store is not None:
            self._rebuild()
        factors = self._factors()
        meta = dict(factors.metadata) if factors is not None else None
        out: dict[str, Any] = {
            "path": str(self.path), "in_memory_prior": factors is None, "version": meta,
            "signature_required": self.public_key is not None,
            "signed_by": factors.signed_by if factors is not None else None,
            "rejected": self.watcher.rejected if self.watcher is not None else self._rejected,
        }
        if self.store is not None:
            out["coverage"] = self.coverage.to_dict()
        return out


@dataclass
class Shelf:
    """A built shelf: the controller plus what must be closed with it."""

    config: Config
    controller: ShelfController
    camera: ReconnectingCamera
    kiosk: KioskServer | None
    status_path: Path
    closers: list[Callable[[], None]] = field(default_factory=list)
    pause_path: Path | None = None
    bus: Any = None
    """The store bus client (:class:`device.bus.ShelfBus`) when ``[bus] enabled``; None for a lone shelf."""
    _last_status: float = 0.0
    _last_bus_status: float = 0.0
    _saved_paused: bool | None = None

    def status(self) -> dict[str, Any]:
        c = self.controller
        models_dir = self.config.models.dir
        return {
            "updated_at": time.time(),
            "version": __version__,
            "pid": os.getpid(),
            "shelf": self.config.shelf.name,
            "paused": c.paused,
            "camera": {
                "type": self.config.camera.type,
                "state": "paused" if c.paused else self.camera.state,
                "fps": round(c.stats.fps, 2),
                "error": self.camera.error,
            },
            "models": {
                "dir": str(models_dir) if models_dir else None,
                "detector": ", ".join(detector_files(self.config.models.detector, search=self.config.models.search)),
                "age_gender": self.config.models.age_gender,
            },
            "factors": c.rankers.describe(),
            "last_decision_at": c.stats.last_decision_at,
            "frames": c.stats.frames,
            "decisions": c.stats.decisions,
            "errors": c.stats.errors,
            "kiosk_url": self.kiosk.url if self.kiosk else None,
            "bus": self.bus.describe() if self.bus is not None else {"enabled": False},
        }

    def write_status(self, *, every_s: float = 2.0) -> None:
        now = time.monotonic()
        if self.bus is not None and now - self._last_bus_status >= self.config.bus.status_every_s:
            self._last_bus_status = now
            self.bus.publish_status()
        if now - self._last_status < every_s:
            return
        self._last_status = now
        status = self.status()
        try:
            # runtime state in /run (tmpfs): atomic for readers, no fsync (it need not survive a reboot)
            atomic_write_json(self.status_path, status, durable=False)
        except OSError as exc:
            logger.warning("cannot write %s: %s", self.status_path, exc)
        self._save_paused(bool(status["paused"]))

    def _save_paused(self, paused: bool) -> None:
        """Keep staff's pause on disk when it changes (rare), so a reboot does not resume the camera."""
        if self.pause_path is None or paused == self._saved_paused:
            return
        try:
            atomic_write_json(self.pause_path, {"paused": paused, "at": time.time()})
            self._saved_paused = paused
        except OSError as exc:
            logger.warning("cannot write %s: %s", self.pause_path, exc)

    def close(self) -> None:
        for close in reversed(self.closers):
            with contextlib.suppress(Exception):
                close()
        self.closers.clear()


def open_models(cfg: ModelsConfig) -> tuple[BlazeFaceDetector | CascadeDetector | FaceSearch, AgeGenderModel]:
    """The face detector (with ``models.search``, wrapped in a FaceSearch) and age/gender model named by
    ``[models]``, hashes verified (caller closes)."""
    detector = create_detector(
        cfg.detector, models_dir=cfg.dir, score_threshold=cfg.detector_score, num_threads=cfg.threads,
        search=cfg.search,
    )
    try:
        return detector, create_age_gender(cfg.age_gender, models_dir=cfg.dir, num_threads=cfg.threads)
    except BaseException:
        detector.close()
        raise


def _previously_paused(*paths: Path) -> bool | None:
    """The pause saved in the first of ``paths`` that can be read (None: none can)."""
    for path in paths:
        try:
            return bool(json.loads(path.read_text()).get("paused", False))
        except (OSError, ValueError, AttributeError):
            continue
    return None


def build_shelf(
    config: Config,
    *,
    pin_factory: Any = None,
    indicator: Indicator | None = None,
    screen: Screen | None = None,
    serve_kiosk: bool | None = None,
    clock: Callable[[], float] = time.monotonic,
    wall_clock: Callable[[], float] = time.time,
    record_events: bool = True,
    camera: Camera | None = None,
) -> Shelf:
    """Open every part named by the config. Start-up errors raise (the service exits non-zero)."""
    data_dir = config.data_dir
    data_dir.mkdir(parents=True, exist_ok=True)
    closers: list[Callable[[], None]] = []
    try:
        detector, age_gender = open_models(config.models)
        closers += [detector.close, age_gender.close]
        refiner = None
        if config.camera.full_size is not None and config.camera.refine:
            refiner = create_refiner(
                models_dir=config.models.dir, score_threshold=config.models.detector_score,
                num_threads=config.models.threads,
            )
            closers.append(refiner.close)
        store = StoreView(data_dir / STORE_FILE, default_slot_pins=config.slots)
        store.refresh(force=True)
        public_key = None
        if config.recommend.public_key is not None:
            from device.recommend.signing import load_public_key

            public_key = load_public_key(config.recommend.public_key)
        rankers = FactorRankers(config.factors_path, store, public_key=public_key)
        if indicator is None:
            indicator = create_indicator(config.leds, store.slot_pins, pin_factory=pin_factory)
        closers.append(indicator.close)
        presence = create_presence(config.presence, pin_factory=pin_factory)
        closers.append(presence.close)
        reconnecting = ReconnectingCamera(
            camera if camera is not None else create_camera(config.camera),
            backoff_s=config.camera.reopen_backoff_s,
            backoff_max_s=config.camera.reopen_backoff_max_s,
            clock=clock,
        )
        closers.append(reconnecting.close)
        serve = config.kiosk.enabled if serve_kiosk is None else serve_kiosk
        kiosk_screen = screen or (KioskScreen(config.shelf.name) if serve else NullScreen())
        closers.append(kiosk_screen.close)
        events = EventLog(data_dir, clock=wall_clock) if record_events else None
        if events is not None:
            closers.append(events.close)
        controller = ShelfController(
            config,
            camera=reconnecting,
            presence=presence,
            detector=detector,
            age_gender=age_gender,
            rankers=rankers,
            store=store,
            indicator=indicator,
            screen=kiosk_screen,
            events=events,
            clock=clock,
            wall_clock=wall_clock,
            refiner=refiner,
        )
        runtime_dir = config.runtime_dir
        runtime_dir.mkdir(parents=True, exist_ok=True)
        status_path = runtime_dir / STATUS_FILE
        pause_path = data_dir / PAUSE_FILE
        # earlier releases kept the pause only in <data_dir>/status.json
        paused = _previously_paused(pause_path, data_dir / STATUS_FILE)
        if paused:
            controller.set_paused(True)
        shelf = Shelf(config, controller, reconnecting, None, status_path, closers, pause_path=pause_path,
                      _saved_paused=paused)
        if config.bus.enabled:
            from device.bus import ShelfBus, TeeEvents, controller_commands

            shelf.bus = ShelfBus(
                config.bus, config.bus_shelf, data_dir=data_dir, factors_path=config.factors_path,
                on_command=controller_commands(controller.command), status=shelf.status, public_key=public_key,
                clock=wall_clock,
            ).start()
            closers.append(shelf.bus.close)
            if events is not None:
                controller.events = TeeEvents(events, shelf.bus)
        if serve and isinstance(kiosk_screen, KioskScreen):
            load_or_create_secret(data_dir)  # whoever starts first (device or admin) creates it
            kiosk = KioskServer(
                kiosk_screen,
                host=config.kiosk.host,
                port=config.kiosk.port,
                control=controller.command,
                status=shelf.status,
                images_dir=data_dir / "images",
                data_dir=data_dir,
            ).start()
            shelf.kiosk = kiosk
            closers.append(kiosk.close)
        return shelf
    except BaseException:
        for close in reversed(closers):
            with contextlib.suppress(Exception):
                close()
        raise
