"""Raw outputs of every committed TFLite model on fixed inputs, as JSON on stdout (arm64 stage).

Run with the same committed models on x86 and inside the arm64 roots; tests/arm64/compare.py then
checks that the int8 models give identical raw outputs and the float ones agree within tolerance.
The inputs are made here with numpy from fixed seeds (noise, gradients, and three of the demo's
frames decoded with OpenCV); each input's sha256 is recorded, so a difference in decoding is told
apart from a difference in the model runtime.

    python tests/arm64/model_outputs.py [--models DIR] [--frames DIR]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import platform
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]


def interpreter_class():
    try:
        from ai_edge_litert.interpreter import Interpreter

        return Interpreter, "ai_edge_litert"
    except ImportError:
        from tflite_runtime.interpreter import Interpreter

        return Interpreter, "tflite_runtime"


def to_input(pixels: np.ndarray, detail: dict) -> np.ndarray:
    """uint8 HxWx3 pixels -> the input tensor: [0, 1] floats, quantized for integer inputs."""
    values = pixels.astype(np.float32) / 255.0
    dtype = detail["dtype"]
    if np.issubdtype(dtype, np.floating):
        return values[None].astype(dtype)
    scale, zero = detail["quantization"]
    info = np.iinfo(dtype)
    return np.clip(np.round(values / scale + zero), info.min, info.max).astype(dtype)[None]


def resize_nearest(image: np.ndarray, height: int, width: int) -> np.ndarray:
    rows = (np.arange(height) * image.shape[0] // height).astype(int)
    cols = (np.arange(width) * image.shape[1] // width).astype(int)
    return image[rows][:, cols]


def pictures(height: int, width: int, frames: list[Path]) -> list[tuple[str, np.ndarray]]:
    out = []
    for seed in (0, 1, 2):
        rng = np.random.default_rng(seed)
        out.append((f"noise-{seed}", rng.integers(0, 256, size=(height, width, 3), dtype=np.uint8)))
    yy, xx = np.mgrid[0:height, 0:width]
    gradient = np.stack([xx * 255 // max(width - 1, 1), yy * 255 // max(height - 1, 1), (xx + yy) % 256], -1)
    out.append(("gradient", gradient.astype(np.uint8)))
    if frames:
        import cv2

        for path in frames:
            bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
            if bgr is None:
                continue
            rgb = bgr[:, :, ::-1]
            side = min(rgb.shape[:2])
            top, left = (rgb.shape[0] - side) // 2, (rgb.shape[1] - side) // 2
            out.append(
                (
                    f"frame:{path.name}",
                    resize_nearest(rgb[top : top + side, left : left + side], height, width),
                )
            )
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=Path, default=REPO / "models")
    parser.add_argument("--frames", type=Path, default=REPO / "device" / "demo" / "frames")
    parser.add_argument("--frame", action="append", help="frame file names (default: three with a face)")
    args = parser.parse_args(argv)
    interpreter_cls, runtime = interpreter_class()
    names = args.frame or ["frame_010.jpg", "frame_015.jpg", "frame_020.jpg"]
    frames = [args.frames / name for name in names if (args.frames / name).is_file()]
    result: dict = {
        "machine": platform.machine(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "runtime": runtime,
        "models": {},
    }
    models = sorted(args.models.rglob("*.tflite"))
    if not models:
        print(f"model_outputs: no .tflite files under {args.models}", file=sys.stderr)
        return 1
    for path in models:
        interpreter = interpreter_cls(model_path=str(path), num_threads=1)
        interpreter.allocate_tensors()
        detail = interpreter.get_input_details()[0]
        _, height, width, _ = (int(v) for v in detail["shape"])
        cases = []
        for label, pixels in pictures(height, width, frames):
            tensor = to_input(pixels, detail)
            interpreter.set_tensor(detail["index"], tensor)
            interpreter.invoke()
            outputs = [interpreter.get_tensor(d["index"]) for d in interpreter.get_output_details()]
            cases.append(
                {
                    "input": label,
                    "input_sha256": hashlib.sha256(tensor.tobytes()).hexdigest(),
                    "outputs": [
                        {"dtype": str(o.dtype), "shape": list(o.shape), "values": o.ravel().tolist()}
                        for o in outputs
                    ],
                }
            )
        result["models"][path.name] = {"input_dtype": str(np.dtype(detail["dtype"])), "cases": cases}
    json.dump(result, sys.stdout)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
