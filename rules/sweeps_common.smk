# Helpers of rules/sweeps.smk: a sweep target's members file and the content ids it
# depends on (inputs by content: rules/common.smk).


def sweep_members(sweep, value):
    """A sweep target's members file, once its checkpoint is done (ancient, by content;
    see sweep_ids)."""
    if sweep == "dp":
        return ancient(checkpoints.dp_members.get().output.members)
    return ancient(checkpoints.size_members.get(m=int(float(value))).output[0])


def sweep_members_path(sweep, value):
    """A sweep target's members file, as its checkpoint names it."""
    if sweep == "dp":
        return f"{SWEEP_DIR}/dp/members.npy"
    return f"{SWEEP_DIR}/size/members/m{int(float(value))}.npy"


def sweep_members_file(sweep, value):
    """A sweep target's members file, for identity params (see on_disk)."""
    return on_disk(sweep_members_path(sweep, value), lambda: sweep_members(sweep, value))


def sweep_ids(sweep, value):
    """Content ids a sweep target depends on: the data and its members (a members file
    written again with the same members reruns nothing)."""
    return as_json(
        {"data": data_id(), "members": content_id(sweep_members_file(sweep, value), "members")}
    )


def _sweep_value(name):
    """The epsilon or m of a sweep target id (model_id: eps1.0_seed0, m500_seed1)."""
    return name.split("_seed")[0].removeprefix("eps").removeprefix("m")
