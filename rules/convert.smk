# Feldman & Zhang's released ImageNet ResNet-50s (config section fz; docs/audit-your-model.md):
# TensorFlow/Sonnet checkpoints -> sonnet_resnet50 checkpoints, their aux_arrays.npz -> the
# membership matrix in the population's order, and a correctness check of every converted
# model against the release. Target: fz_all. Only the export step needs TensorFlow: it runs
# in its own environment (envs/tf.lock: `make tf-env` locally, envs/tf.yaml with --sdm conda,
# containers/tf.def with --sdm apptainer); the rest runs in the workflow's environment.
from curvmia.config_checks import check_fz

if config.get("fz"):
    FZ = config["fz"]
    FZ_OUT = f"{RESULTS}/fz"
    FZ_ROWS = range(len(FZ["runs"]))
    # Under --sdm conda/apptainer the rule's own environment puts TensorFlow's python first.
    FZ_PYTHON = "python" if workflow.deployment_settings.deployment_method else FZ["python"]

    # Checks a JSON schema cannot express, before any job; each error names the key.
    try:
        check_fz(config)
    except ValueError as e:
        _config_error(str(e))
    # the release's folder of model row r
    FZ_RUN = {str(r): f"{FZ['root']}/{run}" for r, run in enumerate(FZ["runs"])}

    rule fz_export:
        input:
            checkpoints=lambda w: f"{FZ_RUN[w.row]}/checkpoints",
        output:
            temp(f"{FZ_OUT}/export/model_{{row}}.npz"),
        params:
            python=FZ_PYTHON,
            probe_size=FZ["probe_size"],
        threads: job_threads("light")
        resources:
            **job_resources("light"),
        conda:
            "../envs/tf.yaml"
        container: FZ["container"]
        log:
            f"{RESULTS}/logs/fz/export_{{row}}.log",
        shell:
            "{params.python} $CURVMIA_SCRIPTS/fz_export.py --checkpoints {input.checkpoints:q}"
            " --probe-size {params.probe_size} --out {output:q} > {log:q} 2>&1"

    rule fz_convert:
        input:
            f"{FZ_OUT}/export/model_{{row}}.npz",
        output:
            f"{FZ_OUT}/models/model_{{row}}.pt",
        params:
            run=lambda w: FZ["runs"][int(w.row)],
            rtol=FZ["probe_rtol"],
        threads: job_threads("light")
        resources:
            **job_resources("light"),
        conda:
            "../envs/curvmia.yaml"
        container: IMAGES["cpu"]
        log:
            f"{RESULTS}/logs/fz/convert_{{row}}.log",
        shell:
            "python $CURVMIA_SCRIPTS/convert_fz.py convert --export {input:q} --run {params.run}"
            " --rtol {params.rtol} --out {output:q} > {log:q} 2>&1"

    rule fz_membership:
        input:
            index=FZ["index"],
            manifest=f"{DATA}/manifest.json",
            aux=[f"{FZ['root']}/{r}/aux_arrays.npz" for r in FZ["runs"]],
        output:
            membership=f"{FZ_OUT}/membership.npy",
            order=f"{FZ_OUT}/order.npy",
            order_test=f"{FZ_OUT}/order_test.npy",
            summary=f"{FZ_OUT}/membership.json",
        params:
            index_sha256=FZ["index_sha256"] or "",
            data_path=config["data"]["path"],
            runs=FZ["runs"],
        threads: job_threads("light")
        resources:
            **job_resources("light"),
        conda:
            "../envs/curvmia.yaml"
        container: IMAGES["cpu"]
        log:
            f"{RESULTS}/logs/fz/membership.log",
        shell:
            "python $CURVMIA_SCRIPTS/convert_fz.py membership --index {input.index:q}"
            " --index-sha256={params.index_sha256:q} --data-path {params.data_path:q}"
            " --manifest {input.manifest:q} --runs {params.runs} --aux {input.aux:q}"
            " --out-membership {output.membership:q} --out-order {output.order:q}"
            " --out-order-test {output.order_test:q}"
            " --out-json {output.summary:q} > {log:q} 2>&1"

    rule fz_check:
        input:
            model=f"{FZ_OUT}/models/model_{{row}}.pt",
            aux=lambda w: f"{FZ_RUN[w.row]}/aux_arrays.npz",
            manifest=f"{DATA}/manifest.json",
            order=f"{FZ_OUT}/order.npy",
            order_test=f"{FZ_OUT}/order_test.npy",
            membership=f"{FZ_OUT}/membership.npy",
        output:
            f"{FZ_OUT}/check/model_{{row}}.json",
        params:
            n=FZ["check_examples"],
            seed=FZ["check_seed"],
            min_agreement=FZ["min_agreement"],
        threads: job_threads("score")
        resources:
            **job_resources("score"),
        conda:
            "../envs/curvmia.yaml"
        container: IMAGES["gpu"]
        log:
            f"{RESULTS}/logs/fz/check_{{row}}.log",
        benchmark:
            f"{RESULTS}/benchmarks/fz/check_{{row}}.tsv"
        shell:
            "python $CURVMIA_SCRIPTS/convert_fz.py check --model {input.model:q}"
            " --aux {input.aux:q} --row {wildcards.row} --data {input.manifest:q}"
            " --order {input.order:q} --order-test {input.order_test:q}"
            " --membership {input.membership:q} --n {params.n}"
            " --seed {params.seed} --min-agreement {params.min_agreement}"
            ' --device "$CURVMIA_DEVICE" --threads {threads} --out {output:q} > {log:q} 2>&1'

    rule fz_all:
        input:
            expand(f"{FZ_OUT}/check/model_{{row}}.json", row=FZ_ROWS),
            f"{FZ_OUT}/membership.json",
