"""Metrics of every attack on every target: tidy CSV, the Table 1 layout and the full
markdown report, paired AUROC differences, one log-log ROC figure with all attacks."""

import argparse
import json
from pathlib import Path

import pandas as pd

from curvmia.attacks import spec_label
from curvmia.health import health_markdown
from curvmia.io import atomic_path, load_npz, write_text
from curvmia.metric_frames import (
    Verdicts,
    known_only,
    known_targets,
    metrics_frame,
    nan_verdicts,
    paired_frame,
)
from curvmia.one_run_audit import headline_markdown
from curvmia.provenance import code_record
from curvmia.realistic import headline_prior, with_labelfree
from curvmia.report_figures import plot_roc, plot_text
from curvmia.report_tables import (
    coverage_note,
    diff_markdown,
    interval_table,
    markdown_table,
    realistic_markdown,
)
from curvmia.scorefile import check_recorded_inputs, identity_digest, read_score_meta
from curvmia.table1 import headline_html, scoring_precision_note, table1_labels, table1_markdown


def check_attack_inputs(attacks: dict[str, dict], metas: list[dict], paths: list[str]) -> None:
    """Refuse an attack output computed from score files other than the current ones: the
    identity hash it recorded per row against the current score file's (metadata only)."""
    current = {str((m.get("identity") or {}).get("row")): identity_digest(m) for m in metas}
    for path, result in zip(paths, attacks.values(), strict=True):
        check_recorded_inputs(path, result, current)


def parse_args() -> argparse.Namespace:
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
    ap.add_argument(
        "--realistic", help="realistic.csv (label-free thresholds; the headline's lead)"
    )
    ap.add_argument("--bal", help="label-free balanced accuracy per target (.csv)")
    ap.add_argument("--one-run", help="one_run.csv: the one-run ε lower bound per target")
    ap.add_argument("attacks", nargs="+", help="attack result files <label>.npz")
    return ap.parse_args()


def unknown_members_note(unknown: list[int]) -> str:
    """Why the targets ``unknown`` have no metric, and where their examples are ranked."""
    return (
        f"The training members of target(s) {unknown} are unknown (imported with members: "
        "null), so they have no AUROC, TPR or balanced accuracy: every one of those needs "
        "the true members. Their examples are ranked by exposure (the fraction of the "
        "population each one outscores) in vulnerability.csv and per_example.csv.gz, the most "
        "exposed in exposed.png (docs/audit-your-model.md, unknown membership).\n"
    )


def write_csv(path: str, df: pd.DataFrame) -> None:
    """``df`` as CSV without its index, written atomically."""
    with atomic_path(path, suffix=".csv") as tmp:
        df.to_csv(tmp, index=False)


def metrics_doc(
    df: pd.DataFrame,
    diff: pd.DataFrame,
    skipped: list[list[str]],
    cfg: dict,
    *,
    why: str,
    table1: str,
    health_md: str,
    code: str,
    no_result: Verdicts,
    realistic: str,
    one_run: str = "",
) -> str:
    """metrics.md: why targets lack metrics (if any do), the realistic audit (label-free
    thresholds), Table 1 (oracle thresholds), every metric (no result
    where too many scores are NaN), bootstrap intervals, paired differences, model health,
    the code."""
    boot = cfg["bootstrap"] > 0
    return "\n".join(
        [
            *(["## Targets without metrics\n", why] if why else []),
            *(["## Realistic audit: label-free thresholds\n", realistic] if realistic else []),
            *(["## One-run ε lower bound per target\n", one_run] if one_run else []),
            "## Table 1 layout (mean ± std over targets; oracle thresholds)\n",
            table1,
            "## Every attack and metric\n",
            markdown_table(df, cfg["fprs"], no_result),
            coverage_note(df),
            f"## Per-target 95% bootstrap intervals (B = {cfg['bootstrap']})\n",
            interval_table(df, cfg["ci_fpr"], no_result) if boot else "bootstrap off\n",
            "## Paired AUROC differences (same bootstrap resamples for both attacks)\n",
            diff_markdown(diff, skipped, no_result) if boot else "bootstrap off\n",
            "## Model health\n",
            health_md,
            "## Code\n",
            code,
        ]
    )


def write_table1(
    a: argparse.Namespace,
    df: pd.DataFrame,
    specs: list[dict],
    results: dict,
    no_result: Verdicts,
    metas: list[dict],
    realistic: str,
) -> str:
    """table1.md and the headline (the realistic audit, then Table 1's rows); returns the
    Table 1 text."""
    notes = {k: str(r["note"]) for k, r in results.items() if str(r.get("note", ""))}
    precision = scoring_precision_note(metas)
    table1 = table1_markdown(
        df, specs, a.dataset, notes=notes, precision=precision, no_result=no_result
    )
    write_text(a.table1, table1)
    facts = headline_facts(json.loads(a.about), specs)
    write_text(a.headline, headline_html(table1, facts, realistic, one_run_lines(a.one_run)))
    return table1


def main() -> None:
    a = parse_args()
    cfg, specs = json.loads(a.metrics), json.loads(a.specs)
    every = {Path(p).stem: load_npz(p) for p in a.attacks}
    metas = [read_score_meta(p) for p in a.scores]
    check_attack_inputs(every, metas, a.attacks)
    first = next(iter(every.values()))
    unknown = [int(t) for t, k in zip(first["targets"], known_targets(first)) if not k]
    results = known_only(every)  # metrics need the true members
    health = pd.read_csv(a.health).fillna({"note": ""})
    code = "commit {commit}, code hash {code_hash} ({script})\n".format(**code_record("metrics.py"))
    why = unknown_members_note(unknown)
    if not len(first["targets"]) - len(unknown):
        no_metric(a, why, health, code)
        return
    kw = {"n_boot": cfg["bootstrap"], "seed": cfg["seed"]}
    df = metrics_frame(results, fprs=cfg["fprs"], ci_fpr=cfg["ci_fpr"], **kw)
    df = with_labelfree(df, pd.read_csv(a.bal)) if a.bal else df
    diff, skipped = paired_frame(results, cfg["compare"], **kw)
    write_csv(a.csv, df)
    write_csv(a.diff_csv, diff)
    no_result = nan_verdicts(df, cfg["max_nan_share"])
    realistic = lead_markdown(a.realistic, df, cfg)
    table1 = write_table1(a, df, specs, results, no_result, metas, realistic)
    health_md = health_markdown(health, a.min_test_acc)
    doc = metrics_doc(
        df, diff, skipped, cfg, why=why if unknown else "", table1=table1, health_md=health_md,
        code=code, no_result=no_result, realistic=realistic, one_run=one_run_lines(a.one_run),
    )  # fmt: skip
    write_text(a.md, doc)
    with atomic_path(a.roc, suffix=".png") as tmp:
        plot_roc(results, str(tmp), table1=table1_labels(specs))
    print(doc)


def one_run_lines(path: str | None) -> str:
    """The headline's one-run table from one_run.csv (empty without one)."""
    if not path:
        return ""
    return headline_markdown(pd.read_csv(path).fillna({"note": "", "selection": ""}))


def lead_markdown(path: str | None, df: pd.DataFrame, cfg: dict) -> str:
    """The realistic audit's headline table from realistic.csv (empty without one)."""
    if not path:
        return ""
    return realistic_markdown(pd.read_csv(path), df, headline_prior(cfg["priors"]))


def headline_facts(about: dict, specs: list[dict]) -> str:
    """What ran, in one sentence: models, dataset, architecture, variants."""
    clean = sorted(spec_label(s) for s in specs if s.get("variant") == "clean")
    return (
        f"Experiment {about['experiment']}: {about['shadows'] + about['targets']} models "
        f"({about['shadows']} shadows, {about['targets']} targets) of architecture "
        f"`{about['arch']}` on dataset {about['dataset']}; features scored in the "
        f"`{about['scoring_variant']}` scoring variant. The Table 1 rows are the attacks in "
        "their `paper` variant (the released code's formulas), AUROC % / oracle balanced "
        "accuracy % as mean ± std over the targets"
        + (f"; the `clean` variants ({', '.join(clean)}) are under Metrics." if clean else ".")
    )


def no_metric(a: argparse.Namespace, why: str, health: pd.DataFrame, code: str) -> None:
    """Outputs of a run none of whose targets has known members: empty tables, the reason."""
    write_csv(a.csv, pd.DataFrame(columns=["attack", "target", "auroc"]))
    write_csv(a.diff_csv, pd.DataFrame(columns=["a", "b", "target", "diff"]))
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
