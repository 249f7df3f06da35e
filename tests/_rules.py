"""Print the workflow's rules as JSON (run in a subprocess: the Snakemake API changes cwd).

Usage: python tests/_rules.py CONFIGFILE WORKDIR
"""

import json
import sys
from pathlib import Path

from snakemake.api import SnakemakeApi
from snakemake.settings.types import ConfigSettings, OutputSettings, ResourceSettings

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    configfile, workdir = Path(sys.argv[1]), Path(sys.argv[2])
    with SnakemakeApi(OutputSettings(quiet=None)) as api:
        wf = api.workflow(
            resource_settings=ResourceSettings(),
            config_settings=ConfigSettings(configfiles=[configfile.resolve()]),
            snakefile=REPO / "Snakefile",
            workdir=workdir,
        )
        w = wf._workflow
        global_wc = {k: str(v) for k, v in w.wildcard_constraints.items()}
        rules = {}
        for r in w.rules:
            rules[r.name] = {
                "container": r.container_img,
                "norun": bool(r.norun),
                "shell": r.shellcmd,
                "wildcards": sorted(r.wildcard_names),
                "constraints": {
                    k: str(v) for k, v in {**global_wc, **(r.wildcard_constraints or {})}.items()
                },
                "params": sorted(k for k in r.params.keys()),
            }
    print(json.dumps({"rules": rules}))


if __name__ == "__main__":
    main()
