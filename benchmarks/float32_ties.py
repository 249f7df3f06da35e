"""How much the released code's float32 ties move the loss baselines and the "Carlini et al."
row on a finished run (docs/method.md, Attacks).

For every loss baseline, its paper variant (float32 loss / Mentr with ties) against its
clean variant (float64), and carlini_paper on the float32 p_max against its fallback (float64
p_max cast to float32) and against LiRA online (the proper attack): AUROC and balanced
accuracy (|FPR+TPR−1| threshold), mean ± std over the targets, plus how many values tie.

    python benchmarks/float32_ties.py --configfile config/config.yaml
"""

import argparse
import sys
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's package

from curvmia.attacks import ATTACKS  # noqa: E402
from curvmia.data import load_prepared, prepared_dir_name  # noqa: E402
from curvmia.io import load_npz  # noqa: E402
from curvmia.metrics import summarize  # noqa: E402
from curvmia.scores import load_features  # noqa: E402


class Run(NamedTuple):
    """A finished run's labels, masks, used shadows, targets and their features."""

    labels: np.ndarray
    masks: np.ndarray
    shadows: list[int]
    targets: list[int]
    sh: dict[str, np.ndarray]
    tg: dict[str, np.ndarray]


def load_run(cfg: dict) -> Run:
    """The finished run of ``cfg`` (results/<experiment>)."""
    results = Path("results") / cfg["experiment"]
    data = Path(cfg["data"]["root"]) / prepared_dir_name(cfg["data"])
    labels = load_prepared(str(data / "manifest.json")).train_labels
    masks = load_npz(results / "masks.npz")["masks"]
    health = pd.read_csv(results / "health.csv")
    unused = set(health.loc[~health.used, "row"].astype(int))
    shadows = [r for r in cfg["masks"]["shadows"] if r not in unused]
    targets = list(cfg["masks"]["targets"])
    path = lambda r: str(results / "scores" / f"model_{r}.npz")  # noqa: E731
    sh = load_features([path(r) for r in shadows])
    tg = load_features([path(r) for r in targets])
    return Run(labels, masks, shadows, targets, sh, tg)


def attack_runs(cfg: dict) -> list[tuple[str, str, dict]]:
    """(label, attack, parameters): each loss baseline paper and clean, carlini_paper on the
    float32 p_max and on the cast one, and LiRA online."""
    query = {s["name"]: s.get("loss_query", 0) for s in cfg["attacks"] if "loss_query" in s}
    runs = []
    for name in ("yeom", "sablayrolles", "watson", "ye", "song"):
        for variant in ("paper", "clean"):
            runs.append((f"{name} [{variant}]", name, {"variant": variant,
                         "loss_query": query.get(name, 0)}))  # fmt: skip
    form = next((s.get("form", "lr") for s in cfg["attacks"] if s["name"] == "carlini_paper"), "lr")
    runs.append((f"carlini_paper [{form}, p_max_f32]", "carlini_paper", {"form": form}))
    runs.append((f"carlini_paper [{form}, cast p_max]", "carlini_paper", {"form": form}))
    runs.append(("lira_online [paper]", "lira_online", {"variant": "paper"}))
    return runs


def table_row(label: str, name: str, params: dict, run: Run) -> str:
    """One attack's AUROC and balanced accuracy, mean ± std over the targets."""
    labels, masks, shadows, targets, sh, tg = run
    shadow = sh
    if "cast p_max" in label:
        shadow = {k: v for k, v in sh.items() if k != "p_max_f32"}
    res = []
    for i, t in enumerate(targets):
        target = {k: v[i] for k, v in tg.items()}
        if "cast p_max" in label:
            target.pop("p_max_f32")
        s = ATTACKS[name](target, shadow, masks[shadows], labels=labels, **params)
        res.append(summarize(s, masks[t], fprs=[0.01], n_boot=0, seed=0))
    auc = np.array([r["auroc"] for r in res])
    bal = np.array([r["bal_acc_paper"] for r in res])
    return (f"| {label} | {100 * auc.mean():.2f} ± {100 * auc.std():.2f} | "
            f"{100 * bal.mean():.2f} ± {100 * bal.std():.2f} |")  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--configfile", default="config/config.yaml")
    a = ap.parse_args()
    cfg = yaml.safe_load(Path(a.configfile).read_text())
    run = load_run(cfg)
    rows = [table_row(label, name, params, run) for label, name, params in attack_runs(cfg)]
    print("| attack [variant] | AUROC % | bal. acc. % (paper thr.) |\n|---|---|---|")
    print("\n".join(rows))
    sh, tg = run.sh, run.tg
    for f32, f64 in (("loss_f32", "loss"), ("p_max_f32", "p_max")):
        x32, x64 = np.concatenate([sh[f32].ravel(), tg[f32].ravel()]), sh[f64].ravel()
        tie = 0.0 if f32 == "loss_f32" else 1.0
        print(f"{f32}: {100 * (x32 == tie).mean():.2f}% exactly {tie:g} (float64 {f64}: "
              f"{100 * (x64 == tie).mean():.2f}%, cast to float32: "
              f"{100 * (x64.astype(np.float32) == tie).mean():.2f}%)")  # fmt: skip


if __name__ == "__main__":
    main()
