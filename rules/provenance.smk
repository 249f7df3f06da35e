# Provenance: what produced this experiment's results (curvmia/provenance.py). Reruns
# whenever the metrics, the models, the scores, the config or the git commit change; not
# when only a compute knob changes (each model and score file records its own knobs, and
# provenance.json lists any that differ between them).
from curvmia.provenance import git_commit

GIT_COMMIT = git_commit(workflow.basedir)


rule provenance:
    input:
        models=expand(f"{RESULTS}/models/model_{{row}}.pt", row=MODELS),
        scores=score_files(MODELS),
        metrics=f"{RESULTS}/metrics.csv",
    output:
        report(
            f"{RESULTS}/provenance.json",
            caption="../report/provenance.rst",
            category="Provenance",
        ),
    params:
        info=as_json(
            {
                "config": config_without_knobs(),
                "commit": GIT_COMMIT,
                "images": IMAGES,
            }
        ),
    conda:
        "../envs/curvmia.yaml"
    container: IMAGES["cpu"]
    log:
        f"{RESULTS}/logs/provenance.log",
    shell:
        "python $CURVMIA_SCRIPTS/provenance.py --info {params.info:q} --out {output:q}"
        " --scores {input.scores:q} --models {input.models:q} > {log:q} 2>&1"
