# Theory (docs/method.md: Theory): the paper's bounds beside measured distinguishability and the empirical
# epsilon of the best attack, for the main experiment's targets and for the DP and
# dataset-size sweeps (results/<experiment>/sweeps/<sweep>/{targets,metrics}.csv of
# rules/sweeps.smk). Rule all compares the sweeps listed in theory.sweeps; the targets
# dp_sweep and size_sweep always include their comparison.
include: "theory_common.smk"


rule theory:
    input:
        masks=f"{RESULTS}/masks.npz",
        scores=score_files(TARGETS),
        attacks=expand(f"{RESULTS}/attacks/{{label}}.npz", label=ATTACK_LABELS),
    output:
        csv=report(f"{THEORY}/targets.csv", caption="../report/theory.rst", category="Theory"),
        md=f"{THEORY}/targets.md",
        fig=report(f"{THEORY}/bounds.png", caption="../report/theory.rst", category="Theory"),
    params:
        theory=as_json({k: config["theory"][k] for k in THEORY_MAIN_KEYS}),
        targets=",".join(map(str, TARGETS)),
    threads: job_threads("light")
    resources:
        **job_resources("light"),
    conda:
        "../envs/curvmia.yaml"
    container: IMAGES["cpu"]
    log:
        f"{RESULTS}/logs/theory.log",
    shell:
        "python $CURVMIA_SCRIPTS/theory.py --theory {params.theory:q} --masks {input.masks:q}"
        " --target-rows {params.targets:q} --target-scores {input.scores:q}"
        " --attacks {input.attacks:q} --csv {output.csv:q} --md {output.md:q} --fig {output.fig:q}"
        " > {log:q} 2>&1"


rule theory_sweep:
    input:
        unpack(lambda wc: _sweep_inputs(wc.sweep)),
    output:
        csv=report(
            f"{THEORY}/sweep_{{sweep}}.csv",
            caption="../report/theory_sweep.rst",
            category="Theory",
            subcategory="{sweep} sweep",
        ),
        fit=f"{THEORY}/sweep_{{sweep}}.json",
        note=f"{THEORY}/sweep_{{sweep}}.md",
        fig=report(
            f"{THEORY}/sweep_{{sweep}}.png",
            caption="../report/theory_sweep.rst",
            category="Theory",
            subcategory="{sweep} sweep",
        ),
    params:
        theory=as_json({k: v for k, v in config["theory"].items() if k != "sweeps"}),
    wildcard_constraints:
        sweep="dp|size",
    threads: job_threads("light")
    resources:
        **job_resources("light"),
    conda:
        "../envs/curvmia.yaml"
    container: IMAGES["cpu"]
    log:
        f"{RESULTS}/logs/theory_sweep_{{sweep}}.log",
    shell:
        "python $CURVMIA_SCRIPTS/theory_sweep.py --sweep {wildcards.sweep:q}"
        " --theory {params.theory:q} --targets {input.targets:q} --metrics {input.metrics:q}"
        " --csv {output.csv:q} --fit {output.fit:q} --note {output.note:q} --fig {output.fig:q}"
        " > {log:q} 2>&1"
