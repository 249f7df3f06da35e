"""Run one configured attack against every target model."""

import argparse
import json

import numpy as np

from curvmia.attacks import (
    carlini_p_max,
    coverage,
    needed_f32_features,
    run_attack,
    spec_label,
)
from curvmia.data import load_prepared
from curvmia.health import kept_positions
from curvmia.io import load_npz, save_npz
from curvmia.pseudo_targets import complement_positions, pseudo_target_scores
from curvmia.scorefile import check_score_files
from curvmia.scores import check_float32_features, load_features


def rows(s: str) -> list[int]:
    return [int(v) for v in s.split(",")]


def load_all(paths: list[str]) -> dict[str, np.ndarray]:
    """Population features and the test split's (``test_<name>``), (M, N, Q) each."""
    feats = load_features(paths)
    feats.update({f"test_{k}": v for k, v in load_features(paths, "test_").items()})
    return feats


def load_masks(path: str) -> tuple[np.ndarray, np.ndarray]:
    """The mask set and, per row, whether its members are known (older files: all are)."""
    mz = load_npz(path)
    masks = mz["masks"]
    return masks, (mz["known"] if "known" in mz else np.ones(len(masks), dtype=bool))


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--data", required=True, help="prepared dataset directory")
    ap.add_argument("--masks", required=True)
    ap.add_argument(
        "--health", required=True, help="health.csv: shadows with used=False are dropped"
    )
    ap.add_argument("--shadow-rows", type=rows, required=True, help="comma-separated mask rows")
    ap.add_argument("--target-rows", type=rows, required=True, help="comma-separated mask rows")
    ap.add_argument("--shadow-scores", nargs="+", required=True, help="score files, row order")
    ap.add_argument("--target-scores", nargs="+", required=True, help="score files, row order")
    ap.add_argument(
        "--expect",
        required=True,
        help="JSON: per row, the identity its score file must carry (curvmia/scorefile.py)",
    )
    ap.add_argument("--spec", required=True, help="attack config entry as JSON")
    ap.add_argument("--out", required=True)
    ap.add_argument(
        "--pseudo-out",
        required=True,
        help="npz: every kept shadow scored as a pseudo-target (curvmia/pseudo_targets.py)",
    )
    ap.add_argument("--n-random", type=int, required=True, help="masks.n_random")
    ap.add_argument("--complements", choices=("true", "false"), required=True)
    return ap.parse_args()


def fallback_note(spec: dict, shadow: dict, targets: list[dict]) -> str:
    """carlini_paper without the float32 p_max in the score files: what stands in, and why."""
    if spec["name"] != "carlini_paper" or not (
        carlini_p_max(shadow)[1] or carlini_p_max(targets[0])[1]
    ):
        return ""
    note = (
        "FALLBACK: the score files lack p_max_f32 (scored with scoring.variant: clean or by "
        "an older version), so the float64 p_max cast to float32 stands in for the float32 "
        "probability the released code computed; float32 ties may differ (rescore with "
        "scoring.variant: paper for the exact row)"
    )
    print(f"{spec_label(spec)}: {note}")
    return note


def check_scores(a: argparse.Namespace) -> dict[str, str]:
    """Check every score file's identity against the one the workflow expects of its row
    (metadata alone: before any array is read); returns, per row, its identity's hash."""
    if len(a.shadow_scores) != len(a.shadow_rows) or len(a.target_scores) != len(a.target_rows):
        raise SystemExit("--shadow-scores/--target-scores must give one file per row")
    expect = json.loads(a.expect)
    rows, paths = a.shadow_rows + a.target_rows, a.shadow_scores + a.target_scores
    digests = check_score_files(paths, [expect[str(r)] for r in rows])
    return {str(r): digests[str(p)] for r, p in zip(rows, paths, strict=True)}


def save_pseudo(
    a: argparse.Namespace,
    spec: dict,
    shadow: dict[str, np.ndarray],
    shadow_in: np.ndarray,
    shadow_rows: list[int],
    labels: np.ndarray,
) -> None:
    """Every kept shadow scored as a pseudo-target (the label-free thresholds' input)."""
    comp = complement_positions(shadow_rows, a.n_random, a.complements == "true")
    save_npz(
        a.pseudo_out,
        scores=pseudo_target_scores(spec, shadow, shadow_in, labels, comp),
        is_member=shadow_in,
        shadows=np.asarray(shadow_rows),
        complement=comp,
    )


def main() -> None:
    a = parse_args()
    spec = json.loads(a.spec)
    inputs = check_scores(a)
    check_float32_features(a.shadow_scores + a.target_scores, needed_f32_features(spec))
    masks, known = load_masks(a.masks)
    labels = load_prepared(a.data).train_labels
    keep, unused = kept_positions(a.health, a.shadow_rows)
    shadow_rows = [a.shadow_rows[i] for i in keep]
    shadow = load_all([a.shadow_scores[i] for i in keep])
    target_stack = load_all(a.target_scores)
    targets = [{f: v[i] for f, v in target_stack.items()} for i in range(len(a.target_rows))]
    scores, is_member = run_attack(
        spec, targets, shadow, masks[shadow_rows], masks[a.target_rows], labels
    )
    cov = coverage(masks[shadow_rows])
    note = fallback_note(spec, shadow, targets)
    save_npz(
        a.out,
        scores=scores,
        is_member=is_member,
        targets=np.asarray(a.target_rows),
        # False: that target's members are unknown (its is_member row is all False; no
        # metric uses it, the report ranks its examples by exposure only)
        known=known[a.target_rows],
        shadows=np.asarray(shadow_rows),
        n_shadows=np.asarray(len(shadow_rows)),
        n_no_in_shadow=np.asarray(cov["n_no_in_shadow"]),
        n_no_out_shadow=np.asarray(cov["n_no_out_shadow"]),
        note=np.asarray(note),
        # per row, the hash of the identity of the score file read (checked by metrics)
        inputs=np.asarray(json.dumps(inputs, sort_keys=True)),
    )
    save_pseudo(a, spec, shadow, masks[shadow_rows], shadow_rows, labels)
    print(
        f"{spec}: {len(shadow_rows)} shadows (excluded by health: {sorted(unused) or 'none'}), "
        f"{len(a.target_rows)} targets, {int(np.isnan(scores).sum())} NaN scores, {cov}"
    )


if __name__ == "__main__":
    main()
