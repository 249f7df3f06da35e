# curvmia: membership-inference privacy audit with input-loss curvature.
# Stages: data -> masks -> train -> score -> attack -> metrics/report (one .smk each).
from snakemake.utils import min_version, validate

min_version("9.0")


configfile: "config/config.yaml"


validate(config, "config/schema.yaml")


include: "rules/common.smk"
include: "rules/data.smk"
include: "rules/masks.smk"
include: "rules/train.smk"
include: "rules/score.smk"
include: "rules/attack.smk"
include: "rules/report.smk"
include: "rules/theory.smk"
include: "rules/sweeps.smk"
include: "rules/provenance.smk"
include: "rules/convert.smk"


report: "report/workflow.rst"


rule all:
    input:
        final_outputs(),
    default_target: True
