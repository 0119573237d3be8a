"""The device's loopback HTTP endpoint: the kiosk page, its server-sent events, status and control.

Only ever bound to loopback (config enforces it). Chromium in kiosk mode shows ``/``; the page
listens on ``/events`` and re-renders within a frame of a decision. The admin service posts
``/control/identify``, ``/control/pause`` and ``/control/reload``; those are handed to the
controller through ``control`` (a callable run on the request thread that must be thread-safe).

Every request must name this server in ``Host`` (127.0.0.1, localhost or [::1] with its port: a
DNS-rebinding page cannot). A control request must also carry the shared secret of
``<data_dir>/control.secret`` in ``X-Smartshelf-Control`` (:mod:`smartshelf.core.control`; rotating
the file revokes the old secret) and a ``Content-Type: application/json`` object body, which a web
page cannot send cross-origin without a preflight that nothing here answers. Refused requests
change nothing.
"""

from __future__ import annotations

import json
import logging
import mimetypes
import re
import threading
from collections.abc import Callable
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from device.display.screen import KioskScreen
from smartshelf.core.control import HEADER as CONTROL_HEADER
from smartshelf.core.control import SecretFile
from smartshelf.core.errors import PortUnavailable, StorageError
from smartshelf.core.headers import HeaderError, check_host, check_secret, parse_content_length, require_json
from smartshelf.core.jsonsafe import loads_bounded

logger = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).resolve().parent / "static"
_IMAGE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,120}")
ControlHandler = Callable[[str, dict[str, Any]], dict[str, Any]]
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "[::1]"})
MAX_CONTROL_BODY = 64 * 1024


class KioskServer:
    """A small threaded HTTP server; ``start()`` runs it in a daemon thread, ``close()`` stops it."""

    def __init__(
        self,
        screen: KioskScreen,
        *,
        host: str = "127.0.0.1",
        port: int = 8081,
        control: ControlHandler | None = None,
        status: Callable[[], dict[str, Any]] | None = None,
        images_dir: Path | None = None,
        heartbeat_s: float = 15.0,
        data_dir: Path | None = None,
    ) -> None:
        """``data_dir`` holds ``control.secret``; without it every ``/control/*`` request is refused."""
        self.screen = screen
        self.secret = SecretFile(data_dir) if data_dir is not None else None
        self.control = control
        self.status = status
        self.images_dir = images_dir
        self.heartbeat_s = heartbeat_s
        handler = type("KioskHandler", (_Handler,), {"kiosk": self})
        try:
            self.httpd = ThreadingHTTPServer((host, port), handler)
        except OSError as exc:
            raise PortUnavailable.from_os_error("the kiosk page", host, port, exc,
                                                setting="kiosk.port in the config (demo: --port)") from exc
        self.httpd.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}/"

    def start(self) -> KioskServer:
        self._thread = threading.Thread(target=self.httpd.serve_forever, name="kiosk-http", daemon=True)
        self._thread.start()
        logger.info("kiosk page at %s", self.url)
        return self

    def close(self) -> None:
        self.screen.close()
        if self._thread is not None:
            self.httpd.shutdown()
            self._thread.join(timeout=5)
            self._thread = None
        self.httpd.server_close()


class _Handler(BaseHTTPRequestHandler):
    kiosk: KioskServer
    server_version = "smartshelf-device"

    def do_HEAD(self) -> None:
        path = self.path.split("?", 1)[0]
        if path == "/events":  # headers only; a stream has no length
            if self._host_ok():
                self._send(HTTPStatus.OK, b"", "text/event-stream")
            return
        self.do_GET()  # _send leaves the body out for HEAD

    def do_OPTIONS(self) -> None:
        self._not_allowed()  # no CORS preflight is ever answered

    def do_PUT(self) -> None:
        self._not_allowed()

    def do_DELETE(self) -> None:
        self._not_allowed()

    def do_PATCH(self) -> None:
        self._not_allowed()

    def _not_allowed(self) -> None:
        self.close_connection = True
        self._json(HTTPStatus.METHOD_NOT_ALLOWED, {"error": f"{self.command} is not allowed here"})

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("%s %s", self.address_string(), format % args)

    def _send(self, status: int, body: bytes, content_type: str, extra: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        for key, value in (extra or {}).items():
            self.send_header(key, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, status: int, obj: Any) -> None:
        self._send(status, json.dumps(obj).encode(), "application/json")

    def _host_ok(self) -> bool:
        try:
            check_host(self.headers.get("Host"), allowed_hosts=LOOPBACK_HOSTS,
                       port=self.kiosk.httpd.server_address[1])
        except HeaderError as exc:
            self._json(HTTPStatus.MISDIRECTED_REQUEST, {"error": str(exc)})
            return False
        return True

    def _file(self, path: Path) -> None:
        try:
            body = path.read_bytes()
        except OSError:
            self._json(HTTPStatus.NOT_FOUND, {"error": f"not found: {path.name}"})
            return
        ctype = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        self._send(HTTPStatus.OK, body, ctype)

    def do_GET(self) -> None:
        if not self._host_ok():
            return
        path = self.path.split("?", 1)[0]
        if path in ("/", "/index.html"):
            self._file(STATIC_DIR / "kiosk.html")
        elif path.startswith("/static/") and _IMAGE_NAME.fullmatch(path[8:]):
            self._file(STATIC_DIR / path[8:])
        elif path.startswith("/images/") and self.kiosk.images_dir and _IMAGE_NAME.fullmatch(path[8:]):
            self._file(self.kiosk.images_dir / path[8:])
        elif path == "/state":
            self._json(HTTPStatus.OK, self.kiosk.screen.snapshot()[1])
        elif path == "/status":
            self._json(HTTPStatus.OK, self.kiosk.status() if self.kiosk.status else {})
        elif path == "/events":
            self._events()
        else:
            self._json(HTTPStatus.NOT_FOUND, {"error": f"no such page: {path}"})

    def _events(self) -> None:
        self.send_response(HTTPStatus.OK)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-store")
        self.send_header("Connection", "keep-alive")
        self.end_headers()
        screen = self.kiosk.screen
        version, state = screen.snapshot()
        try:
            self.wfile.write(f"retry: 1000\ndata: {json.dumps(state)}\n\n".encode())
            self.wfile.flush()
            while not screen.closed:
                update = screen.wait(version, self.kiosk.heartbeat_s)
                if update is None:
                    if screen.closed:
                        break
                    self.wfile.write(b": keep-alive\n\n")
                else:
                    version, state = update
                    self.wfile.write(f"data: {json.dumps(state)}\n\n".encode())
                self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            logger.debug("kiosk event listener went away")

    def do_POST(self) -> None:
        self.close_connection = True  # a refused body may be left unread: never reuse the connection
        if not self._host_ok():
            return
        path = self.path.split("?", 1)[0]
        if not path.startswith("/control/"):
            self._json(HTTPStatus.NOT_FOUND, {"error": f"no such endpoint: {path}"})
            return
        try:
            expected = self.kiosk.secret.get() if self.kiosk.secret is not None else None
        except StorageError as exc:
            logger.error("%s", exc)
            expected = None
        if expected is None:
            self._json(HTTPStatus.FORBIDDEN, {"error": "no control secret on this device; control is off"})
            return
        try:
            check_secret(CONTROL_HEADER, self.headers.get(CONTROL_HEADER), expected)
        except HeaderError as exc:
            self._json(HTTPStatus.FORBIDDEN, {"error": str(exc)})
            return
        try:
            require_json(self.headers.get("Content-Type"))
            length = parse_content_length(self.headers.get("Content-Length"), limit=MAX_CONTROL_BODY)
        except HeaderError as exc:
            status = HTTPStatus.REQUEST_ENTITY_TOO_LARGE if "over the limit" in str(exc) else HTTPStatus.BAD_REQUEST
            self._json(status, {"error": str(exc)})
            return
        raw = self.rfile.read(length) if length else b"{}"
        try:
            body = loads_bounded(raw or b"{}", max_depth=4)
        except (ValueError, UnicodeDecodeError) as exc:
            self._json(HTTPStatus.BAD_REQUEST, {"error": f"bad JSON body: {exc}"})
            return
        if not isinstance(body, dict):
            self._json(HTTPStatus.BAD_REQUEST, {"error": "bad JSON body: must be an object"})
            return
        if self.kiosk.control is None:
            self._json(HTTPStatus.SERVICE_UNAVAILABLE, {"error": "no controller attached"})
            return
        try:
            result = self.kiosk.control(path[len("/control/") :], body)
        except (ValueError, KeyError, TypeError) as exc:
            self._json(HTTPStatus.UNPROCESSABLE_ENTITY, {"error": str(exc)})
            return
        self._json(HTTPStatus.OK, result)
