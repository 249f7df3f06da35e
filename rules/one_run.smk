# The one-run epsilon lower bound (docs/method.md: One-run ε lower bound): every attack on
# every target whose members are independent fair coins, with (k_pos, k_neg) and the
# headline attack chosen on the shadows as pseudo-targets (pseudo/<label>.npz of rule
# attack); the DP sweep's targets likewise, from the sweep's attack scores. Targets that do
# not qualify get NaN with the reason.


rule one_run:
    input:
        attacks=expand(f"{RESULTS}/attacks/{{label}}.npz", label=ATTACK_LABELS),
        pseudo=expand(f"{RESULTS}/pseudo/{{label}}.npz", label=ATTACK_LABELS),
    output:
        csv=report(f"{RESULTS}/one_run.csv", caption="../report/one_run.rst", category="Audit"),
        md=f"{RESULTS}/one_run.md",
    params:
        audit=as_json(config["audit"]["one_run"]),
        layout=as_json(
            {
                "pkeep": config["masks"]["pkeep"],
                "imported": sorted(r for r in TARGETS if r in IMPORTED),
                "fz": config["imported"].get("fz_input") is not None,
            }
        ),
    threads: job_threads("light")
    resources:
        **job_resources("light"),
    conda:
        "../envs/curvmia.yaml"
    container: IMAGES["cpu"]
    log:
        f"{RESULTS}/logs/one_run.log",
    shell:
        "python $CURVMIA_SCRIPTS/one_run.py --audit {params.audit:q} --layout {params.layout:q}"
        " --pseudo {input.pseudo:q} --csv {output.csv:q} --md {output.md:q}"
        " {input.attacks:q} > {log:q} 2>&1"


rule one_run_sweep:
    input:
        targets=f"{SWEEP_DIR}/dp/targets.csv",
        scores=f"{SWEEP_DIR}/dp/attacks.npz",
        pseudo=expand(f"{RESULTS}/pseudo/{{label}}.npz", label=ATTACK_LABELS),
    output:
        csv=report(
            f"{SWEEP_DIR}/dp/one_run.csv",
            caption="../report/one_run_sweep.rst",
            category="Audit",
            subcategory="dp sweep",
        ),
        fig=report(
            f"{SWEEP_DIR}/dp/one_run.png",
            caption="../report/one_run_sweep.rst",
            category="Audit",
            subcategory="dp sweep",
        ),
    params:
        audit=as_json(config["audit"]["one_run"]),
        dp=as_json(
            {
                "delta": DP["train"]["delta"],
                "mask": DP["mask"],
                "pkeep": config["masks"]["pkeep"],
            }
        ),
    threads: job_threads("light")
    resources:
        **job_resources("light"),
    conda:
        "../envs/curvmia.yaml"
    container: IMAGES["cpu"]
    log:
        f"{RESULTS}/logs/sweeps/dp/one_run.log",
    shell:
        "python $CURVMIA_SCRIPTS/one_run_sweep.py --audit {params.audit:q} --dp {params.dp:q}"
        " --targets {input.targets:q} --scores {input.scores:q} --pseudo {input.pseudo:q}"
        " --csv {output.csv:q} --fig {output.fig:q} > {log:q} 2>&1"


# `snakemake dp_one_run`: the DP sweep's one-run bound (rule all builds it when theory.sweeps
# lists dp). Rule dp_sweep leaves it out, so that target plans no attack jobs.
rule dp_one_run:
    input:
        f"{SWEEP_DIR}/dp/one_run.csv",
        f"{SWEEP_DIR}/dp/one_run.png",

