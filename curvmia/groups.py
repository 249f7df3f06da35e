"""Job groups that cannot be built: a group whose members depend on each other through a
rule outside the group.

Snakemake runs a group as one job, so it refuses a group in which a member needs a rule
outside the group that in turn needs another member ("Error in group ..."), but only when
the DAG of one run happens to hold that path. This module finds every such path in the
workflow's rule graph at parse time, for any config and target, and names it.
Torch-free: the Snakefile imports it while parsing.
"""

from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import yaml


@dataclass(frozen=True)
class GroupCycle:
    """A member of `group` that depends on another member through rules outside it.

    `path` runs downstream: `path[0]` and `path[-1]` are members of the group, the rules
    between them are not.
    """

    group: str
    path: tuple[str, ...]

    def message(self) -> str:
        outside = self.path[1:-1]
        return (
            f"group {self.group!r}: rule {self.path[-1]} depends on rule(s) "
            f"{', '.join(outside)} outside the group, which depend(s) on rule {self.path[0]} "
            f"inside it (path {' -> '.join(self.path)}). Put {', '.join(outside)} in group "
            f"{self.group!r} too, or take {self.path[0]} or {self.path[-1]} out of it."
        )


def group_cycles(deps: Mapping[str, Iterable[str]], groups: Mapping[str, str]) -> list[GroupCycle]:
    """Every (group, entry member) whose member reaches another member of its group only
    through a rule outside the group; one shortest path each, sorted.

    `deps` maps a rule to the rules it takes input from (upstream); `groups` maps a rule to
    its group. Rules named in `groups` but absent from `deps` are ignored (a group listing
    rules the config does not define).
    """
    upstream = {r: set(d) for r, d in deps.items()}
    members: dict[str, set[str]] = {}
    for rule, group in groups.items():
        if rule in upstream:
            members.setdefault(group, set()).add(rule)
    found = []
    for group, inside in sorted(members.items()):
        for last in sorted(inside):
            # breadth-first upstream from the member's outside dependencies
            prev: dict[str, str] = {}
            queue = deque()
            for x in sorted(upstream[last] - inside):
                prev[x] = last
                queue.append(x)
            while queue:
                rule = queue.popleft()
                hit = sorted(upstream.get(rule, set()) & inside)
                if hit:
                    chain = [hit[0], rule]
                    while prev[chain[-1]] != last:
                        chain.append(prev[chain[-1]])
                    chain.append(last)
                    found.append(GroupCycle(group, tuple(chain)))
                    break
                for x in sorted(upstream.get(rule, set())):
                    if x not in prev and x not in inside:
                        prev[x] = rule
                        queue.append(x)
    return found


def check_groups(
    deps: Mapping[str, Iterable[str]], groups: Mapping[str, str], source: str = "groups"
) -> None:
    """Raise ValueError naming each group that Snakemake could not build (group_cycles);
    `source` names where the assignment comes from."""
    cycles = group_cycles(deps, groups)
    if cycles:
        raise ValueError(
            f"{source}: job groups that cannot run as one job:\n  "
            + "\n  ".join(c.message() for c in cycles)
        )


def rule_dependencies(rules: Iterable) -> dict[str, set[str]]:
    """The rule graph of parsed Snakemake `rules`: rule -> the rules it takes input from.

    Walks the concrete jobs Snakemake could build, from every rule without wildcards (the
    targets) upstream: each job's inputs as Snakemake expands them (input functions
    included; an unfinished checkpoint counts as a dependency on it), each input's
    producers by their output patterns. A job whose inputs cannot be formed is skipped:
    planning reports that itself.
    """
    rules = list(rules)
    deps: dict[str, set[str]] = {r.name: set() for r in rules}
    producers: dict[str, list] = {}
    seen: set[tuple] = set()
    queue = deque((r, {}) for r in rules if not r.wildcard_names)
    while queue:
        rule, wildcards = queue.popleft()
        key = (rule.name, tuple(sorted(wildcards.items())))
        if key in seen:
            continue
        seen.add(key)
        try:
            files = rule.expand_input(wildcards)[0]
        except Exception:  # noqa: BLE001 - Snakemake reports it when it plans the job
            continue
        for f in map(str, files):
            if f not in producers:
                producers[f] = [r for r in rules if r.is_producer(f)]
            for p in producers[f]:
                deps[rule.name].add(p.name)
                queue.append((p, dict(p.get_wildcards(f))))
    return deps


def profile_groups(profile: str | Path) -> dict[str, str]:
    """The `groups:` mapping (rule -> group) of a Snakemake profile's config.yaml."""
    groups = (yaml.safe_load(Path(profile).read_text()) or {}).get("groups") or {}
    if not isinstance(groups, dict):
        raise ValueError(f"{profile}: groups must be a mapping of rule name to group name")
    return {str(k): str(v) for k, v in groups.items()}


def check_workflow_groups(workflow, profile: str | Path) -> None:
    """check_groups on a parsed Snakemake workflow: its rule graph, and the groups of the
    rules' `group:` directives overlaid by the `groups:` of the workflow profile `profile`
    (as Snakemake overlays them).

    Snakemake hands the profiles' groups to the workflow only after parsing, so the check
    reads the workflow profile's file itself: the assignment the workflow ships and every
    run reads (also under `--workflow-profile none`). Groups given on the command line
    (`--groups`) are not seen here; Snakemake still refuses them when it plans.
    """
    groups = {r.name: r._group for r in workflow.rules if getattr(r, "_group", None)}
    groups.update(profile_groups(profile))
    check_groups(rule_dependencies(workflow.rules), groups, str(profile))
