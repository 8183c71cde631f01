"""Configuration: one YAML file per stage under configs/ holds the documented defaults.

A user's YAML file may hold any of the stage sections (`filter:`, `download:`, ...) and overrides
the defaults key by key (deep merge). `None`/`null` switches a check off. Every section a stage loads
is checked against its schema (qwenvl_data/config_schema.py: types, ranges, unknown keys with a
"did you mean") before the stage starts; a bad value is a one-line UsageError naming file and key.
"""

from __future__ import annotations

import copy
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from .config_schema import check_section, check_sections
from .errors import UsageError


def read_yaml(path: str | Path) -> dict:
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


def default_file(name: str) -> dict:
    """The whole shipped defaults file configs/<name>.yaml."""
    text = resources.files("qwenvl_data.configs").joinpath(f"{name}.yaml").read_text(encoding="utf-8")
    return yaml.safe_load(text) or {}


def default_section(name: str) -> dict:
    """The shipped defaults of one stage (configs/<name>.yaml, section <name>)."""
    data = default_file(name)
    return data.get(name, data)


def merge_user_sections(defaults: dict[str, dict], user_config: str | Path | None) -> dict[str, dict]:
    """Each section of `defaults` with the user's YAML section of the same name merged over it."""
    if not user_config:
        return defaults
    user = read_yaml(user_config)
    check_sections(user, known_sections(), str(user_config))
    out = dict(defaults)
    for key in defaults:
        override = user.get(key)
        if override is None:
            continue
        if not isinstance(override, dict):
            raise UsageError(f"{user_config}: section '{key}' must be a mapping, got {type(override).__name__}")
        out[key] = deep_merge(defaults[key], override)
        check_section(key, out[key], defaults[key], str(user_config))
    return out


def known_sections() -> list[str]:
    """Every top-level section the shipped configs/*.yaml files define."""
    names: list[str] = []
    for entry in resources.files("qwenvl_data.configs").iterdir():
        if entry.name.endswith(".yaml"):
            names += [k for k in (yaml.safe_load(entry.read_text(encoding="utf-8")) or {}) if k not in names]
    return sorted(names)


def load_section(name: str, user_config: str | Path | None = None) -> dict[str, Any]:
    """Defaults of stage `name` with the user's YAML section of the same name merged over them."""
    return merge_user_sections({name: default_section(name)}, user_config)[name]
