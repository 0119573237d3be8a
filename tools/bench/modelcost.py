"""Multiply-accumulates per inference of a ``.tflite`` model, counted from its graph.

Uses the TFLite interpreter's op list (``_get_ops_details``) and tensor shapes: CONV_2D
(out_h * out_w * out_c * k_h * k_w * in_c), DEPTHWISE_CONV_2D (out_h * out_w * out_c * k_h * k_w),
FULLY_CONNECTED (batch * out * in), TRANSPOSE_CONV (in_h * in_w * in_c * k_h * k_w * out_c). Other
ops (adds, pooling, activations) are not counted: they are small next to these for such networks.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

#: Effective Raspberry Pi 4 (Cortex-A72, 1.5 GHz, TFLite on the CPU) throughput assumed for the
#: estimate, in MACs per second. Derived from a published figure: MobileNet v1 1.0_224 (569 M MACs)
#: runs in ~87 ms with TFLite on the Pi 4 CPU -> ~6.5 G MAC/s for float32. The int8 rate assumes the
#: usual ~1.5x of TFLite's int8 kernels over float32 on ARM NEON. An estimate, not a measurement.
PI4_MACS_PER_S: dict[str, float] = {"float32": 6.5e9, "float16": 6.5e9, "int8": 9.75e9}
PI4_RATE_SOURCE = (
    "MobileNet v1 1.0_224, 569 M MACs, ~87 ms with TFLite on the Pi 4 CPU (published user benchmark) "
    "-> 6.5 G MAC/s float32; int8 assumed 1.5x that (9.75 G MAC/s)"
)

_COUNTED = {"CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "TRANSPOSE_CONV"}


def _shape(tensors: dict[int, dict[str, Any]], index: int) -> list[int]:
    detail = tensors.get(int(index))
    if detail is None:
        return []
    return [int(v) for v in detail["shape"]]


def count_macs(model_path: Path) -> dict[str, Any]:
    """``{"macs", "by_op": {op: macs}, "ops": {op: count}, "weights_dtype"}`` of one model file."""
    from device.inference.runtime import load_interpreter

    interpreter = load_interpreter(Path(model_path), num_threads=1)
    tensors = {int(t["index"]): t for t in interpreter.get_tensor_details()}
    by_op: dict[str, int] = {}
    counts: dict[str, int] = {}
    weight_dtypes: set[str] = set()
    for op in interpreter._get_ops_details():  # the public API has no op list
        name = op["op_name"]
        counts[name] = counts.get(name, 0) + 1
        if name not in _COUNTED:
            continue
        inputs = [int(i) for i in op["inputs"]]
        outputs = [int(i) for i in op["outputs"]]
        if len(inputs) < 2 or not outputs:
            continue
        if name == "TRANSPOSE_CONV":  # inputs: output_shape, weights, input
            weights, data = _shape(tensors, inputs[1]), _shape(tensors, inputs[2]) if len(inputs) > 2 else []
            macs = math.prod(data[1:]) * math.prod(weights[:3]) if len(weights) == 4 and len(data) == 4 else 0
        else:
            weights, out = _shape(tensors, inputs[1]), _shape(tensors, outputs[0])
            wdetail = tensors.get(inputs[1])
            if wdetail is not None:
                weight_dtypes.add(
                    str(
                        wdetail["dtype"].__name__
                        if hasattr(wdetail["dtype"], "__name__")
                        else wdetail["dtype"]
                    )
                )
            if name == "CONV_2D" and len(weights) == 4 and len(out) == 4:
                macs = math.prod(out) * weights[1] * weights[2] * weights[3]
            elif name == "DEPTHWISE_CONV_2D" and len(weights) == 4 and len(out) == 4:
                macs = math.prod(out) * weights[1] * weights[2]
            elif name == "FULLY_CONNECTED" and len(weights) == 2 and out:
                macs = math.prod(out[:-1]) * weights[0] * weights[1]
            else:
                macs = 0
        by_op[name] = by_op.get(name, 0) + int(macs)
    return {
        "macs": sum(by_op.values()),
        "by_op": by_op,
        "ops": counts,
        "weights_dtype": sorted(weight_dtypes),
        "bytes": Path(model_path).stat().st_size,
    }


def model_costs(models: dict[str, tuple[Path, str]]) -> dict[str, Any]:
    """Per model: MACs, and the Pi 4 latency estimate at :data:`PI4_MACS_PER_S` for its precision.

    ``models``: label -> (file, precision key of PI4_MACS_PER_S).
    """
    out: dict[str, Any] = {}
    for label, (path, precision) in models.items():
        info = count_macs(path)
        rate = PI4_MACS_PER_S[precision]
        info["precision"] = precision
        info["file"] = Path(path).name
        info["pi4_estimate_ms"] = round(info["macs"] / rate * 1000.0, 3)
        out[label] = info
    return out
