"""curvmia/cluster.py without a cluster: what a retry requests after each kind of failure,
the partition caps, the preflight's message, and PREEMPTED under PreemptMode=CANCEL.
(The same on a real SLURM: tests/test_slurm.py.)"""

import asyncio
import subprocess
from types import SimpleNamespace

import pytest

from curvmia.cluster import (
    RetryResource,
    fail_cancelled_preemptions,
    partition_caps,
    preflight,
    profile_file,
    record_attempt,
    recorded_jobs,
    retry_request,
    sacct_states,
    slurm_job_id,
    squeue_state,
)

WC = {"row": "3"}


def test_retry_raises_only_the_resource_that_ran_out():
    inf = float("inf")
    assert retry_request(360, "runtime", [], inf) == 360
    assert retry_request(360, "runtime", [{"FAILED"}], inf) == 360  # a Python error
    assert retry_request(360, "runtime", [{"TIMEOUT"}], inf) == 720
    assert retry_request(360, "runtime", [{"TIMEOUT"}, {"FAILED"}], inf) == 720
    assert retry_request(360, "runtime", [{"TIMEOUT"}, {"TIMEOUT"}], inf) == 1080
    assert retry_request(16000, "mem_mb", [{"TIMEOUT"}], inf) == 16000
    assert retry_request(16000, "mem_mb", [{"FAILED", "OUT_OF_MEMORY"}], inf) == 32000
    assert retry_request(360, "runtime", [{"TIMEOUT"}, {"TIMEOUT"}], 600) == 600  # the cap
    assert retry_request(360, "runtime", [{"TIMEOUT"}], 300) == 360  # never below its own


def test_partition_caps_are_the_plugins_limits():
    limits = {"cpu": {"max_runtime": 1440, "max_mem_mb": 64000}, "gpu": {"max_runtime": 2880}}
    assert partition_caps(limits, "cpu") == {"runtime": 1440, "mem_mb": 64000}
    assert partition_caps(limits, "gpu") == {"runtime": 2880, "mem_mb": float("inf")}
    # no partition named: what the largest partition allows
    assert partition_caps(limits, None) == {"runtime": 2880, "mem_mb": float("inf")}
    assert partition_caps({}, "cpu") == {"runtime": float("inf"), "mem_mb": float("inf")}


def test_read_partition_limits_reads_the_plugins_file(tmp_path):
    from curvmia.cluster import read_partition_limits

    f = tmp_path / "partitions.yaml"
    f.write_text("partitions:\n  short:\n    max_runtime: '2:00:00'\n    max_mem_mb: 8000\n")
    assert read_partition_limits(f) == {"short": {"max_runtime": 120, "max_mem_mb": 8000}}
    assert read_partition_limits(None) == {}


def test_slurm_job_id():
    assert slurm_job_id({}) is None
    assert slurm_job_id({"SLURM_JOB_ID": "17"}) == "17"
    env = {"SLURM_JOB_ID": "19", "SLURM_ARRAY_JOB_ID": "15", "SLURM_ARRAY_TASK_ID": "2"}
    assert slurm_job_id(env) == "15_2"


def test_records_of_an_earlier_run_are_forgotten(tmp_path):
    record_attempt(tmp_path, "train", WC, 1, "10")
    record_attempt(tmp_path, "train", WC, 2, "11")
    record_attempt(tmp_path, "train", WC, 3, "12")
    assert recorded_jobs(tmp_path, "train", WC, 4) == ["10", "11", "12"]
    # a new run's first attempt: the old attempts 2 and 3 are not this run's
    record_attempt(tmp_path, "train", WC, 1, "20")
    assert recorded_jobs(tmp_path, "train", WC, 4) == ["20"]
    assert recorded_jobs(tmp_path, "train", {"row": "4"}, 4) == []
    assert recorded_jobs(tmp_path, "score", WC, 4) == []


def test_sacct_states_reads_steps_too():
    out = "15_2|OUT_OF_MEMORY\n15_2.batch|OUT_OF_MEMORY\n16|TIMEOUT\n16.batch|CANCELLED by 0\n"

    def run(cmd, **kw):
        assert cmd == ["sacct", "-n", "-P", "-o", "JobID,State", "-j", "15_2,16"]
        return subprocess.CompletedProcess(cmd, 0, out, "")

    assert sacct_states(["15_2", "16"], run=run) == {
        "15_2": {"OUT_OF_MEMORY"},
        "16": {"TIMEOUT", "CANCELLED"},
    }
    failed = lambda cmd, **kw: subprocess.CompletedProcess(cmd, 1, "", "no accounting")  # noqa: E731
    assert sacct_states(["16"], run=failed) == {}


def test_retry_resource_in_the_job_records_and_in_the_submitter_reads(tmp_path):
    env = {"SLURM_JOB_ID": "41"}
    in_job = RetryResource("runtime", 60, main=False, root=tmp_path, env=env)
    assert in_job(WC, 1, "train") == 60
    asked = []

    def states(jobs):
        asked.append(list(jobs))
        return {"41": {"TIMEOUT"}, "42": {"FAILED"}}

    main = RetryResource("runtime", 60, main=True, root=tmp_path, states=states)
    mem = RetryResource("mem_mb", 4000, main=True, root=tmp_path, states=states)
    assert main(WC, 1, "train") == 60 and asked == []  # attempt 1 asks nobody
    assert main(WC, 2, "train") == 120 and asked == [["41"]]  # timed out: twice the time
    assert mem(WC, 2, "train") == 4000  # ... and the same memory
    in_job2 = RetryResource("runtime", 60, main=False, root=tmp_path, env={"SLURM_JOB_ID": "42"})
    in_job2(WC, 2, "train")
    assert main(WC, 3, "train") == 120  # the Python error of attempt 2 raises nothing
    capped = RetryResource(
        "runtime", 60, main=True, root=tmp_path, states=states, caps=lambda r: {"runtime": 90}
    )
    assert capped(WC, 3, "train") == 90
    # outside SLURM nothing is recorded: a retry asks for the same
    local = RetryResource("runtime", 60, main=False, root=tmp_path / "local", env={})
    assert local(WC, 1, "train") == 60 and not (tmp_path / "local").exists()


def test_preflight_names_the_profile_line(tmp_path):
    calls = []

    def sbatch(cmd, **kw):
        calls.append(cmd)
        if "--account" in cmd and cmd[cmd.index("--account") + 1] == "myproject":
            err = (
                "sbatch: error: Batch job submission failed: Invalid account or "
                "account/partition combination specified\n"
            )
            return subprocess.CompletedProcess(cmd, 1, "", err)
        return subprocess.CompletedProcess(cmd, 0, "", "sbatch: Job 3 to start at now\n")

    light = {"slurm_account": "curvmia", "cpus": 1, "mem_mb": 4000, "runtime": 20}
    requests = {"metrics": light, "health": dict(light), "train": {**light, "gpu": 1}}
    tried = preflight(requests, "profiles/slurm/config.yaml", run=sbatch)
    assert len(calls) == 2 == len(tried)  # equal requests are tried once
    assert calls[1] == [
        "sbatch", "--test-only", "--job-name", "curvmia-preflight", "--account", "curvmia",
        "--cpus-per-task", "1", "--mem", "4000M", "--time", "20", "--gpus", "1",
        "--wrap", "true",
    ]  # fmt: skip
    with pytest.raises(ValueError) as e:
        preflight({"metrics": {**light, "slurm_account": "myproject"}}, "p/config.yaml", sbatch)
    msg = str(e.value)
    assert "rule metrics" in msg and "Invalid account" in msg
    assert "Edit p/config.yaml: default-resources: slurm_account (the line marked EDIT)" in msg
    # no account at all (slurm-no-account): sbatch gets none
    preflight({"metrics": {**light, "slurm_account": None}}, "p/config.yaml", sbatch)
    assert "--account" not in calls[-1]


def test_profile_file_is_the_one_typed():
    assert profile_file(["snakemake", "--profile", "profiles/slurm"], {}) == (
        "profiles/slurm/config.yaml"
    )
    assert profile_file(["snakemake", "--profile=/x/y"], {}) == "/x/y/config.yaml"
    assert profile_file(["snakemake"], {"SNAKEMAKE_PROFILE": "mysite"}) == (
        "the 'mysite' profile's config.yaml"
    )


def test_preempted_and_not_requeued_ends_as_a_failure():
    """Plugin 2.8.0 polls a PREEMPTED job as running forever. Wrapped: a job that sacct calls
    PREEMPTED and the controller shows PREEMPTED (or has forgotten) for the grace time reads
    CANCELLED (a failure); one the controller has requeued (PENDING) never does."""
    now = [0.0]
    answers = iter(
        [
            {"1": "PREEMPTED", "2": "PREEMPTED", "3": "RUNNING", "4": "PREEMPTED"},
            {"1": "PREEMPTED", "2": "PREEMPTED", "3": "RUNNING", "4": "PREEMPTED"},
            {"1": "PREEMPTED", "2": "PREEMPTED", "3": "COMPLETED", "4": "PREEMPTED"},
            {"1": "PREEMPTED", "2": "PREEMPTED", "3": "COMPLETED", "4": "PREEMPTED"},
        ]
    )
    # squeue: 1 cancelled (PREEMPTED, then forgotten), 2 requeued (waits on its BeginTime),
    # 4 unknown because squeue does not answer
    squeue = {"1": ["PREEMPTED", "PREEMPTED", "", ""], "2": ["PENDING"] * 4, "4": [None] * 4}

    async def query(command, logger):
        return dict(next(answers)), 0.01

    warnings = []
    step = [0]
    wrapped = fail_cancelled_preemptions(
        query,
        warnings.append,
        live=lambda job: squeue[job][step[0]],
        grace_s=30,
        blind_s=600,
        clock=lambda: now[0],
    )
    seen = []
    for i, t in enumerate((0, 20, 40, 700)):
        now[0], step[0] = t, i
        seen.append(asyncio.run(wrapped("sacct ...", SimpleNamespace()))[0])
    assert [s["1"] for s in seen] == ["PREEMPTED", "PREEMPTED", "CANCELLED", "CANCELLED"]
    assert [s["2"] for s in seen] == ["PREEMPTED"] * 4  # requeued: polled as before
    assert [s["4"] for s in seen] == ["PREEMPTED"] * 3 + ["CANCELLED"]  # squeue silent
    assert "SLURM job 1 was preempted and not requeued" in warnings[0]


def test_the_plugin_still_polls_preempted_as_running():
    """What the wrapper is for: the plugin's own status check yields a PREEMPTED job (keeps
    polling it) every time. When a new plugin version fails it itself, drop the wrapper."""
    import inspect

    import snakemake_executor_plugin_slurm as plugin

    src = inspect.getsource(plugin.Executor.check_active_jobs)
    fail_stati = src.split("fail_stati = (")[1].split(")")[0]
    assert "PREEMPTED" not in fail_stati
    assert 'status == "PREEMPTED" and not self._preemption_warning' in src
    assert "await query_job_status(" in src  # the name the wrapper replaces


def test_squeue_state():
    def answer(rc, out, err=""):
        return lambda cmd, **kw: subprocess.CompletedProcess(cmd, rc, out, err)

    assert squeue_state("7", run=answer(0, "PENDING\n")) == "PENDING"
    assert (
        squeue_state("7", run=answer(1, "", "slurm_load_jobs error: Invalid job id specified"))
        == ""
    )
    assert squeue_state("7", run=answer(1, "", "Unable to contact slurm controller")) is None


def test_workflow_caps_read_the_profiles_partition_and_the_plugins_file(tmp_path, monkeypatch):
    from snakemake.resources import Resources

    from curvmia.cluster import workflow_caps

    f = tmp_path / "partitions.yaml"
    f.write_text(
        "partitions:\n  cpu: {max_runtime: 600, max_mem_mb: 8000}\n"
        "  gpu: {max_runtime: '2-00:00:00', max_mem_mb: 64000}\n"
    )
    monkeypatch.delenv("SNAKEMAKE_SLURM_PARTITIONS", raising=False)
    wf = SimpleNamespace(
        executor_settings=SimpleNamespace(partition_config=f),
        resource_settings=SimpleNamespace(
            # as Snakemake holds --set-resources / --default-resources (profile keys)
            overwrite_resources={"train": Resources.from_mapping({"slurm_partition": "gpu"})},
            default_resources=Resources.from_mapping({"slurm_partition": "'cpu'"}),
        ),
    )
    assert workflow_caps(wf, "train") == {"runtime": 2880, "mem_mb": 64000}
    assert workflow_caps(wf, "metrics") == {"runtime": 600, "mem_mb": 8000}
    wf.resource_settings.default_resources = None  # no partition named: the largest
    assert workflow_caps(wf, "metrics") == {"runtime": 2880, "mem_mb": 64000}
    wf.executor_settings = None  # a local run: no limits
    assert workflow_caps(wf, "train") == {"runtime": float("inf"), "mem_mb": float("inf")}
