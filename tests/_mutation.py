"""Mutation testing of the core modules with mutmut 3 (docs/testing.md).

    python tests/_mutation.py list   [--module M]             # mutants in sample order
    python tests/_mutation.py run    [--module M] [--per-module K] [--start S]
    python tests/_mutation.py ci                               # the fixed CI sample
    python tests/_mutation.py table  [--check]                 # docs/testing.md's table

mutmut writes its mutants (and results) under ``mutants/`` in the repository root, with the
settings of ``[tool.mutmut]`` in pyproject.toml (which modules, which fast tests); ``ci``
works in a fresh temporary copy instead, so no cached result of an earlier run can count.

The sample.  Each mutant is identified by its content: the module, the function it mutates
and the source of the mutated function (``ast.unparse``, the name normalised), never by
mutmut's running number.  The sample order of a module is the order of
sha256(f"{SEED}:{identity}"), so the first K mutants of a module are a seeded random sample
that stays put when other functions change or are added; a changed function gets a fresh
draw of its own mutants only.  ``run --per-module K`` measures the first K of every module,
``ci`` the first ``CI_PER_MODULE`` (regenerating the sample after a merge needs nothing but
rerunning: the sample is a function of the code).  Mutants argued equivalent are listed in
EQUIVALENT by the first 12 hex digits of their sample hash, with the one-line argument;
they are reported but never count as survivors.

The records.  A ``run`` over every mutant of a module writes that module's measurement to
RECORDS (tests/mutation_records.json): mutants, killed (timeouts included), the hashes counted
equivalent and those that survived, the date, machine, command and commit; ``table`` writes
the table of docs/testing.md from them (``make docs``; tests/test_mutation.py fails when the
page is stale).  A record's ``untouched`` entries (the score before anyone looked at the
survivors) are written by hand and kept.
"""

from __future__ import annotations

import argparse
import ast
import datetime
import hashlib
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
ROOT = REPO  # where mutmut runs (``ci``: a fresh copy, so no cached result of an earlier run)
# what mutmut and the mutation tests need of the repository (pyproject.toml: also_copy)
COPY = ("curvmia", "tests", "config", "profiles", "rules", "scripts", "Snakefile", "pyproject.toml")
SEED = 18
MODULES = (
    "curvature",
    "scores",
    "attacks",
    "metrics",
    "distinguish",
    "theory",
    "masks",
    "transforms",
)
CI_PER_MODULE = 5
STATUS = {1: "killed", 3: "killed", 0: "survived", 5: "no tests", 33: "no tests", 34: "skipped"}
STATUS.update({36: "timeout", 24: "timeout", -24: "timeout", 152: "timeout", 255: "timeout"})
MUTANT = re.compile(r"^(x.*)__mutmut_(\d+)$")
RECORDS = REPO / "tests" / "mutation_records.json"
DOC = REPO / "docs" / "testing.md"
BEGIN, END = "<!-- mutation-table:begin -->", "<!-- mutation-table:end -->"
# sample hash prefix -> "function: why no test can tell it from the original"
EQUIVALENT: dict[str, str] = {
    "0498f9e2cb76": "keyed_rademacher: torch.arange of Python ints is int64 by default",
    "06c16fef42b1": "rademacher: torch.randint(2, …) is randint(0, 2, …)",
    "090ecc1e39d2": "_masked_mean_var: errstate over=None only leaves the warning mode alone",
    "0140ee20e402": "_Bootstrap.replicates: cumsum of int32 already accumulates in int64",
    "0ae7e91008f4": "tpr_at_fpr_strict: float('NAN') is NaN",
    "e1477376dcb9": "fit_auroc: the diagonal of a 3×4 inf matrix is three infs, as of 3×3",
    "053410b03541": "make_masks: np.concatenate's default axis is 0",
    "14e5b41ce058": "make_masks: a float64 uniform draw equals pkeep with probability ~2⁻⁵³",
    # the second slice (sample places 40–59), triaged after it was measured
    "0b8952b22509": "summarize: float('NAN') is NaN",
    # the merged CI sample (issues 14/15 changed scores.py), triaged after it was measured
    "01111beb799c": "score_model: no online batch chooser; scores are bit-identical across sizes",
    "012e4d8b1eae": "score_model: torch.compile(dynamic=True) is reached on CUDA only (compiled)",
    # mutB: full runs of masks, sample places 60-99 of the others
    "85524e8ee472": "fresh_mask: a float64 uniform draw equals pkeep with probability ~2⁻⁵³",
    "1dfc99625ade": "roc_curve: two identical rows of unit weights; only row 0 is read",
    "21573d8bcc0d": "_Bootstrap: non-member order within ties; sums are read at block ends only",
    "1651e753f003": "kl_null: a list of Python floats converts to float64 without dtype=",
    "0dee0125732a": "operating_point_epsilon: columns= fills the missing eps_ops_fpr with NaN",
    "1e5a2337df6f": "_counts: counts are read at tie-block ends, order within ties moot",
    "0ecebfb4be9c": "_counts: counts are read at tie-block ends, order within ties moot",
    "cb37d59beaa9": "_counts: numpy reads the sort kind case-insensitively",
    # mutA: sample places 60-99
    "0ee1428a8801": "ForwardBatchChooser: _up = None; `not None` is True as `not False` is",
    "1185eb45f2e0": "hutchinson: .to(None) leaves the ±1 probes int64; each use casts them exactly",
    "1749a6e3d948": "score_model: torch.compile without the model is reached on CUDA only",
    "14ffc55239be": "_masked_mean_var: no nonzero/0 can occur (n = 0 only over all-zero sums)",
    # mutA: curvature sample places 100-119
    # mutA: scores sample places 100-119
    "1b24eab2847b": "score_split: Hutchinson one sample at a time; keyed, same values (tested)",
    "1c9a86880f98": "score_split: clean forward batch size; results identical for any size",
    # mutA: attacks sample places 100-119
    "16ceaa601c83": "paper_lr: errstate over=None: overflow warnings only, same values",
    "18ee4ad23d7c": "paper_lr: errstate without over: overflow warnings only, same values",
    "16fcb231f860": "curv_lr: errstate without over: overflow warnings only, same values",
    "18c1f2bde066": "song: one more fitted class, with no samples; no label indexes its τ",
    # mutC: sample places 120-219 of curvature, scores and attacks
    "1bd49206cd37": "zo_curvature: pair indices on the CPU; indexing and the draws accept them",
    "2ec58fce52ba": "ForwardBatchChooser.next: −k % e == 0 exactly when k % e == 0",
    "309e3b9e3726": "tune_forward_batch: worse = 1 at start; the first size always resets it",
    "21c66fda145f": "finalize: a 'meta' key left in is overwritten by the new meta anyway",
    "23b4474f13e4": "score_split: max_batch passed with a chooser; zo_curvature overrides it",
    "242a71112349": "float32_features: row index on the CPU; indexing accepts it on any device",
    "2ee287f1bb8c": "score_split: tr.to(None); numpy assignment casts to float64 exactly",
    "30eac87ea42c": "score_model: device_name of a CUDA device; the CPU path is unchanged",
    "31e52cbe50dd": "score_model: torch.compile(dynamic=None) is reached on CUDA only",
    "354f5aaffb3a": "score_model: score_split(device=None); on the CPU .to(None) is no move",
    "1a7987f12c1c": "paper_lr: errstate without divide; no division by zero can occur (eps)",
    "1d0712531023": "class_thresholds: every class's τ is set in the loop; the fill is unread",
    "1e6ce78623dd": "carlini_p_max: float32 returned; every reader converts to float64 exactly",
    # mutC: sample places 220-339 of curvature, scores and attacks
    "35d03fcda084": "fold_batchnorm: fuse()'s default is inplace=False",
    "415934134de3": "fold_batchnorm: fuse(inplace=None); None is falsy, as False",
    "3975d20f7ca4": "hutchinson: probes in their own dtype; autograd casts them, ±1 exactly",
    "46458b4aa41b": "zo_curvature: pair indices on the CPU; indexing and the draws accept them",
    "47ece2a61f09": "_hvp_fn: a batch of exactly 4 repeated up to 4 is the same batch",
    "38d35a9c766a": "logit_features: a float32 -inf fill; torch.where keeps z's float64",
    "45d2ccd8574b": "logit_features: a float32 -inf fill; torch.where keeps z's float64",
    "39772a95ea53": "finalize: a 'meta' key left in is overwritten by the new meta anyway",
    "3a3c036430e8": "merge_shards: shard 1's keys; shards share keys (their metadata is equal)",
    "467be6355fa9": "merge_shards: shard 1's n; the metadata of every shard is checked equal",
    "3b45c28a9110": "prepare_model: .to(device=None) leaves the model on the CPU (CPU only)",
    "47a03eaff1d4": "prepare_model: no device move; the model is on the CPU (CPU only)",
    "4702b9411e43": "score_model: compile never on; it is reached on CUDA only",
    "5640d533a8b8": "score_model: compile key ignored; it is reached on CUDA only",
    "4c7ad71414ed": "score_model: device_name of a CUDA device; the CPU path is unchanged",
    "4ba5cb13c16b": "score_model: layout of the folded weights only (speed), as 0394c73913f4",
    "4f647e23f8b1": "check_float32_features: only the archive's names are read, never a pickle",
    "5a59adaf0ff9": "check_float32_features: only the archive's names are read, never a pickle",
    "4fbd06ceff54": "score_model: a shard's metadata key order; merge_shards parses it",
    "52a063733a59": "score_model: a shard's metadata key order; merge_shards parses it",
    "347067ef00cc": "_rmia: shadow_in unconverted; in_out_stats converts it to bool",
    "3b99f0b6ae95": "curv_lr: errstate over=None: warnings only, same values",
    "41e2d43bb4e9": "_masked_mean_var: errstate without over: warnings only, same values",
    "433e4441d153": "rmia_online: a=None; the online form never reads a",
    # mutC: sample places 340-459 of curvature, scores and attacks
    "5a9ba3847ab8": "candidate_batches: `< cap` drops cap, which `| {cap}` adds back",
    "5f1ac6bad347": "tune_forward_batch: no CUDA sync; only a CUDA run could differ",
    "6702488aa314": "input_hessian: a float32 identity; 0 and 1 exact, autograd casts them",
    "5d88704f1920": "check_float32_features: np.load's default is allow_pickle=False",
    "5e31b61b4890": "score_model: a shard's metadata key order; merge_shards parses it",
    "5f8af530e1c8": "score_model: the compiled forward is reached on CUDA only",
    "76f1ac2f2823": "score_model: the compiled forward is reached on CUDA only",
    "774a0f853345": "score_model: compile applies on CUDA only; False on the CPU either way",
    "81342b498f07": "score_model: compile applies on CUDA only; False on the CPU either way",
    "6c103c3f6a7a": "logit_features: a CPU index tensor indexes a tensor on any device",
    "78d3a790f966": "float32_features: a CPU index tensor indexes a tensor on any device",
    "85219f1b7a2c": "logit_features: a 0-dim CPU -inf is a scalar on any device",
    "84e5a3fb616b": "score_split: np.zeros' default dtype is float64",
    "5866b2a55b81": "class_thresholds: numpy reads the sort kind case-insensitively",
    "59bb8c48af1a": "paper_nll: errstate without invalid: needs an inf feature; files refuse one",
    "6317e283fd7a": "paper_nll: errstate invalid=None: needs an inf feature; files refuse one",
    "5adbe1427a90": "paper_lr: errstate without invalid: needs an inf feature; files refuse one",
    # mutC: sample places 100-219 of distinguish
    "1f629c0842b1": "distinguishability: null_reps 0 gives a NaN q95, and kk > NaN is False",
    "1faa5f6b5ca3": "epsilon_bounds: the fpr = 0 placeholder; the outer where puts inf there",
    "2efdec01a845": "kl_null: s unconverted; kl_knn and kl_gauss convert each split to float64",
    "cf02b9f0c079": "_operating_point: nanmax of the scores, then float(): same value, any dtype",
    "33deb281ffdb": "kl_null: float('NAN') is NaN",
    # mutC: sample places 220-838 of distinguish
    "8b27a365c173": "_log_ratio: errstate divide=None: den never 0 (placeholders; upper FPR > 0)",
    "e102e50eb54f": "_log_ratio: errstate without divide: den is never 0 (as 8b27a365c173)",
    "90dbc9e163bb": "_log_ratio: errstate invalid=None: log of a positive number, NaN is quiet",
    "93a5ff70ed30": "_log_ratio: errstate without invalid: as 90dbc9e163bb",
    "1b8c929d83d6": "_operating_point: nanmax of the scores, then float(): same value, any dtype",
    "259212e65067": "audit: evaluation scores in their dtype; the threshold is one of them",
    "dd111b44050f": "audit: evaluation scores in their dtype; the threshold is one of them",
    "bedecee70657": "_operating_point: selection scores in their dtype: same cuts, counts",
    "adfd3a61ee9b": "_operating_point: selection scores in their dtype: same cuts, counts",
    "39aece03fca9": "_operating_point: initial threshold never read (replaced, or set)",
    "e7b12119cb56": "_operating_point: initial threshold never read (replaced, or set)",
    "9f00f28ab20f": "clopper_pearson: errstate invalid=None: beta's parameters are kept >= 1",
    "e15bd1fe1825": "clopper_pearson: errstate invalid=None: beta's parameters are kept >= 1",
    "aae94f73b438": "clopper_pearson: integer k; beta.ppf and the comparisons give the same values",
    "c8b4977a3415": "clopper_pearson: integer k; beta.ppf and the comparisons give the same values",
    "a0afc18a581a": "clopper_pearson: integer n; beta.ppf and the comparisons give the same values",
    "f7d1d75e25be": "clopper_pearson: integer n; beta.ppf and the comparisons give the same values",
    "bca8211cc55b": "distinguishability: float('NAN') is NaN",
    "e2a76f261111": "kl_gauss: float('NAN') is NaN",
    "6a866ba85ce0": "kl_null: float('NAN') is NaN",
    "b9fe164bee21": "kl_null: float('NAN') is NaN",
    "bb2b449e0765": "kl_null: float('NAN') is NaN",
    "73de7322cb3f": "distinguishability: null_reps 0 gives a NaN q95, and kg > NaN is False",
    "4aae2bf8ebb6": "epsilon_bounds: log(x/0) = inf (ignored) where the outer where puts inf",
    "5ef4df96f19c": "epsilon_bounds: log(x/0) = inf (ignored) where the outer where puts inf",
    "fd28b708f3f0": "epsilon_bounds: the fpr_lo = 0 placeholder; the outer where puts inf there",
    "5c5242494fd9": "epsilon_bounds: errstate divide=None: _log_ratio ignores divide itself",
    "beb05ca10508": "epsilon_bounds: integer tp; true division gives the same float64 rates",
    "f5eb365b3efd": "epsilon_bounds: integer tp; true division gives the same float64 rates",
    "4e716932677c": "epsilon_bounds: integer fp; true division gives the same float64 rates",
    "e06b5a621ab9": "epsilon_bounds: integer fp; true division gives the same float64 rates",
    "b98dc760edc2": "kl_knn: one neighbour more asked; column k is the same k-th neighbour",
    "6072d57a1b89": "kl_null: v is a list of Python floats: float64 anyway",
    "d482c5861c85": "kl_null: s unconverted; kl_knn and kl_gauss convert each split to float64",
    # mutC: every mutant of metrics (places 100-636 untriaged before)
    "31a71dd757f5": "auroc: two identical rows of unit weights; only row 0 is read",
    "31d0bae8dfb9": "_Bootstrap.replicates: cumsum of int32 counts is int64 by default",
    "43e2f0fde514": "_Bootstrap.replicates: cumsum of int32 counts is int64 by default",
    "67375dd89531": "_Bootstrap.replicates: cumsum of int32 counts is int64 by default",
    "6f5100656ac6": "_Bootstrap.replicates: sum of int32 counts is int64 by default",
    "b5eb2305308e": "_Bootstrap.replicates: sum of int32 counts is int64 by default",
    "97b83abf49cd": "_Bootstrap.replicates: sum of int64 products is int64 by default",
    "ee06548b744c": "_Bootstrap.replicates: sum of int64 products is int64 by default",
    "b13a30f20155": "_Bootstrap.replicates: a float64 zero column; counts stay exact below 2**53",
    "fb5235d70589": "_Bootstrap.replicates: a float64 zero column; counts stay exact below 2**53",
    "5f671f57561f": "bootstrap_weights: float64 counts (exact), cast to int32 at the end",
    "60efff4a7de6": "bootstrap_weights: float64 counts (exact), cast to int32 at the end",
    "35abfc8bbdc9": "_weighted_auroc: its callers pass one row; sum over all = over axis 1",
    "48534e57d0b5": "_weighted_auroc: its callers pass one row; sum over all = over axis 1",
    "9efa9ed9bab2": "_weighted_auroc: its callers pass one row; sum over all = over axis 1",
    "ba5a063bb367": "_weighted_auroc: its callers pass one row; a flat cumsum is the same",
    "ea4042bb66e4": "_weighted_auroc: its callers pass one row; a flat cumsum is the same",
    "454a9c4175e2": "_Bootstrap: numpy reads the sort kind case-insensitively",
    "b19de5ee403e": "_Bootstrap: numpy reads the sort kind case-insensitively",
    "ce52a9a11830": "_Bootstrap: order within ties only; sums are read at tie-block ends",
    "4a0fb8a22198": "_Bootstrap: order within ties only; sums are read at tie-block ends",
    "fc1945556fa3": "_Bootstrap: order within ties only; sums are read at tie-block ends",
    "6d218020c3c5": "_Bootstrap: searchsorted's default side is 'left'",
    "d4dbce5f63d3": "_Bootstrap: searchsorted's default side is 'left'",
    "49479302a0ab": "_Sorted: its callers pass _check's booleans",
    "5a97bc4a4e67": "_Sorted: its callers pass _check's booleans",
    "8a46e1bee8df": "_Sorted: order within ties only; unit weights sum exactly per block",
    "bf9f667dc940": "_Sorted: order within ties only; unit weights sum exactly per block",
    "b75db0215521": "_Sorted: numpy reads the sort kind case-insensitively",
    "b66f289ddd44": "_Sorted.block_sums: astype(None) is float64",
    "4322872c761d": "summarize: TPR replicates computed but discarded when too few non-members",
    "3ed35cd72147": "summarize: scores unconverted; every consumer converts them via _clean",
    "9d3d101018c3": "summarize: scores unconverted; every consumer converts them via _clean",
    "4415c339c6b0": "_clean: float32 or int scores keep their order and ties",
    "9dcf41ffb381": "_clean: float32 or int scores keep their order and ties",
    "8d88736cb9ba": "_Bootstrap.replicates: without ties hi equals lo",
    "e331b2789538": "_Bootstrap.replicates: bootstrap_replicates drops the TPRs when fpr is None",
    "4a394a0c768d": "summarize: float('NAN') is NaN",
    "da899a73e412": "tpr_at_fpr: float('NAN') is NaN",
    # mutC: every mutant of theory (places 100-1211 untriaged before)
    "cc3f6737e6b0": "analyse_sweep: merge on the common columns, which are value and seed",
    "a7809543bc1c": "analyse_sweep: merge on the common columns, which are value and seed",
    "9a374a492feb": "analyse_sweep: every row repeats its model's m: same min, median, max",
    "f73911737a7f": "analyse_target: the sum of 0/1 membership numbers is the member count",
    "7ebe0585ce3f": "analyse_target: the sum of 0/1 membership numbers is the member count",
    "bc8824d7a30b": "operating_point_epsilon: groupby sorts by default",
    "61f67b8129ba": "operating_point_epsilon: float('NAN') is NaN",
    "8cebc24c6fba": "operating_point_epsilon: float('NAN') is NaN",
    "6bef7738aa22": "operating_point_epsilon: a renamed NaN key is dropped; the column is NaN",
    "590a9d56e9d0": "_dp_kl_note: one p_true row per model, so both de-duplications agree",
    "4203141a2359": "crossover: float64 minus any numeric array is float64 anyway",
    "e4f2b67878dd": "crossover: float64 minus any numeric array is float64 anyway",
    "741c214c90e0": "crossover: float64 minus any numeric array is float64 anyway",
    "495b6726b326": "crossover: float64 minus any numeric array is float64 anyway",
    "498b46491d3d": "crossover: i = 0 tests 0 < d[0], already returned or False",
    "5f3e1e99f49c": "fit_auroc: starts at the least-squares optimum; <= 12 evaluations seen",
    "cd54c34342ee": "fit_auroc: starts at the least-squares optimum; <= 12 evaluations seen",
    "31e1d47218ff": "fit_auroc: the diagonal of a 4x3 inf matrix is three infs",
    "cb0945c3d4c8": "fit_auroc: at dof 0 scipy's pcov (and the fallback's) is inf: se inf",
    "d54c43ff2f02": "fit_auroc: at dof 0 scipy's pcov (and the fallback's) is inf: se inf",
    "923b75ece019": "fit_auroc: zip with the three names drops the fourth inf",
    "0024829f5963": "fit_auroc: float('NAN') is NaN",
    "5cbdcbca289b": "_f_test: float('NAN') is NaN",
    "c68fc8b028de": "_f_test: float('NAN') is NaN",
    "8841c35c30ba": "_start_values: lstsq's default rcond is None",
    # mutC: sample places 460-939 of attacks (the rest of the module)
    "67c7d65802f0": "rmia_online: the online form never reads shadow_in",
    "6ce3251406bf": "_rmia: in_out_stats makes the mask boolean itself",
    "6e36727124ab": "rmia_online: offline=None is falsy, as False",
    "73dad1554f94": "carlini_p_max: logit_scale_paper converts to float64 anyway",
    "a1c7c9e55afe": "carlini_p_max: astype(None) is float64",
    "7d4e0c23768c": "paper_lr: errstate divide=None: denominators >= 1e-22, no division by 0",
    "a21715df71da": "paper_lr: errstate without under: numpy ignores underflow by default",
    "7e472cf3b616": "curv_nll: errstate without over: a log-curvature variance is 0 or > 1e-34",
    "b1a657b3dcdc": "curv_nll: errstate over=None: a log-curvature variance is 0 or > 1e-34",
    "82cbd7092462": "class_thresholds: order within ties only; tau is read at tie-block ends",
    "870c1a1f18ff": "_rmia: errstate invalid=None: NaN comparisons in searchsorted are quiet",
    "a8de67227b6b": "_loss: every caller passes the variant",
    "a9c685271e89": "logit_scale_paper: the 1e-22 terms keep division and log away from 0",
    "b9b46bdcaf7f": "_masked_mean_var: errstate without divide: 0/0 is invalid, not divide",
    "c3be14d7e25f": "paper_nll: errstate without divide: w >= 1e-32, no division by zero",
    "d2e65a9b5d3c": "paper_nll: errstate without over: needs |s - mu| > 1e120",
    "ca77116d5288": "rmia_online: the online form never reads a",
    "91c113cf89e6": "coverage: .any/.all read 0/1 numbers as booleans",
    "9e124b607c6c": "coverage: .any/.all read 0/1 numbers as booleans",
    "8ed36e9ca0ab": "lira_online: errstate without divide: sd >= 1e-30, no division by zero",
    "05db5ba5cebe": "lira_online: errstate divide=None: sd >= 1e-30, no division by zero",
    "68b2c2706699": "lira_online: errstate invalid=None: needs an inf feature; files refuse one",
    "108cdf9e10dc": "lira_online: errstate without invalid: needs an inf feature; files refuse one",
    "4e127027eb1e": "lira_online: errstate without over: needs |x - mu|/sd > 1e154",
    "d80f7245b57a": "lira_online: errstate over=None: needs |x - mu|/sd > 1e154",
    "b67b0ed8fc2c": "lira_offline: errstate without divide: sd >= 1e-30, no division by zero",
    "14582b88f64a": "lira_offline: errstate divide=None: sd >= 1e-30, no division by zero",
    "a192a469048d": "lira_offline: errstate invalid=None: needs an inf feature; files refuse one",
    "83db2e2b4188": "lira_offline: no errstate invalid: needs an inf feature; files refuse one",
    "e37a460577f6": "lira_offline: errstate without over: needs |x - mu|/sd > 1e154",
    "b8a83efd6f26": "lira_offline: errstate over=None: needs |x - mu|/sd > 1e154",
    # mutC: the whole of attacks (places 940-1139, and place 9)
    "03e77f048731": "paper_nll: errstate divide=None: w >= 1e-32, no division by zero",
    "d97cc62ae4dd": "_loss: every caller passes the variant",
    "ea5cc2d474b4": "class_thresholds: order within ties only; tau is read at tie-block ends",
    "eb6c08fc6165": "_std: a 0-d array of the pooled std broadcasts like the full one",
    "ef08aa5db88f": "run_attack: astype(None) is float64",
    "f172d6486666": "paper_lr: errstate invalid=None: needs an inf feature; files refuse one",
    "f3ef65a9252c": "paper_nll: errstate over=None: needs |s - mu| > 1e120",
    "fb06a445734c": "paper_lr: errstate under=None keeps numpy's default, which ignores it",
    # mutC: sample places 460-883 of scores (the rest of the module)
    "8e91a23a31c5": "logit_features: a 0-dim CPU -inf is a scalar on any device",
    "e8af38276b20": "logit_features: a CPU index tensor indexes a tensor on any device",
    "8f85e85190de": "set_tf32: bool(None) is False, the default",
    "db9f51e879c1": "set_tf32: bool(None) is False, the default",
    "961093f1e16c": "score_model: the device's name on CUDA only; one GPU per job",
    "9c2dd062de73": "score_model: set_tf32 always turns matmul TF32 off; bool(None) is False",
    "9e88bb98533a": "score_split: numpy casts on assignment into the typed buffer",
    "a783c78f0121": "score_split: np.zeros' default dtype is float64",
    "a78ec53afd53": "score_split: .to(None) keeps the dtype; astype casts to the buffer's",
    "beda740e0f5e": "score_split: float32 traces assigned into a float64 buffer: same values",
    "a79aebe4f795": "score_model: the compiled forward is reached on CUDA only",
    "dc0c06a6e7af": "score_model: the compiled forward is reached on CUDA only",
    "c183bb806c1f": "score_model: the compiled forward is reached on CUDA only",
    "aa549b7b2905": "score_model: compile applies on CUDA only; False on the CPU either way",
    "b4dc1c874caf": "score_model: compile applies on CUDA only; False on the CPU either way",
    "c0ebbd9a5b35": "score_model: compile applies on CUDA only; False on the CPU either way",
    "e1a3a4455c60": "score_model: compile applies on CUDA only; False on the CPU either way",
    "d128f7c3b5a6": "score_model: compile applies on CUDA only; False on the CPU either way",
    "db4eb3a14c6a": "score_model: compile applies on CUDA only; False on the CPU either way",
    "d2332de797e1": "score_model: the sizing sample's device; only a CUDA run could differ",
    "de89e60e0133": "score_model: the model's device; only a CUDA run could differ",
    "e780a1268087": "score_split: the labels' device; only a CUDA run could differ",
    "b7d15c9deb13": "disable_fused_attention: timm reads None as False",
    "cdf7fc2f3b77": "merge_shards: all equal shard 1's kernels iff all are equal",
    "cd1bd9594a2e": "score_split: images are always (B, C, H, W); query_view needs 4-D",
    "e2ce385625dc": "score_split: its only caller passes with_float32",
    "eeddcad765a7": "score_split: its only caller passes channels_last",
    "cffdfde1484a": "float32_features: the paper variant's logits are float32 already",
    # mutC: sample places 460-1,064 of curvature (the rest of the module)
    "75a933924a2a": "_sign_table: a 257th row; byte values index rows 0-255 only",
    "7c4b735cbb0f": "forward_batch_size: a 4097 cap floors to 4096 (multiples of four)",
    "8fe8b93056c7": "forward_batch_size: a 1025 cap floors to 1024 (multiples of four)",
    "ddc9fb5fab6f": "forward_batch_size: a < k*per, so the correctly rounded a/per is < k",
    "7fc8ba19f8a7": "input_hessian: a float32 identity; 0 and 1 exact, autograd casts them",
    "82e0c0b2de8b": "rademacher: randint's default dtype is int64",
    "d1b19626cb9d": "rademacher: randint's default dtype is int64",
    "c33a2147c3a4": "keyed_rademacher: arange of Python ints is int64",
    "e89e18ab60bc": "keyed_rademacher: one word more when 64 | d, cut off by [:d]",
    "974095b37dcb": "zo_curvature: vg is only sliced within [0, g1-g0), where both agree",
    "a225b8b3d382": "zo_curvature: n == per_fwd pads with no rows: the same batch",
    "9c6c74920dfb": "_hvp_fn: a CPU index tensor indexes a tensor on any device",
    "a46b28faa55e": "_hvp_fn: a CPU index tensor indexes a tensor on any device",
    "b163ad928306": "hutchinson: a CPU index tensor indexes a tensor on any device",
    "d465be29b6bd": "hutchinson: a CPU index tensor indexes a tensor on any device",
    "ce694b78c8a3": "hutchinson: int64 +-1 probes; autograd casts them exactly",
    "a697b207ad57": "_ConvInputGrad.forward: its inputs are 4-D: shape[2:] is shape[-2:]",
    "9ed20250da69": "tune_forward_batch: no CUDA sync; only a CUDA run could differ",
    "b3e12b4d6949": "tune_forward_batch: no CUDA sync; only a CUDA run could differ",
    "ec085f015f9c": "tune_forward_batch: the no-op sync's return value is never read",
    "be8db51a3d1b": "tune_forward_batch: the first size always resets worse to 0",
    "c25b71d7e78f": "fold_batchnorm: fx refuses training models; no BN folds 0: (m, 0)",
    "c42bd145a6da": "activation_bytes: two images, so total is even and (2k+1)//2 == k",
    # transforms.py (data.py's transforms until issue 27): every mutant
    "59eb6ddb9310": "normalize: a (C, 1, 1) mean broadcasts like (1, C, 1, 1) on (B, C, H, W)",
    "db17e619277a": "normalize: std as (C, 1, 1) broadcasts like (1, C, 1, 1) on x − m (4-D)",
    "e15c1b547844": "random_crop_flip: torch.randint(n, …) is randint(0, n, …)",
    "cd1c8a1ac1a8": "random_crop_flip: torch.randint(n, …) is randint(0, n, …)",
    "3bc771fb090e": "random_crop_flip: the batch index left on the CPU; indexing accepts it",
    "e01831622d37": "random_crop_flip: the batch index left on the CPU; indexing accepts it",
    "05a77ca2b834": "random_crop_flip: the channel index left on the CPU; indexing accepts it",
    "3fc41c3f5399": "random_crop_flip: the channel index left on the CPU; indexing accepts it",
}


def mutmut(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    exe = Path(sys.executable).with_name("mutmut")
    return subprocess.run([str(exe), *args], cwd=ROOT, check=check, text=True)


def generate() -> None:
    """Write mutmut's mutants of the configured modules under mutants/ (no test runs)."""
    code = (
        "import os\n"
        "from mutmut import __main__ as m\n"
        "m.set_mutant_under_test('mutant_generation')\n"
        "os.makedirs('mutants', exist_ok=True)\n"
        "m.copy_src_dir(); m.copy_also_copy_files(); m.setup_source_paths()\n"
        "m.store_lines_covered_by_tests(); m.create_mutants(os.cpu_count() or 2)\n"
    )
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True, stdout=subprocess.DEVNULL)


def mutants(module: str) -> list[tuple[str, str]]:
    """(sample hash, mutmut name) of a module's mutants, in sample order."""
    path = ROOT / "mutants" / "curvmia" / f"{module}.py"
    tree = ast.parse(path.read_text())
    out = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.FunctionDef):
            continue
        match = MUTANT.match(node.name)
        if match is None:
            continue
        func = match.group(1)
        node.name = "f"
        identity = f"{module}:{func}:{ast.unparse(node)}"
        digest = hashlib.sha256(f"{SEED}:{identity}".encode()).hexdigest()
        out.append((digest, f"curvmia.{module}.{match.group(0)}"))
    return sorted(out)


def results(module: str) -> dict[str, int | None]:
    meta = ROOT / "mutants" / "curvmia" / f"{module}.py.meta"
    return json.loads(meta.read_text())["exit_code_by_key"] if meta.exists() else {}


def machine() -> str:
    """The CPU that ran the mutants, in words (mutmut runs the tests on the CPU)."""
    try:
        info = Path("/proc/cpuinfo").read_text()
        cpu = re.search(r"^model name\s*:\s*(.+)$", info, re.M).group(1).strip()
    except (OSError, AttributeError):
        cpu = platform.processor() or "unknown CPU"
    return f"{os.cpu_count()} CPUs ({cpu}), {platform.system()} {platform.machine()}"


def commit() -> str:
    """The short commit of the repository, "-dirty" when its code or tests differ from it."""
    git = ["git", "-C", str(REPO)]
    head = subprocess.run([*git, "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    if head.returncode != 0:
        return "unknown"
    paths = ["curvmia", "tests", "pyproject.toml"]
    dirty = subprocess.run([*git, "status", "--porcelain", "--", *paths], capture_output=True)
    return head.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")


def load_records(path: Path | None = None) -> dict[str, dict]:
    path = path or RECORDS
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}


def save_record(
    module: str,
    mutants: int,
    killed: int,
    equivalent: list[str],
    survived: list[str],
    path: Path | None = None,
) -> None:
    """Write the measurement of a run over every mutant of ``module`` into the records
    (RECORDS unless ``path``), replacing its last one (hand-written ``untouched`` entries are
    kept)."""
    path = path or RECORDS
    records = load_records(path)
    old = records.get(module, {})
    records[module] = {
        "mutants": mutants,
        "killed": killed,
        "equivalent": sorted(equivalent),
        "survived": sorted(survived),
        "date": datetime.datetime.now(datetime.UTC).date().isoformat(),
        "machine": machine(),
        "command": "python tests/_mutation.py " + " ".join(sys.argv[1:]),
        "commit": commit(),
        **({"untouched": old["untouched"]} if "untouched" in old else {}),
    }
    order = {m: i for i, m in enumerate(MODULES)}
    records = dict(sorted(records.items(), key=lambda kv: (order.get(kv[0], len(order)), kv[0])))
    path.write_text(dump_records(records), encoding="utf-8")


def dump_records(records: dict[str, dict]) -> str:
    """The records as JSON, a list of hashes on one line."""
    text = json.dumps(records, indent=1, ensure_ascii=False)
    short = re.compile(r"\[\n\s+((?:\"[0-9a-f]{12}\",\n\s+)*\"[0-9a-f]{12}\")\n\s+\]")
    return short.sub(lambda mo: "[" + re.sub(r",\n\s+", ", ", mo.group(1)) + "]", text) + "\n"


def percent(killed: int, of: int) -> str:
    return f"{100 * killed / of:.1f}% ({killed:,}/{of:,})" if of else "–"


def table(records: dict[str, dict]) -> str:
    """docs/testing.md's table of where each module stands, from the records: one row per
    module of MODULES, then the machines and the commands that are not the plain
    ``run --module M``."""
    rows = [
        "| module | mutants | killed | argued equivalent | survived | score "
        "| untouched (before triage) | measured |",
        "|---|---|---|---|---|---|---|---|",
    ]
    machines, commands = {}, []
    for m in MODULES:
        r = records.get(m)
        if r is None:
            rows.append(f"| {m} | not measured: `make mutate MODULE={m}` | | | | | | |")
            continue
        eq, left = len(r["equivalent"]), len(r["survived"])
        untouched = "; ".join(
            percent(u["killed"], u["of"]) + (f", {u['note']}" if u.get("note") else "")
            for u in r.get("untouched", [])
        )
        score = percent(r["killed"], r["mutants"] - eq)
        rows.append(
            f"| {m} | {r['mutants']:,} | {r['killed']:,} | {eq} | {left} | {score} "
            f"| {untouched or '–'} | {r['date']}, `{r['commit']}` |"
        )
        machines.setdefault(r["machine"], []).append(m)
        if r["command"] != f"python tests/_mutation.py run --module {m}" or r.get("note"):
            note = f" ({r['note']})" if r.get("note") else ""
            commands.append(f"- {m}: `{r['command']}`{note}")
    where = "; ".join(
        f"{machine} ({', '.join(ms)})" if len(machines) > 1 else machine
        for machine, ms in machines.items()
    )
    plain = "Command: `python tests/_mutation.py run --module M`"
    lines = [f"Machine: {where}.  {plain}" + (", except:" if commands else "."), *commands]
    return "\n".join([*rows, "", *lines]) + "\n"


def render(page: str, generated: str) -> str:
    """``page`` with the text between its table markers replaced by ``generated``."""
    head, rest = page.split(BEGIN, 1)
    return f"{head}{BEGIN}\n{generated}{END}{rest.split(END, 1)[1]}"


def run(modules: list[str], per_module: int | None, start: int = 0) -> int:
    """Run the sampled mutants of ``modules`` (the ``per_module`` from place ``start`` on);
    print scores and survivors; 1 if any survive."""
    generate()
    stop = None if per_module is None else start + per_module
    chosen = {m: mutants(m)[start:stop] for m in modules}
    names = [n for m in modules for _, n in chosen[m]]
    t0 = time.perf_counter()
    proc = mutmut("run", *names, check=False)
    seconds = time.perf_counter() - t0
    if proc.returncode != 0:  # e.g. a clean test failed: no result can be trusted
        print(f"mutmut run failed (exit {proc.returncode}); see its output above")
        return 1
    bad = 0
    for m in modules:
        codes = results(m)
        killed = 0
        equivalent, survivors = [], []
        for digest, name in chosen[m]:
            status = STATUS.get(codes.get(name), "not run")
            if status in ("killed", "timeout"):
                killed += 1
            elif digest[:12] in EQUIVALENT:
                equivalent.append(digest[:12])
            else:
                survivors.append((digest[:12], name, status))
        n = len(chosen[m])
        score = killed / max(n - len(equivalent), 1)
        if per_module is None and start == 0:  # every mutant of the module: its record
            save_record(m, n, killed, equivalent, [d for d, _, _ in survivors])
        print(f"{m}: {killed} killed, {len(equivalent)} equivalent, {len(survivors)} left of {n}")
        print(f"{m}: mutation score {100 * score:.1f}% (equivalent mutants excluded)")
        for digest, name, status in survivors:
            print(f"  {status}: {name} [{digest}]")
        bad += len(survivors)
    print(f"{len(names)} mutants in {seconds:.0f} s")
    return 1 if bad else 0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("command", choices=["list", "run", "ci", "table"])
    ap.add_argument("--module", action="append", choices=MODULES)
    ap.add_argument("--per-module", type=int, default=None, help="first K of each module")
    ap.add_argument("--start", type=int, default=0, help="skip the first S of each module")
    ap.add_argument("--check", action="store_true", help="table: exit 1 if the page is stale")
    a = ap.parse_args()
    modules = a.module or list(MODULES)
    if a.command == "table":
        sys.path.insert(0, str(REPO))
        from curvmia.io import write_generated

        text = render(DOC.read_text(encoding="utf-8"), table(load_records()))
        write_generated(DOC, text, "python tests/_mutation.py table", a.check)
        return
    if a.command == "list":
        generate()
        for m in modules:
            for digest, name in mutants(m)[: a.per_module]:
                print(digest[:12], name)
        return
    if a.command == "ci":
        global ROOT
        with tempfile.TemporaryDirectory(prefix="curvmia-mutation-") as tmp:
            ROOT = Path(tmp)
            junk = shutil.ignore_patterns("__pycache__", "*.pyc")
            for name in COPY:
                src = REPO / name
                if src.is_dir():
                    shutil.copytree(src, ROOT / name, ignore=junk)
                else:
                    shutil.copy2(src, ROOT / name)
            sys.exit(run(modules, CI_PER_MODULE))
    sys.exit(run(modules, a.per_module, a.start))


if __name__ == "__main__":
    main()
