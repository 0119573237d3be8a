"""The device's loopback HTTP endpoint: the kiosk page, its server-sent events, status and control.

Only ever bound to loopback (config enforces it). Chromium in kiosk mode shows ``/``; the page
listens on ``/events`` and re-renders within a frame of a decision. The admin service posts
``/control/identify``, ``/control/pause`` and ``/control/reload``; those are handed to the
controller through ``control`` (a callable run on the request thread that must be thread-safe).
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

logger = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).resolve().parent / "static"
_IMAGE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,120}")
ControlHandler = Callable[[str, dict[str, Any]], dict[str, Any]]


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
    ) -> None:
        self.screen = screen
        self.control = control
        self.status = status
        self.images_dir = images_dir
        self.heartbeat_s = heartbeat_s
        handler = type("KioskHandler", (_Handler,), {"kiosk": self})
        self.httpd = ThreadingHTTPServer((host, port), handler)
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

    def _file(self, path: Path) -> None:
        try:
            body = path.read_bytes()
        except OSError:
            self._json(HTTPStatus.NOT_FOUND, {"error": f"not found: {path.name}"})
            return
        ctype = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        self._send(HTTPStatus.OK, body, ctype)

    def do_GET(self) -> None:
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
        path = self.path.split("?", 1)[0]
        if not path.startswith("/control/"):
            self._json(HTTPStatus.NOT_FOUND, {"error": f"no such endpoint: {path}"})
            return
        length = int(self.headers.get("Content-Length") or 0)
        if length > 64 * 1024:
            self._json(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, {"error": "body too large"})
            return
        raw = self.rfile.read(length) if length else b"{}"
        try:
            body = json.loads(raw or b"{}")
        except ValueError as exc:
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
        except (ValueError, KeyError) as exc:
            self._json(HTTPStatus.UNPROCESSABLE_ENTITY, {"error": str(exc)})
            return
        self._json(HTTPStatus.OK, result)
