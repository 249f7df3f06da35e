"""Print, as JSON, the conda environment Snakemake would deploy for each rule under --sdm conda.

Usage: python tests/_conda_envs.py CONFIGFILE WORKDIR   (run in a subprocess: the Snakemake
API changes cwd). Each rule's `conda:` directive goes through Snakemake's own code, as a job's
does (Rule.expand_conda_env -> CondaEnvFileSpec.get_conda_env -> deployment.conda.Env): the
file it resolves to, and Env.content, the bytes Snakemake hashes for .snakemake/conda/<hash>
and copies there as <hash>.yaml before `conda env create`. Creating or even dry-running the
environments needs a conda binary (`conda info` for the platform), which is not used here.
"""

import hashlib
import json
import os
import sys
from pathlib import Path

from snakemake.api import SnakemakeApi
from snakemake.settings.types import (
    ConfigSettings,
    DeploymentMethod,
    DeploymentSettings,
    OutputSettings,
    ResourceSettings,
)


def main() -> None:
    configfile, workdir = Path(sys.argv[1]).resolve(), Path(sys.argv[2]).resolve()
    with SnakemakeApi(OutputSettings(quiet=None)) as api:
        wf = api.workflow(
            resource_settings=ResourceSettings(),
            config_settings=ConfigSettings(configfiles=[configfile]),
            deployment_settings=DeploymentSettings(deployment_method={DeploymentMethod.CONDA}),
            snakefile=workdir / "Snakefile",
            workdir=workdir,
        )
        w = wf._workflow
        envs = {}
        for r in w.rules:
            spec = r.expand_conda_env({})
            if spec is None:
                continue
            # where Snakemake's persistence would put it (set up only when a DAG is built)
            env = spec.get_conda_env(w, envs_dir=str(workdir / ".snakemake" / "conda"))
            envs[r.name] = {
                "file": os.path.relpath(env.file.get_path_or_uri(secret_free=True), workdir),
                "content_sha256": hashlib.sha256(env.content).hexdigest(),
            }
    print(json.dumps({"rules": envs}))


if __name__ == "__main__":
    main()
