# Training: one job per model (mask row); the recipe is the train section only.


rule train:
    input:
        manifest=f"{DATA}/manifest.json",
        masks=f"{RESULTS}/masks.npz",
    output:
        f"{RESULTS}/models/model_{{row}}.pt",
    params:
        train=as_json(config["train"]),
        device=config["compute"]["device"],
        ckpt_min=config["compute"]["checkpoint_minutes"],
        resident=config["compute"]["resident_max_gib"],
        workers=config["compute"]["loader_workers"],
    threads: job_threads("train")
    resources:
        **job_resources("train"),
    conda:
        "../envs/curvmia.yaml"
    container: IMAGES["gpu"]
    log:
        f"{RESULTS}/logs/train/model_{{row}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/train/model_{{row}}.tsv"
    shell:
        "python $CURVMIA_SCRIPTS/train.py --data {input.manifest:q} --masks {input.masks:q}"
        " --row {wildcards.row:q}"
        " --train {params.train:q} --device {params.device:q} --threads {threads}"
        " --checkpoint-minutes {params.ckpt_min:q} --resident-max-gib {params.resident:q}"
        " --workers {params.workers:q} --out {output:q} > {log:q} 2>&1"


rule model_summary:
    input:
        expand(f"{RESULTS}/models/model_{{row}}.pt", row=MODELS),
    output:
        report(
            f"{RESULTS}/models.csv",
            caption="../report/models.rst",
            category="Models",
        ),
    params:
        shadows=",".join(map(str, SHADOWS)),
        targets=",".join(map(str, TARGETS)),
    threads: job_threads("light")
    resources:
        **job_resources("light"),
    conda:
        "../envs/curvmia.yaml"
    container: IMAGES["cpu"]
    log:
        f"{RESULTS}/logs/model_summary.log",
    shell:
        "python $CURVMIA_SCRIPTS/model_summary.py --shadows {params.shadows:q}"
        " --targets {params.targets:q}"
        " --out {output:q} {input:q} > {log:q} 2>&1"
