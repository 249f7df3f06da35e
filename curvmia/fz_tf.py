"""TensorFlow side of the Feldman & Zhang conversion: a Sonnet ResNet-50 checkpoint → NumPy.

Runs in the separate TensorFlow environment (envs/tf.lock, containers/tf.def), which has
no torch: it restores ``snt.nets.ResNet50`` from the release's ``tf.train.Checkpoint``
(the objects ``model``, ``epoch``, ``global_step``, as the release's ``demo.py`` saves and
loads them), renames every variable to the PyTorch ``sonnet_resnet50``'s state-dict name
in that layout (convolutions OIHW, linear weights transposed), and stores TensorFlow's own
outputs on a seeded probe input, so the PyTorch side can check its conversion against
them (:func:`curvmia.fz.check_probe`).  Imports TensorFlow only inside functions.
"""

from __future__ import annotations

import glob
import os
from pathlib import Path

import numpy as np


def build_resnet50(num_classes: int = 1000):
    """``snt.nets.ResNet50`` as the release builds it (default bn_config: eps 1e-5)."""
    import sonnet as snt

    return snt.nets.ResNet50(num_classes=num_classes)


def find_checkpoint(checkpoint_dir: str | os.PathLike) -> str:
    """The one ``ckpt-*`` prefix in ``checkpoint_dir`` (the release keeps the final epoch)."""
    found = sorted(glob.glob(os.path.join(checkpoint_dir, "ckpt-*.index")))
    if len(found) != 1:
        raise ValueError(
            f"{checkpoint_dir}: expected exactly one ckpt-*.index (with its ckpt-*.data-* "
            f"shards), found {len(found)}: {found[:4]}"
        )
    return found[0][: -len(".index")]


def restore(model, checkpoint_dir: str | os.PathLike, image_size: int = 224) -> dict:
    """Restore ``model`` from the checkpoint in ``checkpoint_dir``; every model variable
    must be matched (``expect_partial`` only tolerates extra objects such as optimizer
    slots), so a renamed or missing variable is an error, never a silent init value."""
    import tensorflow as tf

    model(tf.zeros([1, image_size, image_size, 3]), is_training=False)  # create variables
    epoch = tf.Variable(0, dtype=tf.int64, name="epoch", trainable=False)
    step = tf.Variable(0, dtype=tf.int64, name="global_step", trainable=False)
    ckpt = tf.train.Checkpoint(model=model, epoch=epoch, global_step=step)
    prefix = find_checkpoint(checkpoint_dir)
    status = ckpt.restore(prefix).expect_partial()
    try:
        status.assert_existing_objects_matched()
    except AssertionError as e:
        raise ValueError(
            f"{prefix}: not a Sonnet 2 snt.nets.ResNet50 checkpoint saved as "
            f"tf.train.Checkpoint(model=..., epoch=..., global_step=...): {e}"
        ) from e
    return {"checkpoint": prefix, "epoch": int(epoch.numpy()), "global_step": int(step.numpy())}


def _bn(prefix: str, bn) -> dict:
    return {
        f"{prefix}.weight": bn.scale,
        f"{prefix}.bias": bn.offset,
        f"{prefix}.running_mean": bn.moving_mean.average,
        f"{prefix}.running_variance": bn.moving_variance.average,
    }


def _named_variables(model) -> dict:
    """PyTorch name → Sonnet variable (running_variance renamed below)."""
    out = {"conv1.weight": model._initial_conv.w, **_bn("bn1", model._initial_batchnorm)}
    for g, group in enumerate(model._block_groups):
        for b, block in enumerate(group._blocks):
            p = f"layer{g + 1}.{b}"
            for k, (conv, bn) in enumerate(block._layers):
                out[f"{p}.conv{k + 1}.weight"] = conv.w
                out.update(_bn(f"{p}.bn{k + 1}", bn))
            if block._use_projection:
                out[f"{p}.downsample.0.weight"] = block._proj_conv.w
                out.update(_bn(f"{p}.downsample.1", block._proj_batchnorm))
    out["fc.weight"] = model._logits.w
    out["fc.bias"] = model._logits.b
    return out


def export_weights(model) -> dict[str, np.ndarray]:
    """Every variable the model's inference uses, under sonnet_resnet50's state-dict names.

    Raises when a variable of the model is neither exported nor an EMA helper (``hidden``,
    ``counter``), so a Sonnet layout change cannot drop weights unnoticed.
    """
    named = _named_variables(model)
    used = {v.ref() for v in named.values()}
    skipped = [
        v.name
        for v in model.variables
        if v.ref() not in used and not v.name.endswith(("/hidden:0", "/counter:0"))
    ]
    if skipped:
        raise ValueError(f"Sonnet ResNet-50 variables without a PyTorch name: {skipped[:5]}")
    out = {}
    for name, var in named.items():
        a = var.numpy().astype(np.float32)
        if name.endswith(".weight") and a.ndim == 4:  # conv HWIO → OIHW
            a = a.transpose(3, 2, 0, 1)
        elif name == "fc.weight":  # (in, out) → (out, in)
            a = a.T
        elif a.ndim == 4:  # BN moving statistics (1, 1, 1, C)
            a = a.reshape(-1)
        out[name.replace("running_variance", "running_var")] = np.ascontiguousarray(a)
    return out


def probe_input(size: int, seed: int, n: int = 2) -> np.ndarray:
    """Seeded NHWC float32 probe images, standard normal (normalised-image scale)."""
    return np.random.default_rng(seed).standard_normal((n, size, size, 3)).astype(np.float32)


def probe_outputs(model, x: np.ndarray) -> dict[str, np.ndarray]:
    """TensorFlow's stem (after the max-pool), block-group and logit outputs on ``x``,
    feature maps as NCHW.  Recomputed from the model's own layers, and checked to give
    exactly the logits of ``model(x)``."""
    import tensorflow as tf

    t = tf.constant(x)
    net = model._initial_conv(t)
    net = tf.nn.relu(model._initial_batchnorm(net, is_training=False))
    net = tf.nn.max_pool2d(net, ksize=3, strides=2, padding="SAME")
    out = {"stem": net}
    for g, group in enumerate(model._block_groups):
        net = group(net, is_training=False)
        out[f"layer{g + 1}"] = net
    out["logits"] = model._logits(tf.reduce_mean(net, axis=[1, 2]))
    direct = model(t, is_training=False).numpy()
    if not np.array_equal(direct, out["logits"].numpy()):
        raise RuntimeError("probe: the layer-by-layer pass differs from snt.nets.ResNet50's")
    return {
        k: (v.numpy().transpose(0, 3, 1, 2) if v.shape.rank == 4 else v.numpy())
        for k, v in out.items()
    }


def export_checkpoint(
    checkpoint_dir: str | os.PathLike,
    out: str | os.PathLike,
    *,
    num_classes: int = 1000,
    probe_size: int = 224,
    probe_seed: int = 0,
) -> dict:
    """Restore one checkpoint and write ``out`` (.npz): ``w/<name>`` weights, ``probe/input``
    (NCHW) and ``probe/<feature>`` TensorFlow outputs; written to a temp file, then renamed."""
    model = build_resnet50(num_classes)
    meta = restore(model, checkpoint_dir, probe_size)
    weights = export_weights(model)
    x = probe_input(probe_size, probe_seed)
    probes = probe_outputs(model, x)
    arrays = {f"w/{k}": v for k, v in weights.items()}
    arrays["probe/input"] = x.transpose(0, 3, 1, 2).copy()
    arrays.update({f"probe/{k}": v for k, v in probes.items()})
    arrays["meta/epoch"] = np.int64(meta["epoch"])
    arrays["meta/global_step"] = np.int64(meta["global_step"])
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp.npz")
    np.savez(tmp, **arrays)
    os.replace(tmp, out)
    return meta
