# Attacks: one job per configured attack; its params are that entry only.


rule attack:
    input:
        manifest=f"{DATA}/manifest.json",
        masks=f"{RESULTS}/masks.npz",
        shadow_scores=score_files(SHADOWS),
        target_scores=score_files(TARGETS),
    output:
        f"{RESULTS}/attacks/{{label}}.npz",
    params:
        spec=lambda wc: as_json(ATTACK_SPECS[wc.label]),
        shadows=",".join(map(str, SHADOWS)),
        targets=",".join(map(str, TARGETS)),
    conda:
        "../envs/curvmia.yaml"
    container: IMAGES["cpu"]
    log:
        f"{RESULTS}/logs/attack/{{label}}.log",
    shell:
        "python $CURVMIA_SCRIPTS/attack.py --data {input.manifest} --masks {input.masks}"
        " --shadow-rows {params.shadows} --target-rows {params.targets}"
        " --shadow-scores {input.shadow_scores} --target-scores {input.target_scores}"
        " --spec {params.spec:q} --out {output} > {log} 2>&1"
