# Attacks: one job per configured attack; its params are that entry only. Shadows that fail
# the model-health floor (health section) are left out of every attack's statistics.


rule health:
    input:
        f"{RESULTS}/models.csv",
    output:
        report(f"{RESULTS}/health.csv", caption="../report/health.rst", category="Models"),
    params:
        health=as_json(config["health"]),
    threads: job_threads("light")
    resources:
        **job_resources("light"),
    conda:
        "../envs/curvmia.yaml"
    container: IMAGES["cpu"]
    log:
        f"{RESULTS}/logs/health.log",
    shell:
        "python $CURVMIA_SCRIPTS/health.py --models {input:q} --health {params.health:q}"
        " --out {output:q} > {log:q} 2>&1"


rule attack:
    input:
        manifest=f"{DATA}/manifest.json",
        masks=f"{RESULTS}/masks.npz",
        health=f"{RESULTS}/health.csv",
        shadow_scores=score_files(SHADOWS),
        target_scores=score_files(TARGETS),
        stale=stale_marker("attacks"),
    output:
        scores=f"{RESULTS}/attacks/{{label}}.npz",
        pseudo=f"{RESULTS}/pseudo/{{label}}.npz",
    params:
        spec=lambda wc: as_json(ATTACK_SPECS[wc.label]),
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
        f"{RESULTS}/logs/attack/{{label}}.log",
    shell:
        "python $CURVMIA_SCRIPTS/attack.py --data {input.manifest:q} --masks {input.masks:q}"
        " --health {input.health:q}"
        " --shadow-rows {params.shadows:q} --target-rows {params.targets:q}"
        " --shadow-scores {input.shadow_scores:q} --target-scores {input.target_scores:q}"
        " --expect {params.expect:q} --spec {params.spec:q} --out {output.scores:q}"
        " --pseudo-out {output.pseudo:q} --n-random {params.n_random:q}"
        " --complements {params.complements:q} > {log:q} 2>&1"
