# Attacks: one job per configured attack; its params are that entry only.


rule attack:
    input:
        manifest=f"{DATA}/manifest.json",
        masks=f"{RESULTS}/masks.npz",
        scores=score_files(MODELS),
    output:
        f"{RESULTS}/attacks/{{label}}.npz",
    params:
        spec=lambda wc: as_json(ATTACK_SPECS[wc.label]),
        shadows=",".join(map(str, SHADOWS)),
        targets=",".join(map(str, TARGETS)),
        scores_dir=f"{RESULTS}/scores",
    log:
        f"{RESULTS}/logs/attack/{{label}}.log",
    shell:
        "python {SCRIPTS}/attack.py --data {DATA} --masks {input.masks}"
        " --scores-dir {params.scores_dir} --shadows {params.shadows} --targets {params.targets}"
        " --spec {params.spec:q} --out {output} > {log} 2>&1"
