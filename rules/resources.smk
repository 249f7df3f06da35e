# Where and how a job runs, never what it computes: the compute knobs and the shell
# environment every command sees, what each job requests from a cluster, and the SLURM
# checks before the first sbatch.
import json
import shlex
import sys

from curvmia.cluster import RetryResource, slurm_onstart, workflow_caps

# Compute knobs (docs/reruns.md): where and how fast a job runs, never what it computes.
# They reach the commands as environment variables, so they are neither params nor part of
# a command's text, and changing one reruns nothing. Every output records the knobs it ran
# with (checkpoint and score metadata).
_C, _S = config["compute"], config["scoring"]
COMPUTE_ENV = {
    "CURVMIA_DEVICE": _C["device"],
    # what the GPU rules request (job_resources): a SLURM job that requested GPUs and sees
    # none stops instead of running on the CPU (curvmia/device.py)
    "CURVMIA_GPUS": _C["gpus"],
    "CURVMIA_CHECKPOINT_MINUTES": _C["checkpoint_minutes"],
    "CURVMIA_RESIDENT_MAX_GIB": _C["resident_max_gib"],
    "CURVMIA_LOADER_WORKERS": _C["loader_workers"],
    "CURVMIA_SCORING_COMPUTE": json.dumps(
        {"memory_mb": _S["memory_mb"], "forward_batch": _S["forward_batch"]}
    ),
}
SCORING_KNOBS = ("memory_mb", "forward_batch", "shards")


def config_without_knobs():
    """The config less its compute knobs (what a result's provenance depends on)."""
    out = {k: v for k, v in config.items() if k != "compute"}
    out["scoring"] = {k: v for k, v in config["scoring"].items() if k not in SCORING_KNOBS}
    out["data"] = {k: v for k, v in config["data"].items() if k != "workers"}
    return out


# Every shell command sees the workflow's own directory: scripts import the package from it
# (no install needed, also inside containers and conda environments) and are called as
# $CURVMIA_SCRIPTS/<name>.py. Their location is not a result's provenance, so it is not a
# param: moving the repository never reruns anything.
shell.prefix(
    f'export PYTHONPATH="{workflow.basedir}${{{{PYTHONPATH:+:$PYTHONPATH}}}}"'
    f' CURVMIA_SCRIPTS="{workflow.basedir}/scripts"'
    + "".join(f" {k}={shlex.quote(str(v))}" for k, v in COMPUTE_ENV.items()).replace("{", "{{").replace("}", "}}")
    + "; "
)

# What each job requests from a cluster (docs/cluster.md: resources), from the experiment's
# config so that any profile (a site's own, the bundled profiles/slurm) requests it: threads
# (--cpus-per-task), mem_mb and runtime (raised on a retry only after an attempt that ran out
# of memory or time, capped by the partition limits: curvmia/cluster.py), the GPUs of
# training and scoring (`gpu`: sbatch --gpus), and one `cpu_steps` slot per CPU step: the
# workflow profile (profiles/default) caps the slots, so a group job of many CPU steps
# (`post`) requests a few steps side by side, not the sum of them all.
GPU_KINDS = ("train", "score")


def job_threads(kind):
    """Threads (= CPUs) of a job of `kind`: train / score, prepare or light."""
    if kind in GPU_KINDS:
        return config["compute"]["threads"]
    return config["data"]["workers"] if kind == "prepare" else 1


def _partition_caps(rulename):
    return workflow_caps(workflow, rulename)


def job_resources(kind):
    """Resources of a job of `kind` (compute.jobs.<kind>, compute.gpus)."""
    spec = config["compute"]["jobs"][kind]
    main = workflow.is_main_process
    res = {
        r: RetryResource(r, spec[r], main, caps=_partition_caps) for r in ("mem_mb", "runtime")
    }
    if kind in GPU_KINDS:
        res["gpu"] = config["compute"]["gpus"]
    else:
        res["cpu_steps"] = 1
    return res


# Before the first sbatch (onstart runs after planning, never in a dry run): on SLURM,
# `sbatch --test-only` for one job of each kind, and PREEMPTED jobs that SLURM does not
# requeue count as failed (curvmia/cluster.py: slurm_onstart).
onstart:
    try:
        slurm_onstart(workflow, sys.argv)
    except ValueError as e:
        raise WorkflowError(str(e)) from None
