"""Cluster jobs: what a retry requests, the check before anything is submitted, preemption.

Torch-free: rules/resources.smk imports it while the Snakefile is parsed (docs/cluster.md).

Retries. Snakemake tells a resource function only the attempt number, so each SLURM job
records which SLURM job ran it (``record_attempt``: the job process evaluates its resources
with ``--attempt N`` and writes ``.snakemake/curvmia/attempts/<rule>/<wildcards>/<N>``), and
on a retry the submitting process asks ``sacct`` how the earlier attempts ended. Only an
attempt that ran out of time (``TIMEOUT``) raises the time, only one that ran out of memory
(``OUT_OF_MEMORY``) raises the memory: by the base request once per such attempt. Any other
failure (a Python error, a lost node) is retried with the same request. Requests are capped
by the partition limits the SLURM plugin reads (``slurm-partition-config``).
"""

from __future__ import annotations

import functools
import os
import re
import shlex
import subprocess
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path

RECORDS = Path(".snakemake") / "curvmia" / "attempts"
# sacct states of an attempt that ran out of a resource, by the resource it raises
RAISED_BY = {"runtime": "TIMEOUT", "mem_mb": "OUT_OF_MEMORY"}


# ---------------------------------------------------------------- retries


def slurm_job_id(env: Mapping[str, str] = os.environ) -> str | None:
    """The id sacct knows this SLURM job by (an array task: <array job>_<task>); None
    outside SLURM."""
    if env.get("SLURM_ARRAY_JOB_ID") and env.get("SLURM_ARRAY_TASK_ID"):
        return f"{env['SLURM_ARRAY_JOB_ID']}_{env['SLURM_ARRAY_TASK_ID']}"
    return env.get("SLURM_JOB_ID") or None


def _key(rule: str, wildcards: Mapping[str, object]) -> str:
    parts = [f"{k}={v}" for k, v in sorted(dict(wildcards).items())]
    return f"{rule}/" + (re.sub(r"[^A-Za-z0-9_.=,-]", "_", ",".join(parts)) or "_")


def record_attempt(
    root: Path, rule: str, wildcards: Mapping[str, object], attempt: int, job_id: str
) -> None:
    """Record that `attempt` of this job runs as SLURM job `job_id`; forget later attempts
    (left by an earlier run of the workflow)."""
    d = Path(root) / _key(rule, wildcards)
    d.mkdir(parents=True, exist_ok=True)
    for old in d.iterdir():
        if old.name.isdigit() and int(old.name) > attempt:
            old.unlink(missing_ok=True)
    path = d / str(attempt)
    if not path.exists() or path.read_text() != job_id:
        tmp = d / f".{attempt}.{os.getpid()}"
        tmp.write_text(job_id)
        tmp.replace(path)


def recorded_jobs(
    root: Path, rule: str, wildcards: Mapping[str, object], attempt: int
) -> list[str]:
    """The SLURM job ids recorded for attempts 1 .. attempt-1 (the ones recorded)."""
    d = Path(root) / _key(rule, wildcards)
    out = []
    for a in range(1, attempt):
        try:
            out.append((d / str(a)).read_text().strip())
        except OSError:
            continue
    return [j for j in out if j]


def sacct_states(job_ids: Sequence[str], run: Callable = subprocess.run) -> dict[str, set[str]]:
    """Each job's states in accounting (its allocation and its steps: an out-of-memory kill
    may show on a step only); {} when sacct cannot answer."""
    if not job_ids:
        return {}
    cmd = ["sacct", "-n", "-P", "-o", "JobID,State", "-j", ",".join(job_ids)]
    try:
        proc = run(cmd, capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.SubprocessError):
        return {}
    if proc.returncode != 0:
        return {}
    states: dict[str, set[str]] = {}
    for line in proc.stdout.splitlines():
        if "|" not in line:
            continue
        jid, state = line.split("|", 1)
        job = jid.split(".")[0]
        # "CANCELLED by 0" -> CANCELLED
        states.setdefault(job, set()).add(state.split()[0] if state.strip() else "")
    return states


def retry_request(base: float, resource: str, endings: Iterable[set[str]], cap: float) -> int:
    """The request of `resource` (runtime or mem_mb) after attempts that ended in `endings`
    (their sacct states): base x (1 + the attempts that ran out of it), at most `cap` but
    never below the rule's own request."""
    ran_out = sum(1 for states in endings if RAISED_BY[resource] in states)
    return int(max(base, min(base * (1 + ran_out), cap)))


def partition_caps(
    limits: Mapping[str, Mapping[str, float]], partition: str | None
) -> dict[str, float]:
    """The largest runtime (minutes) and mem_mb a job may request: its partition's
    max_runtime and max_mem_mb, or with no partition named the largest of any partition."""
    inf = float("inf")
    if not limits:
        return {"runtime": inf, "mem_mb": inf}
    chosen = [limits[partition]] if partition in limits else list(limits.values())
    return {
        "runtime": max(float(p.get("max_runtime", inf)) for p in chosen),
        "mem_mb": max(float(p.get("max_mem_mb", inf)) for p in chosen),
    }


def read_partition_limits(path: str | os.PathLike | None) -> dict[str, dict[str, float]]:
    """max_runtime (minutes) and max_mem_mb of each partition in the SLURM plugin's
    partition file (`slurm-partition-config`), read by the plugin's own reader."""
    if not path:
        return {}
    from snakemake_executor_plugin_slurm.partitions import read_partition_file

    return {
        p.name: {"max_runtime": p.limits.max_runtime, "max_mem_mb": p.limits.max_mem_mb}
        for p in read_partition_file(Path(path))
    }


def rule_partition(resource_settings, rule: str) -> str | None:
    """The slurm_partition the profile names for `rule` (set-resources, else
    default-resources) as typed, or None."""
    rs = resource_settings
    for source in ((rs.overwrite_resources or {}).get(rule), rs.default_resources):
        try:
            value = source["slurm_partition"] if source is not None else None
        except (KeyError, TypeError):
            continue
        value = getattr(value, "raw", value)  # a Snakemake Resource: the text as given
        if isinstance(value, str) and value.strip("'\" "):
            return value.strip("'\" ")
    return None


@functools.lru_cache
def _limits(path: str | None) -> dict[str, dict[str, float]]:
    return read_partition_limits(path)


def workflow_caps(workflow, rule: str) -> dict[str, float]:
    """The largest runtime and mem_mb of `rule`'s jobs in this run: the limits of the
    partitions in the SLURM plugin's `slurm-partition-config` (or the file that
    SNAKEMAKE_SLURM_PARTITIONS names); no limit without one."""
    path = getattr(getattr(workflow, "executor_settings", None), "partition_config", None)
    path = path or os.environ.get("SNAKEMAKE_SLURM_PARTITIONS")
    limits = _limits(str(path) if path else None)
    return partition_caps(limits, rule_partition(workflow.resource_settings, rule))


class RetryResource:
    """A resource function (mem_mb or runtime) that raises the request on a retry only when
    an earlier attempt ran out of this resource. `main`: the submitting process (asks sacct);
    elsewhere, in a SLURM job, it records the job (record_attempt) and returns the base."""

    def __init__(
        self,
        resource: str,
        base: float,
        main: bool,
        caps: Callable[[str], Mapping[str, float]] = lambda rule: {},
        root: Path = RECORDS,
        states: Callable[[Sequence[str]], dict[str, set[str]]] = sacct_states,
        env: Mapping[str, str] = os.environ,
    ):
        self.resource, self.base, self.main = resource, base, main
        self.caps, self.root, self.states, self.env = caps, root, states, env

    def __call__(self, wildcards, attempt: int, rulename: str) -> int:
        if not self.main:
            job = slurm_job_id(self.env)
            if job is not None:
                record_attempt(self.root, rulename, wildcards, attempt, job)
            return int(self.base)
        if attempt <= 1:
            return int(self.base)
        jobs = recorded_jobs(self.root, rulename, wildcards, attempt)
        states = self.states(jobs) if jobs else {}
        cap = self.caps(rulename).get(self.resource, float("inf"))
        return retry_request(self.base, self.resource, [states.get(j, set()) for j in jobs], cap)


# ---------------------------------------------------------------- preflight


def sbatch_test_command(req: Mapping[str, object]) -> list[str]:
    """`sbatch --test-only` of a job requesting `req` (slurm_account, slurm_partition,
    cpus, mem_mb, runtime, gpu, gres, constraint, qos): the cluster answers whether and
    where it would run, without queueing anything."""
    cmd = ["sbatch", "--test-only", "--job-name", "curvmia-preflight"]
    if req.get("slurm_account"):
        cmd += ["--account", str(req["slurm_account"])]
    if req.get("slurm_partition"):
        cmd += ["--partition", str(req["slurm_partition"])]
    if req.get("qos"):
        cmd += ["--qos", str(req["qos"])]
    cmd += ["--cpus-per-task", str(int(req.get("cpus") or 1))]
    if req.get("mem_mb"):
        cmd += ["--mem", f"{int(req['mem_mb'])}M"]
    if req.get("runtime"):
        cmd += ["--time", str(int(req["runtime"]))]
    if req.get("gpu"):
        cmd += ["--gpus", str(int(req["gpu"]))]
    if req.get("gres"):
        cmd += ["--gres", str(req["gres"])]
    if req.get("constraint"):
        cmd += ["--constraint", str(req["constraint"])]
    return [*cmd, "--wrap", "true"]


def _what_to_edit(error: str, profile: str) -> str:
    e = error.lower()
    if "account" in e:
        return (
            f"{profile}: default-resources: slurm_account (the line marked EDIT): an account "
            "of yours (`sacctmgr show assoc user=$USER format=account`), or "
            "`slurm-no-account: true` if your cluster has no accounts"
        )
    if "partition" in e:
        return (
            f"{profile}: default-resources: slurm_partition or set-resources (the lines marked "
            "EDIT): a partition of your cluster (`sinfo -s`)"
        )
    if "qos" in e:
        return f"{profile}: the qos setting: a QOS of your account (`sacctmgr show qos`)"
    return (
        f"{profile}: the lines marked EDIT (account, partitions), or the request itself: "
        "compute.jobs / compute.gpus / compute.threads of the experiment's config "
        "(docs/cluster.md)"
    )


def preflight(
    requests: Mapping[str, Mapping[str, object]],
    profile: str,
    run: Callable = subprocess.run,
    env: Mapping[str, str] | None = None,
) -> list[str]:
    """`sbatch --test-only` for each distinct request (one per kind of job: `requests` maps
    a rule to what it asks for). Returns the commands tried; raises ValueError at the first
    rejection, with sbatch's answer and the profile line to edit."""
    seen: dict[tuple, str] = {}
    tried = []
    for rule, req in requests.items():
        key = tuple(sorted((k, str(v)) for k, v in req.items()))
        if key in seen:
            continue
        seen[key] = rule
        cmd = sbatch_test_command(req)
        tried.append(shlex.join(cmd))
        try:
            proc = run(cmd, capture_output=True, text=True, timeout=60, env=env)
        except (OSError, subprocess.SubprocessError) as err:
            raise ValueError(f"preflight: {shlex.join(cmd)} could not run: {err}") from None
        if proc.returncode != 0:
            answer = (proc.stderr or proc.stdout).strip()
            raise ValueError(
                f"SLURM refuses the jobs of rule {rule} before anything was submitted:\n"
                f"  {shlex.join(cmd)}\n  -> {answer}\n"
                f"Edit {_what_to_edit(answer, profile)}."
            )
    return tried


def profile_file(argv: Sequence[str], env: Mapping[str, str] = os.environ) -> str:
    """The config file of the profile this run uses (--profile or SNAKEMAKE_PROFILE), as
    the user named it, for messages."""
    name = None
    for i, a in enumerate(argv):
        if a == "--profile" and i + 1 < len(argv):
            name = argv[i + 1]
        elif a.startswith("--profile="):
            name = a.split("=", 1)[1]
    name = name or env.get("SNAKEMAKE_PROFILE")
    if not name:
        return "your profile's config.yaml"
    if os.sep in name or Path(name).is_dir():
        return str(Path(name) / "config.yaml")
    return f"the {name!r} profile's config.yaml"


# ---------------------------------------------------------------- preemption


def squeue_state(job_id: str, run: Callable = subprocess.run) -> str | None:
    """The controller's state of a job (squeue): "" once it has forgotten the job
    (MinJobAge after its end), None when squeue cannot answer."""
    cmd = ["squeue", "-h", "-t", "all", "-j", job_id, "-o", "%T"]
    try:
        proc = run(cmd, capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.SubprocessError):
        return None
    if proc.returncode != 0:
        return "" if "invalid job id" in proc.stderr.lower() else None
    return proc.stdout.strip().splitlines()[0].strip() if proc.stdout.strip() else ""


def fail_cancelled_preemptions(
    query: Callable,
    warn: Callable[[str], None],
    live: Callable[[str], str | None] = squeue_state,
    grace_s: float = 30.0,
    blind_s: float = 600.0,
    clock: Callable[[], float] = time.monotonic,
) -> Callable:
    """Wrap the SLURM plugin's status query (query_job_status(command, logger) ->
    ({job id: state}, seconds)) so that a job preempted and not requeued reads as
    CANCELLED, which the plugin reports as a failure.

    Plugin 2.8.0 treats PREEMPTED as running (check_active_jobs warns once, then yields the
    job on every poll). Under PreemptMode=REQUEUE that is right: the job waits in the queue
    (squeue: PENDING, reason BeginTime, for about 2 minutes) while sacct still shows its
    preempted run. Under PreemptMode=CANCEL the state is final and the workflow would poll
    it forever. So a job sacct calls PREEMPTED is failed once the controller (squeue) has
    shown it PREEMPTED or forgotten it for `grace_s`; when squeue cannot answer, after
    `blind_s`."""
    first_seen: dict[str, float] = {}

    async def query_job_status(*args, **kwargs):
        states, seconds = await query(*args, **kwargs)
        if states is None:
            return states, seconds
        now = clock()
        for job in [j for j in first_seen if states.get(j) != "PREEMPTED"]:
            del first_seen[job]
        for job, state in list(states.items()):
            if state != "PREEMPTED":
                continue
            current = live(job)
            if current not in (None, "", "PREEMPTED"):  # requeued: pending or running again
                first_seen.pop(job, None)
                continue
            since = first_seen.setdefault(job, now)
            if now - since >= (blind_s if current is None else grace_s):
                warn(
                    f"SLURM job {job} was preempted and not requeued (PREEMPTED, "
                    f"squeue: {current or 'gone'}): reported as failed (CANCELLED); "
                    "Snakemake retries it as a new attempt"
                )
                states[job] = "CANCELLED"
        return states, seconds

    query_job_status.curvmia_wrapped = True
    return query_job_status


# ---------------------------------------------------------------- onstart


def slurm_requests(workflow) -> dict[str, dict[str, object]]:
    """What the first job of each rule to run asks SLURM for (local rules aside)."""
    settings = workflow.executor_settings
    no_account = getattr(settings, "no_account", False)
    out: dict[str, dict[str, object]] = {}
    for job in workflow.dag.needrun_jobs():
        if job.is_local or job.rule.name in out:
            continue
        res = job.resources
        out[job.rule.name] = {
            "slurm_account": None if no_account else res.get("slurm_account"),
            "slurm_partition": res.get("slurm_partition"),
            "qos": getattr(settings, "qos", None),
            "cpus": job.threads,
            "mem_mb": res.get("mem_mb"),
            "runtime": res.get("runtime"),
            "gpu": res.get("gpu"),
            "gres": res.get("gres"),
            "constraint": res.get("constraint"),
        }
    return out


def slurm_onstart(workflow, argv: Sequence[str]) -> None:
    """In the submitting process of a SLURM run (Snakemake's onstart: after planning, before
    the first job; never in a dry run): the preflight (raises ValueError), then the
    PREEMPTED guard around the plugin's status query."""
    plugin = workflow.executor_plugin
    if not workflow.is_main_process or plugin is None or plugin.cli_prefix != "slurm":
        return
    import snakemake_executor_plugin_slurm as slurm_plugin
    from snakemake.logging import logger

    preflight(slurm_requests(workflow), profile_file(argv))
    if not getattr(slurm_plugin.query_job_status, "curvmia_wrapped", False):
        slurm_plugin.query_job_status = fail_cancelled_preemptions(
            slurm_plugin.query_job_status, logger.warning
        )
