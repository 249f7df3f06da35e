# Imported models (section imported; docs/audit-your-model.md): each imported row's
# checkpoint is made from its model file instead of by training. The job checks the file
# again (sha256, format, architecture), the input contract against the prepared data's
# manifest, measures train and test accuracy as training does, and writes a checkpoint
# with the identity every load verifies (row, entry hash, members hash, data hash).


rule import_model:
    wildcard_constraints:
        row=rows_regex(list(IMPORTED)),
    input:
        unpack(import_inputs),
        manifest=prepared_manifest,
        masks=masks_npz,
        stale=stale_marker("models"),
    output:
        f"{RESULTS}/models/model_{{row}}.pt",
    params:
        entry=lambda wc: as_json(IMPORTED[int(wc.row)]),
        inputs=row_ids,
    threads: job_threads("score")
    resources:
        **job_resources("score"),
    conda:
        "../envs/curvmia.yaml"
    container: IMAGES["gpu"]
    log:
        f"{RESULTS}/logs/import/model_{{row}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/import/model_{{row}}.tsv"
    shell:
        "python $CURVMIA_SCRIPTS/import_model.py --entry {params.entry:q} --data {input.manifest:q}"
        " --masks {input.masks:q} --threads {threads} --device \"$CURVMIA_DEVICE\""
        " --out {output:q} > {log:q} 2>&1"
