"""Product images uploaded by staff: type checked by content (magic bytes, then decoded), size
limited, stored under ``<data_dir>/images`` with a content-hash name. Never camera images."""

from __future__ import annotations

import hashlib
import io
import re
from pathlib import Path

from smartshelf.core.errors import ImageError
from smartshelf.core.storage import atomic_write_bytes

IMAGE_DIR = "images"
NAME_RE = re.compile(r"^[A-Za-z0-9._-]+\.(png|jpg|webp|gif)$")
MIME = {"png": "image/png", "jpg": "image/jpeg", "webp": "image/webp", "gif": "image/gif"}
MAX_PIXELS = 40_000_000


def sniff(data: bytes) -> str | None:
    """The image type from its first bytes: png, jpg, webp, gif or None."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if data.startswith(b"\xff\xd8\xff"):
        return "jpg"
    if len(data) >= 12 and data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "gif"
    return None


def _decodes(data: bytes, kind: str) -> bool:
    try:
        from PIL import Image  # optional (python3-pil on the Pi)
    except ImportError:
        Image = None
    if Image is not None:
        try:
            with Image.open(io.BytesIO(data)) as img:
                if img.width * img.height > MAX_PIXELS:
                    return False
                img.verify()
            return True
        except Exception:  # noqa: BLE001 (Pillow raises many types for broken files)
            return False
    if kind == "gif":  # OpenCV cannot decode GIF; magic bytes are all we can check
        return True
    import cv2
    import numpy as np

    img = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_UNCHANGED)
    return img is not None and img.size > 0 and img.shape[0] * img.shape[1] <= MAX_PIXELS


def save_image(data_dir: str | Path, sku: str, data: bytes, *, max_bytes: int) -> str:
    """Validate and store an uploaded image; return its file name. Raises ImageError."""
    if not data:
        raise ImageError("the uploaded image is empty")
    if len(data) > max_bytes:
        raise ImageError(f"the image is {len(data) // 1024} KiB; the limit is {max_bytes // 1024} KiB")
    kind = sniff(data)
    if kind is None:
        raise ImageError("the file is not a PNG, JPEG, WebP or GIF image")
    if not _decodes(data, kind):
        raise ImageError(f"the file looks like {kind.upper()} but cannot be decoded (damaged or too large)")
    digest = hashlib.sha256(data).hexdigest()[:16]
    safe_sku = re.sub(r"[^A-Za-z0-9._-]", "_", sku)[:40]
    name = f"{safe_sku}-{digest}.{kind}"
    atomic_write_bytes(Path(data_dir) / IMAGE_DIR / name, data)
    return name


def delete_image(data_dir: str | Path, name: str | None) -> None:
    if name and NAME_RE.match(name):
        (Path(data_dir) / IMAGE_DIR / name).unlink(missing_ok=True)
