"""Draw the demo store's product pictures (device/demo/images/<sku>.png) from its catalogue.

The demo catalogue (device/demo/catalog.csv) comes from a public listing whose photos we may not
ship, so each product gets a drawn studio-style picture instead: the category's silhouette (a top,
a kurta, a blazer, a shoe, a bag, sunglasses, a sports top, a bottle, a necklace) in the product's
listed colour, lit from the top left, with a soft shadow on a light backdrop. Everything is drawn
here with OpenCV and numpy (no external picture), so the files are ours to ship (Apache-2.0).

    .venv/bin/python -m tools.product_pictures            # all catalogue products -> device/demo/images/
    .venv/bin/python -m tools.product_pictures --size 480 --out /tmp/pictures

Deterministic: the same catalogue gives the same files.
"""

from __future__ import annotations

import argparse
import csv
import logging
import sys
from pathlib import Path

import cv2
import numpy as np

from device.demo.store import CATALOG, IMAGES_DIR

logger = logging.getLogger(__name__)

#: Listed colour -> RGB.
COLOURS: dict[str, tuple[int, int, int]] = {
    "navy": (32, 45, 92), "blue": (46, 98, 178), "green": (58, 128, 74), "black": (38, 38, 42),
    "grey": (128, 132, 138), "red": (176, 38, 46), "yellow": (232, 186, 40), "white": (236, 234, 228),
    "purple": (110, 62, 140), "brown": (120, 78, 44), "silver": (190, 194, 200), "mustard": (204, 150, 30),
}
BACKDROP = (244, 241, 236)
S = 4  # supersampling: draw at S x the size, then shrink (smooth edges)

# Silhouettes on a 100 x 100 canvas, as polygons (x, y).
_TOP = [(30, 18), (42, 14), (50, 20), (58, 14), (70, 18), (88, 34), (80, 44), (72, 38), (72, 86), (28, 86),
        (28, 38), (20, 44), (12, 34)]
_KURTA = [(34, 10), (44, 8), (50, 16), (56, 8), (66, 10), (82, 26), (76, 36), (70, 30), (72, 92), (28, 92),
          (30, 30), (24, 36), (18, 26)]
_BLAZER = [(30, 12), (42, 8), (50, 30), (58, 8), (70, 12), (86, 30), (84, 88), (16, 88), (14, 30)]
_SHOE = [(8, 70), (10, 52), (30, 48), (46, 34), (58, 34), (64, 46), (90, 58), (94, 70), (92, 76), (10, 76)]
_BAG = [(18, 38), (82, 38), (90, 88), (10, 88)]
_BOTTLE = [(36, 34), (64, 34), (66, 90), (34, 90)]


def _poly(points: list[tuple[float, float]], size: int) -> np.ndarray:
    return (np.array(points, dtype=np.float64) * size / 100).round().astype(np.int32)


def _mask(category: str, size: int) -> tuple[np.ndarray, list[tuple[str, np.ndarray]]]:
    """The product's silhouette (uint8 mask) and details to draw darker on top (kind, points)."""
    mask = np.zeros((size, size), np.uint8)
    details: list[tuple[str, np.ndarray]] = []
    u = size / 100
    if category in ("casual", "sportswear"):
        cv2.fillPoly(mask, [_poly(_TOP, size)], 255, cv2.LINE_AA)
        details.append(("line", _poly([(42, 14), (50, 24), (58, 14)], size)))
        if category == "sportswear":
            details.append(("stripe", _poly([(28, 56), (72, 56), (72, 64), (28, 64)], size)))
    elif category == "ethnic":
        cv2.fillPoly(mask, [_poly(_KURTA, size)], 255, cv2.LINE_AA)
        details.append(("line", _poly([(50, 16), (50, 44)], size)))
        details.append(("stripe", _poly([(30, 84), (72, 84), (72, 88), (30, 88)], size)))
    elif category == "formal":
        cv2.fillPoly(mask, [_poly(_BLAZER, size)], 255, cv2.LINE_AA)
        details.append(("line", _poly([(42, 8), (40, 30), (50, 54), (60, 30), (58, 8)], size)))
        details.append(("dots", _poly([(50, 62), (50, 74)], size)))
    elif category == "footwear":
        cv2.fillPoly(mask, [_poly(_SHOE, size)], 255, cv2.LINE_AA)
        details.append(("stripe", _poly([(10, 70), (92, 70), (92, 76), (10, 76)], size)))
        details.append(("line", _poly([(46, 40), (54, 52)], size)))
    elif category == "bags":
        cv2.fillPoly(mask, [_poly(_BAG, size)], 255, cv2.LINE_AA)
        cv2.ellipse(mask, (int(50 * u), int(38 * u)), (int(22 * u), int(22 * u)), 0, 180, 360, 255,
                    max(2, int(5 * u)), cv2.LINE_AA)
        details.append(("line", _poly([(14, 52), (86, 52)], size)))
    elif category == "accessories":
        for cx in (30, 70):
            cv2.ellipse(mask, (int(cx * u), int(50 * u)), (int(18 * u), int(14 * u)), 0, 0, 360, 255, -1, cv2.LINE_AA)
        cv2.line(mask, (int(44 * u), int(46 * u)), (int(56 * u), int(46 * u)), 255, max(2, int(4 * u)), cv2.LINE_AA)
        cv2.line(mask, (int(12 * u), int(44 * u)), (int(4 * u), int(36 * u)), 255, max(2, int(3 * u)), cv2.LINE_AA)
        cv2.line(mask, (int(88 * u), int(44 * u)), (int(96 * u), int(36 * u)), 255, max(2, int(3 * u)), cv2.LINE_AA)
    elif category == "beauty":
        cv2.fillPoly(mask, [_poly(_BOTTLE, size)], 255, cv2.LINE_AA)
        cv2.rectangle(mask, (int(42 * u), int(16 * u)), (int(58 * u), int(34 * u)), 255, -1, cv2.LINE_AA)
        details.append(("stripe", _poly([(36, 56), (65, 56), (65, 72), (36, 72)], size)))
    else:  # jewellery and anything else: a pendant on a chain
        cv2.ellipse(mask, (int(50 * u), int(30 * u)), (int(30 * u), int(36 * u)), 0, 0, 180, 255,
                    max(2, int(2 * u)), cv2.LINE_AA)
        gem = _poly([(50, 60), (60, 70), (50, 86), (40, 70)], size)
        cv2.fillPoly(mask, [gem], 255, cv2.LINE_AA)
        details.append(("line", _poly([(40, 70), (60, 70)], size)))
    return mask, details


def draw(category: str, colour: str, size: int = 320) -> np.ndarray:
    """One product picture, RGB uint8 (size x size)."""
    big = size * S
    rgb = np.array(COLOURS.get(colour.strip().lower(), COLOURS["grey"]), np.float32)
    mask, details = _mask(category, big)
    # Backdrop: light, a little darker towards the floor.
    yy = np.linspace(0, 1, big, dtype=np.float32)[:, None, None]
    canvas = np.broadcast_to(np.array(BACKDROP, np.float32) * (1 - 0.06 * yy), (big, big, 3)).copy()
    # Soft shadow: the silhouette shifted down-right, blurred.
    shift = np.float32([[1, 0, big * 0.03], [0, 1, big * 0.04]])
    shadow = cv2.warpAffine(mask, shift, (big, big)).astype(np.float32) / 255
    shadow = cv2.GaussianBlur(shadow, (0, 0), big * 0.025)[..., None]
    canvas *= 1 - 0.28 * shadow
    # The product: its colour lit from the top left.
    xs = np.linspace(0, 1, big, dtype=np.float32)
    light = 1.18 - 0.36 * (0.6 * yy[..., 0] + 0.4 * xs[None, :])
    body = np.clip(rgb[None, None, :] * light[..., None], 0, 255)
    ink = np.clip(rgb * 0.62, 0, 255) if rgb.mean() > 60 else np.clip(rgb + 60, 0, 255)
    for kind, pts in details:
        layer = np.zeros((big, big), np.uint8)
        if kind == "stripe":
            cv2.fillPoly(layer, [pts], 255, cv2.LINE_AA)
        elif kind == "dots":
            for x, y in pts:
                cv2.circle(layer, (int(x), int(y)), max(2, big // 60), 255, -1, cv2.LINE_AA)
        else:
            cv2.polylines(layer, [pts], False, 255, max(2, big // 120), cv2.LINE_AA)
        a = (layer.astype(np.float32) / 255)[..., None]
        body = body * (1 - a) + ink[None, None, :] * a
    a = (mask.astype(np.float32) / 255)[..., None]
    canvas = canvas * (1 - a) + body * a
    # Edge: a thin darker outline so light products stand out from the backdrop.
    edge = cv2.morphologyEx(mask, cv2.MORPH_GRADIENT, np.ones((3, 3), np.uint8)).astype(np.float32) / 255
    canvas *= 1 - 0.25 * edge[..., None]
    small = cv2.resize(np.clip(canvas, 0, 255).astype(np.uint8), (size, size), interpolation=cv2.INTER_AREA)
    return small


def write_all(catalog: Path, out_dir: Path, *, size: int = 320) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    with catalog.open(newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    written = []
    for row in rows:
        picture = draw(row.get("category") or "", row.get("colour") or "", size)
        path = out_dir / f"{row['sku']}.png"
        ok, data = cv2.imencode(".png", cv2.cvtColor(picture, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_PNG_COMPRESSION, 9])
        if not ok:
            raise SystemExit(f"could not encode the picture of {row['sku']}")
        path.write_bytes(data.tobytes())
        written.append(path)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.product_pictures", description=__doc__.split("\n")[0])
    parser.add_argument("--catalog", type=Path, default=CATALOG)
    parser.add_argument("--out", type=Path, default=IMAGES_DIR)
    parser.add_argument("--size", type=int, default=320, help="picture width and height in pixels")
    args = parser.parse_args(argv)
    if not args.catalog.is_file():
        print(f"product_pictures: error: no catalogue at {args.catalog}", file=sys.stderr)
        return 1
    written = write_all(args.catalog, args.out, size=args.size)
    total = sum(p.stat().st_size for p in written)
    print(f"wrote {len(written)} pictures to {args.out} ({total / 1024:.0f} KiB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
