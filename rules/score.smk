# Scoring: per-sample, per-query features of each model (SPEC §3).


rule score:
    input:
        manifest=f"{DATA}/manifest.json",
        model=f"{RESULTS}/models/model_{{row}}.pt",
    output:
        f"{RESULTS}/scores/model_{{row}}.npz",
    params:
        scoring=as_json(config["scoring"]),
        device=config["compute"]["device"],
    threads: config["compute"]["threads"]
    resources:
        gpu=1 if config["compute"]["device"] == "cuda" else 0,
    conda:
        "../envs/curvmia.yaml"
    container: IMAGES["gpu"]
    log:
        f"{RESULTS}/logs/score/model_{{row}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/score/model_{{row}}.tsv"
    shell:
        "python $CURVMIA_SCRIPTS/score.py --data {input.manifest} --model {input.model} --row {wildcards.row}"
        " --scoring {params.scoring:q} --device {params.device} --threads {threads}"
        " --out {output} > {log} 2>&1"
