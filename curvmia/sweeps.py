"""Privacy (DP epsilon) and dataset-size sweeps: extra target models attacked with the main
experiment's non-private shadows (docs/method.md: Training recipes).

Each sweep writes ``targets.csv`` (one row per target model: sweep, value, seed, model,
scores, members, test_acc) and ``metrics.csv`` (the columns of the main metrics.csv, one
row per attack × target, plus value and seed), and ``attacks.npz`` (every attack's scores
on every target, for the one-run bound); :func:`read_sweep` and
:func:`load_sweep_target` read them back, checked, for the theory comparison.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd

from .attacks import needed_f32_features, run_attack
from .metrics import summarize
from .scorefile import identity_digest, load_score_file

SWEEPS = ("dp", "size")
TARGET_COLUMNS = ("sweep", "value", "seed", "model", "scores", "members", "test_acc")


def sweep_seed(base: int, sweep: str, value: float, seed: int) -> int:
    """Independent 63-bit training seed of one sweep target."""
    code = int(round(float(value) * 1000))
    words = [base, SWEEPS.index(sweep) + 1, code, seed]
    return int(np.random.SeedSequence(words).generate_state(1, np.uint64)[0] >> 1)


def model_id(sweep: str, value: float | int, seed: int) -> str:
    """File-name-safe id of a sweep target, e.g. ``eps1.0_seed0`` or ``m500_seed1``."""
    return f"eps{float(value)}_seed{seed}" if sweep == "dp" else f"m{int(value)}_seed{seed}"


def members_file(sweep_dir: str, sweep: str, value: float | int | str) -> str:
    """Members file of a sweep target: one DP mask for all epsilons, one per m."""
    if sweep == "dp":
        return f"{sweep_dir}/dp/members.npy"
    return f"{sweep_dir}/size/members/m{int(float(value))}.npy"


def sweep_rows(sweep_dir: str, sweep: str, targets: list[tuple[float, int]]) -> list[dict]:
    """The workflow's file paths of each (value, seed) target of a sweep."""
    rows = []
    for v, s in targets:
        mid = model_id(sweep, v, s)
        rows.append(
            {
                "value": v,
                "seed": s,
                "model": mid,
                "scores": f"{sweep_dir}/{sweep}/scores/{mid}.npz",
                "members": members_file(sweep_dir, sweep, v),
                "checkpoint": f"{sweep_dir}/{sweep}/models/{mid}.pt",
            }
        )
    return rows


def targets_frame(rows: list[dict]) -> pd.DataFrame:
    """The targets.csv table with typed columns (value: float for dp, int for size)."""
    df = pd.DataFrame(rows, columns=TARGET_COLUMNS)
    df["seed"] = df["seed"].astype(int)
    df["value"] = df["value"].astype(float if (df["sweep"] == "dp").all() else int)
    return df


def _with_test_split(paths: list[str]) -> dict[str, np.ndarray]:
    """Population features and the held-out split's (``test_<name>``, RMIA's reference z)."""
    from .scores import load_features  # torch: kept out of the Snakefile's parse (cluster jobs)

    feats = load_features(paths)
    feats.update({f"test_{k}": v for k, v in load_features(paths, "test_").items()})
    return feats


def sweep_scores(
    targets: pd.DataFrame,
    shadow_score_files: list[str],
    shadow_in: np.ndarray,
    labels: np.ndarray,
    attack_specs: dict[str, dict],
) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Every configured attack on every sweep target, against the given shadows: per attack
    label the (T, N) scores, and the targets' (T, N) membership."""
    from .scores import check_float32_features  # torch: kept out of the Snakefile's parse

    needed = sorted({f for sp in attack_specs.values() for f in needed_f32_features(sp)})
    check_float32_features([*shadow_score_files, *targets["scores"]], needed)
    shadow = _with_test_split(shadow_score_files)
    scores: dict[str, list[np.ndarray]] = {label: [] for label in attack_specs}
    members = []
    for tr in targets.itertuples(index=False):
        feats = _with_test_split([tr.scores])
        target = {f: v[0] for f, v in feats.items()}
        member = load_members(tr.members).astype(bool)
        if member.shape != labels.shape:
            raise ValueError(f"{tr.members}: {member.shape} members for {labels.shape} samples")
        members.append(member)
        for label, spec in attack_specs.items():
            s, _ = run_attack(spec, [target], shadow, shadow_in, member[None], labels)
            scores[label].append(s[0])
    return {k: np.stack(v) for k, v in scores.items()}, np.stack(members)


def scores_metrics(
    targets: pd.DataFrame,
    scores: dict[str, np.ndarray],
    is_member: np.ndarray,
    *,
    fprs: list[float],
    n_boot: int,
    seed: int,
) -> pd.DataFrame:
    """metrics.csv of a sweep from :func:`sweep_scores`' output (target-major row order)."""
    rows = []
    for t, tr in enumerate(targets.itertuples(index=False)):
        for label, sc in scores.items():
            m = summarize(sc[t], is_member[t], fprs=fprs, n_boot=n_boot, seed=seed + t)
            rows.append(
                {"attack": label, "target": tr.model, **m, "value": tr.value, "seed": tr.seed}
            )
    return pd.DataFrame(rows)


def sweep_metrics(
    targets: pd.DataFrame,
    shadow_score_files: list[str],
    shadow_in: np.ndarray,
    labels: np.ndarray,
    attack_specs: dict[str, dict],
    *,
    fprs: list[float],
    n_boot: int,
    seed: int,
) -> pd.DataFrame:
    """Every configured attack on every sweep target, against the given shadows."""
    scores, is_member = sweep_scores(targets, shadow_score_files, shadow_in, labels, attack_specs)
    return scores_metrics(targets, scores, is_member, fprs=fprs, n_boot=n_boot, seed=seed)


def read_sweep(targets_csv: str, metrics_csv: str, sweep: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Read and check a sweep's targets.csv and metrics.csv (the issue-5 output contract)."""
    if sweep not in SWEEPS:
        raise ValueError(f"sweep must be one of {SWEEPS}, got {sweep!r}")
    t = pd.read_csv(targets_csv, dtype={"model": str})
    missing = [c for c in TARGET_COLUMNS if c not in t.columns]
    if missing:
        raise ValueError(f"{targets_csv}: missing columns {missing}; expected {TARGET_COLUMNS}")
    if len(t) == 0:
        raise ValueError(f"{targets_csv}: no sweep targets")
    if set(t["sweep"]) != {sweep}:
        raise ValueError(f"{targets_csv}: column 'sweep' must be {sweep!r}, got {set(t['sweep'])}")
    mt = pd.read_csv(metrics_csv, dtype={"target": str})
    missing = [c for c in ("attack", "target", "auroc", "value", "seed") if c not in mt.columns]
    if missing:
        raise ValueError(f"{metrics_csv}: missing columns {missing}")
    return t, mt


def _resolve(path: str, base: Path) -> str:
    """``path`` as named if it exists, else under ``base``; an error naming targets.csv."""
    if os.path.isabs(path) or os.path.exists(path):
        return path
    alt = base / path
    if alt.exists():
        return str(alt)
    raise FileNotFoundError(f"{path}: named in {base / 'targets.csv'} but not found")


def load_members(path: str) -> np.ndarray:
    """A sweep's members array (.npy, never unpickled); a damaged file names itself."""
    try:
        return np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise
    except (OSError, ValueError, EOFError) as e:
        raise ValueError(
            f"{path}: not a readable members array ({type(e).__name__}: {e})"
        ) from None


def load_sweep_target(target: pd.Series, base: Path) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Score file and members of one targets.csv row (paths absolute, relative to the current
    directory or to ``base``, the targets.csv folder); the members must be one bool per
    population entry of the score file."""
    path = _resolve(target["scores"], base)
    feats = load_score_file(path)
    want = target.get("score_identity")
    if isinstance(want, str):  # what sweep_metrics checked against the workflow
        got = identity_digest(json.loads(str(feats["meta"])) if "meta" in feats else {})
        if got != want:
            raise ValueError(
                f"{path}: score file identity {got}, the sweep's metrics were computed from "
                f"one with identity {want}: this result is stale; delete {path} and rerun "
                "`snakemake` (it is rebuilt)"
            )
    member = load_members(_resolve(target["members"], base))
    if member.dtype != bool or member.shape != feats["loss"].shape[:1]:
        raise ValueError(
            f"{target['members']}: expected a bool array of {feats['loss'].shape[0]} population "
            f"entries, got {member.dtype} {member.shape}"
        )
    return feats, member
