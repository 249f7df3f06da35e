# Helpers of rules/theory.smk: which sweeps can be compared with the theory, and the
# theory outputs that rule all collects (lazily, after every rule file is included).
import os
import sys

THEORY_MAIN_KEYS = ("loss_clip", "c2", "query", "kl_k", "delta", "alpha", "audit_select", "seed")
THEORY = f"{RESULTS}/theory"


def _sweep_inputs(sweep):
    base = f"{RESULTS}/sweeps/{sweep}"
    return {"targets": f"{base}/targets.csv", "metrics": f"{base}/metrics.csv"}


def _produced(path):
    if os.path.exists(path):
        return True
    return any(r.name != "theory_sweep" and r.is_producer(path) for r in workflow.rules)


def theory_sweeps():
    """Sweeps listed in theory.sweeps whose targets.csv and metrics.csv can be had."""
    found = []
    for sweep in config["theory"]["sweeps"]:
        if all(_produced(p) for p in _sweep_inputs(sweep).values()):
            found.append(sweep)
        else:
            print(
                f"theory: no rule produces {RESULTS}/sweeps/{sweep}/targets.csv and metrics.csv;"
                f" the {sweep} sweep comparison is skipped",
                file=sys.stderr,
            )
    return found


def theory_outputs():
    out = [f"{THEORY}/targets.csv", f"{THEORY}/bounds.png"]
    for sweep in theory_sweeps():
        out += [f"{THEORY}/sweep_{sweep}.csv", f"{THEORY}/sweep_{sweep}.png"]
    return out
