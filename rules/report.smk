# Metrics, figures, per-example results, leave-one-out and the Snakemake report.


rule realistic:
    input:
        attacks=expand(f"{RESULTS}/attacks/{{label}}.npz", label=ATTACK_LABELS),
        pseudo=expand(f"{RESULTS}/pseudo/{{label}}.npz", label=ATTACK_LABELS),
    output:
        csv=report(
            f"{RESULTS}/realistic.csv", caption="../report/realistic.rst", category="Metrics"
        ),
        bal=f"{RESULTS}/realistic_bal.csv",
        stability=report(
            f"{RESULTS}/stability.csv", caption="../report/stability.rst", category="Examples"
        ),
        samples=f"{RESULTS}/stability_samples.csv",
        figure=report(
            f"{RESULTS}/stability.png", caption="../report/stability_png.rst", category="Examples"
        ),
    params:
        metrics=as_json(
            {k: config["metrics"][k] for k in ("fprs", "priors", "bootstrap", "seed")}
        ),
    threads: job_threads("light")
    resources:
        **job_resources("light"),
    conda:
        "../envs/curvmia.yaml"
    container: IMAGES["cpu"]
    log:
        f"{RESULTS}/logs/realistic.log",
    shell:
        "python $CURVMIA_SCRIPTS/realistic.py --metrics {params.metrics:q}"
        " --pseudo {input.pseudo:q} --csv {output.csv:q} --bal {output.bal:q}"
        " --stability {output.stability:q} --samples {output.samples:q}"
        " --figure {output.figure:q} {input.attacks:q} > {log:q} 2>&1"


rule metrics:
    input:
        health=f"{RESULTS}/health.csv",
        attacks=expand(f"{RESULTS}/attacks/{{label}}.npz", label=ATTACK_LABELS),
        scores=score_files(MODELS),
        realistic=f"{RESULTS}/realistic.csv",
        bal=f"{RESULTS}/realistic_bal.csv",
        one_run=f"{RESULTS}/one_run.csv",
    output:
        csv=report(f"{RESULTS}/metrics.csv", caption="../report/metrics.rst", category="Metrics"),
        diff=report(
            f"{RESULTS}/auroc_diff.csv", caption="../report/auroc_diff.rst", category="Metrics"
        ),
        table1=f"{RESULTS}/table1.md",
        md=f"{RESULTS}/metrics.md",
        roc=report(f"{RESULTS}/roc.png", caption="../report/roc.rst", category="Metrics"),
        headline=report(
            f"{RESULTS}/headline.html", caption="../report/headline.rst", category="1 Headline"
        ),
    params:
        metrics=metrics_section(),
        about=as_json(
            {
                "experiment": config["experiment"],
                "dataset": config["data"]["dataset"],
                "arch": config["train"]["arch"],
                "shadows": len(SHADOWS),
                "targets": len(TARGETS),
                "scoring_variant": config["scoring"]["variant"],
            }
        ),
        specs=as_json(config["attacks"]),
        dataset=config["data"]["dataset"],
        min_test_acc=config["health"]["min_test_acc"],
    threads: job_threads("light")
    resources:
        **job_resources("light"),
    conda:
        "../envs/curvmia.yaml"
    container: IMAGES["cpu"]
    log:
        f"{RESULTS}/logs/metrics.log",
    shell:
        "python $CURVMIA_SCRIPTS/metrics.py --metrics {params.metrics:q} --specs {params.specs:q}"
        " --dataset {params.dataset:q} --health {input.health:q}"
        " --min-test-acc {params.min_test_acc:q} --csv {output.csv:q} --diff-csv {output.diff:q}"
        " --table1 {output.table1:q} --md {output.md:q} --roc {output.roc:q}"
        " --headline {output.headline:q} --about {params.about:q}"
        " --realistic {input.realistic:q} --bal {input.bal:q} --one-run {input.one_run:q}"
        " {input.attacks:q} --scores {input.scores:q} > {log:q} 2>&1"


rule per_example:
    input:
        manifest=f"{DATA}/manifest.json",
        attacks=expand(f"{RESULTS}/attacks/{{label}}.npz", label=ATTACK_LABELS),
        flags=f"{RESULTS}/stability_samples.csv",
    output:
        tidy=f"{RESULTS}/per_example.csv.gz",
        ranking=report(
            f"{RESULTS}/vulnerability.csv", caption="../report/vulnerability.rst", category="Examples"
        ),
        figure=report(f"{RESULTS}/exposed.png", caption="../report/exposed.rst", category="Examples"),
    params:
        rank_attack=RANK_ATTACK,
        top_k=config["report"]["top_k"],
    threads: job_threads("light")
    resources:
        **job_resources("light"),
    conda:
        "../envs/curvmia.yaml"
    container: IMAGES["cpu"]
    log:
        f"{RESULTS}/logs/per_example.log",
    shell:
        "python $CURVMIA_SCRIPTS/per_example.py --data {input.manifest:q}"
        " --rank-attack {params.rank_attack:q} --top-k {params.top_k:q}"
        " --tidy {output.tidy:q} --ranking {output.ranking:q} --figure {output.figure:q}"
        " --flags {input.flags:q} {input.attacks:q} > {log:q} 2>&1"


rule loo:
    input:
        manifest=f"{DATA}/manifest.json",
        masks=f"{RESULTS}/masks.npz",
        health=f"{RESULTS}/health.csv",
        fixed=f"{RESULTS}/metrics.csv",
        scores=score_files(MODELS),
    output:
        csv=report(f"{RESULTS}/loo.csv", caption="../report/loo.rst", category="Metrics"),
        md=f"{RESULTS}/loo.md",
    params:
        masks=as_json(config["masks"]),
        specs=as_json(config["attacks"]),
        fprs=as_json(config["metrics"]["fprs"]),
        expect=lambda wc: score_expect(MODELS),
    threads: job_threads("light")
    resources:
        **job_resources("light"),
    conda:
        "../envs/curvmia.yaml"
    container: IMAGES["cpu"]
    log:
        f"{RESULTS}/logs/loo.log",
    benchmark:
        f"{RESULTS}/benchmarks/loo.tsv"
    shell:
        "python $CURVMIA_SCRIPTS/loo.py --data {input.manifest:q} --masks {input.masks:q}"
        " --masks-cfg {params.masks:q} --specs {params.specs:q} --fprs {params.fprs:q}"
        " --health {input.health:q} --fixed {input.fixed:q} --csv {output.csv:q} --md {output.md:q}"
        " --scores {input.scores:q} --expect {params.expect:q} > {log:q} 2>&1"


rule budget:
    input:
        manifest=f"{DATA}/manifest.json",
        masks=f"{RESULTS}/masks.npz",
        health=f"{RESULTS}/health.csv",
        shadow_scores=score_files(SHADOWS),
        target_scores=score_files(TARGETS),
    output:
        csv=report(f"{RESULTS}/budget.csv", caption="../report/budget.rst", category="Metrics"),
        png=report(f"{RESULTS}/budget.png", caption="../report/budget_plot.rst", category="Metrics"),
    params:
        # only what the budget reads: a changed K list or draw count reruns this step alone
        budget=as_json(
            {k: config["metrics"][k] for k in ("budget_ks", "budget_draws", "seed")}
        ),
        specs=as_json(config["attacks"]),
        fprs=as_json(config["metrics"]["fprs"]),
        n_random=config["masks"]["n_random"],
        complements=str(config["masks"]["complements"]).lower(),
        shadows=",".join(map(str, SHADOWS)),
        targets=",".join(map(str, TARGETS)),
        expect=lambda wc: score_expect(SHADOWS + TARGETS),
    threads: job_threads("light")
    resources:
        **job_resources("light"),
    conda:
        "../envs/curvmia.yaml"
    container: IMAGES["cpu"]
    log:
        f"{RESULTS}/logs/budget.log",
    benchmark:
        f"{RESULTS}/benchmarks/budget.tsv"
    shell:
        "python $CURVMIA_SCRIPTS/budget.py --data {input.manifest:q} --masks {input.masks:q}"
        " --health {input.health:q}"
        " --shadow-rows {params.shadows:q} --target-rows {params.targets:q}"
        " --shadow-scores {input.shadow_scores:q} --target-scores {input.target_scores:q}"
        " --expect {params.expect:q} --specs {params.specs:q} --fprs {params.fprs:q}"
        " --budget {params.budget:q} --n-random {params.n_random:q}"
        " --complements {params.complements:q} --csv {output.csv:q} --png {output.png:q}"
        " > {log:q} 2>&1"


rule curv_hist:
    input:
        masks=f"{RESULTS}/masks.npz",
        scores=f"{RESULTS}/scores/model_{HIST_TARGET}.npz",
    output:
        report(f"{RESULTS}/curv_hist.png", caption="../report/curv_hist.rst", category="Curvature"),
    params:
        row=HIST_TARGET,
    threads: job_threads("light")
    resources:
        **job_resources("light"),
    conda:
        "../envs/curvmia.yaml"
    container: IMAGES["cpu"]
    log:
        f"{RESULTS}/logs/curv_hist.log",
    shell:
        "python $CURVMIA_SCRIPTS/plot_hist.py --masks {input.masks:q} --scores {input.scores:q}"
        " --row {params.row:q} --out {output:q} > {log:q} 2>&1"
