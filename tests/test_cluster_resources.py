"""What each job requests from a cluster: the rules' own resources, from the experiment's config.

docs/cluster.md tabulates them for the shipped configs, with the group jobs' requests, as
scripts/cluster_requests.py computes them (curvmia/cluster_requests.py plans each config
through Snakemake's API); this test fails when the page differs from the script's output.
The profiles must not set resources of their own: the cluster profile holds cluster settings.
"""

import re
import subprocess
import sys

import pytest
import yaml
from _util import REPO, subprocess_env

DOC = REPO / "docs" / "cluster.md"
BEGIN, END = "<!-- resources:begin -->", "<!-- resources:end -->"


@pytest.fixture(scope="module")
def plans():
    """What scripts/cluster_requests.py plans for each shipped config (from scratch)."""
    from curvmia import cluster_requests

    return cluster_requests.plan_all()


def test_docs_table_is_the_scripts_output(plans):
    from curvmia.cluster_requests import render, table

    text = DOC.read_text()
    generated = table(plans)
    assert render(text, generated) == text, (
        f"docs/cluster.md is stale: run `make docs`; the script gives:\n{generated}"
    )
    documented = text.split(BEGIN)[1].split(END)[0].strip().splitlines()
    assert documented[0] == "| rule | digits | cifar10 | cifar100 | imagenet |"
    rows = {
        line.split(" | ")[0].strip("| "): line.strip("| ").split(" | ")[1:]
        for line in documented[2:]
    }
    # the paper configs request a GPU for training and scoring, digits none
    for rule in ("train", "train_sweep", "score_sweep"):
        digits, *paper = rows[rule]
        assert digits.endswith("· 0") and all(c.endswith("· 1") for c in paper), rows[rule]
    # threads drive --cpus-per-task: ImageNet's 16 threads, its 16 decoding workers
    assert rows["train"][3].startswith("16 ·") and rows["prepare_data"][3].startswith("16 ·")
    # one row per group job: at most 4 CPU steps side by side (profiles/default), no GPU
    for cells in (rows["group `post`"], rows["group `prep`"]):
        assert all(re.fullmatch(r"\d+ · \d+ · \d+ · 0 \(\d+ steps\)", c) for c in cells), cells


def test_every_job_of_a_rule_requests_the_same_and_cpu_steps_only_without_gpu(plans):
    for name, plan in plans.items():
        for rule, res in plan["rules"].items():
            # one slot per CPU step (profiles/default caps them); GPU steps have none
            assert ("cpu_steps" in res) == ("gpu" not in res), (name, rule, res)


def test_post_group_asks_for_the_light_estimate_of_each_layer(plans):
    """The `post` job of each config: 4 of its one-CPU `light` steps side by side, its time
    the light estimate times the layers (at least steps/4 of them), not the sum of all steps."""
    light = {
        n: yaml.safe_load((REPO / "config" / f).read_text())["compute"]["jobs"]["light"]
        for n, f in {
            "digits": "config.yaml",
            "cifar10": "cifar10.yaml",
            "imagenet": "imagenet.yaml",
        }.items()
    }
    for name, spec in light.items():
        (post,) = plans[name]["groups"]["post"]
        assert (post["cpus"], post["mem_mb"], post["gpu"]) == (4, 4 * spec["mem_mb"], 0), post
        layers, rest = divmod(post["runtime"], spec["runtime"])
        assert rest == 0 and -(-post["steps"] // 4) <= layers < post["steps"], (name, post)
    # ImageNet: 87 steps of 60 minutes, 24 layers (the request docs/cluster.md explains)
    assert plans["imagenet"]["groups"]["post"][0]["runtime"] == 24 * 60


@pytest.mark.parametrize("profile", ["slurm", "local", "default"])
def test_profiles_request_no_resources_of_their_own(profile):
    cfg = yaml.safe_load((REPO / "profiles" / profile / "config.yaml").read_text())
    assert "set-resources" not in cfg and "set-threads" not in cfg, profile
    assert not set(cfg.get("default-resources") or {}) - {"slurm_account", "slurm_partition"}
    # no bind of a path that may not exist on the user's cluster
    assert "--bind" not in str(cfg.get("apptainer-args", "")), cfg.get("apptainer-args")


def test_no_profile_link_shadows_a_users_own_profile():
    """`--profile slurm` must find the user's ~/.config/snakemake/slurm from the repository root."""
    for name in ("slurm", "local"):
        assert not (REPO / name).exists(), f"{name} in the repository root shadows a user profile"


STUBS = {
    "sbatch": 'echo "$@" >> "$STUB_LOG"; echo 4242',
    "sacctmgr": "echo curvmia",
    **{name: "exit 0" for name in ("sinfo", "scontrol", "sacct", "squeue", "sshare")},
}


def test_post_group_requests_four_steps_side_by_side_not_the_sum(test_config_run, tmp_path):
    """The `post` group job as the bundled profile submits it (sbatch stubbed out), on a copy
    of the finished test run with every rule of the group forced."""
    import os
    import shutil
    import time

    work, config = tmp_path / "work", str(REPO / "tests" / "config" / "test.yaml")
    shutil.copytree(test_config_run, work, symlinks=True)
    groups = yaml.safe_load((REPO / "profiles" / "default" / "config.yaml").read_text())["groups"]
    # score_merge has no job here (no shards): Snakemake refuses to force a rule it cannot find
    post_rules = [r for r, g in groups.items() if g == "post" and r != "score_merge"]
    bindir = tmp_path / "bin"
    bindir.mkdir()
    for name, body in STUBS.items():
        (bindir / name).write_text(f"#!/bin/bash\n{body}\n")
        (bindir / name).chmod(0o755)
    profile = yaml.safe_load((REPO / "profiles" / "slurm" / "config.yaml").read_text())
    for key in ("software-deployment-method", "apptainer-args"):  # no Apptainer here
        profile.pop(key)
    profile["default-resources"] = {"slurm_account": "curvmia"}
    (tmp_path / "profile").mkdir()
    (tmp_path / "profile" / "config.yaml").write_text(yaml.safe_dump(profile))
    log = tmp_path / "sbatch.log"
    env = {**subprocess_env(), "STUB_LOG": str(log)}
    env["PATH"] = f"{bindir}{os.pathsep}{env['PATH']}"
    cmd = [sys.executable, "-m", "snakemake", "-d", str(work), "--configfile", config]
    cmd += ["--profile", str(tmp_path / "profile"), "--forcerun", *post_rules]
    # output to a file, not a pipe: the plan of ~40 steps outgrows a pipe's buffer, and a
    # pipe nobody reads until the end blocks Snakemake before it submits anything
    output = tmp_path / "snakemake.out"
    with output.open("w") as sink:
        proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=sink, stderr=subprocess.STDOUT)

    # (the preflight's `sbatch --test-only` calls come first: curvmia/cluster.py)
    def submitted() -> list[str]:
        lines = log.read_text().splitlines() if log.exists() else []
        return [c for c in lines if not c.startswith("--test-only")]

    try:
        for _ in range(600):  # planning a group of ~40 steps takes seconds, more when busy
            if submitted() or proc.poll() is not None:
                break
            time.sleep(0.5)
    finally:
        proc.kill()
        proc.wait()
    out = output.read_text()
    assert submitted(), out[-3000:]
    call = submitted()[0]
    assert "--comment rule_post_" in call, call
    # what each step of the group declares (the main process lists them)
    steps = re.findall(r"resources: .*mem_mb=(\d+),.*runtime=(\d+), cpu_steps=1", out)
    assert len(steps) >= 10 and len(set(steps)) == 1, steps  # 5 attacks, metrics, sweeps...
    mem, runtime = map(int, steps[0])
    # 4 steps side by side (profiles/default: cpu_steps=4), not the sum of all of them
    assert f" --mem {4 * mem} " in call and "--cpus-per-task=4 " in call, call
    # wall time: the layers' run times added up (at least n/4 layers, fewer than n)
    n = len(re.search(r"--target-jobs ((?:'[^']*' )+)", call).group(1).split())
    t = int(re.search(r" -t (\d+) ", call).group(1))
    assert n == len(steps) and t % runtime == 0 and -(-n // 4) <= t // runtime < n, (n, t)
    # the request scripts/cluster_requests.py plans for this config (docs/cluster.md's group
    # rows) is the one submitted
    from curvmia.cluster_requests import plan

    (tmp_path / "fresh").mkdir()
    (post,) = plan([config], tmp_path / "fresh", REPO)["groups"]["post"]
    assert post["steps"] == n, (post, n)
    assert f" --mem {post['mem_mb']} " in call and f"--cpus-per-task={post['cpus']} " in call
    assert t == post["runtime"] and post["gpu"] == 0 and "--gpu" not in call, (post, call)
