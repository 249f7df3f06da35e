"""The rehearsal: the paper's config/cifar10.yaml on a real single-node SLURM (with slurmdbd
accounting), from the repository root of a fresh clone, with the bundled profile profiles/slurm.

The experiment is config/cifar10.yaml with config/presets/rehearsal.yaml (scale and compute
knobs only: 4 models, 1 epoch, niter 1, one Hutchinson probe, device cpu, a fixed forward
batch) and a generated overlay naming the local mirror of a synthetic CIFAR-10 archive in
the official format (tests/_cifar.py: 100 population and 20 test images) and its md5
(data.md5). The profile runs unchanged except for what tests/profiles/slurm-local/config.yaml
takes away (no Apptainer here) and the plugin's first status check, which it moves from
40 s to 2 s. Checked: the model is the 11,173,962-parameter CIFAR ResNet-18; every job but
the local download went through sbatch (sacct) under the account, training and scoring as
job arrays that requested a GPU of the node's count-only GPUs; the CPUs and memory each job
requested are the ones the rules declare from cifar10.yaml's compute section; the metrics
equal a local run of the same overlay in another fresh clone. Skips on a machine without
root/apt, but FAILS when CI=true. Hard limit: TIME_LIMIT_S from cluster start to the last
check.
"""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from _cifar import write_cifar_archive
from _slurm import (
    ACCOUNT,
    HIGH_PARTITION,
    Cluster,
    SlurmUnavailable,
    ensure_installed,
    running_cluster,
)
from _util import fresh_clone, planned_jobs, snakemake_cmd, subprocess_env

REPO = Path(__file__).resolve().parents[1]
TEST_CONFIG = REPO / "tests" / "config" / "test.yaml"
SHIPPED = REPO / "profiles" / "slurm" / "config.yaml"
TEST_LAYER = REPO / "tests" / "profiles" / "slurm-local" / "config.yaml"
WORKFLOW_PROFILE = REPO / "profiles" / "default" / "config.yaml"
# Hard limit from cluster start to the last check (the env override is for loaded dev machines).
TIME_LIMIT_S = int(os.environ.get("CURVMIA_SLURM_TIME_LIMIT_S", "1500"))
IN_CI = os.environ.get("CI", "").lower() == "true"

pytestmark = pytest.mark.slow


def layered(base: dict, top: dict) -> dict:
    """`top` over `base`: mappings merge key by key, None deletes a key, the rest replaces."""
    out = dict(base)
    for key, value in top.items():
        if value is None:
            out.pop(key, None)
        elif isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = layered(out[key], value)
        else:
            out[key] = value
    return out


def test_test_layer_removes_only_what_this_machine_lacks():
    shipped = yaml.safe_load(SHIPPED.read_text())
    merged = layered(shipped, yaml.safe_load(TEST_LAYER.read_text()))
    changed = {k for k in shipped.keys() | merged.keys() if shipped.get(k) != merged.get(k)}
    assert changed == {
        "software-deployment-method",
        "apptainer-args",
        "default-resources",
        "slurm-init-seconds-before-status-checks",
    }
    assert merged["default-resources"] == {"slurm_account": ACCOUNT}


REHEARSAL = ["config/cifar10.yaml", "config/presets/rehearsal.yaml"]


@pytest.fixture(scope="module")
def mirror_overlay(tmp_path_factory) -> tuple[Path, str]:
    """The synthetic CIFAR-10 archive in a local mirror directory, and the overlay that
    names it (data.mirror) and its md5 (data.md5): the rehearsal preset's EDIT lines."""
    root = tmp_path_factory.mktemp("mirror")
    _, md5 = write_cifar_archive(root / "mirror", "cifar10", n_per_batch=20, n_test=20)
    overlay = root / "mirror.yaml"
    overlay.write_text(yaml.safe_dump({"data": {"mirror": str(root / "mirror"), "md5": md5}}))
    return overlay, md5


def snakemake_in(*args: str) -> list[str]:
    """A Snakemake command run in the repository root (no -s, no -d), as a user types it."""
    return [sys.executable, "-m", "snakemake", *args]


@pytest.fixture(scope="module")
def local_rehearsal(mirror_overlay, tmp_path_factory) -> Path:
    """The same experiment run locally in another fresh clone (before the cluster starts:
    its clock is not ours). `--cores all`: the jobs' threads are min(compute.threads, the
    machine's CPUs), as inside the SLURM jobs here."""
    clone = fresh_clone(tmp_path_factory.mktemp("local") / "curvmia")
    cmd = snakemake_in("--configfile", *REHEARSAL, str(mirror_overlay[0]), "--cores", "all")
    proc = subprocess.run(cmd, cwd=clone, capture_output=True, text=True, env=subprocess_env())
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-5000:]
    return clone


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    if not IN_CI and os.geteuid() != 0:
        pytest.skip("needs root (apt-get, slurmd); CI=true makes this a failure")
    t0 = time.monotonic()
    try:
        apt_s = ensure_installed()
        print(f"apt-get install: {apt_s:.1f} s")
        root = tmp_path_factory.mktemp("slurm")
        with running_cluster(root) as c:
            c.started = time.monotonic()
            print(f"cluster up after {c.started - t0:.1f} s")
            yield c
    except SlurmUnavailable as e:
        if IN_CI:
            pytest.fail(f"SLURM unavailable in CI: {e}")
        pytest.skip(f"SLURM unavailable: {e}")


def run_until(cmd: list[str], env: dict, cwd: Path, deadline: float, cluster: Cluster):
    """Run `cmd`; past `deadline` kill its process group and cancel the cluster's jobs."""
    proc = subprocess.Popen(
        cmd,
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    out = wait_or_fail(proc, deadline, cluster, f"time limit ({TIME_LIMIT_S} s) exceeded")
    return proc.returncode, out


def wait_or_fail(proc: subprocess.Popen, deadline: float, cluster: Cluster, what: str) -> str:
    """`proc`'s output once it ends; past `deadline` kill its process group, cancel the
    cluster's jobs and fail with `what` and the output's tail."""
    try:
        out, _ = proc.communicate(timeout=max(1.0, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate()
        subprocess.run(["scancel", "--user", "root"], env=cluster.env, capture_output=True)
        pytest.fail(f"{what}:\n{out[-5000:]}")
    return out


def test_rehearsal_of_cifar10_on_slurm_equals_local_run(
    local_rehearsal, mirror_overlay, cluster, tmp_path
):
    deadline = cluster.started + TIME_LIMIT_S
    overlay, md5 = mirror_overlay
    profile = tmp_path / "profile"
    profile.mkdir()
    merged = layered(yaml.safe_load(SHIPPED.read_text()), yaml.safe_load(TEST_LAYER.read_text()))
    (profile / "config.yaml").write_text(yaml.safe_dump(merged))
    clone = fresh_clone(tmp_path / "curvmia")
    env = {**subprocess_env(), **{"SLURM_CONF": cluster.env["SLURM_CONF"]}}
    cmd = snakemake_in("--profile", str(profile), "--configfile", *REHEARSAL, str(overlay))

    rc, plan_out = run_until([*cmd, "-n"], env, clone, deadline, cluster)
    assert rc == 0, plan_out[-5000:]
    plan = planned_jobs(plan_out)
    assert plan["train"] == 4 and plan["score"] == 4 and plan["download_data"] == 1, plan

    rc, out = run_until(cmd, env, clone, deadline, cluster)
    assert rc == 0, out[-8000:]
    print(f"SLURM run done {time.monotonic() - cluster.started:.0f} s after the cluster start")
    run_id = re.search(r"SLURM run ID: (\S+)", out).group(1)
    results = clone / "results" / "cifar10-rehearsal"

    # the synthetic archive is kept apart from the official one and prepared on its own
    assert (clone / "data" / "raw" / md5 / "cifar-10-python.tar.gz").is_file()
    assert not (clone / "data" / "raw" / "cifar-10-python.tar.gz").exists()
    manifest = json.loads(next((clone / "data").glob("cifar10-*/manifest.json")).read_text())
    assert (manifest["n_train"], manifest["n_test"]) == (100, 20), manifest

    # the paper's model: the CIFAR ResNet-18 (11,173,962 parameters, docs/method.md), as
    # counted from the weights themselves (the BatchNorm buffers are not parameters), as
    # recorded in each checkpoint and training log, and in the model table
    buffers = ("running_mean", "running_var", "num_batches_tracked")
    for row in range(4):
        ckpt = torch.load(results / "models" / f"model_{row}.pt", weights_only=True)
        weights = {k: v for k, v in ckpt["state_dict"].items() if not k.endswith(buffers)}
        assert sum(v.numel() for v in weights.values()) == 11_173_962
        assert ckpt["n_params"] == 11_173_962
        log = (results / "logs" / "train" / f"model_{row}.log").read_text()
        assert "model cifar_resnet18 {}: 11173962 parameters" in log, log
    models_r = pd.read_csv(results / "models.csv")
    assert (models_r["n_params"] == 11_173_962).all(), models_r

    # Every job except `all` and the local download went through sbatch and completed under
    # the cluster's account: one sbatch job per task of the job arrays (train, score), per
    # group of the workflow profile's `groups` (all components merged) and per other job.
    jobs = [j for j in cluster.sacct_jobs() if j["JobName"] == run_id]
    assert jobs, cluster.sacct_jobs()
    groups = yaml.safe_load(WORKFLOW_PROFILE.read_text())["groups"]

    # a group job's comment is rule_<group>_<its rules, sorted, joined by _>, where Snakemake
    # (GroupJob.name) lists at most 5 rules and then "..."
    def group_comment_of(g: str) -> str:
        rules = sorted(r for r in plan if groups.get(r) == g)
        rules = rules[:5] + ["..."] if len(rules) > 5 else rules
        return f"rule_{g}_" + "_".join(rules)

    group_comment = {group_comment_of(g): g for g in set(groups.values())}
    submitted: dict[str, int] = {}
    arrays = set()
    for j in jobs:
        assert j["State"] == "COMPLETED" and j["ExitCode"] == "0:0", j
        assert j["Account"] == ACCOUNT, j
        name = group_comment.get(j["Comment"])
        if name is None:
            name = re.fullmatch(r"rule_(\w+?)(_wildcards_.*)?", j["Comment"]).group(1)
        submitted[name] = submitted.get(name, 0) + 1
        if "_" in j["JobID"]:  # a task of a job array
            arrays.add(name)
    expected: dict[str, int] = {}
    for rule, n in plan.items():
        if rule in groups:
            expected[groups[rule]] = 1
        elif rule not in ("all", "download_data"):
            expected[rule] = n
    assert submitted == expected
    assert {"train", "score"} <= set(merged["slurm-array-jobs"].split(","))
    # (a wave with a single ready job goes as a plain job; the rest as arrays)
    assert arrays == {"train", "score"}, jobs
    # nothing but the target rule and the download (a local rule: login nodes have the
    # network) ran in the submitting process
    local_rules = re.findall(r"^localrule (\w+):", out, re.M)
    assert sorted(local_rules) == ["all", "download_data"], out[-5000:]

    # What each job requested is what the rules declare from cifar10.yaml's compute section:
    # training and scoring compute.threads CPUs, compute.jobs.<kind>.mem_mb and compute.gpus
    # GPUs; the prep group its largest step (prepare_data: data.workers CPUs, the prepare
    # memory; make_masks runs after it); the post group the workflow profile's cpu_steps
    # light steps side by side, not the sum of its steps.
    paper = yaml.safe_load((REPO / "config" / "cifar10.yaml").read_text())
    compute = paper["compute"]
    steps = int(yaml.safe_load(WORKFLOW_PROFILE.read_text())["resources"][0].split("=")[1])
    want = {
        kind: (compute["threads"], compute["jobs"][kind]["mem_mb"], compute["gpus"])
        for kind in ("train", "score")
    }
    want["prep"] = (paper["data"]["workers"], compute["jobs"]["prepare"]["mem_mb"], 0)
    want["post"] = (steps, steps * compute["jobs"]["light"]["mem_mb"], 0)
    assert want["train"] == (8, 16000, 1) and want["post"] == (4, 16000, 0)  # by hand
    got = {}
    for j in jobs:
        tres = dict(kv.split("=", 1) for kv in j["ReqTRES"].split(",") if kv)
        kind = group_comment.get(j["Comment"]) or j["Comment"].split("_wildcards")[0][5:]
        assert tres["mem"].endswith("M"), tres
        mem = int(tres["mem"][:-1])
        # (the plugin adds a few MB to an array job for its payload)
        mem = want[kind][1] if 0 <= mem - want[kind][1] < 16 else mem
        got.setdefault(kind, set()).add((int(tres["cpu"]), mem, int(tres.get("gres/gpu", 0))))
    assert got == {kind: {want[kind]} for kind in got} and set(got) == set(want), got

    # Inside the jobs the threads are min(compute.threads, the node's CPUs that the job
    # sees): this test node claims 32 CPUs on a machine with fewer, and task/none binds none.
    threads = min(compute["threads"], len(os.sched_getaffinity(0)))
    for row in range(4):
        with np.load(results / "scores" / f"model_{row}.npz") as z:
            assert json.loads(str(z["meta"]))["threads"] == threads

    local = local_rehearsal / "results" / "cifar10-rehearsal"
    pd.testing.assert_frame_equal(
        pd.read_csv(results / "metrics.csv"), pd.read_csv(local / "metrics.csv")
    )
    models_l = pd.read_csv(local / "models.csv").drop(columns="seconds")
    pd.testing.assert_frame_equal(models_r.drop(columns="seconds"), models_l)
    assert time.monotonic() < deadline


def test_gpu_array_without_gpu_variables_fails_loudly(mirror_overlay, cluster, tmp_path):
    """Issue 26: training as a job array with compute.device: auto. The plugin runs array
    tasks without srun and drops their SLURM_* GPU variables, and this node sets no
    CUDA_VISIBLE_DEVICES for batch jobs (its GPUs are empty files): before, each task saw no
    GPU and trained on the CPU. Now each asks SLURM for its GPU, sets CUDA_VISIBLE_DEVICES,
    finds CUDA unusable and stops at once with the node and the variables it saw."""
    t0 = time.monotonic()
    profile = tmp_path / "profile"
    profile.mkdir()
    merged = layered(yaml.safe_load(SHIPPED.read_text()), yaml.safe_load(TEST_LAYER.read_text()))
    (profile / "config.yaml").write_text(yaml.safe_dump(merged))
    auto = tmp_path / "auto.yaml"
    auto.write_text(yaml.safe_dump({"compute": {"device": "auto"}}))
    clone = fresh_clone(tmp_path / "curvmia")
    env = {**subprocess_env(), "SLURM_CONF": cluster.env["SLURM_CONF"]}
    results = clone / "results" / "cifar10-rehearsal"
    configs = ["--configfile", *REHEARSAL, str(mirror_overlay[0]), str(auto)]
    # the data and masks locally (cheaper than a prep job and its status polls), then the
    # two training jobs through SLURM: one array
    masks = "results/cifar10-rehearsal/masks.npz"
    cmd = snakemake_in(*configs, "--cores", "all", masks)
    rc, out = run_until(cmd, env, clone, t0 + 600, cluster)
    assert rc == 0, out[-5000:]
    t1 = time.monotonic()
    models = [f"results/cifar10-rehearsal/models/model_{r}.pt" for r in (0, 1)]
    cmd = snakemake_in("--profile", str(profile), *configs, "--retries", "0", *models)
    rc, out = run_until(cmd, env, clone, t0 + 600, cluster)
    print(f"GPU array check: {t1 - t0:.0f} s to prepare, {time.monotonic() - t1:.0f} s on SLURM")
    assert rc != 0, out[-5000:]
    run_id = re.search(r"SLURM run ID: (\S+)", out).group(1)
    train = [j for j in cluster.sacct_jobs() if j["JobName"] == run_id]
    # one array of two training tasks and nothing else; each requested a GPU and failed
    assert all(re.fullmatch(r"rule_train(_wildcards_.*)?", j["Comment"]) for j in train), train
    assert len(train) == 2 and all("_" in j["JobID"] for j in train), train
    assert {j["State"] for j in train} == {"FAILED"}, train
    assert all("gres/gpu=1" in j["ReqTRES"] for j in train), train
    tasks = set()
    for row in (0, 1):
        log = (results / "logs" / "train" / f"model_{row}.log").read_text()
        got = re.search(
            r"curvmia: set CUDA_VISIBLE_DEVICES=([0-3]) on node localhost: the GPU\(s\) SLURM"
            r" allocated to job (\d+) \(scontrol show job -d \2: GPU index\(es\) \1\)",
            log,
        )
        assert got, log
        gpu = got.group(1)
        assert f"this job was allocated GPU(s) {gpu} but torch cannot use CUDA" in log, log
        seen = re.search(r"Node localhost; variables the job saw: (.*)\.$", log, re.M)
        assert seen, log
        seen = dict(
            v.split("=", 1) if "=" in v else (v[:-6], None) for v in seen.group(1).split(", ")
        )
        tasks.add(f"{seen['SLURM_ARRAY_JOB_ID']}_{seen['SLURM_ARRAY_TASK_ID']}")
        assert seen["SLURM_JOB_ID"] == got.group(2)
        for var in ("SLURM_JOB_GPUS", "SLURM_STEP_GPUS", "SLURM_GPUS"):
            assert seen[var] is None, (var, seen)  # dropped by the plugin's job step
        assert seen["CUDA_VISIBLE_DEVICES"] is None and seen["CURVMIA_GPUS"] == "1", seen
        # it stopped before reading data or building the model: nothing trained on the CPU
        assert "parameters" not in log and "epoch" not in log.lower(), log
    assert tasks == {j["JobID"] for j in train}
    assert not (results / "models").exists() or not any((results / "models").iterdir())


def test_bundled_profile_by_its_path_from_repo_root(tmp_path):
    """`snakemake --profile profiles/slurm` typed in the repository root, with the workflow
    profile profiles/default beside it."""
    cmd = snakemake_cmd(tmp_path, TEST_CONFIG, "--profile", "profiles/slurm", "-n")
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, env=subprocess_env())
    out = proc.stdout + proc.stderr
    assert "Using profiles profiles/slurm and workflow specific profile profiles/default" in out, (
        out[-3000:]
    )
    if shutil.which("apptainer") or shutil.which("singularity"):
        assert proc.returncode == 0, out[-3000:]
    else:
        # the profile's software-deployment-method took effect: it stops before any job
        assert proc.returncode != 0
        assert "apptainer or singularity command has to be available" in out, out[-3000:]


# ---------------------------------------------------------------- retries, preemption, preflight
RETRY_WORKFLOW = REPO / "tests" / "workflows" / "cluster_retry" / "Snakefile"


def shipped_profile(directory: Path, top: dict) -> Path:
    """profiles/slurm under the test layer and `top` (layered the same way)."""
    merged = layered(yaml.safe_load(SHIPPED.read_text()), yaml.safe_load(TEST_LAYER.read_text()))
    directory.mkdir(parents=True)
    (directory / "config.yaml").write_text(yaml.safe_dump(layered(merged, top)))
    return directory


def sacct_runs(cluster: Cluster, name: str) -> list[dict[str, str]]:
    """Every run of every job of one workflow run (sacct -D: a requeued job's earlier runs
    too), in submission order."""
    fields = ["JobID", "State", "TimelimitRaw", "Comment", "Partition"]
    out = subprocess.run(
        ["sacct", "-a", "-X", "-D", "-n", "-P", f"--format={','.join(fields)}", "--name", name]
        + ["-S", "now-1hours"],
        capture_output=True,
        text=True,
        env=cluster.env,
        check=True,
    ).stdout
    return [dict(zip(fields, line.split("|"), strict=True)) for line in out.splitlines()]


def test_retries_and_preemption_through_the_shipped_profile(cluster, tmp_path):
    """A preempted job comes back under its job id and time limit and is no new attempt;
    a time-limit kill is retried with twice the time, a Python error with the same time.
    The account is left unset (slurm-no-account: true): the preflight lets it pass."""
    deadline = time.monotonic() + 420
    profile = shipped_profile(
        tmp_path / "profile", {"default-resources": None, "slurm-no-account": True}
    )
    workdir = tmp_path / "work"
    env = {**subprocess_env(), "SLURM_CONF": cluster.env["SLURM_CONF"]}
    cmd = snakemake_in("-s", str(RETRY_WORKFLOW), "-d", str(workdir), "--profile", str(profile))
    t0 = time.monotonic()
    proc = subprocess.Popen(
        cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        start_new_session=True,
    )  # fmt: skip
    # once the `preempted` job runs, a job in the high-priority partition takes the
    # whole node: SLURM preempts it (PreemptMode=REQUEUE)
    while time.monotonic() < deadline:
        q = subprocess.run(
            ["squeue", "-h", "-o", "%i|%T|%k"], capture_output=True, text=True,
            env=cluster.env,
        ).stdout  # fmt: skip
        running = [ln.split("|")[0] for ln in q.splitlines() if ln.endswith("|rule_preempted")]
        if running and "RUNNING" in q:
            break
        assert proc.poll() is None, proc.stdout.read()[-5000:]
        time.sleep(0.5)
    time.sleep(3)
    subprocess.run(
        ["sbatch", "-p", HIGH_PARTITION, "-A", ACCOUNT, "--exclusive", "-J", "preemptor"]
        + ["-o", "/dev/null", "--wrap", "sleep 2"],
        env=cluster.env, check=True, capture_output=True,
    )  # fmt: skip
    # SLURM holds a requeued job for about 2 minutes (reason BeginTime): release it
    # now (scontrol update StartTime; the requeue itself is SLURM's own)
    while time.monotonic() < deadline:
        q = subprocess.run(
            ["squeue", "-h", "-j", running[0], "-o", "%T|%r"], capture_output=True,
            text=True, env=cluster.env,
        ).stdout.strip()  # fmt: skip
        if q == "PENDING|BeginTime":
            subprocess.run(
                ["scontrol", "update", f"JobId={running[0]}", "StartTime=now"],
                env=cluster.env, check=True, capture_output=True,
            )  # fmt: skip
            break
        time.sleep(0.5)
    out = wait_or_fail(proc, deadline, cluster, "retry workflow did not finish in time")
    print(f"retry workflow: {time.monotonic() - t0:.0f} s")
    assert proc.returncode == 0, out[-8000:]
    run_id = re.search(r"SLURM run ID: (\S+)", out).group(1)
    runs = sacct_runs(cluster, run_id)
    by_rule: dict[str, list[tuple[str, str, str]]] = {}
    for r in runs:
        by_rule.setdefault(r["Comment"], []).append((r["JobID"], r["State"], r["TimelimitRaw"]))
    # one sbatch for `preempted` (no new attempt), run twice under its id, both times with
    # its own 5-minute limit (the cluster requeues only jobs submitted with --requeue:
    # JobRequeue=0); only the second run got to its end
    (job, _, _), (job2, state2, limit2) = by_rule["rule_preempted"]
    assert job == job2 and (state2, limit2) == ("COMPLETED", "5"), runs
    assert by_rule["rule_preempted"][0][1:] in {("PREEMPTED", "5"), ("REQUEUED", "5")}, runs
    assert (workdir / "preempted.done").read_text() == f"job={job}\n"
    # a time-limit kill: two jobs, the second with twice the limit
    assert [(s, t) for _, s, t in by_rule["rule_timeout"]] == [
        ("TIMEOUT", "1"),
        ("COMPLETED", "2"),
    ], runs
    # a Python error: two jobs with the same limit
    assert [(s, t) for _, s, t in by_rule["rule_pyerror"]] == [
        ("FAILED", "3"),
        ("COMPLETED", "3"),
    ], runs
    assert "the first attempt fails" in out


def test_preflight_refuses_a_placeholder_account_before_any_job(mirror_overlay, cluster, tmp_path):
    """The bundled profile with its EDIT line filled in with the placeholder: the run stops
    before the first sbatch, naming the profile file and the line."""
    profile = shipped_profile(
        tmp_path / "profile", {"default-resources": {"slurm_account": "myproject"}}
    )
    clone = fresh_clone(tmp_path / "curvmia")
    env = {**subprocess_env(), "SLURM_CONF": cluster.env["SLURM_CONF"]}
    cmd = snakemake_in(
        "--profile", str(profile), "--configfile", *REHEARSAL, str(mirror_overlay[0])
    )
    proc = subprocess.run(cmd, cwd=clone, env=env, capture_output=True, text=True, timeout=300)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0, out[-5000:]
    assert "SLURM refuses the jobs of rule" in out, out[-5000:]
    assert "Invalid account" in out, out[-5000:]
    assert (
        f"Edit {profile}/config.yaml: default-resources: slurm_account (the line marked EDIT)"
        in out
    ), out[-5000:]
    # nothing was submitted: no sbatch of this run reached SLURM, and the job that runs
    # locally (the download) did not start either
    run_id = re.search(r"SLURM run ID: (\S+)", out)
    if run_id:
        assert sacct_runs(cluster, run_id.group(1)) == []
    assert "localrule download_data" not in out, out[-5000:]
    assert not (clone / "data" / "raw").exists()
