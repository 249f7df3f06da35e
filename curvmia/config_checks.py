"""Checks of an experiment's config that its JSON schema cannot express.

The workflow runs them while it parses (rules/common.smk, rules/convert.smk), before any job;
each raises a ``ValueError`` whose message names the config key. They are plain functions of
the config dict (config/schema.yaml's defaults filled in) so that they are tested without
Snakemake. ``deep`` checks build every model the config names on the meta device: they import
torch and timm, which takes seconds, so only the submitting process runs them (every cluster
job parses the workflow again; the submitting process has checked already).
"""

from __future__ import annotations

import json
import os
from typing import Any

from .attacks import check_attack_spec, needed_f32_features, spec_label
from .budget import budget_ks
from .imported import check_contract, check_section
from .masks import check_layout

# classes and channels of each dataset whose shape is known before preparation (the deep
# checks build the models with them; imagefolder gets timm's defaults)
DATASET_SHAPES = {
    "digits": {"num_classes": 10, "in_chans": 1},
    "cifar10": {"num_classes": 10, "in_chans": 3},
    "cifar100": {"num_classes": 100, "in_chans": 3},
}


def check_config(config: dict[str, Any], deep: bool) -> list[str]:
    """Check the masks, models, attacks and report sections; return the attack labels.

    ``deep``: also build every model on the meta device (a misspelt arch or model keyword
    stops here, not in a train job).
    """
    m = config["masks"]
    layout = check_layout(m["shadows"], m["targets"], m["n_random"], m["complements"])
    # K counts whole complement pairs in the pairs layout (curvmia/budget.py)
    budget_ks(config["metrics"]["budget_ks"], len(m["shadows"]) // (2 if layout == "pairs" else 1))
    if deep:
        check_models(config)
    if m["complements"] and m["pkeep"] != 0.5:
        raise ValueError("masks.complements: needs masks.pkeep = 0.5")
    labels = attack_labels(config)
    ra = config["report"]["rank_attack"]
    if ra is not None and ra not in labels:
        raise ValueError(f"report.rank_attack: {ra!r} is not an attack label {labels}")
    one = config["audit"]["one_run"]
    if (one["k_pos"] is None) != (one["k_neg"] is None):
        raise ValueError(
            "audit.one_run: set both k_pos and k_neg (fixed guesses) or neither (chosen on the "
            f"shadows), got k_pos = {one['k_pos']}, k_neg = {one['k_neg']}"
        )
    ht = config["report"]["hist_target"]
    if ht is not None and ht not in m["targets"]:
        raise ValueError(f"report.hist_target: {ht} is not one of masks.targets {m['targets']}")
    return labels


def check_models(config: dict[str, Any]) -> None:
    """Build the main, size-sweep and DP models on the meta device (imports torch and timm)."""
    from .models import check_arch, check_model_kwargs

    shape = DATASET_SHAPES.get(config["data"]["dataset"], {})
    tr = config["train"]
    check_arch(tr["arch"])
    check_model_kwargs(tr["arch"], tr["model_kwargs"], "train.model_kwargs", **shape)
    unknown = sorted(set(config["size_sweep"]["train"]) - set(tr))
    if unknown:
        raise ValueError(
            f"size_sweep.train: unknown key(s) {unknown}; it overrides keys of the "
            f"train section: {sorted(tr)}"
        )
    size_tr = {**tr, **config["size_sweep"]["train"]}
    if size_tr != tr:
        check_model_kwargs(size_tr["arch"], size_tr["model_kwargs"], "size_sweep.train", **shape)
    dp = config["dp_sweep"]["train"]
    check_arch(dp["arch"])
    check_model_kwargs(
        dp["arch"], dp["model_kwargs"], "dp_sweep.train.model_kwargs", dp=True, **shape
    )


def attack_labels(config: dict[str, Any]) -> list[str]:
    """Check every attack entry; return their result labels (unique)."""
    labels = []
    for i, spec in enumerate(config["attacks"]):
        check_attack_spec(spec, f"attacks[{i}]")
        if needed_f32_features(spec) and config["scoring"]["variant"] != "paper":
            raise ValueError(
                f"attacks[{i}].variant: the paper variant of {spec['name']!r} reads "
                f"{needed_f32_features(spec)} (float32, as the released code computed "
                "them), which only scoring.variant: paper writes; set variant: clean"
            )
        labels.append(spec_label(spec))
    dup = sorted({label for label in labels if labels.count(label) > 1})
    if dup:
        raise ValueError(f"attacks: duplicate labels {dup}; give each entry a unique 'label'")
    return labels


def imported_entries(
    config: dict[str, Any], results: str, deep: bool, manifest: str | None = None
) -> dict[int, dict]:
    """The imported section's entries by mask row, defaults filled in and checked
    (curvmia.imported.check_section; ``deep``: hash, open and build every file, and, where
    the prepared data's ``manifest`` already exists, check each input contract against it,
    so that a wrong ``input.mean`` stops the dry run instead of a job that has already
    deleted the row's trained checkpoint).

    With ``imported.fz_input``, Feldman & Zhang's converted models (rules/convert.smk, under
    ``results``) are every row: the conversion's own checks (probe, correctness) stand in
    for a declared sha256.
    """
    imp = config.get("imported", {})
    entries = []
    for e in imp.get("models", []):
        e = {"arch": None, "model_kwargs": {}, "trust": False, "members": None, **e}
        if e["members"] is not None:
            e["members"] = {"index": None, **e["members"]}
        entries.append(e)
    shadows, targets = list(config["masks"]["shadows"]), list(config["masks"]["targets"])
    check_section(entries, shadows=shadows, targets=targets, data_cfg=config["data"], deep=deep)
    if entries and deep and manifest is not None and os.path.exists(manifest):
        with open(manifest) as fh:
            have = manifest_contract(json.load(fh))
        for i, e in enumerate(entries):
            check_contract(e["input"], have, f"imported.models[{i}]", e["path"])
    if imp.get("fz_input") is not None:
        if not config.get("fz"):
            raise ValueError("imported.fz_input: needs the fz section (the converted models)")
        if entries:
            raise ValueError("imported.fz_input: imports every row; leave imported.models empty")
        rows = sorted(shadows + targets)
        entries += [fz_entry(r, r in targets, results, imp["fz_input"]) for r in rows]
    return {e["row"]: e for e in entries}


def manifest_contract(man: dict[str, Any]) -> dict[str, Any]:
    """What the prepared data (its manifest) feeds a model: the ``have`` of
    curvmia.imported.check_contract."""
    shape = man["image_shape"]
    return {"num_classes": man["num_classes"], "in_chans": shape[0], "image_size": shape[-1],
            "mean": man["mean"], "std": man["std"]}  # fmt: skip


def fz_entry(row: int, target: bool, results: str, fz_input: dict[str, Any]) -> dict[str, Any]:
    """The import entry of Feldman & Zhang's converted model of mask row ``row``."""
    return {
        "path": f"{results}/fz/models/model_{row}.pt",
        "row": row,
        "role": "target" if target else "shadow",
        "sha256": None,
        "format": "state_dict",
        "arch": "sonnet_resnet50",
        "model_kwargs": {},
        "trust": False,
        "members": {
            "source": "matrix",
            "path": f"{results}/fz/membership.npy",
            "sha256": None,
            "index": row,
        },
        "input": fz_input,
    }


def hist_target(config: dict[str, Any], unknown_targets: list[int]) -> int | None:
    """The target whose member/non-member histogram the report draws: report.hist_target,
    default the first target whose members are known (None when no target's are)."""
    ht = config["report"]["hist_target"]
    if ht in unknown_targets:
        raise ValueError(
            f"report.hist_target: target {ht} has unknown members "
            "(imported with members: null); its member/non-member histogram cannot be drawn"
        )
    if ht is not None:
        return ht
    known = [r for r in config["masks"]["targets"] if r not in unknown_targets]
    return known[0] if known else None


def check_fz(config: dict[str, Any]) -> None:
    """The fz section (Feldman & Zhang's release): one released run per model row, each
    run once, and an ImageFolder dataset (ImageNet's train/ and val/)."""
    fz, m = config["fz"], config["masks"]
    if len(fz["runs"]) != m["n_random"] or m["complements"]:
        raise ValueError(
            f"fz.runs: {len(fz['runs'])} runs, but masks.n_random is "
            f"{m['n_random']} (complements {m['complements']}): "
            "one released run per model row"
        )
    if len(set(fz["runs"])) != len(fz["runs"]):
        raise ValueError("fz.runs: a run id repeats")
    if config["data"]["dataset"] != "imagefolder":
        raise ValueError("fz: needs data.dataset imagefolder (ImageNet's train/ and val/)")
