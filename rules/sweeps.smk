# Sweeps (docs/method.md: Training recipes): DP targets per epsilon and dataset-size targets per m, each attacked with
# the main experiment's non-private shadows. Targets `snakemake dp_sweep` and
# `snakemake size_sweep` (each with its theory comparison); `all` builds the sweeps listed in
# theory.sweeps (the digits default lists both, the paper configs none).
from curvmia.sweeps import model_id, sweep_rows


include: "sweeps_common.smk"


SWEEP_DIR = f"{RESULTS}/sweeps"
DP = config["dp_sweep"]
SIZE = config["size_sweep"]
SWEEP_TARGETS = {
    "dp": [(float(e), s) for e in DP["epsilons"] for s in DP["seeds"]],
    "size": [(int(m), s) for m in SIZE["sizes"] for s in SIZE["seeds"]],
}
# Rows used only to seed the scoring draws of sweep models: disjoint from every mask row.
SWEEP_ROW = {
    (sweep, model_id(sweep, v, s)): 1_000_000 * (k + 1) + i
    for k, sweep in enumerate(("dp", "size"))
    for i, (v, s) in enumerate(SWEEP_TARGETS[sweep])
}
SIZE_TRAIN = {**config["train"], **SIZE["train"]}


SWEEP_ROWS = {s: sweep_rows(SWEEP_DIR, s, SWEEP_TARGETS[s]) for s in ("dp", "size")}


checkpoint dp_members:
    input:
        manifest=f"{DATA}/manifest.json",
        masks=f"{RESULTS}/masks.npz",
    output:
        members=f"{SWEEP_DIR}/dp/members.npy",
        info=f"{SWEEP_DIR}/dp/members.json",
    params:
        p=as_json({"mode": DP["mask"], "seed": DP["mask_seed"], "pkeep": config["masks"]["pkeep"]}),
    threads: job_threads("light")
    resources:
        **job_resources("light"),
    conda:
        "../envs/curvmia.yaml"
    container: IMAGES["cpu"]
    log:
        f"{RESULTS}/logs/sweeps/dp_members.log",
    shell:
        "python $CURVMIA_SCRIPTS/sweep_members.py --data {input.manifest:q} --masks {input.masks:q}"
        " --sweep dp --params {params.p:q} --out {output.members:q} --info {output.info:q}"
        " > {log:q} 2>&1"


checkpoint size_members:
    input:
        manifest=f"{DATA}/manifest.json",
        masks=f"{RESULTS}/masks.npz",
    output:
        f"{SWEEP_DIR}/size/members/m{{m}}.npy",
    params:
        p=lambda wc: as_json({"m": int(wc.m), "seed": SIZE["perm_seed"]}),
    wildcard_constraints:
        m=r"\d+",
    threads: job_threads("light")
    resources:
        **job_resources("light"),
    conda:
        "../envs/curvmia.yaml"
    container: IMAGES["cpu"]
    log:
        f"{RESULTS}/logs/sweeps/size_members_m{{m}}.log",
    shell:
        "python $CURVMIA_SCRIPTS/sweep_members.py --data {input.manifest:q} --masks {input.masks:q}"
        " --sweep size --params {params.p:q} --out {output:q} > {log:q} 2>&1"


rule train_sweep:
    input:
        manifest=prepared_manifest,
        members=lambda wc: sweep_members(wc.sweep, wc.value),
        stale=stale_marker("sweep_models"),
    output:
        f"{SWEEP_DIR}/{{sweep}}/models/{{prefix}}{{value}}_seed{{seed}}.pt",
    params:
        train=lambda wc: as_json(DP["train"] if wc.sweep == "dp" else SIZE_TRAIN),
        inputs=lambda wc: sweep_ids(wc.sweep, wc.value),
    wildcard_constraints:
        sweep="dp|size",
        prefix="eps|m",
        value=r"\d+(\.\d+)?(e[-+]?\d+)?",
        seed=r"\d+",
    threads: job_threads("train")
    resources:
        **job_resources("train"),
    conda:
        "../envs/curvmia.yaml"
    container: IMAGES["gpu"]
    log:
        f"{RESULTS}/logs/sweeps/{{sweep}}/train_{{prefix}}{{value}}_seed{{seed}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/sweeps/{{sweep}}/train_{{prefix}}{{value}}_seed{{seed}}.tsv"
    shell:
        "python $CURVMIA_SCRIPTS/train_sweep.py --data {input.manifest:q}"
        " --members {input.members:q}"
        " --sweep {wildcards.sweep:q} --value {wildcards.value:q} --seed {wildcards.seed:q}"
        " --train {params.train:q} --threads {threads} --device \"$CURVMIA_DEVICE\""
        " --out {output:q} > {log:q} 2>&1"


rule score_sweep:
    input:
        manifest=prepared_manifest,
        model=f"{SWEEP_DIR}/{{sweep}}/models/{{name}}.pt",
        members=lambda wc: sweep_members(wc.sweep, _sweep_value(wc.name)),
        stale=stale_marker("sweep_scores"),
    output:
        f"{SWEEP_DIR}/{{sweep}}/scores/{{name}}.npz",
    params:
        scoring=SCORING_PARAMS,
        train_hash=lambda wc: config_hash(DP["train"] if wc.sweep == "dp" else SIZE_TRAIN),
        inputs=lambda wc: sweep_ids(wc.sweep, _sweep_value(wc.name)),
        row=lambda wc: SWEEP_ROW[(wc.sweep, wc.name)],
    wildcard_constraints:
        sweep="dp|size",
        name=r"(eps\d+(\.\d+)?(e[-+]?\d+)?|m\d+)_seed\d+",
    threads: job_threads("score")
    resources:
        **job_resources("score"),
    conda:
        "../envs/curvmia.yaml"
    container: IMAGES["gpu"]
    log:
        f"{RESULTS}/logs/sweeps/{{sweep}}/score_{{name}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/sweeps/{{sweep}}/score_{{name}}.tsv"
    shell:
        "python $CURVMIA_SCRIPTS/score.py --data {input.manifest:q} --model {input.model:q}"
        " --row {params.row:q} --members {input.members:q} --train-hash {params.train_hash:q}"
        " --scoring {params.scoring:q} --device \"$CURVMIA_DEVICE\""
        " --scoring-compute \"$CURVMIA_SCORING_COMPUTE\""
        " --threads {threads} --out {output:q} > {log:q} 2>&1"


rule sweep_metrics:
    input:
        manifest=f"{DATA}/manifest.json",
        masks=f"{RESULTS}/masks.npz",
        shadow_scores=score_files(SHADOWS),
        health=f"{RESULTS}/health.csv",
        models=lambda wc: [r["checkpoint"] for r in SWEEP_ROWS[wc.sweep]],
        scores=lambda wc: [r["scores"] for r in SWEEP_ROWS[wc.sweep]],
        members=lambda wc: sorted({r["members"] for r in SWEEP_ROWS[wc.sweep]}),
    output:
        targets=f"{SWEEP_DIR}/{{sweep}}/targets.csv",
        metrics=f"{SWEEP_DIR}/{{sweep}}/metrics.csv",
        scores=f"{SWEEP_DIR}/{{sweep}}/attacks.npz",
    params:
        targets=lambda wc: as_json(SWEEP_ROWS[wc.sweep]),
        shadows=",".join(map(str, SHADOWS)),
        attacks=as_json(ATTACK_SPECS),
        metrics=metrics_section(),
        expect=lambda wc: score_expect(SHADOWS),
        expect_targets=lambda wc: sweep_expect(wc.sweep),
    wildcard_constraints:
        sweep="dp|size",
    threads: job_threads("light")
    resources:
        **job_resources("light"),
    conda:
        "../envs/curvmia.yaml"
    container: IMAGES["cpu"]
    log:
        f"{RESULTS}/logs/sweeps/{{sweep}}/metrics.log",
    shell:
        "python $CURVMIA_SCRIPTS/sweep_metrics.py --data {input.manifest:q} --masks {input.masks:q}"
        " --sweep {wildcards.sweep:q} --targets {params.targets:q}"
        " --shadow-rows {params.shadows:q} --shadow-scores {input.shadow_scores:q}"
        " --health {input.health:q} --attacks {params.attacks:q} --metrics {params.metrics:q}"
        " --expect {params.expect:q} --expect-targets {params.expect_targets:q}"
        " --out-targets {output.targets:q} --out-metrics {output.metrics:q}"
        " --out-scores {output.scores:q} > {log:q} 2>&1"


rule dp_sweep:
    input:
        f"{SWEEP_DIR}/dp/targets.csv",
        f"{SWEEP_DIR}/dp/metrics.csv",
        f"{RESULTS}/theory/sweep_dp.csv",
        f"{RESULTS}/theory/sweep_dp.png",


rule size_sweep:
    input:
        f"{SWEEP_DIR}/size/targets.csv",
        f"{SWEEP_DIR}/size/metrics.csv",
        f"{RESULTS}/theory/sweep_size.csv",
        f"{RESULTS}/theory/sweep_size.png",
