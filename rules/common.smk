# Helpers shared by every stage: paths, the model set, attack labels, config checks.
import json
import sys

sys.path.insert(0, workflow.basedir)

from curvmia.attacks import check_attack_spec
from curvmia.masks import check_layout

# Every shell command sees the workflow's own directory: scripts import the package from it
# (no install needed, also inside containers and conda environments) and are called as
# $CURVMIA_SCRIPTS/<name>.py. Their location is not a result's provenance, so it is not a
# param: moving the repository never reruns anything.
shell.prefix(
    f'export PYTHONPATH="{workflow.basedir}${{{{PYTHONPATH:+:$PYTHONPATH}}}}"'
    f' CURVMIA_SCRIPTS="{workflow.basedir}/scripts"; '
)

RESULTS = f"results/{config['experiment']}"
DATA = f"{config['data']['root']}/{config['data']['dataset']}"
# Apptainer image of each kind of step (`container:` of every rule; README: SLURM and Apptainer).
IMAGES = config["containers"]


# What each job requests from a cluster (docs/cluster.md: resources), from the experiment's
# config so that any profile (a site's own, the bundled profiles/slurm) requests it: threads
# (--cpus-per-task), mem_mb and runtime (times the attempt number), the GPUs of training and
# scoring (`gpu`: sbatch --gpus), and one `cpu_steps` slot per CPU step: the workflow profile
# (profiles/default) caps the slots, so a group job of many CPU steps (`post`) requests a few
# steps side by side, not the sum of them all.
GPU_KINDS = ("train", "score")


def job_threads(kind):
    """Threads (= CPUs) of a job of `kind`: train / score, prepare or light."""
    if kind in GPU_KINDS:
        return config["compute"]["threads"]
    return config["data"]["workers"] if kind == "prepare" else 1


def job_resources(kind):
    """Resources of a job of `kind` (compute.jobs.<kind>, compute.gpus)."""
    spec = config["compute"]["jobs"][kind]
    res = {
        "mem_mb": lambda wildcards, attempt: spec["mem_mb"] * attempt,
        "runtime": lambda wildcards, attempt: spec["runtime"] * attempt,
    }
    if kind in GPU_KINDS:
        res["gpu"] = config["compute"]["gpus"]
    else:
        res["cpu_steps"] = 1
    return res


def _config_error(msg):
    raise WorkflowError(f"Invalid config: {msg}")


def _check_config():
    """Checks a JSON schema cannot express; each error names the key."""
    m = config["masks"]
    try:
        check_layout(m["shadows"], m["targets"], m["n_random"], m["complements"])
        if workflow.is_main_process:
            # timm + torch take seconds to import, and every cluster job parses this file
            # again: the submitting process has checked the name already
            from curvmia.models import check_arch

            check_arch(config["train"]["arch"])
        if m["complements"] and m["pkeep"] != 0.5:
            raise ValueError("masks.complements: needs masks.pkeep = 0.5")
        labels = []
        for i, spec in enumerate(config["attacks"]):
            check_attack_spec(spec, f"attacks[{i}]")
            labels.append(spec.get("label", spec["name"]))
        dup = sorted({l for l in labels if labels.count(l) > 1})
        if dup:
            raise ValueError(f"attacks: duplicate labels {dup}; give each entry a unique 'label'")
        ra = config["report"]["rank_attack"]
        if ra is not None and ra not in labels:
            raise ValueError(f"report.rank_attack: {ra!r} is not an attack label {labels}")
        ht = config["report"]["hist_target"]
        if ht is not None and ht not in m["targets"]:
            raise ValueError(f"report.hist_target: {ht} is not one of masks.targets {m['targets']}")
    except ValueError as e:
        _config_error(str(e))
    return labels


ATTACK_LABELS = _check_config()
SHADOWS = list(config["masks"]["shadows"])
TARGETS = list(config["masks"]["targets"])
MODELS = sorted(SHADOWS + TARGETS)
ATTACK_SPECS = {
    spec.get("label", spec["name"]): spec for spec in config["attacks"]
}
RANK_ATTACK = (
    config["report"]["rank_attack"]
    if config["report"]["rank_attack"] is not None
    else ATTACK_LABELS[0]
)
HIST_TARGET = (
    config["report"]["hist_target"]
    if config["report"]["hist_target"] is not None
    else TARGETS[0]
)

wildcard_constraints:
    row=r"\d+",
    label=r"[A-Za-z0-9_][A-Za-z0-9_.-]*",


def as_json(obj):
    """Params are JSON strings: stable for Snakemake's params trigger, easy for argparse."""
    return json.dumps(obj, sort_keys=True)


def score_files(rows):
    return expand(f"{RESULTS}/scores/model_{{row}}.npz", row=rows)


def final_outputs():
    return [
        f"{RESULTS}/metrics.csv",
        f"{RESULTS}/metrics.md",
        f"{RESULTS}/roc.png",
        f"{RESULTS}/curv_hist.png",
        f"{RESULTS}/models.csv",
        f"{RESULTS}/health.csv",
        f"{RESULTS}/per_example.csv.gz",
        f"{RESULTS}/exposed.png",
        f"{RESULTS}/provenance.json",
    ] + ([f"{RESULTS}/loo.md"] if config["metrics"]["loo"] else []) + theory_outputs()
