"""Export the trained Keras age/gender model to TFLite: float32 and full-integer int8.

    python -m models.training.quantize            # re-export from models/work/age_gender.keras

int8: post-training full-integer quantization (weights and activations int8, int8 input and
output tensors) calibrated on a representative set of aligned crops from the TRAIN split.
Both files are registered in ``models/manifest.json``; the device loads the int8 one.
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

import numpy as np

from models.training import data as D
from models.training.manifest_tools import update_manifest

logger = logging.getLogger("models.training.quantize")

INT8_FILE = "age_gender_int8.tflite"
FLOAT_FILE = "age_gender_float32.tflite"
LICENCE = (
    "trained on UTKFace (non-commercial research use only); retrain on licensed data for a product "
    "(python -m models.training.train --data DIR); see docs/models.md"
)


def convert(model, rep: np.ndarray | None) -> bytes:
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    if rep is not None:

        def representative():
            for i in range(rep.shape[0]):
                yield [rep[i : i + 1].astype(np.float32)]

        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = representative
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = tf.int8
        converter.inference_output_type = tf.int8
    return converter.convert()


def export_all(model, rep: np.ndarray, out: Path, info: dict) -> dict[str, Path]:
    """Write float32 and int8 models into ``out`` and register them in ``out/manifest.json``."""
    out = Path(out)
    size = int(model.inputs[0].shape[1])
    paths = {"float32": out / FLOAT_FILE, "int8": out / INT8_FILE}
    paths["float32"].write_bytes(convert(model, None))
    paths["int8"].write_bytes(convert(model, rep))
    meta = {
        k: v
        for k, v in info.items()
        if k
        in (
            "input_size",
            "width",
            "epochs",
            "teacher",
            "teacher_weight",
            "teacher_gender_weight",
            "gender_loss_weight",
            "lowres_p",
            "camera_p",
            "fit_on",
            "seed",
            "train_images",
            "val_images",
            "best_val",
        )
    }
    for dtype, path in paths.items():
        update_manifest(
            out / "manifest.json",
            name=f"age_gender_{dtype}",
            path=path,
            input_shape=[1, size, size, 3],
            dtype=dtype,
            licence=LICENCE,
            source=f"trained by models/training/train.py on {Path(info.get('data', D.DEFAULT_DATA)).name}",
            extra={"training": meta},
        )
        logger.info("wrote %s (%d bytes)", path, path.stat().st_size)
    return paths


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--keras", type=Path, default=D.WORK_DIR / "age_gender.keras")
    p.add_argument("--out", type=Path, default=D.MODELS_DIR)
    p.add_argument("--rep-samples", type=int, default=300)
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    from tensorflow import keras

    model = keras.models.load_model(args.keras)
    size = int(model.inputs[0].shape[1])
    samples = D.list_samples()
    crops, _ = D.crop_dataset(samples, size)
    tr = np.array([s.split == "train" for s in samples])
    rng = np.random.default_rng(0)
    rep = crops[tr][rng.permutation(int(tr.sum()))[: args.rep_samples]]
    info_path = args.keras.with_suffix(".json")
    info = json.loads(info_path.read_text()) if info_path.exists() else {}
    export_all(model, rep, args.out, info)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
