"""Strict reading of config files: one clear line naming the file and the line.

Snakemake reads YAML leniently (a duplicate key silently keeps its last value) and reports
an empty or non-mapping file without naming it. The Snakefile re-reads every config file it
was given with :func:`load_strict`, so such a file stops the run with ``<file>:<line>: ...``
before any job.
"""

from __future__ import annotations

import os

import yaml


class ConfigFileError(ValueError):
    """A config file that is not a YAML mapping with unique keys."""


class _DuplicateKey(Exception):
    def __init__(self, key: object, line: int, first: int) -> None:
        super().__init__(f"{line}: duplicate key {key!r} (first on line {first})")


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate mapping keys."""


def _construct_mapping(loader: _StrictLoader, node: yaml.MappingNode, deep: bool = False):
    loader.flatten_mapping(node)
    seen: dict = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise _DuplicateKey(key, key_node.start_mark.line + 1, seen[key])
        seen[key] = key_node.start_mark.line + 1
    return loader.construct_mapping(node, deep=deep)


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def load_strict(path: str | os.PathLike) -> dict:
    """Read ``path`` as a YAML mapping with unique keys; errors are ``<path>:<line>: <what>``."""
    try:
        with open(path, encoding="utf-8") as fh:
            text = fh.read()
    except OSError as e:
        raise ConfigFileError(f"{path}: cannot read the config file ({e.strerror})") from None
    try:
        data = yaml.load(text, Loader=_StrictLoader)  # noqa: S506 (a SafeLoader subclass)
    except _DuplicateKey as e:
        raise ConfigFileError(f"{path}:{e}") from None
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        line = f":{mark.line + 1}" if mark is not None else ""
        raise ConfigFileError(f"{path}{line}: not valid YAML: {e.problem or e}") from None
    if data is None:
        raise ConfigFileError(f"{path}:1: the config file is empty; expected a YAML mapping")
    if not isinstance(data, dict):
        raise ConfigFileError(
            f"{path}:1: expected a YAML mapping of config keys, got a {type(data).__name__}"
        )
    return data


def effective_config(
    configfiles: list[str | os.PathLike],
    default: str | os.PathLike,
    schema: str | os.PathLike | None = None,
) -> dict:
    """The config a run of the Snakefile reads: the given files overlaid in order (``default``,
    config/config.yaml, only when none is given), then the schema's defaults for omitted keys."""
    # Snakemake's own overlay of a later --configfile on an earlier one (heavy import: here only)
    from snakemake.utils import update_config, validate

    config: dict = {}
    for path in list(configfiles) or [default]:
        update_config(config, load_strict(path))
    if schema is not None:
        validate(config, str(schema), set_default=True)
    return config
