# Provenance: what produced this experiment's results (curvmia/provenance.py). Reruns
# whenever the metrics, the models, the config or the git commit change.
from curvmia.provenance import git_commit

GIT_COMMIT = git_commit(workflow.basedir)


rule provenance:
    input:
        models=expand(f"{RESULTS}/models/model_{{row}}.pt", row=MODELS),
        metrics=f"{RESULTS}/metrics.csv",
    output:
        f"{RESULTS}/provenance.json",
    params:
        info=as_json(
            {
                "config": config,
                "commit": GIT_COMMIT,
                "images": IMAGES,
                "threads": config["compute"]["threads"],
            }
        ),
    threads: job_threads("light")
    resources:
        **job_resources("light"),
    conda:
        "../envs/curvmia.yaml"
    container: IMAGES["cpu"]
    log:
        f"{RESULTS}/logs/provenance.log",
    shell:
        "python $CURVMIA_SCRIPTS/provenance.py --info {params.info:q} --out {output:q}"
        " {input.models:q} > {log:q} 2>&1"
