# Helpers shared by every stage: paths, the model set, attack labels, config checks.
import functools
import json
import os
import shlex
import sys

sys.path.insert(0, workflow.basedir)

from curvmia.attacks import check_attack_spec, needed_f32_features
from curvmia.cluster import RetryResource, slurm_onstart, workflow_caps
from curvmia.data import prepared_dir_name
from curvmia.identity import data_hash, members_hash, members_of
from curvmia.imported import check_section, import_hash
from curvmia.io import config_hash
from curvmia.masks import check_layout

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

RESULTS = f"results/{config['experiment']}"
# the prepared data's directory is named by the settings that change its content
DATA = f"{config['data']['root']}/{prepared_dir_name(config['data'])}"
# Apptainer image of each kind of step (`container:` of every rule; docs/reproducibility.md).
IMAGES = config["containers"]


# classes and channels of each dataset whose shape is known before preparation (the
# submitting process builds the models with them; imagefolder gets timm's defaults)
DATASET_SHAPES = {
    "digits": {"num_classes": 10, "in_chans": 1},
    "cifar10": {"num_classes": 10, "in_chans": 3},
    "cifar100": {"num_classes": 100, "in_chans": 3},
}


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
            from curvmia.models import check_arch, check_model_kwargs

            check_arch(config["train"]["arch"])
            # build every model the config names on the meta device: a misspelt or
            # impossible model_kwargs stops here, not in a train job
            shape = DATASET_SHAPES.get(config["data"]["dataset"], {})
            tr = config["train"]
            check_model_kwargs(tr["arch"], tr["model_kwargs"], "train.model_kwargs", **shape)
            unknown = sorted(set(config["size_sweep"]["train"]) - set(tr))
            if unknown:
                raise ValueError(
                    f"size_sweep.train: unknown key(s) {unknown}; it overrides keys of the "
                    f"train section: {sorted(tr)}"
                )
            size_tr = {**tr, **config["size_sweep"]["train"]}
            if size_tr != tr:
                check_model_kwargs(
                    size_tr["arch"], size_tr["model_kwargs"], "size_sweep.train", **shape
                )
            dp = config["dp_sweep"]["train"]
            check_arch(dp["arch"])
            check_model_kwargs(
                dp["arch"], dp["model_kwargs"], "dp_sweep.train.model_kwargs", dp=True, **shape
            )
        if m["complements"] and m["pkeep"] != 0.5:
            raise ValueError("masks.complements: needs masks.pkeep = 0.5")
        labels = []
        for i, spec in enumerate(config["attacks"]):
            check_attack_spec(spec, f"attacks[{i}]")
            if needed_f32_features(spec) and config["scoring"]["variant"] != "paper":
                raise ValueError(
                    f"attacks[{i}].variant: the paper variant of {spec['name']!r} reads "
                    f"{needed_f32_features(spec)} (float32, as the released code computed "
                    "them), which only scoring.variant: paper writes; set variant: clean"
                )
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


# the recipe hash every trained main-experiment checkpoint must carry (curvmia/identity.py)
TRAIN_HASH = config_hash(config["train"])


# ---------------------------------------------------------------- imported models
# Rows listed in the imported section (docs/audit-your-model.md) are made from existing
# model files instead of trained; every entry is checked here, before any job: the file's
# sha256 and format, its architecture and class count, its membership and input contract.


def _imported_entries():
    imp = config.get("imported", {})
    entries = []
    for e in imp.get("models", []):
        e = {"arch": None, "model_kwargs": {}, "trust": False, "members": None, **e}
        if e["members"] is not None:
            e["members"] = {"index": None, **e["members"]}
        entries.append(e)
    try:
        check_section(
            entries,
            shadows=SHADOWS,
            targets=TARGETS,
            data_cfg=config["data"],
            deep=workflow.is_main_process,
        )
    except ValueError as err:
        _config_error(str(err))
    if imp.get("fz_input") is not None:
        # Feldman & Zhang's converted models (rules/convert.smk) are every row: the
        # conversion's own checks (probe, correctness) stand in for a declared sha256
        if not config.get("fz"):
            _config_error("imported.fz_input: needs the fz section (the converted models)")
        if entries:
            _config_error("imported.fz_input: imports every row; leave imported.models empty")
        for r in MODELS:
            entries.append(
                {
                    "path": f"{RESULTS}/fz/models/model_{r}.pt",
                    "row": r,
                    "role": "target" if r in TARGETS else "shadow",
                    "sha256": None,
                    "format": "state_dict",
                    "arch": "sonnet_resnet50",
                    "model_kwargs": {},
                    "trust": False,
                    "members": {
                        "source": "matrix",
                        "path": f"{RESULTS}/fz/membership.npy",
                        "sha256": None,
                        "index": r,
                    },
                    "input": imp["fz_input"],
                }
            )
    return {e["row"]: e for e in entries}


IMPORTED = _imported_entries()
TRAINED = [r for r in MODELS if r not in IMPORTED]
# the hash each row's checkpoint carries: the recipe's, or the import entry's
ROW_HASH = {r: import_hash(IMPORTED[r]) if r in IMPORTED else TRAIN_HASH for r in MODELS}
# targets whose members are unknown: exposure ranking only, no AUROC
UNKNOWN_TARGETS = [r for r in TARGETS if r in IMPORTED and IMPORTED[r]["members"] is None]


KNOWN_TARGETS = [r for r in TARGETS if r not in UNKNOWN_TARGETS]
if config["report"]["hist_target"] in UNKNOWN_TARGETS:
    _config_error(
        f"report.hist_target: target {config['report']['hist_target']} has unknown members "
        "(imported with members: null); its member/non-member histogram cannot be drawn"
    )
if config["report"]["hist_target"] is None:
    HIST_TARGET = KNOWN_TARGETS[0] if KNOWN_TARGETS else None


def rows_regex(rows):
    """A wildcard pattern matching exactly these rows (none: matches nothing)."""
    return "|".join(str(r) for r in rows) if rows else "(?!)"


def import_inputs(wildcards):
    """An imported row's model file (and, for a converted Feldman & Zhang model, its check)."""
    e = IMPORTED[int(wildcards.row)]
    out = {"model": ancient(e["path"])}  # by content: its sha256 is in the entry (params)
    if e["sha256"] is None:  # a converted Feldman & Zhang model: its checks must pass first
        out["check"] = f"{RESULTS}/fz/check/model_{wildcards.row}.json"
    return out


def row_hash(wildcards):
    return ROW_HASH[int(wildcards.row)]


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
        f"{RESULTS}/models.csv",
        f"{RESULTS}/health.csv",
        f"{RESULTS}/per_example.csv.gz",
        f"{RESULTS}/exposed.png",
        f"{RESULTS}/provenance.json",
    ] + membership_outputs()


def membership_outputs():
    """Outputs that need every target's members: left out when an imported target's members
    are unknown (leave-one-out and the theory), the histogram when no target's are known."""
    out = [f"{RESULTS}/curv_hist.png"] if HIST_TARGET is not None else []
    if UNKNOWN_TARGETS:
        return out
    return out + ([f"{RESULTS}/loo.md"] if config["metrics"]["loo"] else []) + theory_outputs()


# ---------------------------------------------------------------- inputs by content
# Training and scoring depend on the prepared data and the masks by content, not by
# modification time (docs/reruns.md): their inputs are ancient() and their params carry
# the content ids read here. A re-prepared, byte-identical dataset or a restored manifest
# reruns nothing; a byte that really changed changes an id and reruns what depends on it.
# prepare_data and make_masks are checkpoints, so the ids are read once the files exist.


def prepared_manifest(wildcards=None):
    return ancient(checkpoints.prepare_data.get().output.manifest)


def masks_npz(wildcards=None):
    return ancient(checkpoints.make_masks.get().output[0])


@functools.lru_cache
def _read_id(path, stamp, kind, row=None):
    try:
        if kind == "data":
            return data_hash(json.loads(open(path).read()))
        return members_hash(members_of(path, row))
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
        raise WorkflowError(
            f"{path}: unreadable ({e}); nothing was run or deleted. Delete this file so that "
            "it is made again: the same content reruns nothing (docs/reliability.md)"
        ) from None


def content_id(path, kind, row=None):
    """The content id of the prepared data (kind "data") or of a member set ("members")."""
    st = os.stat(path)
    return _read_id(str(path), (st.st_mtime_ns, st.st_size), kind, row)


def data_id(wildcards=None):
    return content_id(str(prepared_manifest()), "data")


def row_ids(wildcards):
    """Content ids a main-experiment model depends on: its data and its members."""
    return as_json(
        {
            "data": data_id(),
            "members": content_id(str(masks_npz()), "members", int(wildcards.row)),
        }
    )


# ---------------------------------------------------------------- sweeps (rules/sweeps.smk)


def sweep_members(sweep, value):
    """A sweep target's members file, once its checkpoint is done (ancient, by content;
    see sweep_ids)."""
    if sweep == "dp":
        return ancient(checkpoints.dp_members.get().output.members)
    return ancient(checkpoints.size_members.get(m=int(float(value))).output[0])


def sweep_ids(sweep, value):
    """Content ids a sweep target depends on: the data and its members (a members file
    written again with the same members reruns nothing)."""
    return as_json(
        {"data": data_id(), "members": content_id(str(sweep_members(sweep, value)), "members")}
    )


def _sweep_value(name):
    """The epsilon or m of a sweep target id (model_id: eps1.0_seed0, m500_seed1)."""
    return name.split("_seed")[0].removeprefix("eps").removeprefix("m")


# Before the first sbatch (onstart runs after planning, never in a dry run): on SLURM,
# `sbatch --test-only` for one job of each kind, and PREEMPTED jobs that SLURM does not
# requeue count as failed (curvmia/cluster.py: slurm_onstart).
onstart:
    try:
        slurm_onstart(workflow, sys.argv)
    except ValueError as e:
        raise WorkflowError(str(e)) from None
