"""Metrics of every attack on every target: tidy CSV, the Table 1 layout and the full
markdown report, paired AUROC differences, one log-log ROC figure with all attacks."""

import argparse
import json
from pathlib import Path

import numpy as np
import pandas as pd

from curvmia.attacks import spec_label
from curvmia.health import health_markdown
from curvmia.io import atomic_path, load_npz, write_text
from curvmia.metric_frames import known_only, known_targets, metrics_frame, paired_frame
from curvmia.provenance import code_record
from curvmia.report_figures import plot_roc, plot_text
from curvmia.report_tables import coverage_note, diff_markdown, interval_table, markdown_table
from curvmia.table1 import headline_html, scoring_precision_note, table1_labels, table1_markdown


def score_meta(path: str) -> dict:
    """The metadata of one score file (read alone: the arrays stay on disk)."""
    with np.load(path, allow_pickle=False) as z:
        return json.loads(str(z["meta"]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--metrics", required=True, help="metrics config section as JSON")
    ap.add_argument("--specs", required=True, help="attacks config section as JSON")
    ap.add_argument("--dataset", required=True, help="dataset name (selects the paper column)")
    ap.add_argument("--health", required=True, help="health.csv")
    ap.add_argument("--min-test-acc", type=float, required=True)
    ap.add_argument("--csv", required=True)
    ap.add_argument("--diff-csv", required=True)
    ap.add_argument("--table1", required=True)
    ap.add_argument("--md", required=True)
    ap.add_argument("--roc", required=True)
    ap.add_argument("--headline", required=True, help="the report's first item (HTML)")
    ap.add_argument(
        "--about",
        required=True,
        help="JSON: experiment, dataset, arch, shadows, targets, scoring_variant (headline)",
    )
    ap.add_argument(
        "--scores", nargs="+", default=[], help="score files: their metadata gives the TF32 line"
    )
    ap.add_argument("attacks", nargs="+", help="attack result files <label>.npz")
    a = ap.parse_args()
    cfg = json.loads(a.metrics)
    specs = json.loads(a.specs)
    every = {Path(p).stem: load_npz(p) for p in a.attacks}
    first = next(iter(every.values()))
    unknown = [int(t) for t, k in zip(first["targets"], known_targets(first)) if not k]
    results = known_only(every)  # metrics need the true members
    health = pd.read_csv(a.health).fillna({"note": ""})
    code = "commit {commit}, code hash {code_hash} ({script})\n".format(**code_record("metrics.py"))
    why = (
        f"The training members of target(s) {unknown} are unknown (imported with members: "
        "null), so they have no AUROC, TPR or balanced accuracy: every one of those needs "
        "the true members. Their examples are ranked by exposure (the fraction of the "
        "population each one outscores) in vulnerability.csv and per_example.csv.gz, the most "
        "exposed in exposed.png (docs/audit-your-model.md, unknown membership).\n"
    )
    if not len(first["targets"]) - len(unknown):
        no_metric(a, why, health, code)
        return
    kw = {"n_boot": cfg["bootstrap"], "seed": cfg["seed"]}
    df = metrics_frame(results, fprs=cfg["fprs"], ci_fpr=cfg["ci_fpr"], **kw)
    diff, skipped = paired_frame(results, cfg["compare"], **kw)
    with atomic_path(a.csv, suffix=".csv") as tmp:
        df.to_csv(tmp, index=False)
    with atomic_path(a.diff_csv, suffix=".csv") as tmp:
        diff.to_csv(tmp, index=False)
    notes = {k: str(r["note"]) for k, r in results.items() if str(r.get("note", ""))}
    metas = [score_meta(p) for p in a.scores]
    table1 = table1_markdown(
        df, specs, a.dataset, notes=notes, precision=scoring_precision_note(metas)
    )
    write_text(a.table1, table1)
    write_text(a.headline, headline_html(table1, headline_facts(json.loads(a.about), specs)))
    doc = "\n".join(
        [
            *(["## Targets without metrics\n", why] if unknown else []),
            "## Table 1 layout (mean ± std over targets)\n",
            table1,
            "## Every attack and metric\n",
            markdown_table(df, cfg["fprs"]),
            coverage_note(df),
            f"## Per-target 95% bootstrap intervals (B = {cfg['bootstrap']})\n",
            interval_table(df, cfg["ci_fpr"]) if cfg["bootstrap"] > 0 else "bootstrap off\n",
            "## Paired AUROC differences (same bootstrap resamples for both attacks)\n",
            diff_markdown(diff, skipped) if cfg["bootstrap"] > 0 else "bootstrap off\n",
            "## Model health\n",
            health_markdown(health, a.min_test_acc),
            "## Code\n",
            code,
        ]
    )
    write_text(a.md, doc)
    with atomic_path(a.roc, suffix=".png") as tmp:
        plot_roc(results, str(tmp), table1=table1_labels(specs))
    print(doc)


def headline_facts(about: dict, specs: list[dict]) -> str:
    """What ran, in one sentence: models, dataset, architecture, variants."""
    clean = sorted(spec_label(s) for s in specs if s.get("variant") == "clean")
    return (
        f"Experiment {about['experiment']}: {about['shadows'] + about['targets']} models "
        f"({about['shadows']} shadows, {about['targets']} targets) of architecture "
        f"`{about['arch']}` on dataset {about['dataset']}; features scored in the "
        f"`{about['scoring_variant']}` scoring variant. The rows are the attacks in their "
        "`paper` variant (the released code's formulas), AUROC % / balanced accuracy % as "
        "mean ± std over the targets"
        + (f"; the `clean` variants ({', '.join(clean)}) are under Metrics." if clean else ".")
    )


def no_metric(a: argparse.Namespace, why: str, health: pd.DataFrame, code: str) -> None:
    """Outputs of a run none of whose targets has known members: empty tables, the reason."""
    with atomic_path(a.csv, suffix=".csv") as tmp:
        pd.DataFrame(columns=["attack", "target", "auroc"]).to_csv(tmp, index=False)
    with atomic_path(a.diff_csv, suffix=".csv") as tmp:
        pd.DataFrame(columns=["a", "b", "target", "diff"]).to_csv(tmp, index=False)
    write_text(a.table1, "No metric: " + why)
    facts = headline_facts(json.loads(a.about), json.loads(a.specs))
    write_text(a.headline, headline_html("No metric: " + why, facts))
    doc = "\n".join(
        ["## No membership metric\n", why, "## Model health\n",
         health_markdown(health, a.min_test_acc), "## Code\n", code]
    )  # fmt: skip
    write_text(a.md, doc)
    with atomic_path(a.roc, suffix=".png") as tmp:
        plot_text(str(tmp), "No ROC curve: " + why)
    print(doc)


if __name__ == "__main__":
    main()
