# Scoring: per-sample, per-query features of each model (docs/method.md: Estimators). With scoring.shards > 1
# each model's samples are split into that many shard jobs (a killed shard reruns alone) and
# merged into the same file an unsharded job writes. The shard count is not a param of the
# result: the scoring params carry every other scoring key.

SCORE_SHARDS = int(config["scoring"]["shards"])
SCORING_PARAMS = as_json(
    {k: v for k, v in config["scoring"].items() if k not in SCORING_KNOBS}
)

for _i, _spec in enumerate(config["attacks"]):
    if _spec.get("feature", "curv_zo").startswith("curv_hutch") and not config["scoring"][
        "hutch_nprobes"
    ]:
        raise WorkflowError(
            f"Invalid config: attacks[{_i}].feature: {_spec['feature']!r} needs "
            "scoring.hutch_nprobes >= 1 (white-box curvature is not computed with 0 probes)"
        )


if SCORE_SHARDS == 1:

    rule score:
        input:
            manifest=prepared_manifest,
            masks=masks_npz,
            model=f"{RESULTS}/models/model_{{row}}.pt",
            stale=stale_marker("scores"),
        output:
            f"{RESULTS}/scores/model_{{row}}.npz",
        params:
            scoring=SCORING_PARAMS,
            train_hash=row_hash,
            inputs=row_ids,
        threads: job_threads("score")
        resources:
            **job_resources("score"),
        conda:
            "../envs/curvmia.yaml"
        container: IMAGES["gpu"]
        log:
            f"{RESULTS}/logs/score/model_{{row}}.log",
        benchmark:
            f"{RESULTS}/benchmarks/score/model_{{row}}.tsv"
        shell:
            "python $CURVMIA_SCRIPTS/score.py --data {input.manifest:q} --model {input.model:q}"
            " --row {wildcards.row:q} --members {input.masks:q} --train-hash {params.train_hash:q}"
            " --scoring {params.scoring:q} --threads {threads} --device \"$CURVMIA_DEVICE\""
            " --scoring-compute \"$CURVMIA_SCORING_COMPUTE\""
            " --out {output:q} > {log:q} 2>&1"

else:

    rule score_shard:
        wildcard_constraints:
            shard=r"\d+",
        input:
            manifest=prepared_manifest,
            masks=masks_npz,
            model=f"{RESULTS}/models/model_{{row}}.pt",
            stale=stale_marker("scores"),
        output:
            f"{RESULTS}/scores/shards/model_{{row}}.{{shard}}-of-{SCORE_SHARDS}.npz",
        params:
            scoring=SCORING_PARAMS,
            train_hash=row_hash,
            inputs=row_ids,
            nshards=SCORE_SHARDS,
        threads: job_threads("score")
        resources:
            **job_resources("score"),
        conda:
            "../envs/curvmia.yaml"
        container: IMAGES["gpu"]
        log:
            f"{RESULTS}/logs/score/model_{{row}}.{{shard}}-of-{SCORE_SHARDS}.log",
        benchmark:
            f"{RESULTS}/benchmarks/score/model_{{row}}.{{shard}}-of-{SCORE_SHARDS}.tsv"
        shell:
            "python $CURVMIA_SCRIPTS/score.py --data {input.manifest:q} --model {input.model:q}"
            " --row {wildcards.row:q} --members {input.masks:q} --train-hash {params.train_hash:q}"
            " --scoring {params.scoring:q} --threads {threads} --device \"$CURVMIA_DEVICE\""
            " --scoring-compute \"$CURVMIA_SCORING_COMPUTE\""
            " --shard {wildcards.shard:q}/{params.nshards:q} --out {output:q} > {log:q} 2>&1"

    rule score_merge:
        input:
            expand(
                f"{RESULTS}/scores/shards/model_{{{{row}}}}.{{shard}}-of-{SCORE_SHARDS}.npz",
                shard=range(SCORE_SHARDS),
            ),
        output:
            f"{RESULTS}/scores/model_{{row}}.npz",
        threads: job_threads("light")
        resources:
            **job_resources("light"),
        conda:
            "../envs/curvmia.yaml"
        container: IMAGES["cpu"]
        log:
            f"{RESULTS}/logs/score/model_{{row}}.merge.log",
        shell:
            "python $CURVMIA_SCRIPTS/merge_scores.py --shards {input:q} --out {output:q}"
            " > {log:q} 2>&1"
