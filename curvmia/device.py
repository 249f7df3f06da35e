"""The compute device of a job: compute.device against the GPUs the scheduler allocated.

``compute.device`` says what a job may use (auto / cpu / cuda); ``compute.gpus`` says
what a cluster job requests. A job that was allocated a GPU (SLURM sets
``SLURM_JOB_GPUS`` / ``CUDA_VISIBLE_DEVICES``) but cannot use CUDA stops at once, with
the likely causes, instead of training for days on the CPU (docs/cluster.md: GPUs).

Three more checks, at the start of every GPU job, before any data is read:

- *No silent CPU.* A SLURM job (``SLURM_JOB_ID``) whose rule requested GPUs
  (``CURVMIA_GPUS``, compute.gpus, which rules/resources.smk exports to every job as a
  compute knob: no rerun) and that sees none stops, naming the node and the variables it
  saw, unless compute.device is cpu.
- *Array jobs get their GPU.* The SLURM executor runs array tasks without ``srun`` and
  drops every ``SLURM_*`` variable but the job's identity, so ``SLURM_JOB_GPUS`` never
  reaches the job; where the site sets no ``CUDA_VISIBLE_DEVICES`` either, the job asks
  SLURM (``scontrol show job -d $SLURM_JOB_ID``: ``GRES=gpu:1(IDX:2)``) and sets
  ``CUDA_VISIBLE_DEVICES`` to the allocated indices before CUDA starts.
- *The card against the wheel.* A usable card runs only if the torch build has kernels for
  it (``supports_capability``), else the job stops with the node, card, capability, the
  build's architecture list and what to do.

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
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterable, Mapping, MutableMapping
from pathlib import Path

import torch

# The CUDA 13.x wheels of torch need an NVIDIA Linux driver of branch 580 or newer
# (NVIDIA's CUDA 13.0 release notes: 13.0 GA needs >= 580.65.06).
MIN_DRIVER = (580, 65, 6)
DRIVER_FILE = Path("/proc/driver/nvidia/version")
# Values of CUDA_VISIBLE_DEVICES that hide every GPU rather than select one.
_NO_GPU = {"", "-1", "none", "nodevfiles", "void"}
# What a GPU job's errors list: the variables that say which GPUs it was given.
SEEN_VARS = (
    "SLURM_JOB_ID",
    "SLURM_ARRAY_JOB_ID",
    "SLURM_ARRAY_TASK_ID",
    "SLURM_JOB_GPUS",
    "SLURM_STEP_GPUS",
    "SLURM_GPUS_ON_NODE",
    "SLURM_GPUS",
    "CUDA_VISIBLE_DEVICES",
    "NVIDIA_VISIBLE_DEVICES",
    "CURVMIA_GPUS",
)
# sm_XY (cubin for compute capability X.Y; an "a" suffix: that exact capability only).
_SM = re.compile(r"sm_(\d+)(\d)([af]?)")
WHAT_TO_DO_CARD = (
    "What to do: run the GPU rules on a partition whose cards this build supports"
    " (set-resources: train: {slurm_partition: ...} in your profile), pin them to such cards"
    ' with a constraint line (set-resources: train: {constraint: "a100|h100"}; the lines'
    " marked EDIT in profiles/slurm/config.yaml), or install a torch wheel built for this"
    " card (docs/cluster.md: Cards this torch build runs on)."
)


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


def supports_capability(capability: tuple[int, int], arch_list: Iterable[str]) -> bool:
    """Whether a torch build with architectures ``arch_list`` has kernels for a card.

    True if and only if some ``sm_XY`` in the list has X equal to the card's major and
    Y <= its minor (cubins run on later minors of the same major: 8.9 runs sm_86; 7.0 does
    not run sm_75). ``sm_XYa`` counts for capability X.Y only. ``compute_XY`` (PTX)
    entries are not counted: JIT-compiling every kernel from PTX on a newer card is
    possible in principle but slow and not what the build was tested on, so such a card is
    refused (conservative; docs/cluster.md).
    """
    major, minor = capability
    for arch in arch_list:
        m = _SM.fullmatch(arch.strip())
        if m is None:
            continue
        x, y, suffix = int(m.group(1)), int(m.group(2)), m.group(3)
        if x == major and (y == minor if suffix == "a" else y <= minor):
            return True
    return False


def node_name(env: Mapping[str, str] | None = None) -> str:
    """The node a job runs on: SLURMD_NODENAME (SLURM's name for it), else the host name."""
    env = os.environ if env is None else env
    return env.get("SLURMD_NODENAME") or socket.gethostname()


def seen_variables(env: Mapping[str, str]) -> str:
    """The GPU variables of ``env`` as one line: NAME=value, or NAME unset."""
    return ", ".join(f"{k}={env[k]}" if k in env else f"{k} unset" for k in SEEN_VARS)


def unsupported_card_message(
    name: str, capability: tuple[int, int], arch_list: list[str], node: str
) -> str:
    """Why a job stops on a card the torch build has no kernels for, and what to do."""
    cap = f"{capability[0]}.{capability[1]}"
    return (
        f"node {node}: the GPU {name} (compute capability {cap}) cannot run this torch build"
        f" (torch {torch.__version__}, kernels for {' '.join(arch_list) or 'no architecture'}):"
        f" a card of capability {cap} needs an sm_{capability[0]}Y entry with Y <="
        f" {capability[1]}.\n{WHAT_TO_DO_CARD}"
    )


def check_card(env: Mapping[str, str] | None = None, index: int = 0) -> None:
    """Stop (RuntimeError) when CUDA device ``index`` is a card the torch build cannot run."""
    capability = tuple(torch.cuda.get_device_capability(index))
    arch_list = list(torch.cuda.get_arch_list())
    if not supports_capability(capability, arch_list):
        name = torch.cuda.get_device_name(index)
        raise RuntimeError(unsupported_card_message(name, capability, arch_list, node_name(env)))


def requested_gpus(env: Mapping[str, str]) -> int:
    """GPUs this job's rule requested from SLURM: compute.gpus (``CURVMIA_GPUS``) inside a
    SLURM job, else 0 (a local run requests nothing: ``auto`` may use the CPU there)."""
    if not env.get("SLURM_JOB_ID"):
        return 0
    try:
        return max(0, int(env.get("CURVMIA_GPUS", "0") or 0))
    except ValueError:
        return 0


def slurm_gpu_indices(scontrol_output: str, job_id: str | None = None) -> list[str]:
    """The GPU indices of ``scontrol show job -d`` output (``GRES=gpu:1(IDX:0,2-3)``), of
    the record of ``job_id`` only when given: asked for an array's first job id, scontrol
    prints every task of the array (one record each, blank lines between)."""
    records = re.split(r"\n\s*\n", scontrol_output)
    if job_id is not None:
        records = [r for r in records if re.match(rf"\s*JobId={re.escape(job_id)}\b", r)]
    out: list[str] = []
    for spec in re.findall(r"GRES=\S*?gpu\S*?\(IDX:([0-9,\-]+)\)", "\n".join(records)):
        for part in spec.split(","):
            lo, _, hi = part.partition("-")
            out += [str(i) for i in range(int(lo), int(hi or lo) + 1)]
    return out


def ask_slurm_for_gpus(job_id: str) -> tuple[list[str], str]:
    """The GPU indices SLURM allocated to ``job_id`` on this node, and where they came from
    (or why none could be read: scontrol absent, e.g. inside an image, or failing)."""
    exe = shutil.which("scontrol")
    if exe is None:
        return [], "scontrol is not on PATH (inside an image?)"
    try:
        proc = subprocess.run(
            [exe, "show", "job", "-d", job_id], capture_output=True, text=True, timeout=30
        )
    except (OSError, subprocess.SubprocessError) as e:
        return [], f"scontrol show job -d {job_id} failed: {e}"
    if proc.returncode != 0:
        return [], f"scontrol show job -d {job_id} failed: {proc.stderr.strip()[-300:]}"
    gpus = slurm_gpu_indices(proc.stdout, job_id)
    return gpus, f"scontrol show job -d {job_id}: " + (
        f"GPU index(es) {','.join(gpus)}" if gpus else "no GPU index in the allocation"
    )


def restore_allocation(env: MutableMapping[str, str]) -> tuple[list[str], str]:
    """Make a SLURM job see the GPUs SLURM allocated to it when no variable names them.

    Array tasks of the SLURM executor lose ``SLURM_JOB_GPUS`` (see the module doc); where
    the site sets no ``CUDA_VISIBLE_DEVICES`` either, this sets it in ``env`` from SLURM's
    record of the job. Returns the GPUs (empty: none found) and how they were found.
    """
    gpus, how = ask_slurm_for_gpus(env["SLURM_JOB_ID"])
    if gpus:
        env["CUDA_VISIBLE_DEVICES"] = ",".join(gpus)
        print(
            f"curvmia: set CUDA_VISIBLE_DEVICES={env['CUDA_VISIBLE_DEVICES']} on node"
            f" {node_name(env)}: the GPU(s) SLURM allocated to job {env['SLURM_JOB_ID']}"
            f" ({how}); no variable of the job named them",
            file=sys.stderr,
            flush=True,
        )
    return gpus, how


def no_gpu_seen_message(preference: str, requested: int, env: Mapping[str, str], how: str) -> str:
    """Why a GPU job that sees no GPU stops instead of running on the CPU."""
    return (
        f"compute.device: {preference!r}: this job's rule requested {requested} GPU(s)"
        f" (compute.gpus) from SLURM (job {env.get('SLURM_JOB_ID')}), but on node"
        f" {node_name(env)} the job sees none; it stops instead of running on the CPU.\n"
        f"Variables it saw: {seen_variables(env)}.\n"
        f"SLURM's record: {how}.\n"
        "What to do: check the profile's GPU request for this rule (set-resources: gpu, or"
        ' gres: "gpu:1") and that the node exposes the GPU (CUDA_VISIBLE_DEVICES); set'
        " compute.device: cpu to run on the CPU on purpose (docs/cluster.md: GPUs)."
    )


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
    env: MutableMapping[str, str] | None = None,
    cuda_available: bool | None = None,
) -> torch.device:
    """The device of this job for compute.device ``preference`` (table in the module doc).

    Raises RuntimeError, naming the likely causes, when a GPU was allocated or requested
    (or ``cuda`` asked for) and CUDA cannot be used, or when the card is one the torch
    build has no kernels for. May set ``CUDA_VISIBLE_DEVICES`` in ``env`` (os.environ by
    default) to the GPUs SLURM allocated (restore_allocation), before CUDA starts.
    """
    if preference not in ("auto", "cpu", "cuda"):
        raise ValueError(f"compute.device: expected auto, cpu or cuda, got {preference!r}")
    if preference == "cpu":
        return torch.device("cpu")
    env = os.environ if env is None else env
    seen = dict(env)
    gpus = allocated_gpus(env)
    how = "not asked (a variable names the job's GPUs)" if gpus else "not a SLURM job"
    if not gpus and env.get("SLURM_JOB_ID"):
        gpus, how = restore_allocation(env)
    usable = torch.cuda.is_available() if cuda_available is None else cuda_available
    if usable:
        check_card(env)
        return torch.device("cuda")
    if gpus:
        raise RuntimeError(
            f"compute.device: {preference!r}: "
            + unusable_gpu_message(gpus, driver_version(), _libcuda_loads(), torch.version.cuda)
            + f"\nNode {node_name(env)}; variables the job saw: {seen_variables(seen)}."
        )
    requested = requested_gpus(env)
    if requested:
        raise RuntimeError(no_gpu_seen_message(preference, requested, seen, how))
    if preference == "cuda":
        raise RuntimeError(
            "compute.device: 'cuda' but no GPU was allocated to this job and none is visible:"
            " set compute.gpus: 1 so that training and scoring jobs request one, or use"
            " compute.device: auto / cpu"
        )
    return torch.device("cpu")
