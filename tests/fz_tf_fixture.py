"""Run with the TensorFlow environment's python (tests/test_convert_fz.py does): build a
Sonnet ResNet-50, randomise EVERY variable it uses, save it as the release does
(tf.train.Checkpoint(model, epoch, global_step) under <out>/checkpoints/), then export it
with curvmia.fz_tf (the converter's TensorFlow side) to <out>/export.npz.

Sonnet initialises the logits and each block's last BatchNorm scale to zero and the moving
statistics to 0 and 1: such a model would compute the same function under many wrong
conversions (a swapped mean/variance, a lost scale).  Random values everywhere, moving
statistics included, make each variable visible in the outputs.
"""

import sys
from pathlib import Path

import numpy as np
import tensorflow as tf

from curvmia import fz_tf

out, size, seed = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
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
ckpt = tf.train.Checkpoint(
    model=model,
    epoch=tf.Variable(90, dtype=tf.int64),
    global_step=tf.Variable(12345, dtype=tf.int64),
)
ckpt.save(str(out / "checkpoints" / "ckpt"))
meta = fz_tf.export_checkpoint(out / "checkpoints", out / "export.npz", probe_size=size)
print(f"randomised {randomised} variables; exported epoch {meta['epoch']}")
