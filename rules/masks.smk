# Masks: the seeded membership mask set (docs/method.md: Membership layouts).


checkpoint make_masks:
    input:
        manifest=f"{DATA}/manifest.json",
        # imported rows' membership files, by content (their sha256 is in the params)
        members=[
            ancient(e["members"]["path"]) for e in IMPORTED.values() if e["members"] is not None
        ],
    output:
        f"{RESULTS}/masks.npz",
    params:
        masks=as_json(
            {k: config["masks"][k] for k in ("n_random", "pkeep", "complements", "seed")}
        ),
        imported=as_json({str(r): e["members"] for r, e in IMPORTED.items()}),
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
        " --imported {params.imported:q}"
        " --out {output:q} > {log:q} 2>&1"
