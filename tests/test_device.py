"""compute.device against the GPUs a job was allocated (curvmia.device; docs/cluster.md)."""

import subprocess
import sys

import pytest
from _util import REPO, subprocess_env

from curvmia.device import allocated_gpus, driver_version, pick_device, unusable_gpu_message

SLURM_GPU = {"SLURM_JOB_GPUS": "0", "CUDA_VISIBLE_DEVICES": "0"}
NO_GPU: dict[str, str] = {}

# (device, env, CUDA usable) -> expected device, or the error's key phrase
CASES = [
    ("auto", SLURM_GPU, True, "cuda"),
    ("auto", SLURM_GPU, False, "cannot use CUDA"),
    ("auto", NO_GPU, True, "cuda"),
    ("auto", NO_GPU, False, "cpu"),
    ("cpu", SLURM_GPU, True, "cpu"),
    ("cpu", SLURM_GPU, False, "cpu"),
    ("cpu", NO_GPU, True, "cpu"),
    ("cpu", NO_GPU, False, "cpu"),
    ("cuda", SLURM_GPU, True, "cuda"),
    ("cuda", SLURM_GPU, False, "cannot use CUDA"),
    ("cuda", NO_GPU, True, "cuda"),
    ("cuda", NO_GPU, False, "no GPU was allocated"),
]


@pytest.mark.parametrize("device,env,usable,expected", CASES)
def test_device_table(device, env, usable, expected):
    if expected in ("cpu", "cuda"):
        assert pick_device(device, env=env, cuda_available=usable).type == expected
    else:
        with pytest.raises(RuntimeError, match=expected):
            pick_device(device, env=env, cuda_available=usable)


def test_allocated_gpus_reads_slurm_then_cuda_visible_devices():
    assert allocated_gpus({"SLURM_JOB_GPUS": "2,3"}) == ["2", "3"]
    assert allocated_gpus({"SLURM_STEP_GPUS": "1"}) == ["1"]
    assert allocated_gpus({"CUDA_VISIBLE_DEVICES": "GPU-5d1c"}) == ["GPU-5d1c"]
    # the CPU image's CUDA_VISIBLE_DEVICES="" and the usual "hide all" values mean none
    for hidden in ("", "-1", "NoDevFiles"):
        assert allocated_gpus({"CUDA_VISIBLE_DEVICES": hidden}) == []
    assert allocated_gpus({}) == []


def test_driver_version_parses_the_kernel_module_line(tmp_path):
    f = tmp_path / "version"
    f.write_text(
        "NVRM version: NVIDIA UNIX x86_64 Kernel Module  550.54.15  Tue Mar  5 22:23:56 UTC 2024\n"
        "GCC version:  gcc version 12.2.0\n"
    )
    assert driver_version(f) == (550, 54, 15)
    f.write_text("NVRM version: NVIDIA UNIX Open Kernel Module for x86_64  580.82.07  Release\n")
    assert driver_version(f) == (580, 82, 7)
    assert driver_version(tmp_path / "absent") is None


def test_message_names_the_likely_cause():
    no_nv = unusable_gpu_message(["0"], (580, 82, 7), libcuda=False, torch_cuda="13.0")
    assert "--nv" in no_nv and "older" not in no_nv
    old = unusable_gpu_message(["0"], (550, 54, 15), libcuda=True, torch_cuda="13.0")
    assert "550.54.15 is older than the >= 580.65.6" in old and "--nv" not in old
    cpu_build = unusable_gpu_message(["0"], None, libcuda=False, torch_cuda=None)
    assert "no CUDA support" in cpu_build and "no NVIDIA kernel driver" in cpu_build


@pytest.mark.skipif(
    __import__("torch").cuda.is_available(), reason="needs a machine where CUDA is unusable"
)
def test_train_job_allocated_a_gpu_without_cuda_stops_before_reading_data(tmp_path):
    """As SLURM starts a GPU job on a node whose image lacks --nv: exit 1 at once."""
    env = {**subprocess_env(), "SLURM_JOB_GPUS": "0", "CUDA_VISIBLE_DEVICES": "0"}
    out = tmp_path / "model.pt"
    cmd = [sys.executable, str(REPO / "scripts" / "train.py"), "--data", str(tmp_path / "none")]
    cmd += ["--masks", str(tmp_path / "none.npz"), "--row", "0", "--train", "{}"]
    cmd += ["--device", "auto", "--out", str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=tmp_path)
    assert proc.returncode != 0
    # the device check came first: no complaint about the missing data directory
    assert "allocated GPU(s) 0 but torch cannot use CUDA" in proc.stderr, proc.stderr[-2000:]
    assert "FileNotFoundError" not in proc.stderr and not out.exists()
