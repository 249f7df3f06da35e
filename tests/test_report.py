"""Tidy metrics frame and the markdown table."""

import re

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from curvmia.exposure import exposure, per_example_frame, vulnerability_frame
from curvmia.health import health_frame, health_markdown
from curvmia.leave_one_out import loo_frame, loo_layouts, loo_markdown
from curvmia.metric_frames import known_only, metrics_frame, paired_frame
from curvmia.report_figures import plot_roc, roc_panels
from curvmia.report_tables import diff_markdown, markdown_table
from curvmia.table1 import headline_html, scoring_precision_note, table1_markdown


def _results():
    rng = np.random.default_rng(0)
    out = {}
    for label, shift in (("strong", 1.0), ("weak", 0.1)):
        m = rng.random((3, 400)) < 0.5
        out[label] = {
            "scores": rng.normal(0, 1, (3, 400)) + shift * m,
            "is_member": m,
            "targets": np.array([5, 6, 7]),
        }
    return out


def test_metrics_frame_rows_and_aggregates():
    res = _results()
    df = metrics_frame(res, fprs=[0.1, 0.01], n_boot=20, seed=0)
    # one row per attack × target, then mean and std rows per attack
    assert list(df.target) == ["5", "6", "7", "5", "6", "7", "mean", "std", "mean", "std"]
    strong = df[df.attack == "strong"].set_index("target")
    aucs = [
        roc_auc_score(res["strong"]["is_member"][t], res["strong"]["scores"][t]) for t in range(3)
    ]
    assert strong.loc["mean", "auroc"] == pytest.approx(np.mean(aucs))
    assert strong.loc["std", "auroc"] == pytest.approx(np.std(aucs))  # ddof 0
    # 200 non-members: TPR@10% is reported, TPR@1% needs 1000 and is not
    assert strong.loc["5", "tpr@0.1"] >= 0 and np.isnan(strong.loc["5", "tpr@0.01"])


def test_markdown_table_is_well_formed():
    df = metrics_frame(_results(), fprs=[0.1, 0.01], n_boot=0, seed=0)
    md = markdown_table(df, [0.1, 0.01])
    rows = [line for line in md.splitlines() if line.startswith("|")]
    cells = {len(re.split(r"(?<!\\)\|", line)) for line in rows}
    assert len(cells) == 1 and len(rows) == 4  # header, rule, two attacks
    assert "| strong | " in md and "n/a" in md and "fewer than 10/FPR" in md


def test_metrics_frame_has_strict_tpr_and_shares_bootstrap_counts():
    rng = np.random.default_rng(1)
    m = rng.random((2, 3000)) < 0.5
    s = rng.normal(0, 1, (2, 3000)) + m
    res = {lab: {"scores": s, "is_member": m, "targets": np.array([3, 4])} for lab in ("a", "b")}
    df = metrics_frame(res, fprs=[0.01], n_boot=30, seed=0)
    a = df[df.attack == "a"].set_index("target")
    b = df[df.attack == "b"].set_index("target")
    # same scores, same members, same counts: identical intervals
    assert a.loc["3", "auroc_lo"] == b.loc["3", "auroc_lo"]
    assert a.loc["3", "tpr_strict@0.01"] <= a.loc["3", "tpr@0.01"]
    assert a.loc["3", "tpr@0.01_lo"] <= a.loc["3", "tpr@0.01"] <= a.loc["3", "tpr@0.01_hi"]


def test_paired_frame_and_skipped_pairs():
    res = _results()
    res["same"] = dict(res["strong"])
    res["weak"]["is_member"] = res["strong"]["is_member"]
    diff, skipped = paired_frame(
        res, [["strong", "weak"], ["strong", "same"], ["strong", "nope"]], n_boot=50, seed=0
    )
    assert skipped == [["strong", "nope"]]
    sw = diff[(diff.b == "weak") & ~diff.target.isin(["mean", "std"])]
    ref = [
        roc_auc_score(res["strong"]["is_member"][t], res["strong"]["scores"][t])
        - roc_auc_score(res["weak"]["is_member"][t], res["weak"]["scores"][t])
        for t in range(3)
    ]
    np.testing.assert_allclose(sw["diff"], ref)
    assert (sw.diff_lo < sw["diff"]).all() and (sw["diff"] < sw.diff_hi).all()
    same = diff[(diff.b == "same") & ~diff.target.isin(["mean", "std"])]
    assert (same[["diff", "diff_lo", "diff_hi"]].to_numpy() == 0).all()
    md = diff_markdown(diff, skipped)
    assert "strong − nope | – | not computed" in md


def _specs():
    return [
        {"name": "curv_nll", "variant": "paper"},
        {"name": "curv_nll", "variant": "clean", "label": "curv_nll_clean"},
        {"name": "yeom"},
        {"name": "carlini_paper"},
        {"name": "lira_online", "variant": "paper"},
    ]


def _frame_for(labels, fprs=(0.01, 1e-4)):
    rng = np.random.default_rng(0)
    m = rng.random((3, 400)) < 0.5
    res = {
        lab: {"scores": rng.normal(0, 1, (3, 400)) + m, "is_member": m, "targets": np.arange(3)}
        for lab in labels
    }
    return metrics_frame(res, fprs=list(fprs), n_boot=0, seed=0)


def test_table1_layout_with_and_without_paper_numbers():
    df = _frame_for(["curv_nll", "curv_nll_clean", "yeom", "carlini_paper", "lira_online"])
    n_non = int(df[df.target == "mean"]["n_nonmembers"].min())
    cifar = table1_markdown(df, _specs(), "cifar100", notes={"carlini_paper": "FALLBACK: cast"})
    rows = [line for line in cifar.splitlines() if line.startswith("| ")]
    # header + the 8 methods of Table 1 + LiRA proper + the clean variant as extra rows
    assert len(rows) == 11
    nll = next(r for r in rows if r.startswith("| Curv NLL |"))
    # ours, the paper's AUROC / bal. acc., our TPR @ 0.01% (empty, with the reason), theirs
    assert "(`curv_nll`)" in nll and "| 93.48 / 84.47 |" in nll
    assert f"| empty: {n_non} non-members, fewer than 10/FPR = 100000 | 0.00 |" in nll
    assert next(r for r in rows if r.startswith("| Watson |")).endswith(
        "| not run | 71.66 / 62.71 | not run | not published |"
    )
    carlini = next(r for r in rows if r.startswith("| Carlini et al. |"))
    assert "(`carlini_paper`)" in carlini and carlini.endswith("| 6.56 |")
    assert "88.89 / 81.55" in carlini
    lira = next(r for r in rows if r.startswith("| LiRA online, the proper attack"))
    assert "(`lira_online`)" in lira and "not in the paper's table" in lira
    assert "| `curv_nll_clean` (not in the paper's table) |" in cifar
    assert "41.54 / 7.75 / 0.00" in cifar  # the CIFAR-100 TPR line
    assert "`carlini_paper`: FALLBACK: cast" in cifar
    # our TPR cell when enough non-members exist: mean ± std over targets
    df2 = df.copy()
    df2.loc[(df2.attack == "curv_nll") & (df2.target == "mean"), "tpr@0.0001"] = 0.123
    df2.loc[(df2.attack == "curv_nll") & (df2.target == "std"), "tpr@0.0001"] = 0.01
    nll2 = next(
        r for r in table1_markdown(df2, _specs(), "cifar100").splitlines() if "Curv NLL" in r
    )
    assert nll2.endswith("| 12.30 ± 1.00 | 0.00 |")
    # an FPR the config does not ask for
    no_fpr = table1_markdown(_frame_for(["curv_nll"], fprs=[0.01]), _specs(), "cifar10")
    assert "not computed: 0.0001 is not in metrics.fprs | not published for CIFAR-10 |" in no_fpr
    digits = table1_markdown(df, _specs(), "digits")
    assert "paper (" not in digits and "93.48" not in digits and "Ours only" in digits
    assert "68.95" in table1_markdown(df, _specs(), "cifar10")


def test_scoring_precision_note_reads_the_metadata():
    off = {"tf32": {"cudnn": False, "matmul": False}, "scoring": {"tf32": False}, "device": "cpu"}
    on = {"tf32": {"cudnn": True, "matmul": False}, "scoring": {"tf32": True}, "device_name": "A"}
    assert "convolutions off, for matmuls off (scoring.tf32: off)" in scoring_precision_note([off])
    mixed = scoring_precision_note([off, on])
    assert "convolutions off / on (mixed)" in mixed and "2 score files" in mixed
    assert scoring_precision_note([]) == ""


def test_health_frame_excludes_flags_or_fails():
    models = pd.DataFrame(
        {
            "row": [0, 1, 2, 3, 4],
            "role": ["shadow", "shadow", "target", "shadow", "target"],
            "train_acc": [1.0] * 5,
            "test_acc": [0.9, 0.3, 0.2, 0.95, 0.9],
        }
    )
    df, excluded = health_frame(models, min_test_acc=0.5, action="exclude")
    assert excluded == [1]
    assert list(df.used) == [True, False, True, True, True]
    assert "excluded" in df.loc[1, "note"] and "flagged" in df.loc[2, "note"]
    md = health_markdown(df, 0.5)
    assert "1 shadow(s) excluded (rows 1)" in md and "| 1 | shadow | 100.00 | 30.00 | no |" in md
    with pytest.raises(ValueError, match="shadows \\[1\\]"):
        health_frame(models, min_test_acc=0.5, action="fail")


def test_exposure_per_example_and_vulnerability_ranking():
    # target 0: members 0, 1; non-members 2, 3 with scores 1, 3
    res = {
        "a": {
            "scores": np.array([[4.0, 2.0, 1.0, 3.0], [0.0, 5.0, 1.0, 2.0]]),
            "is_member": np.array([[1, 1, 0, 0], [0, 1, 1, 0]], bool),
            "targets": np.array([7, 8]),
        }
    }
    np.testing.assert_allclose(
        exposure(res["a"]["scores"][0], res["a"]["is_member"][0]), [1.0, 0.5, 0.25, 0.75]
    )
    tidy = per_example_frame(res, np.array([5, 6, 7, 8]))
    assert len(tidy) == 8 and list(tidy.columns) == [
        "attack",
        "target",
        "sample",
        "label",
        "is_member",
        "member_known",
        "score",
        "exposure",
    ]
    vuln = vulnerability_frame(tidy, "a")
    # sample 1: member of both targets, exposures 0.5 (target 7) and 1.0 (target 8, whose
    # non-members are samples 0 and 3 with scores 0 and 2); sample 0: 1.0 (target 7 only);
    # sample 2 (target 8 only): score 1 beats one of the two non-members → 0.5
    by = vuln.set_index("sample")
    assert by.loc[1, "exposure_a"] == pytest.approx(0.75) and by.loc[1, "n_targets_member"] == 2
    assert by.loc[0, "exposure_a"] == pytest.approx(1.0)
    assert by.loc[2, "exposure_a"] == pytest.approx(0.5)
    assert by.loc[1, "score_a"] == pytest.approx(3.5)  # mean of 2.0 (target 7) and 5.0
    assert list(vuln["sample"]) == [0, 1, 2, 3] and np.isnan(by.loc[3, "exposure_a"])
    assert list(vuln["rank"]) == [1, 2, 3, 4] and by.loc[2, "label"] == 7


def test_unknown_members_rank_the_whole_population():
    """A target imported with unknown members (known False, no member marked): its
    exposure is the fraction of the population a sample outscores, every sample counts in
    the ranking, none is counted as its member."""
    res = {
        "a": {
            "scores": np.array([[4.0, 2.0, 1.0, 3.0]]),
            "is_member": np.zeros((1, 4), bool),
            "targets": np.array([9]),
            "known": np.array([False]),
        }
    }
    tidy = per_example_frame(res, np.array([5, 6, 7, 8]))
    assert not tidy.member_known.any()
    np.testing.assert_allclose(tidy.exposure, [0.875, 0.375, 0.125, 0.625])
    vuln = vulnerability_frame(tidy, "a")
    assert list(vuln["sample"]) == [0, 3, 1, 2] and (vuln.n_targets_member == 0).all()
    assert not known_only(res)["a"]["targets"].size


def test_leave_one_out_layouts_and_frame():
    from curvmia.attacks import ATTACKS
    from curvmia.masks import make_masks

    lay = loo_layouts([0, 1, 2, 3, 4, 5], n_random=3, complements=True)
    assert lay[0] == (0, [1, 2, 4, 5]) and lay[4] == (4, [0, 2, 3, 5])
    assert loo_layouts([0, 1, 2], 3, False)[1] == (1, [0, 2])
    rng = np.random.default_rng(0)
    masks = make_masks(300, 3, 0.5, 0, True)
    feats = {f: rng.normal(0, 1, (6, 300, 2)) for f in ("loss_f32", "phi", "phi_max")}
    specs = [{"name": "yeom"}, {"name": "lira_online", "variant": "clean", "label": "lc"}]
    df = loo_frame(specs, feats, masks, lay, np.zeros(300, int), fprs=[0.1])
    assert len(df) == 12 and set(df.attack) == {"yeom", "lc"}
    r = df[(df.attack == "lc") & (df.target == 4)].iloc[0]
    t = {f: v[4] for f, v in feats.items()}
    s = {f: v[[0, 2, 3, 5]] for f, v in feats.items()}
    score = ATTACKS["lira_online"](t, s, masks[[0, 2, 3, 5]], variant="clean")
    assert r.auroc == pytest.approx(roc_auc_score(masks[4], score))
    assert r.n_shadows == 4 and r.n_no_in_shadow == 0
    md = loo_markdown(df, None)
    assert "(6 targets)" in md and md.count("\n| ") == 2  # one row per attack


def test_roc_panels_split_by_table1_ordered_by_auroc_with_distinct_styles():
    labels = [f"a{i}" for i in range(14)]
    aurocs = {x: 0.5 + 0.01 * ((5 * i) % 14) for i, x in enumerate(labels)}
    table1 = set(labels[:3])
    left, right = roc_panels(labels, table1, aurocs)
    assert [x for x, _, _ in left] == sorted(table1, key=lambda x: -aurocs[x])
    assert [x for x, _, _ in right] == sorted(set(labels) - table1, key=lambda x: -aurocs[x])
    for panel in (left, right):  # no two curves of a panel look alike
        looks = [(tuple(c), st) for _, c, st in panel]
        assert len(set(looks)) == len(looks)
    assert len(roc_panels(["x", "y"], set(), {"x": 0.6, "y": 0.7})) == 1


def test_plot_roc_orders_each_panel_by_auroc(tmp_path):
    res = _results()
    res["middle"] = {
        **res["weak"],
        "scores": res["weak"]["scores"] + 0.5 * res["weak"]["is_member"],
    }
    panels = plot_roc(res, str(tmp_path / "roc.png"), table1={"weak", "strong"})
    assert [x for x, _, _ in panels[0]] == ["strong", "weak"]
    assert [x for x, _, _ in panels[1]] == ["middle"]
    assert (tmp_path / "roc.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_headline_html_holds_the_table1_rows_and_the_facts():
    df = _frame_for(["curv_nll", "curv_nll_clean", "yeom", "carlini_paper", "lira_online"])
    page = headline_html(table1_markdown(df, _specs(), "cifar10"), "20 models of `resnet`")
    table = page.split('<table id="headline">')[1].split("</table>")[0]
    rows = re.findall(r"<tr>(.*?)</tr>", table)
    # header, the paper's 8 methods, LiRA proper; curv_nll_clean stays under Metrics
    assert len(rows) == 10 and "curv_nll_clean" not in table
    first = re.findall(r"<td>(.*?)</td>", rows[1])
    assert first[0] == "Curv NLL" and first[2] == "68.95 / 61.96"
    assert "20 models of <code>resnet</code>" in page
