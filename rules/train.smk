# Training: one job per model (mask row); the recipe is the train section only.


rule train:
    wildcard_constraints:
        row=rows_regex(TRAINED),
    input:
        manifest=prepared_manifest,
        masks=masks_npz,
        stale=stale_marker("models"),
    output:
        f"{RESULTS}/models/model_{{row}}.pt",
    params:
        train=as_json(config["train"]),
        inputs=row_ids,
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
        " --train {params.train:q} --threads {threads} --device \"$CURVMIA_DEVICE\""
        " --checkpoint-minutes \"$CURVMIA_CHECKPOINT_MINUTES\""
        " --resident-max-gib \"$CURVMIA_RESIDENT_MAX_GIB\" --workers \"$CURVMIA_LOADER_WORKERS\""
        " --out {output:q} > {log:q} 2>&1"


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
        row_hashes=as_json({str(r): h for r, h in ROW_HASH.items()}),
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
        " --targets {params.targets:q} --row-hashes {params.row_hashes:q}"
        " --out {output:q} {input:q} > {log:q} 2>&1"
