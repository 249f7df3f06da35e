# Masks: the seeded membership mask set (SPEC §1).


rule make_masks:
    input:
        manifest=f"{DATA}/manifest.json",
    output:
        f"{RESULTS}/masks.npz",
    params:
        masks=as_json(
            {k: config["masks"][k] for k in ("n_random", "pkeep", "complements", "seed")}
        ),
    threads: job_threads("light")
    resources:
        **job_resources("light"),
    conda:
        "../envs/curvmia.yaml"
    container: IMAGES["cpu"]
    log:
        f"{RESULTS}/logs/make_masks.log",
    shell:
        "python $CURVMIA_SCRIPTS/make_masks.py --data {input.manifest:q} --masks {params.masks:q}"
        " --out {output:q} > {log:q} 2>&1"
