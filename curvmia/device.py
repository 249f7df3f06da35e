"""The compute device of a job: compute.device against the GPUs the scheduler allocated.

``compute.device`` says what a job may use (auto / cpu / cuda); ``compute.gpus`` says
what a cluster job requests. A job that was allocated a GPU (SLURM sets
``SLURM_JOB_GPUS`` / ``CUDA_VISIBLE_DEVICES``) but cannot use CUDA stops at once, with
the likely causes, instead of training for days on the CPU (docs/cluster.md: GPUs).

===========  =======================  ===============================================
device       GPU allocated            no GPU allocated
===========  =======================  ===============================================
auto         cuda; error if unusable  cuda when usable (a workstation), else cpu
cpu          cpu (the GPU idles)      cpu
cuda         cuda; error if unusable  cuda when usable, else error
===========  =======================  ===============================================
"""

from __future__ import annotations

import ctypes
import os
import re
from collections.abc import Mapping
from pathlib import Path

import torch

# The CUDA 13.x wheels of torch need an NVIDIA Linux driver of branch 580 or newer
# (NVIDIA's CUDA 13.0 release notes: 13.0 GA needs >= 580.65.06).
MIN_DRIVER = (580, 65, 6)
DRIVER_FILE = Path("/proc/driver/nvidia/version")
# Values of CUDA_VISIBLE_DEVICES that hide every GPU rather than select one.
_NO_GPU = {"", "-1", "none", "nodevfiles", "void"}


def allocated_gpus(env: Mapping[str, str] | None = None) -> list[str]:
    """GPUs this job was given: SLURM_JOB_GPUS / SLURM_STEP_GPUS, else CUDA_VISIBLE_DEVICES.

    An empty list means the scheduler allocated none (a laptop, a CPU job, or
    ``CUDA_VISIBLE_DEVICES=""`` as the CPU image sets it).
    """
    env = os.environ if env is None else env
    for key in ("SLURM_JOB_GPUS", "SLURM_STEP_GPUS", "CUDA_VISIBLE_DEVICES"):
        value = env.get(key, "").strip()
        if key in env and value.lower() in _NO_GPU:
            return []
        if value:
            return [g for g in value.split(",") if g.strip()]
    return []


def driver_version(path: Path = DRIVER_FILE) -> tuple[int, ...] | None:
    """The loaded NVIDIA kernel driver's version (host-wide, visible inside containers)."""
    try:
        m = re.search(r"Kernel Module\s+(?:for \S+\s+)?(\d+)\.(\d+)(?:\.(\d+))?", path.read_text())
    except OSError:
        return None
    return tuple(int(g) for g in m.groups() if g is not None) if m else None


def _libcuda_loads() -> bool:
    try:
        ctypes.CDLL("libcuda.so.1")
    except OSError:
        return False
    return True


def unusable_gpu_message(
    gpus: list[str], driver: tuple[int, ...] | None, libcuda: bool, torch_cuda: str | None
) -> str:
    """Why a job allocated ``gpus`` cannot use CUDA: the likely causes, most likely first."""
    need = ".".join(map(str, MIN_DRIVER))
    lines = [
        f"this job was allocated GPU(s) {','.join(gpus)} but torch cannot use CUDA "
        f"(torch {torch.__version__}, built for CUDA {torch_cuda or 'none: a CPU-only build'}).",
    ]
    if torch_cuda is None:
        lines.append("- the installed torch has no CUDA support: use the GPU image / envs/gpu.lock")
    if not libcuda:
        lines.append(
            "- the NVIDIA driver library libcuda.so.1 is not visible: inside Apptainer, pass --nv"
            " (profile key apptainer-args); outside, load the driver/CUDA module of your site"
        )
    if driver is None:
        lines.append("- no NVIDIA kernel driver is loaded on this node (/proc/driver/nvidia)")
    elif driver < MIN_DRIVER:
        lines.append(
            f"- the node's NVIDIA driver {'.'.join(map(str, driver))} is older than the"
            f" >= {need} (branch 580) that torch's CUDA 13 build needs: ask for newer GPU nodes"
        )
    if len(lines) == 1:
        lines.append(
            "- libcuda loads and the driver is recent: check `nvidia-smi` on the node and that"
            f" the allocated devices are accessible (driver >= {need}, apptainer --nv)"
        )
    lines.append("Set compute.device: cpu to run on the CPU on purpose (docs/cluster.md: GPUs).")
    return "\n".join(lines)


def pick_device(
    preference: str = "auto",
    env: Mapping[str, str] | None = None,
    cuda_available: bool | None = None,
) -> torch.device:
    """The device of this job for compute.device ``preference`` (table in the module doc).

    Raises RuntimeError, naming the likely causes, when a GPU was allocated (or ``cuda``
    asked for) and CUDA cannot be used.
    """
    if preference not in ("auto", "cpu", "cuda"):
        raise ValueError(f"compute.device: expected auto, cpu or cuda, got {preference!r}")
    if preference == "cpu":
        return torch.device("cpu")
    usable = torch.cuda.is_available() if cuda_available is None else cuda_available
    if usable:
        return torch.device("cuda")
    gpus = allocated_gpus(env)
    if gpus:
        raise RuntimeError(
            f"compute.device: {preference!r}: "
            + unusable_gpu_message(gpus, driver_version(), _libcuda_loads(), torch.version.cuda)
        )
    if preference == "cuda":
        raise RuntimeError(
            "compute.device: 'cuda' but no GPU was allocated to this job and none is visible:"
            " set compute.gpus: 1 so that training and scoring jobs request one, or use"
            " compute.device: auto / cpu"
        )
    return torch.device("cpu")
