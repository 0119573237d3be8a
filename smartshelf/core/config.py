"""Configuration: one TOML file, defaults for every key, validated at start.

Every section is a frozen dataclass; unknown keys and bad values raise ConfigError naming the key
(``camera.fps``) and the value. ``load_config(None)`` gives the defaults. The documented reference is
``config.example.toml`` at the repository root (kept in step by a test).
"""

from __future__ import annotations

import dataclasses
import logging
import tomllib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args, get_origin, get_type_hints

from smartshelf.core.atomic import file_stamp
from smartshelf.core.errors import ConfigError

logger = logging.getLogger(__name__)

DEFAULT_CONFIG_PATH = Path("/etc/smartshelf/config.toml")
DEFAULT_DATA_DIR = Path("/var/lib/smartshelf")
#: systemd's RuntimeDirectory=smartshelf of the device unit (a tmpfs, emptied at reboot).
DEFAULT_RUNTIME_DIR = Path("/run/smartshelf")

CameraType = Literal["picamera2", "opencv", "replay"]
PresenceType = Literal["camera_motion", "pir", "ultrasonic", "always"]
LedType = Literal["gpio", "terminal", "none"]
DetectorVariant = Literal["short_range", "full_range", "cascade"]

#: BCM pin numbers usable for LEDs and sensors on a 40-pin header (GPIO2..GPIO27).
VALID_PINS = range(2, 28)


@dataclass(frozen=True)
class ShelfConfig:
    name: str = "smartshelf"
    """Shown on the admin page and the shelf notice."""
    data_dir: Path = DEFAULT_DATA_DIR
    """Where TinyDB files, events and backups live (device: events; admin: the rest)."""
    runtime_dir: Path | None = None
    """Where the device writes status.json (state that need not survive a reboot, rewritten every 2 s);
    default /run/smartshelf when that folder exists (the device unit's RuntimeDirectory=), else data_dir."""
    working_distance_m: float = 1.5
    """How far from the camera (metres) shoppers stand when they look at this shelf; `smartshelf doctor`
    warns when the camera cannot find and personalise faces that far away."""


@dataclass(frozen=True)
class CameraConfig:
    type: CameraType = "picamera2"
    """picamera2 (Pi CSI camera), opencv (USB index, video file or RTSP URL) or replay (image folder/video)."""
    source: str = ""
    """opencv: camera index ("0"), file path or URL; replay: folder of images or a video file."""
    width: int = 640
    height: int = 480
    """Size of the frames the face detector works on (picamera2: the lores stream)."""
    full_width: int = 1280
    full_height: int = 960
    """Two streams: crop faces for age/gender from a frame of this size (picamera2: the main stream; opencv
    and replay: the source at this size when it is wider than width), detect on a width x height copy.
    0 = one stream. Same aspect ratio as width x height."""
    refine: bool = True
    """Two streams only: find the face's eyes and mouth again on the full frame (one small extra
    inference) instead of scaling them up from the detection view; this, not the pixels alone, is what
    makes faces 40-60 px wide in the view usable (docs/vision-at-distance.md)."""
    hfov_deg: float = 62.2
    """Horizontal field of view of the camera in degrees (Pi Camera Module v2: 62.2; v3: 66; v3 wide: 102);
    with the resolution it sets how far away faces are found (`smartshelf doctor`)."""
    fps: float = 10.0
    """Frames per second the loop aims for (it never runs faster)."""
    loop: bool = True
    """replay only: start again at the end of the folder/video."""
    reopen_backoff_s: float = 1.0
    """First wait before reopening a lost camera; doubles up to reopen_backoff_max_s."""
    reopen_backoff_max_s: float = 30.0

    @property
    def full_size(self) -> tuple[int, int] | None:
        """(w, h) of the full-resolution stream, or None with one stream."""
        return (self.full_width, self.full_height) if self.full_width else None

    @property
    def crop_width(self) -> int:
        """Width of the frame faces are cropped from."""
        return self.full_width or self.width


@dataclass(frozen=True)
class PresenceConfig:
    type: PresenceType = "camera_motion"
    """pir (gpiozero MotionSensor), ultrasonic (gpiozero DistanceSensor), camera_motion, or always."""
    pin: int = 4
    """pir: BCM pin of the sensor output."""
    trigger_pin: int = 23
    echo_pin: int = 24
    max_distance_m: float = 1.5
    """ultrasonic: someone nearer than this is present."""
    motion_threshold: float = 0.02
    """camera_motion: share of changed pixels (0-1) that counts as motion."""
    hold_s: float = 3.0
    """Presence stays true this long after the last trigger."""


@dataclass(frozen=True)
class ModelsConfig:
    dir: Path | None = None
    """Folder with the .tflite files and manifest.json; default: the models/ folder of the installation."""
    detector: DetectorVariant = "cascade"
    """cascade (short range first, full range only on frames where short range finds nothing: shoppers
    found from ~0.4 to ~2 m with a 640x480 Pi camera), short_range (BlazeFace for faces of ~80 px and
    more: within ~1 m) or full_range (always the larger model)."""
    search: bool = True
    """Also look with the short-range model around the faces followed over the last second, and on two
    tiles of the view per frame (a 4x3 sweep in 0.6 s at 10 fps): finds faces of ~32-40 px (2-2.5 m with
    a 640x480 Pi camera) that the detector misses, for two to four 128 px inferences more per frame. On
    by default: with two streams, whose full frame drops false faces, it personalised more adult visits
    on the validation clips (docs/vision-at-distance.md)."""
    detector_score: float = 0.5
    age_gender: str = "age_gender_int8.tflite"
    threads: int = 2


@dataclass(frozen=True)
class VisitConfig:
    min_frames: int = 3
    """Face estimates needed before the first decision of a visit."""
    min_confidence: float = 0.35
    """Below this aggregated confidence the shelf shows non-personalised picks."""
    decide_within_s: float = 1.5
    """While the estimate is below min_confidence, wait this long (visit time) for a better one
    before showing the non-personalised picks (approaching shoppers start small and blurred)."""
    min_age: int = 18
    """Shoppers estimated younger than this get non-personalised picks."""
    leave_after_s: float = 2.5
    """No face (or no presence) for this long ends the visit and the lights go idle."""
    max_revisions: int = 2
    """How often a visit's decision may change after the first one."""
    min_face_px: int = 32
    """Faces smaller than this (width in detection-view pixels) are ignored."""


@dataclass(frozen=True)
class RecommendConfig:
    factors: Path | None = None
    """Factor file (.npz); default: <data_dir>/factors.npz."""
    public_key: Path | None = None
    """Ed25519 public key (PEM) every factor file must be signed with (a store's or a chain's); unset:
    signatures are not required (a single shelf training its own file). An unsigned or forged file is
    refused and the previous one kept."""
    top_n: int = 3
    """How many slots to light."""
    diversity: float = 0.3
    """0 = pure score, 1 = maximal diversity (maximal marginal relevance)."""
    pairs_n: int = 2
    """"Pairs well with" items shown per pick on the screen."""
    generic_share: float = 0.0
    """A/B test: share of visits (0-1) shown non-personalised picks to measure uplift."""
    blend_segments: bool = True
    """Rank for the expected segment under the estimate's uncertainty (gender probability x age-bracket
    probability from the age and its spread); false: the single most likely segment only."""


@dataclass(frozen=True)
class LedsConfig:
    type: LedType = "gpio"
    """gpio (gpiozero LED/PWMLED per slot), terminal (log lines), none."""
    pwm: bool = True
    """Use PWMLED (pulsing idle pattern) instead of LED."""
    active_high: bool = True
    idle: Literal["off", "breathe", "on"] = "breathe"


@dataclass(frozen=True)
class KioskConfig:
    host: str = "127.0.0.1"
    """The device's local HTTP endpoint (kiosk page, SSE, admin->device control). Loopback only."""
    port: int = 8081
    enabled: bool = True


@dataclass(frozen=True)
class AdminConfig:
    host: str = "0.0.0.0"
    port: int = 8080
    device_url: str = "http://127.0.0.1:8081"
    """Where the admin reaches the device's control endpoint."""
    conversion_window_s: int = 600
    """A sale within this many seconds after a recommendation of that product is a conversion."""
    store_hub: bool = False
    """This admin is a store's hub: it runs the store bus's hub client against the local Mosquitto
    (setup.sh --hub), shows every shelf on /store and publishes each shelf's stock from the one inventory."""
    broker_port: int = 1883
    """The hub's local Mosquitto port (store_hub only; the hub connects on 127.0.0.1)."""
    proxy_hops: int = 0
    """Behind a TLS reverse proxy: how many proxies in front of the admin set X-Forwarded-For /
    X-Forwarded-Proto (werkzeug's ProxyFix trusts exactly that many); 0 = none, headers ignored."""
    secure_cookie: bool = False
    """Mark the session cookie Secure (sent over HTTPS only); on whenever proxy_hops > 0."""
    session_hours: float = 12.0
    """Absolute lifetime of a staff login; it never slides with use."""


@dataclass(frozen=True)
class BusConfig:
    enabled: bool = False
    """Join a store's MQTT bus (a hub runs Mosquitto and the store's admin page). Off: the shelf works
    alone, as a single shelf always has."""
    host: str = ""
    """The store hub's address (name or IP)."""
    port: int = 1883
    """The broker's port (8883 is the usual one with TLS)."""
    shelf: str = ""
    """This shelf's name on the bus (a-z, 0-9, - and _; default: shelf.name)."""
    user: str = ""
    """Broker user of this shelf (from the hub's pairing: ``smartshelf store add-shelf``)."""
    password_file: Path | None = None
    """File holding the broker password (mode 0600), kept out of the config and the process list."""
    topic_root: str = "smartshelf"
    """Prefix of every topic; the same on the hub and all its shelves."""
    tls: bool = False
    """Encrypt the connection (untrusted networks); the broker needs a TLS listener."""
    ca_file: Path | None = None
    """CA certificate that signed the broker's certificate (tls only; default: the system's)."""
    keepalive_s: int = 30
    """MQTT keepalive: the broker notices a lost shelf after about 1.5x this."""
    status_every_s: float = 10.0
    """How often the shelf republishes its (retained) status."""


@dataclass(frozen=True)
class Config:
    shelf: ShelfConfig = field(default_factory=ShelfConfig)
    camera: CameraConfig = field(default_factory=CameraConfig)
    presence: PresenceConfig = field(default_factory=PresenceConfig)
    models: ModelsConfig = field(default_factory=ModelsConfig)
    visit: VisitConfig = field(default_factory=VisitConfig)
    recommend: RecommendConfig = field(default_factory=RecommendConfig)
    leds: LedsConfig = field(default_factory=LedsConfig)
    kiosk: KioskConfig = field(default_factory=KioskConfig)
    admin: AdminConfig = field(default_factory=AdminConfig)
    bus: BusConfig = field(default_factory=BusConfig)
    slots: dict[str, int] = field(default_factory=dict)
    """Default LED wiring: slot id -> BCM pin (the admin page's slot map overrides it)."""
    source: Path | None = None
    """The file this was loaded from (not a TOML key)."""

    @property
    def data_dir(self) -> Path:
        return self.shelf.data_dir

    @property
    def bus_shelf(self) -> str:
        """This shelf's name on the store bus."""
        return self.bus.shelf or self.shelf.name

    @property
    def runtime_dir(self) -> Path:
        return resolve_runtime_dir(self.shelf.runtime_dir, self.shelf.data_dir)

    @property
    def factors_path(self) -> Path:
        return self.recommend.factors or self.shelf.data_dir / "factors.npz"

    def replace(self, **sections: Any) -> Config:
        return dataclasses.replace(self, **sections)


def resolve_runtime_dir(runtime_dir: Path | None, data_dir: Path) -> Path:
    """shelf.runtime_dir if set, else /run/smartshelf if it exists (systemd made it), else data_dir."""
    if runtime_dir is not None:
        return runtime_dir
    return DEFAULT_RUNTIME_DIR if DEFAULT_RUNTIME_DIR.is_dir() else data_dir


_BOUNDS: dict[str, tuple[float, float]] = {
    "camera.width": (16, 4096),
    "camera.height": (16, 4096),
    "camera.full_width": (0, 8192),
    "camera.full_height": (0, 8192),
    "camera.hfov_deg": (10, 180),
    "shelf.working_distance_m": (0.1, 20),
    "camera.fps": (0.5, 120),
    "camera.reopen_backoff_s": (0.01, 60),
    "camera.reopen_backoff_max_s": (0.01, 3600),
    "presence.max_distance_m": (0.05, 4.0),
    "presence.motion_threshold": (0.0, 1.0),
    "presence.hold_s": (0.0, 600),
    "models.detector_score": (0.05, 0.99),
    "models.threads": (1, 16),
    "visit.min_frames": (1, 100),
    "visit.min_confidence": (0.0, 1.0),
    "visit.min_age": (0, 120),
    "visit.leave_after_s": (0.1, 600),
    "visit.decide_within_s": (0.0, 60),
    "visit.max_revisions": (0, 100),
    "visit.min_face_px": (8, 4096),
    "recommend.top_n": (1, 64),
    "recommend.diversity": (0.0, 1.0),
    "recommend.pairs_n": (0, 10),
    "recommend.generic_share": (0.0, 1.0),
    "kiosk.port": (1, 65535),
    "admin.port": (1, 65535),
    "admin.conversion_window_s": (1, 86400),
    "bus.port": (1, 65535),
    "admin.broker_port": (1, 65535),
    "bus.keepalive_s": (5, 3600),
    "bus.status_every_s": (0.5, 3600),
    "admin.proxy_hops": (0, 5),
    "admin.session_hours": (0.1, 720),
}
_PIN_KEYS = {"presence.pin", "presence.trigger_pin", "presence.echo_pin"}


def _convert(key: str, value: Any, hint: Any) -> Any:
    origin = get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        options = [a for a in get_args(hint) if a is not type(None)]
        return _convert(key, value, options[0])
    if origin is Literal:
        if value not in get_args(hint):
            allowed = ", ".join(repr(a) for a in get_args(hint))
            raise ConfigError(f"{key} = {value!r} is not allowed; choose one of {allowed}")
        return value
    if hint is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{key} = {value!r} must be true or false")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{key} = {value!r} must be a whole number")
    elif hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{key} = {value!r} must be a number")
        value = float(value)
    elif hint is str:
        if not isinstance(value, str):
            raise ConfigError(f"{key} = {value!r} must be a string")
    elif hint is Path:
        if not isinstance(value, str) or not value:
            raise ConfigError(f"{key} = {value!r} must be a non-empty path string")
        value = Path(value).expanduser()
    if key in _BOUNDS:
        low, high = _BOUNDS[key]
        if not low <= value <= high:
            raise ConfigError(f"{key} = {value!r} is out of range [{low:g}, {high:g}]")
    if key in _PIN_KEYS:
        _check_pin(key, value)
    return value


def _check_pin(key: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value not in VALID_PINS:
        raise ConfigError(
            f"{key} = {value!r} is not a usable GPIO pin; use a BCM number from "
            f"{VALID_PINS.start} to {VALID_PINS.stop - 1}"
        )


def _section(cls: type, name: str, raw: Any) -> Any:
    if not isinstance(raw, dict):
        raise ConfigError(f"[{name}] must be a table, not {raw!r}")
    hints = get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise ConfigError(f"unknown key {name}.{unknown[0]}; known keys: {', '.join(sorted(known))}")
    values = {k: _convert(f"{name}.{k}", v, hints[k]) for k, v in raw.items()}
    return cls(**values)


def parse_config(raw: dict[str, Any], source: Path | None = None) -> Config:
    """Validate a TOML-shaped dict into a Config. Raises ConfigError naming the key."""
    sections: dict[str, Any] = {}
    hints = get_type_hints(Config)
    for name, value in raw.items():
        if name == "slots":
            sections["slots"] = _parse_slots(value)
        elif name in hints and name != "source" and dataclasses.is_dataclass(hints[name]):
            sections[name] = _section(hints[name], name, value)
        else:
            known = [f.name for f in dataclasses.fields(Config) if f.name != "source"]
            raise ConfigError(f"unknown section [{name}]; known sections: {', '.join(known)}")
    config = Config(**sections, source=source)
    _cross_checks(config)
    return config


def _parse_slots(raw: Any) -> dict[str, int]:
    if not isinstance(raw, dict):
        raise ConfigError(f"[slots] must be a table of slot = pin, not {raw!r}")
    slots: dict[str, int] = {}
    for slot, pin in raw.items():
        _check_pin(f"slots.{slot}", pin)
        slots[str(slot)] = pin
    pins = list(slots.values())
    for slot, pin in slots.items():
        if pins.count(pin) > 1:
            raise ConfigError(f"slots.{slot} = {pin}: pin {pin} is used by more than one slot")
    return slots


def _cross_checks(config: Config) -> None:
    if config.camera.type in ("replay",) and not config.camera.source:
        raise ConfigError("camera.source must name a folder of images or a video file when camera.type = 'replay'")
    cam = config.camera
    if bool(cam.full_width) != bool(cam.full_height):
        raise ConfigError("camera.full_width and camera.full_height must both be set (or both 0 for one stream)")
    if cam.full_width and (cam.full_width < cam.width or cam.full_height < cam.height):
        raise ConfigError(
            f"camera.full_width x full_height = {cam.full_width}x{cam.full_height} must be at least "
            f"camera.width x height = {cam.width}x{cam.height} (or 0 x 0 for one stream)"
        )
    if cam.full_width and abs(cam.full_width * cam.height - cam.full_height * cam.width) > 0.01 * cam.full_width * cam.height:
        raise ConfigError(
            f"camera.full_width x full_height = {cam.full_width}x{cam.full_height} must have the aspect ratio of "
            f"camera.width x height = {cam.width}x{cam.height} (both streams show the same field of view), or 0 x 0 for one stream"
        )
    if config.camera.reopen_backoff_max_s < config.camera.reopen_backoff_s:
        raise ConfigError("camera.reopen_backoff_max_s must be >= camera.reopen_backoff_s")
    if config.kiosk.host not in ("127.0.0.1", "::1", "localhost"):
        raise ConfigError(f"kiosk.host = {config.kiosk.host!r}: the device endpoint must stay on loopback (127.0.0.1)")
    if config.presence.type == "ultrasonic" and config.presence.trigger_pin == config.presence.echo_pin:
        raise ConfigError("presence.echo_pin must differ from presence.trigger_pin")
    used = {config.presence.pin} if config.presence.type == "pir" else set()
    if config.presence.type == "ultrasonic":
        used = {config.presence.trigger_pin, config.presence.echo_pin}
    for slot, pin in config.slots.items():
        if pin in used:
            raise ConfigError(f"slots.{slot} = {pin}: pin {pin} is already used by the presence sensor")
    _check_bus(config)


def _check_bus(config: Config) -> None:
    bus = config.bus
    if not bus.enabled:
        return
    from smartshelf.core.bus_schema import Topics, check_name

    if not bus.host:
        raise ConfigError("bus.host must name the store hub when bus.enabled = true")
    name = bus.shelf or config.shelf.name
    try:
        check_name(name)
    except ConfigError as exc:
        key = "bus.shelf" if bus.shelf else "shelf.name (used as bus.shelf)"
        raise ConfigError(f"{key}: {exc}") from None
    if not bus.user or bus.password_file is None:
        raise ConfigError("bus.user and bus.password_file are required when bus.enabled = true")
    Topics(bus.topic_root)


def resolve_config_path(path: Path | str | None = None) -> Path | None:
    """The one path resolver: ``path`` when given; else the default path when that file exists;
    else None (the built-in defaults, as on a development machine)."""
    if path is not None:
        return Path(path)
    return DEFAULT_CONFIG_PATH if DEFAULT_CONFIG_PATH.is_file() else None


def load_effective_config(path: Path | str | None = None) -> Config:
    """The config this process runs with: :func:`resolve_config_path` then :func:`load_config`."""
    return load_config(resolve_config_path(path))


class ConfigSource:
    """A config loaded once per process and reloaded when its file changes (by mtime and size).

    ``get()`` is cheap (one ``stat``); after a change it re-reads and validates the file; a file that
    no longer validates is logged once as an error naming the key, and the last good config stays.
    """

    def __init__(self, path: Path | str | None = None) -> None:
        self.path = resolve_config_path(path)
        self._stamp = file_stamp(self.path)
        self._config = load_config(self.path)
        self._bad_stamp: tuple[int, int] | None = None
        #: Why the file's current content is not in use (None when it is).
        self.error: str | None = None

    def get(self) -> Config:
        stamp = file_stamp(self.path)
        if stamp == self._stamp or stamp is None or stamp == self._bad_stamp:
            return self._config
        try:
            self._config = load_config(self.path)
        except ConfigError as exc:
            self._bad_stamp = stamp
            self.error = str(exc)
            logger.error("config changed but is not valid; keeping the last good one: %s", exc)
            return self._config
        self._stamp = stamp
        self.error = None
        logger.info("config %s reloaded", self.path)
        return self._config


def load_config(path: Path | str | None = None) -> Config:
    """Load and validate a TOML config; None gives the defaults. Errors name the file and key."""
    if path is None:
        return Config()
    path = Path(path)
    try:
        with path.open("rb") as fh:
            raw = tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read config: {exc.strerror}") from None
    try:
        return parse_config(raw, source=path)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None
