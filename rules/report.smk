# Metrics, figures and the Snakemake report.


rule metrics:
    input:
        expand(f"{RESULTS}/attacks/{{label}}.npz", label=ATTACK_LABELS),
    output:
        csv=report(f"{RESULTS}/metrics.csv", caption="../report/metrics.rst", category="Metrics"),
        md=f"{RESULTS}/metrics.md",
        roc=report(f"{RESULTS}/roc.png", caption="../report/roc.rst", category="Metrics"),
    params:
        metrics=as_json(config["metrics"]),
    conda:
        "../envs/curvmia.yaml"
    container: IMAGES["cpu"]
    log:
        f"{RESULTS}/logs/metrics.log",
    shell:
        "python $CURVMIA_SCRIPTS/metrics.py --metrics {params.metrics:q} --csv {output.csv}"
        " --md {output.md} --roc {output.roc} {input} > {log} 2>&1"


rule curv_hist:
    input:
        masks=f"{RESULTS}/masks.npz",
        scores=f"{RESULTS}/scores/model_{HIST_TARGET}.npz",
    output:
        report(f"{RESULTS}/curv_hist.png", caption="../report/curv_hist.rst", category="Curvature"),
    params:
        row=HIST_TARGET,
    conda:
        "../envs/curvmia.yaml"
    container: IMAGES["cpu"]
    log:
        f"{RESULTS}/logs/curv_hist.log",
    shell:
        "python $CURVMIA_SCRIPTS/plot_hist.py --masks {input.masks} --scores {input.scores}"
        " --row {params.row} --out {output} > {log} 2>&1"
