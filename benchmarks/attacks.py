"""Paper-size benchmark of the attack step and the metrics (issue 4).

Synthetic features of the paper's CIFAR size: 64 shadows x 50,000 samples x 2 queries,
3 targets, a 10,000-sample test split (RMIA's population z); every attack of the
registry (both variants where there are two) against every target, then every metric
with B = 200 bootstrap replicates and the paired Curv NLL − LiRA difference.  The
leave-one-out protocol is excluded.  Prints wall time and peak resident memory (both
against the limits of the issue: 60 s, 4 GiB) and each stage's share of the time.

``--calibration`` adds the pseudo-target stage (issue 29): (a) the attack step, every entry
of config/cifar10.yaml's ``attacks:`` against the targets (``run_attack``), against (b) the
label-free calibration, the same entries' ``pseudo_target_scores`` with every shadow as a
pseudo-target (independent layout, as cifar10.yaml) plus, per pseudo-target, its
thresholds at each FPR level (the score quantile of its non-members) and its
balanced-accuracy-maximising threshold, from one sort; target (b)/(a) <= 3.

    OMP_NUM_THREADS=2 python benchmarks/attacks.py [--samples 50000 --shadows 64]
    OMP_NUM_THREADS=2 python benchmarks/attacks.py --calibration
"""

import argparse
import inspect
import resource
import sys
import time
from pathlib import Path

import numpy as np
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # this checkout's package

from curvmia.attacks import ATTACKS, VARIANTS, run_attack, spec_label  # noqa: E402
from curvmia.metrics import (  # noqa: E402
    bootstrap_weights,
    paired_auroc_difference,
    summarize,
)
from curvmia.pseudo_targets import pseudo_target_scores  # noqa: E402

FEATURES = ("loss", "p_true", "p_max", "phi", "phi_max", "mentr", "curv_zo")


def synthetic(n_models, n, n_z, seed=0):
    rng = np.random.default_rng(seed)
    masks = rng.random((n_models, n)) < 0.5
    out = {}
    for prefix, nn, inn in (("", n, masks), ("test_", n_z, None)):
        b = rng.normal(0, 1.5, nn).astype(np.float64)
        conf = b[None, :, None] + rng.normal(0, 1, (n_models, nn, 2))
        if inn is not None:
            conf += 0.5 * inn[:, :, None]
        p = 1 / (1 + np.exp(-conf))
        out[prefix + "phi"] = conf
        out[prefix + "phi_max"] = conf
        out[prefix + "p_true"] = p
        out[prefix + "p_max"] = p
        out[prefix + "loss"] = -np.log(p)
        out[prefix + "mentr"] = -np.log(p) * (1 - p)
        out[prefix + "curv_zo"] = np.exp(-conf)
        # the float32 fields the paper variants read (scoring.variant: paper writes them)
        for f in ("loss", "mentr", "p_true", "p_max"):
            out[prefix + f + "_f32"] = out[prefix + f].astype(np.float32)
    return out, masks, rng.integers(0, 10, n)


def peak_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB on Linux


def attack_specs() -> list[tuple[str, str, dict]]:
    """(label, registry name, parameters) of every attack, both variants where there are two."""
    specs = []
    for name, fn in ATTACKS.items():
        if "variant" in inspect.signature(fn).parameters:
            specs += [(f"{name}[{v}]", name, {"variant": v}) for v in VARIANTS]
        else:
            specs.append((name, name, {}))
    return specs


def run_attacks(feats, shadow, s_in, labels, specs, n_shadows: int, n_targets: int):
    """Every attack on every target against the shadows: scores and seconds per attack."""
    times: dict[str, float] = {}
    scores = {}
    for t in range(n_targets):
        row = n_shadows + t
        target = {f: v[row] for f, v in feats.items()}
        for label, name, params in specs:
            t0 = time.perf_counter()
            scores[label, t] = ATTACKS[name](target, shadow, s_in, labels=labels, **params)
            times[label] = times.get(label, 0.0) + time.perf_counter() - t0
    return scores, times


def run_metrics(scores, masks, specs, n_shadows: int, n_targets: int, n_boot: int):
    """Every metric of every attack with shared bootstrap counts; the AUROCs per attack and
    the last target's paired Curv NLL − LiRA difference."""
    aucs = {}
    for t in range(n_targets):
        m = masks[n_shadows + t]
        w = bootstrap_weights(m, n_boot=n_boot, seed=t)
        for label, _, _ in specs:
            res = summarize(
                scores[label, t], m, fprs=[0.01, 0.001, 0.0001], n_boot=n_boot, seed=t, weights=w
            )
            aucs.setdefault(label, []).append(res["auroc"])
        d = paired_auroc_difference(
            scores["curv_nll[paper]", t], scores["lira_online[paper]", t], m, weights=w
        )
    return aucs, d


def print_times(specs, times, aucs, d, t_attacks: float, t_metrics: float, total: float) -> None:
    """Each attack's time and mean AUROC, the paired difference, the totals against the limits."""
    for label, _, _ in specs:
        print(
            f"  {label:22s} {times[label]:6.2f} s ({100 * times[label] / total:4.1f}% of total)"
            f"  mean AUROC {np.mean(aucs[label]):.3f}"
        )
    print(
        f"  last paired diff Curv NLL − LiRA: {d['diff']:+.4f} [{d['diff_lo']:+.4f}, "
        f"{d['diff_hi']:+.4f}]"
    )
    print(
        f"attacks {t_attacks:.1f} s ({100 * t_attacks / total:.0f}%), metrics incl. "
        f"bootstrap {t_metrics:.1f} s ({100 * t_metrics / total:.0f}%)"
    )
    print(
        f"TOTAL {total:.1f} s (limit 60 s, ratio {total / 60:.2f}); "
        f"PEAK RSS {peak_gib():.2f} GiB (limit 4 GiB, ratio {peak_gib() / 4:.2f})"
    )


def add_hutch(feats: dict, seed: int = 1) -> None:
    """The white-box traces cifar10.yaml's entries read: ``curv_hutch`` (a noisy,
    sometimes negative, estimate of curv_zo) and ``curv_hutch_sq``."""
    rng = np.random.default_rng(seed)
    for prefix in ("", "test_"):
        zo = feats[prefix + "curv_zo"]
        feats[prefix + "curv_hutch"] = zo * rng.normal(1, 0.5, zo.shape)
        feats[prefix + "curv_hutch_sq"] = feats[prefix + "curv_hutch"] ** 2


def paper_config() -> tuple[list[dict], list[float]]:
    """config/cifar10.yaml's attack entries and its FPR levels plus 0.1."""
    cfg = yaml.safe_load((REPO / "config" / "cifar10.yaml").read_text())
    return cfg["attacks"], sorted({0.1, *cfg["metrics"]["fprs"]}, reverse=True)


def calibration_thresholds(
    scores: np.ndarray, is_member: np.ndarray, fprs: list[float]
) -> tuple[np.ndarray, float]:
    """One pseudo-target's thresholds from one sort of its scores (NaN ranks lowest): at each
    FPR level the (1 − fpr)-quantile of its non-members' scores, and the cut (score ≥ τ:
    member) of maximal balanced accuracy."""
    s = np.where(np.isnan(scores), -np.inf, scores)
    order = np.argsort(s, kind="stable")
    s, m = s[order], np.asarray(is_member, bool)[order]
    non = s[~m]
    at_fpr = np.full(len(fprs), np.inf)
    if len(non):
        at_fpr = non[np.minimum((len(non) * (1 - np.asarray(fprs))).astype(np.int64), len(non) - 1)]
    # cut before position i: members at or above it are the true positives
    tp = m.sum() - np.r_[0, np.cumsum(m)]
    fp = len(non) - np.r_[0, np.cumsum(~m)]
    bacc = tp / max(m.sum(), 1) + 1 - fp / max(len(non), 1)
    bacc[1:-1][s[1:] == s[:-1]] = -np.inf  # no cut between equal scores
    i = int(np.argmax(bacc))
    return at_fpr, float(s[i]) if i < len(s) else np.inf


def calibration_stage(feats, shadow, s_in, masks, labels, n_shadows: int, n_targets: int):
    """(a) the attack step of the paper config against the targets, (b) the pseudo-target
    calibration of the same entries; prints both times and their ratio."""
    specs, fprs = paper_config()
    targets = [{f: v[n_shadows + t] for f, v in feats.items()} for t in range(n_targets)]
    t_in = masks[n_shadows : n_shadows + n_targets]
    comp = np.full(n_shadows, -1)  # independent layout (cifar10.yaml: complements: false)
    t_a = t_scores = t_thr = 0.0
    for spec in specs:
        t0 = time.perf_counter()
        run_attack(spec, targets, shadow, s_in, t_in, labels)
        t1 = time.perf_counter()
        pseudo = pseudo_target_scores(spec, shadow, s_in, labels, comp)
        t2 = time.perf_counter()
        for p in range(n_shadows):
            calibration_thresholds(pseudo[p], s_in[p], fprs)
        t3 = time.perf_counter()
        t_a, t_scores, t_thr = t_a + t1 - t0, t_scores + t2 - t1, t_thr + t3 - t2
        print(
            f"  {spec_label(spec):22s} attack {t1 - t0:6.2f} s, pseudo-targets {t2 - t1:6.2f} s"
            f" + thresholds {t3 - t2:5.2f} s"
        )
    print(f"calibration: (a) attack step, {len(specs)} entries x {n_targets} targets: {t_a:.1f} s")
    print(
        f"calibration: (b) {len(specs)} entries x {n_shadows} pseudo-targets: "
        f"{t_scores + t_thr:.1f} s (scores {t_scores:.1f} s, thresholds at FPR "
        f"{', '.join(f'{f:g}' for f in fprs)} and balanced accuracy {t_thr:.1f} s)"
    )
    print(f"calibration: ratio (b)/(a) {(t_scores + t_thr) / t_a:.2f} (target <= 3)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--shadows", type=int, default=64)
    ap.add_argument("--samples", type=int, default=50_000)
    ap.add_argument("--test-samples", type=int, default=10_000)
    ap.add_argument("--targets", type=int, default=3)
    ap.add_argument("--boot", type=int, default=200)
    ap.add_argument(
        "--calibration",
        action="store_true",
        help="also time the pseudo-target calibration against the attack step (issue 29)",
    )
    a = ap.parse_args()
    if a.boot < 1:
        ap.error(f"--boot: needs at least 1 bootstrap replicate, got {a.boot}")
    feats, masks, labels = synthetic(a.shadows + a.targets, a.samples, a.test_samples)
    sh = list(range(a.shadows))
    shadow, s_in = {f: v[sh] for f, v in feats.items()}, masks[sh]
    print(
        f"{a.shadows} shadows x {a.samples} samples x 2 queries, {a.targets} targets, "
        f"z = {a.test_samples}, B = {a.boot}; features in memory {peak_gib():.2f} GiB"
    )
    specs = attack_specs()
    t_all = time.perf_counter()
    scores, times = run_attacks(feats, shadow, s_in, labels, specs, a.shadows, a.targets)
    t_attacks = time.perf_counter() - t_all
    t0 = time.perf_counter()
    aucs, d = run_metrics(scores, masks, specs, a.shadows, a.targets, a.boot)
    t_metrics = time.perf_counter() - t0
    total = time.perf_counter() - t_all
    print_times(specs, times, aucs, d, t_attacks, t_metrics, total)
    if a.calibration:
        add_hutch(feats)
        shadow = {f: v[sh] for f, v in feats.items()}
        calibration_stage(feats, shadow, s_in, masks, labels, a.shadows, a.targets)


if __name__ == "__main__":
    main()
