"""Configuration: one YAML file per stage under configs/ holds the documented defaults.

A user's YAML file may hold any of the stage sections (`filter:`, `download:`, ...) and overrides
the defaults key by key (deep merge). `None`/`null` switches a check off.
"""
from __future__ import annotations

import copy
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from .errors import UsageError


def _read_yaml(path: str | Path) -> dict:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as e:
        raise UsageError(f"{path}: cannot read config: {e.strerror or e}") from None
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as e:
        line = getattr(getattr(e, "problem_mark", None), "line", None)
        where = f" line {line + 1}" if line is not None else ""
        raise UsageError(f"{path}:{where} invalid YAML: {getattr(e, 'problem', e)}") from None
    if not isinstance(data, dict):
        raise UsageError(f"{path}: config must be a mapping of sections, got {type(data).__name__}")
    return data


def deep_merge(base: dict, override: dict) -> dict:
    out = copy.deepcopy(base)
    for k, v in override.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = deep_merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def default_section(name: str) -> dict:
    """The shipped defaults of one stage (configs/<name>.yaml, section <name>)."""
    text = resources.files("qwenvl_data.configs").joinpath(f"{name}.yaml").read_text(encoding="utf-8")
    data = yaml.safe_load(text) or {}
    return data.get(name, data)


def load_section(name: str, user_config: str | Path | None = None) -> dict[str, Any]:
    """Defaults of stage `name` with the user's YAML section of the same name merged over them."""
    section = default_section(name)
    if user_config:
        user = _read_yaml(user_config)
        override = user.get(name, {})
        if override is None:
            override = {}
        if not isinstance(override, dict):
            raise UsageError(f"{user_config}: section '{name}' must be a mapping")
        section = deep_merge(section, override)
    return section
