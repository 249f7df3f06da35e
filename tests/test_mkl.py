"""CPU matrix products that do not depend on the batch they sit in (docs/engine.md)."""

import subprocess
import sys

from _util import subprocess_env

CODE = (
    "import os, torch{imp}\n"
    "torch.set_num_threads(1); torch.manual_seed(0)\n"
    "lin = torch.nn.Linear(216, 5); x = torch.randn(64, 216); big = lin(x)\n"
    "print(os.environ.get('MKL_CBWR'), [k for k in range(2, 10) if not "
    "torch.equal(lin(x[:k]), big[:k])])"
)


def run(imp: str) -> list[str]:
    env = {k: v for k, v in subprocess_env().items() if k != "MKL_CBWR"}
    code = CODE.format(imp=imp)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip().split(" ", 1)


def test_importing_curvmia_makes_mkl_products_independent_of_the_batch():
    """A fresh process: curvmia's import sets MKL's strict reproducibility before the first
    product, so 2 to 9 rows multiplied alone equal the same rows inside a batch, bit for bit.
    A lone row is not covered (MKL's matrix-vector path rounds it differently even in strict
    mode, seen on Intel and AMD AVX-512 CPUs): curvature.forward never runs one (next test)."""
    assert run(", curvmia") == ["AUTO,STRICT", "[]"]


def test_a_lone_image_goes_through_the_batched_kernels():
    """curvature.forward computes one image as a pair, so its row equals the same row inside
    a batch: the clean logits of a one-image chunk do not depend on the chunking."""
    code = (
        "import torch\nfrom curvmia.curvature import forward\n"
        "torch.set_num_threads(1); torch.manual_seed(0)\n"
        "lin = torch.nn.Linear(216, 5); x = torch.randn(64, 216); big = lin(x)\n"
        "print(all(torch.equal(forward(lin, x[k : k + 1]), big[k : k + 1]) for k in range(64)))"
    )
    env = {k: v for k, v in subprocess_env().items() if k != "MKL_CBWR"}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert proc.stdout.strip() == "True", proc.stderr


def test_an_exported_mkl_setting_wins():
    env = {**subprocess_env(), "MKL_CBWR": "COMPATIBLE"}
    code = "import os, curvmia; print(os.environ['MKL_CBWR'])"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert proc.stdout.strip() == "COMPATIBLE", proc.stderr
