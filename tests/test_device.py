"""compute.device against the GPUs a job was allocated (curvmia.device; docs/cluster.md)."""

import re
import subprocess
import sys

import pytest
import torch
from _util import REPO, subprocess_env

from curvmia.device import (
    allocated_gpus,
    driver_version,
    pick_device,
    slurm_gpu_indices,
    supports_capability,
    unusable_gpu_message,
)

# torch 2.14.1+cu130's architecture list (issue 26), written out: the fake cards run on it
WHEEL = ["sm_75", "sm_80", "sm_86", "sm_90", "sm_100", "sm_120"]


@pytest.fixture
def fake_card(monkeypatch):
    """Make torch see one CUDA card `name` of compute capability `cap`, on WHEEL."""

    def install(name: str, cap: tuple[int, int]) -> None:
        monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
        monkeypatch.setattr(torch.cuda, "get_device_name", lambda i=0: name)
        monkeypatch.setattr(torch.cuda, "get_device_capability", lambda i=0: cap)
        monkeypatch.setattr(torch.cuda, "get_arch_list", lambda: list(WHEEL))

    return install


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
def test_device_table(device, env, usable, expected, fake_card):
    env = dict(env)
    if usable:
        fake_card("NVIDIA A40", (8, 6))
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


# (capability, architecture list) -> usable, by the rule written out by hand: some
# sm_XY with X == major and Y <= minor; compute_XY (PTX) entries never count
CAPABILITY_CASES = [
    ((6, 0), WHEEL, False),  # P100
    ((6, 1), WHEEL, False),  # P40, GTX 10xx
    ((7, 0), WHEEL, False),  # V100: sm_75 is listed, but 0 < 5
    ((7, 2), WHEEL, False),
    ((7, 5), WHEEL, True),  # T4
    ((8, 0), WHEEL, True),  # A100
    ((8, 6), WHEEL, True),  # A40
    ((8, 9), WHEEL, True),  # L4: runs sm_86
    ((9, 0), WHEEL, True),  # H100
    ((10, 0), WHEEL, True),  # B200
    ((10, 3), WHEEL, True),  # B300: runs sm_100
    ((11, 0), WHEEL, False),  # no sm_11x
    ((12, 0), WHEEL, True),  # RTX 50xx
    ((12, 1), WHEEL, True),  # runs sm_120
    ((9, 0), ["sm_80", "compute_80"], False),  # PTX only: refused (conservative)
    ((8, 0), ["compute_80"], False),
    ((9, 0), ["sm_90a"], True),  # arch-specific: that capability only
    ((10, 3), ["sm_100a"], False),
    ((10, 3), ["sm_100f"], True),  # family: later minors of the major
    ((8, 6), [], False),
]


@pytest.mark.parametrize("cap,archs,usable", CAPABILITY_CASES)
def test_supports_capability_rule(cap, archs, usable):
    assert supports_capability(cap, archs) is usable


CARDS = [
    ("Tesla P100-PCIE-16GB", (6, 0), False),
    ("Tesla V100-SXM2-32GB", (7, 0), False),
    ("NVIDIA L4", (8, 9), True),
    ("NVIDIA H100 80GB HBM3", (9, 0), True),
    ("NVIDIA GB10", (12, 1), True),
]


@pytest.mark.parametrize("name,cap,usable", CARDS)
@pytest.mark.parametrize("device", ["auto", "cuda"])
def test_pick_device_checks_the_card_against_the_wheel(name, cap, usable, device, fake_card):
    fake_card(name, cap)
    env = {"SLURMD_NODENAME": "gpu-node-07", "SLURM_JOB_GPUS": "0", "CUDA_VISIBLE_DEVICES": "0"}
    if usable:
        assert pick_device(device, env=env).type == "cuda"
        return
    with pytest.raises(RuntimeError) as err:
        pick_device(device, env=env)
    msg = str(err.value)
    assert f"node gpu-node-07: the GPU {name} (compute capability {cap[0]}.{cap[1]})" in msg
    assert "kernels for sm_75 sm_80 sm_86 sm_90 sm_100 sm_120" in msg, msg
    assert f"needs an sm_{cap[0]}Y entry with Y <= {cap[1]}" in msg
    # what to do: another partition, a constraint line in the profile, a wheel for the card
    assert "slurm_partition" in msg and 'constraint: "a100|h100"' in msg
    assert "torch wheel built for this card" in msg
    # compute.device: cpu never looks at the card
    assert pick_device("cpu", env=env).type == "cpu"


# An array task of the SLURM executor: the job's identity survives, its GPU variables do not
ARRAY_TASK = {
    "SLURM_JOB_ID": "41",
    "SLURM_ARRAY_JOB_ID": "40",
    "SLURM_ARRAY_TASK_ID": "1",
    "SLURMD_NODENAME": "gpu-node-07",
    "CURVMIA_GPUS": "1",
}


def test_slurm_job_that_requested_a_gpu_and_sees_none_stops(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))  # no scontrol (as inside the image)
    env = dict(ARRAY_TASK)
    with pytest.raises(RuntimeError) as err:
        pick_device("auto", env=env, cuda_available=False)
    msg = str(err.value)
    assert "requested 1 GPU(s) (compute.gpus) from SLURM (job 41)" in msg, msg
    assert "on node gpu-node-07 the job sees none" in msg
    assert "SLURM_JOB_ID=41, SLURM_ARRAY_JOB_ID=40, SLURM_ARRAY_TASK_ID=1, " in msg
    assert "SLURM_JOB_GPUS unset, SLURM_STEP_GPUS unset, SLURM_GPUS_ON_NODE unset" in msg
    assert "CUDA_VISIBLE_DEVICES unset" in msg and "CURVMIA_GPUS=1" in msg
    assert "SLURM's record: scontrol is not on PATH" in msg
    assert "compute.device: cpu" in msg
    with pytest.raises(RuntimeError, match="requested 1 GPU"):
        pick_device("cuda", env=dict(ARRAY_TASK), cuda_available=False)
    # on purpose on the CPU; a local run (no SLURM job) and a rule that requested none
    assert pick_device("cpu", env=dict(ARRAY_TASK), cuda_available=False).type == "cpu"
    local = {k: v for k, v in ARRAY_TASK.items() if not k.startswith("SLURM")}
    assert pick_device("auto", env=local, cuda_available=False).type == "cpu"
    no_request = {**ARRAY_TASK, "CURVMIA_GPUS": "0"}
    assert pick_device("auto", env=no_request, cuda_available=False).type == "cpu"


# `scontrol show job -d` of an array task on the test cluster (tests/_slurm.py), abridged
SCONTROL = """JobId=41 ArrayJobId=40 ArrayTaskId=1 JobName=job.sh
   TRES=cpu=1,node=1,billing=1,gres/gpu=1
   JOB_GRES=gpu:1
     Nodes=localhost CPU_IDs=2 Mem=0 GRES=gpu:1(IDX:2)
   TresPerJob=gres:gpu:1
"""


# `scontrol show job -d 2` on the test cluster when 2 is an array's id and its task 2's: every
# task of the array, one record each (abridged)
SCONTROL_ARRAY = """JobId=3 ArrayJobId=2 ArrayTaskId=1 JobName=x
   TRES=cpu=8,mem=16000M,node=1,billing=8,gres/gpu=1
     Nodes=localhost CPU_IDs=0-7 Mem=16000 GRES=gpu:1(IDX:0)

JobId=2 ArrayJobId=2 ArrayTaskId=2 JobName=x
   TRES=cpu=8,mem=16000M,node=1,billing=8,gres/gpu=1
     Nodes=localhost CPU_IDs=8-15 Mem=16000 GRES=gpu:1(IDX:1)

"""


def test_slurm_gpu_indices_parses_scontrol():
    assert slurm_gpu_indices(SCONTROL) == ["2"]
    assert slurm_gpu_indices(SCONTROL, "41") == ["2"]
    assert slurm_gpu_indices(SCONTROL_ARRAY, "2") == ["1"]
    assert slurm_gpu_indices(SCONTROL_ARRAY, "3") == ["0"]
    assert slurm_gpu_indices(SCONTROL_ARRAY, "4") == []
    assert slurm_gpu_indices("Nodes=n1 GRES=gpu:a100:3(IDX:0,2-3)") == ["0", "2", "3"]
    assert slurm_gpu_indices("Nodes=n1 CPU_IDs=0-3 Mem=0 GRES=") == []


def test_array_task_gets_its_gpu_from_slurm(monkeypatch, tmp_path, capsys, fake_card):
    """No variable names the GPU: the job asks SLURM and sets CUDA_VISIBLE_DEVICES."""
    scontrol = tmp_path / "scontrol"
    scontrol.write_text(
        f"#!/bin/sh\n[ \"$*\" = 'show job -d 41' ] || exit 1\ncat <<'E'\n{SCONTROL}E\n"
    )
    scontrol.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}:/usr/bin:/bin")  # this scontrol first
    env = dict(ARRAY_TASK)
    with pytest.raises(RuntimeError) as err:
        pick_device("auto", env=env, cuda_available=False)
    assert env["CUDA_VISIBLE_DEVICES"] == "2"
    msg = str(err.value)
    assert "allocated GPU(s) 2 but torch cannot use CUDA" in msg
    assert "Node gpu-node-07; variables the job saw: SLURM_JOB_ID=41" in msg
    assert "CUDA_VISIBLE_DEVICES unset" in msg  # as it started
    log = capsys.readouterr().err
    assert (
        "set CUDA_VISIBLE_DEVICES=2 on node gpu-node-07: the GPU(s) SLURM allocated to job 41"
        in log
    )
    # where CUDA works, the job runs on the GPU it was given
    fake_card("NVIDIA H100 80GB HBM3", (9, 0))
    env = dict(ARRAY_TASK)
    assert pick_device("auto", env=env).type == "cuda" and env["CUDA_VISIBLE_DEVICES"] == "2"
    # a variable that names the GPU is kept as the site set it
    env = {**ARRAY_TASK, "CUDA_VISIBLE_DEVICES": "0"}
    assert pick_device("auto", env=env).type == "cuda" and env["CUDA_VISIBLE_DEVICES"] == "0"


def test_docs_card_table_agrees_with_the_wheel():
    """docs/cluster.md's table of cards: each row's verdict is the rule's on this wheel."""
    text = (REPO / "docs" / "cluster.md").read_text()
    section = text.split("## Cards this torch build runs on")[1].split("\n## ")[0]
    archs = torch.cuda.get_arch_list()
    assert f"`{' '.join(archs)}`" in section, archs
    rows = re.findall(r"^\| (\d+)\.(\d+) \| ([^|]+) \| (runs|refused)", section, re.M)
    assert len(rows) >= 10, rows
    for major, minor, cards, verdict in rows:
        usable = supports_capability((int(major), int(minor)), archs)
        assert usable == (verdict == "runs"), (major, minor, cards)
