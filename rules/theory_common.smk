# Helpers of rules/theory.smk: which sweeps can be compared with the theory, and the
# theory outputs that rule all collects.
THEORY_MAIN_KEYS = (
    "loss_clip", "c2", "query", "kl_k", "kl_null_reps", "delta", "alpha", "audit_select", "seed"
)
THEORY = f"{RESULTS}/theory"


def _sweep_inputs(sweep):
    base = f"{RESULTS}/sweeps/{sweep}"
    return {"targets": f"{base}/targets.csv", "metrics": f"{base}/metrics.csv"}


def theory_sweeps():
    """Sweeps listed in theory.sweeps: rule all runs them and compares them with the theory."""
    return list(config["theory"]["sweeps"])


def theory_outputs():
    out = [f"{THEORY}/targets.csv", f"{THEORY}/bounds.png"]
    for sweep in theory_sweeps():
        out += [f"{THEORY}/sweep_{sweep}.csv", f"{THEORY}/sweep_{sweep}.png"]
    return out


def one_run_sweep_outputs():
    """The DP sweep's one-run outputs, which rule all builds when theory.sweeps lists dp
    (beside its theory comparison)."""
    if "dp" not in config["theory"]["sweeps"]:
        return []
    return [f"{SWEEP_DIR}/dp/one_run.csv", f"{SWEEP_DIR}/dp/one_run.png"]
