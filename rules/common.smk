# Helpers shared by every stage: paths, the config's checks, the model set and the inputs
# (resources and the shell environment: rules/resources.smk).
import functools
import json
import os
import sys

from snakemake.logging import logger

from curvmia import staleness
from curvmia.attacks import spec_label
from curvmia.config_checks import check_config, hist_target, imported_entries
from curvmia.data import prepared_dir_name
from curvmia.identity import data_hash, members_hash, members_of, score_identity
from curvmia.imported import import_hash
from curvmia.io import config_hash

RESULTS = f"results/{config['experiment']}"
# the prepared data's directory is named by the settings that change its content
DATA = f"{config['data']['root']}/{prepared_dir_name(config['data'])}"
# Apptainer image of each kind of step (`container:` of every rule; docs/reproducibility.md).
IMAGES = config["containers"]


def _config_error(msg):
    raise WorkflowError(f"Invalid config: {msg}")


# Checks a JSON schema cannot express, before any job (curvmia/config_checks.py); each error
# names the key. Only the submitting process builds the models and opens imported files
# (timm + torch take seconds to import, and every cluster job parses this file again).
try:
    ATTACK_LABELS = check_config(config, deep=workflow.is_main_process)
except ValueError as e:
    _config_error(str(e))
SHADOWS = list(config["masks"]["shadows"])
TARGETS = list(config["masks"]["targets"])
MODELS = sorted(SHADOWS + TARGETS)
ATTACK_SPECS = {spec_label(spec): spec for spec in config["attacks"]}
RANK_ATTACK = (
    config["report"]["rank_attack"]
    if config["report"]["rank_attack"] is not None
    else ATTACK_LABELS[0]
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
try:
    IMPORTED = imported_entries(
        config, RESULTS, deep=workflow.is_main_process, manifest=f"{DATA}/manifest.json"
    )
except ValueError as e:
    _config_error(str(e))
TRAINED = [r for r in MODELS if r not in IMPORTED]
# the hash each row's checkpoint carries: the recipe's, or the import entry's
ROW_HASH = {r: import_hash(IMPORTED[r]) if r in IMPORTED else TRAIN_HASH for r in MODELS}
# targets whose members are unknown: exposure ranking only, no AUROC
UNKNOWN_TARGETS = [r for r in TARGETS if r in IMPORTED and IMPORTED[r]["members"] is None]
try:
    HIST_TARGET = hist_target(config, UNKNOWN_TARGETS)
except ValueError as e:
    _config_error(str(e))


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


def metrics_section():
    """The metrics section less the shadow budget's keys: only rule budget reads them, so a
    changed K list or draw count reruns that step alone (rules/report.smk)."""
    return as_json({k: v for k, v in config["metrics"].items() if not k.startswith("budget_")})


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
        f"{RESULTS}/realistic.csv",
        f"{RESULTS}/stability.csv",
        f"{RESULTS}/stability.png",
        f"{RESULTS}/provenance.json",
        f"{RESULTS}/one_run.csv",
    ] + membership_outputs()


def membership_outputs():
    """Outputs that need every target's members: left out when an imported target's members
    are unknown (leave-one-out, the shadow budget and the theory), the histogram when no
    target's are known."""
    out = [f"{RESULTS}/curv_hist.png"] if HIST_TARGET is not None else []
    if UNKNOWN_TARGETS:
        return out
    loo = [f"{RESULTS}/loo.md"] if config["metrics"]["loo"] else []
    return (
        out + loo + [f"{RESULTS}/budget.csv", f"{RESULTS}/budget.png"] + theory_outputs()
        + one_run_sweep_outputs()
    )


# ---------------------------------------------------------------- inputs by content
# Training and scoring depend on the prepared data and the masks by content, not by
# modification time (docs/reruns.md): their inputs are ancient() and their params carry
# the content ids read here. A re-prepared, byte-identical dataset or a restored manifest
# reruns nothing; a byte that really changed changes an id and reruns what depends on it.
# prepare_data and make_masks are checkpoints, so the ids are read once the files exist.
# A param reads a checkpoint's file directly when it is on disk (`on_disk`): Snakemake
# evaluates params once before it marks finished checkpoints done, a param it cannot
# evaluate then counts as changed, and the consumers downstream keep that reason, so a
# finished run would plan its last steps again on every call.


def prepared_manifest(wildcards=None):
    return ancient(checkpoints.prepare_data.get().output.manifest)


def masks_npz(wildcards=None):
    return ancient(checkpoints.make_masks.get().output[0])


def masks_file():
    """The masks file, for identity params (see on_disk)."""
    return on_disk(f"{RESULTS}/masks.npz", masks_npz)


def on_disk(path, checkpoint_output):
    """`path` (a checkpoint's output, for an identity param) when it exists, else the
    checkpoint's output (which raises until the checkpoint has run)."""
    return path if os.path.exists(path) else str(checkpoint_output())


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
    return content_id(on_disk(f"{DATA}/manifest.json", prepared_manifest), "data")


def row_ids(wildcards):
    """Content ids a main-experiment model depends on: its data and its members."""
    return as_json(
        {
            "data": data_id(),
            "members": content_id(masks_file(), "members", int(wildcards.row)),
        }
    )


# ---------------------------------------------------------------- score file identities
# What every reader of a score file checks (curvmia/scorefile.py: check_score_identity): the
# identity of the checkpoint it must come from (row, recipe or import hash, members and data
# content ids, as the checkpoint stores them) plus the hash of the scoring settings exactly
# as the scorer gets them (SCORING_PARAMS, rules/score.smk).


def score_expect(rows):
    """Per row (JSON keyed by row), the identity its score file must carry."""
    scoring_hash = config_hash(json.loads(SCORING_PARAMS))
    masks, data = masks_file(), data_id()
    return as_json(
        {
            str(r): {
                "row": r,
                "train_hash": ROW_HASH[r],
                "members_hash": content_id(masks, "members", r),
                "data_hash": data,
                "scoring_hash": scoring_hash,
            }
            for r in rows
        }
    )


def sweep_expect(sweep):
    """Per sweep target (JSON keyed by its score file), the identity it must carry (a sweep
    model has no mask row)."""
    train = config_hash(DP["train"] if sweep == "dp" else SIZE_TRAIN)
    scoring_hash = config_hash(json.loads(SCORING_PARAMS))
    return as_json(
        {
            r["scores"]: {
                "train_hash": train,
                "members_hash": content_id(sweep_members_file(sweep, value), "members"),
                "data_hash": data_id(),
                "scoring_hash": scoring_hash,
            }
            for r, value in ((r, _sweep_value(r["model"])) for r in SWEEP_ROWS[sweep])
        }
    )


# ---------------------------------------------------------------- identity decides staleness
# Snakemake's metadata alone misses a changed config once .snakemake/ is gone, and a deleted
# intermediate whose consumers' outputs exist. While the workflow is parsed, the submitting
# process compares the identity stored in every main-experiment checkpoint and score file
# (their small metadata only) with the one the config implies (curvmia/staleness.py). A run
# that executes jobs moves a damaged or stale file aside (<file>.stale) and, like every
# absent one, makes it an input of the default target, so that it is made again and its
# consumers rerun; a dry run lists the same jobs through a fresh marker input of the file's
# producer, and changes nothing else (docs/reruns.md). Explicit targets: see there.
STALE = set()  # a dry run's damaged or stale intermediates (their producers take a marker)


def expected_checkpoint(row):
    """The identity the config implies for a row's checkpoint (the content ids once the
    prepared data and the masks exist)."""
    out = {"row": row, "train_hash": ROW_HASH[row]}
    if os.path.exists(f"{RESULTS}/masks.npz"):
        out["members_hash"] = content_id(f"{RESULTS}/masks.npz", "members", row)
    if os.path.exists(f"{DATA}/manifest.json"):
        out["data_hash"] = content_id(f"{DATA}/manifest.json", "data")
    return out


def expected_sweep_checkpoint(sweep, members):
    """The identity the config implies for a sweep model's checkpoint (no row; the content
    ids once its members file and the prepared data exist)."""
    out = {"train_hash": config_hash(DP["train"] if sweep == "dp" else SIZE_TRAIN)}
    if os.path.exists(members):
        out["members_hash"] = content_id(members, "members")
    if os.path.exists(f"{DATA}/manifest.json"):
        out["data_hash"] = content_id(f"{DATA}/manifest.json", "data")
    return out


def repair_targets(scoring_params):
    """Survey the checkpoints and score files (submitting process only), warn naming each
    damaged or stale one, act as above, and return what the default target must add."""
    if not workflow.is_main_process:
        return []
    findings, checked = [], []
    scoring = json.loads(scoring_params)
    for r in MODELS:
        model, scores = f"{RESULTS}/models/model_{r}.pt", f"{RESULTS}/scores/model_{r}.npz"
        expected = expected_checkpoint(r)
        findings.append(staleness.checkpoint_finding(model, expected))
        exp_scores = score_identity(expected, scoring)
        findings.append(staleness.score_finding(scores, exp_scores))
        checked += [model, scores]
    for sweep in theory_sweeps():  # the sweeps the default target builds
        for row in SWEEP_ROWS[sweep]:
            expected = expected_sweep_checkpoint(sweep, row["members"])
            findings.append(staleness.checkpoint_finding(row["checkpoint"], expected))
            findings.append(
                staleness.score_finding(row["scores"], score_identity(expected, scoring))
            )
            checked += [row["checkpoint"], row["scores"]]
    for label in ATTACK_LABELS:  # attack outputs: absent or damaged ones are made again
        for kind in ("attacks", "pseudo"):
            path = f"{RESULTS}/{kind}/{label}.npz"
            findings.append(staleness.npz_finding(path, "scores"))
            checked.append(path)
    findings = [f for f in findings if f is not None]
    if staleness.summary(findings):
        logger.warning(staleness.summary(findings))
    flagged = [f.path for f in findings if f.state != "absent"]
    if staleness.is_dry_run(sys.argv):
        staleness.mark(findings, checked)
        STALE.update(flagged)
    else:
        staleness.mark([], checked)  # a dry run's markers are never a real job's inputs
        if flagged and staleness.runs_jobs(sys.argv):
            for path in flagged:
                logger.warning(f"curvmia: moved {path} to {staleness.move_aside(path)}")
        else:
            flagged = []
    return [f.path for f in findings if f.state == "absent"] + flagged


def stale_marker(kind):
    """Input function: in a dry run, the marker of a row's checkpoint ("models") or score
    file ("scores"), of an attack's outputs ("attacks"), or of a sweep model's checkpoint
    ("sweep_models") or score file ("sweep_scores"), when it is damaged or stale, else
    nothing."""
    ext = "pt" if kind == "models" else "npz"

    def marker(wildcards):
        if kind == "attacks":
            paths = [f"{RESULTS}/{k}/{wildcards.label}.npz" for k in ("attacks", "pseudo")]
        elif kind == "sweep_models":
            w = wildcards
            paths = [f"{SWEEP_DIR}/{w.sweep}/models/{w.prefix}{w.value}_seed{w.seed}.pt"]
        elif kind == "sweep_scores":
            paths = [f"{SWEEP_DIR}/{wildcards.sweep}/scores/{wildcards.name}.npz"]
        else:
            paths = [f"{RESULTS}/{kind}/model_{wildcards.row}.{ext}"]
        return [staleness.marker_path(p) for p in paths if p in STALE]

    return marker
