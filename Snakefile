# curvmia: membership-inference privacy audit with input-loss curvature.
# Stages: data -> masks -> train -> score -> attack -> metrics/report (one .smk each).
import sys

from snakemake.utils import min_version, validate

min_version("9.0")
sys.path.insert(0, workflow.basedir)

from curvmia.configfile import ConfigFileError, load_strict
from curvmia.groups import check_workflow_groups
from curvmia.runlock import refuse_if_held

# The effective config is one file's own: config/config.yaml (the digits default) only when
# no --configfile is given; otherwise the given files, later ones overlaid on earlier ones,
# then --config key=value (docs/configuration.md). Snakemake would otherwise deep-merge a
# --configfile into config/config.yaml, so a paper config would inherit digits values.
try:
    for _path in workflow.overwrite_configfiles or ["config/config.yaml"]:
        load_strict(_path)  # duplicate keys, empty or non-mapping files: file and line
except ConfigFileError as e:
    raise WorkflowError(f"Invalid config file: {e}") from None

if not workflow.overwrite_configfiles:

    configfile: "config/config.yaml"


validate(config, "config/schema.yaml")


include: "rules/common.smk"
include: "rules/resources.smk"
include: "rules/data.smk"
include: "rules/masks.smk"
include: "rules/train.smk"
include: "rules/import.smk"
include: "rules/score.smk"
include: "rules/attack.smk"
include: "rules/report.smk"
include: "rules/theory.smk"
include: "rules/sweeps.smk"
include: "rules/one_run.smk"
include: "rules/provenance.smk"
include: "rules/convert.smk"


report: "report/workflow.rst"


# absent, damaged or stale checkpoints and score files are rebuilt (rules/common.smk)
REPAIR = repair_targets(SCORING_PARAMS)


rule all:
    input:
        final_outputs(),
        REPAIR,
        # another run holding this folder: say so before Snakemake's lock or incomplete-file
        # advice (curvmia/runlock.py); evaluated while the DAG is built, for a real run only
        lambda wildcards: refuse_if_held(workflow, final_outputs()),
    default_target: True


# A job group whose members depend on each other through a rule outside it cannot be built:
# check the workflow profile's groups at parse time, for any target, naming the path.
try:
    check_workflow_groups(workflow, f"{workflow.basedir}/profiles/default/config.yaml")
except ValueError as e:
    raise WorkflowError(str(e)) from None
