"""Export one Feldman & Zhang Sonnet ResNet-50 checkpoint to NumPy (TensorFlow environment).

Runs with the TensorFlow environment's Python (envs/tf.lock, containers/tf.def); imports
no torch. Writes the weights under PyTorch names and TensorFlow's outputs on a seeded
probe input, which scripts/convert_fz.py checks its PyTorch model against.
"""

import argparse

from curvmia.fz_tf import export_checkpoint


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--checkpoints", required=True, help="<run>/checkpoints folder (ckpt-*)")
    ap.add_argument("--probe-size", type=int, default=224, help="probe image side (pixels)")
    ap.add_argument("--probe-seed", type=int, default=0)
    ap.add_argument("--out", required=True, help="export .npz")
    a = ap.parse_args()
    meta = export_checkpoint(a.checkpoints, a.out, probe_size=a.probe_size, probe_seed=a.probe_seed)
    print(f"{meta['checkpoint']}: epoch {meta['epoch']}, step {meta['global_step']} -> {a.out}")


if __name__ == "__main__":
    main()
