"""Run with the TensorFlow environment's python (tests/test_convert_fz.py does): build a
Sonnet ResNet-50, randomise EVERY variable it uses, save it as the release does
(tf.train.Checkpoint(model, epoch, global_step) under <out>/checkpoints/), then export it
with curvmia.fz_tf (the converter's TensorFlow side) to <out>/export.npz.

Options for the workflow test's fake release: --classes K (with --predict) centres the
first K classes' logits on those images and puts the others far below (so a K-class
dataset sees varied predictions); --predict X.npy writes
TensorFlow's own top-1 predictions on the uint8 NCHW images X (ImageNet normalisation) to
<out>/predictions.npy, the stand-in for the release's correctness arrays.

Sonnet initialises the logits and each block's last BatchNorm scale to zero and the moving
statistics to 0 and 1: such a model would compute the same function under many wrong
conversions (a swapped mean/variance, a lost scale).  Random values everywhere, moving
statistics included, make each variable visible in the outputs.
"""

import argparse
from pathlib import Path

import numpy as np
import tensorflow as tf

from curvmia import fz_tf

ap = argparse.ArgumentParser()
ap.add_argument("out", type=Path)
ap.add_argument("size", type=int)
ap.add_argument("seed", type=int)
ap.add_argument("--classes", type=int, default=0)
ap.add_argument("--predict", default=None)
ap.add_argument("--no-export", action="store_true")
a = ap.parse_args()
out, size, seed = a.out, a.size, a.seed
rng = np.random.default_rng(seed)
model = fz_tf.build_resnet50(1000)
model(tf.zeros([1, size, size, 3]), is_training=False)
randomised = 0
for v in model.variables:
    name, shape = v.name, v.shape.as_list()
    if name.endswith(("/hidden:0", "/counter:0")):
        continue
    if name.endswith("/w:0") and len(shape) == 4:  # conv HWIO: He scale
        value = rng.standard_normal(shape) * np.sqrt(2.0 / np.prod(shape[:3]))
    elif name.endswith("/w:0"):  # logits (2048, 1000)
        value = rng.standard_normal(shape) * 0.05
    elif name.endswith("/scale:0"):
        value = rng.uniform(0.5, 1.5, shape)
    elif name.endswith(("/offset:0", "/b:0")):
        value = rng.standard_normal(shape) * 0.2
    elif "moving_mean" in name:
        value = rng.standard_normal(shape) * 0.2
    elif "moving_variance" in name:
        value = rng.uniform(0.5, 2.0, shape)
    else:
        raise SystemExit(f"unexpected variable {name}")
    v.assign(value.astype(np.float32))
    randomised += 1


def normalised(path: str) -> np.ndarray:
    images = np.load(path).astype(np.float32) / 255.0
    mean = np.array([0.485, 0.456, 0.406], np.float32).reshape(1, 3, 1, 1)
    std = np.array([0.229, 0.224, 0.225], np.float32).reshape(1, 3, 1, 1)
    return ((images - mean) / std).transpose(0, 2, 3, 1)


if a.classes:
    # A random deep net maps every image near one feature vector: centre the first K
    # classes' logits on these images (bias = -w . mean feature) and keep the other
    # classes far below them, so predictions among the K classes vary with the image.
    logits = model(tf.constant(normalised(a.predict)), is_training=False).numpy()
    w, b = model._logits.w.numpy(), model._logits.b.numpy()
    b[: a.classes] -= logits[:, : a.classes].mean(0)
    top = (logits[:, : a.classes] - logits[:, : a.classes].mean(0)).max()
    w[:, a.classes :] = 0.0
    b[a.classes :] = -10.0 * abs(top) - 1000.0
    model._logits.w.assign(w)
    model._logits.b.assign(b)
ckpt = tf.train.Checkpoint(
    model=model,
    epoch=tf.Variable(90, dtype=tf.int64),
    global_step=tf.Variable(12345, dtype=tf.int64),
)
ckpt.save(str(out / "checkpoints" / "ckpt"))
print(f"randomised {randomised} variables")
if not a.no_export:
    meta = fz_tf.export_checkpoint(out / "checkpoints", out / "export.npz", probe_size=size)
    print(f"exported epoch {meta['epoch']}")
if a.predict:
    logits = model(tf.constant(normalised(a.predict)), is_training=False).numpy()
    np.save(out / "predictions.npy", logits.argmax(1))
