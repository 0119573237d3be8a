"""Product images uploaded by staff: type checked by content (magic bytes, then the header's
dimensions, then decoded), size limited, stored under ``<data_dir>/images`` with a content-hash name.
Never camera images. A decompression bomb (a small file of huge dimensions) is refused from its
header, before any pixel is decoded."""

from __future__ import annotations

import hashlib
import io
import re
from pathlib import Path

from smartshelf.core.errors import ImageError
from smartshelf.core.storage import atomic_write_bytes

IMAGE_DIR = "images"
NAME_RE = re.compile(r"[A-Za-z0-9._-]+\.(png|jpg|webp|gif)")
MIME = {"png": "image/png", "jpg": "image/jpeg", "webp": "image/webp", "gif": "image/gif"}
#: 40 MP: a 4-byte-per-pixel decode of this is 160 MB, the most a Pi should spend on one upload.
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


def dimensions(data: bytes) -> tuple[int, int]:
    """(width, height) from the image header alone (Pillow's ``Image.open`` is lazy: no pixel is
    decoded). ImageError when the header cannot be read."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as img:
            return int(img.width), int(img.height)
    except Image.DecompressionBombError as exc:  # Pillow refuses the worst from the header too
        raise ImageError(f"the image is too large to decode safely ({exc})") from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        raise ImageError(f"the file cannot be decoded: its image header is unreadable ({exc})") from None


def _decodes(data: bytes, kind: str) -> bool:
    """Decode fully, but only once the header says the pixels fit in :data:`MAX_PIXELS`."""
    from PIL import Image

    width, height = dimensions(data)
    if width <= 0 or height <= 0 or width * height > MAX_PIXELS:
        raise ImageError(f"the image is {width}x{height} pixels; at most {MAX_PIXELS:,} pixels")
    try:
        with Image.open(io.BytesIO(data)) as img:
            img.verify()
        with Image.open(io.BytesIO(data)) as img:
            img.load()
        return True
    except Exception:  # noqa: BLE001 (Pillow raises many types for broken files)
        return False


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
    if name and NAME_RE.fullmatch(name):
        (Path(data_dir) / IMAGE_DIR / name).unlink(missing_ok=True)
