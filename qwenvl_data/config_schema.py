"""The config schema: what each key of configs/<stage>.yaml may hold, checked when a stage loads it.

The shape comes from the documented defaults themselves (every key the shipped file names, its type
taken from its default value: an int default wants an integer, a list wants a list, a mapping is closed
to its own keys); `RULES` below adds what a default cannot say: ranges, choices, maps whose keys are
free (sources, weights, thresholds), and which checks `null` may switch off (a key whose default is
null may always be null). Errors are one line naming the file and the dotted key, with a "did you mean"
for a misspelled key (UsageError, exit 2).
"""

from __future__ import annotations

import difflib
import math
from typing import Any

from .errors import UsageError

NUM = {"type": "number"}
INT = {"type": "int"}
PROB = {"type": "number", "min": 0, "max": 1}
POS_INT = {"type": "int", "min": 1}
NONNEG_INT = {"type": "int", "min": 0}
POS_NUM = {"type": "number", "gt": 0}
NONNEG_NUM = {"type": "number", "min": 0}
CHECK = {"null": True}  # a check `null` switches off
STR_LIST = {"type": "list", "items": {"type": "str"}}


def _range(lo=None, hi=None, kind="number"):
    """[a, b] with lo <= a <= b <= hi."""
    return {"type": "list", "len": 2, "ordered": True, "items": {"type": kind, "min": lo, "max": hi}}


_PAGE: dict[str, dict] = {
    "min_side": POS_INT,
    "min_chars": {**NONNEG_INT, **CHECK},
    "max_chars": {**NONNEG_INT, **CHECK},
    "reject_ranges": STR_LIST,
}
_THRESHOLD = {"type": "threshold", "null": True}  # a cosine cut (below -1 keeps everything) or a quantile
_WEIGHTS = {"type": "map", "null": True, "values": NONNEG_NUM}

# The filter checks its own section, with its renamed keys, in qwenvl_data/filter_settings.py.
SELF_CHECKED = {"filter"}

# Per stage: dotted key -> rule. A rule's keys: type (int, number, str, bool, list, map, threshold: a number
# or "qP"), min/max (inclusive), gt (exclusive minimum), choices, null (may be null), items (rule of list
# items), len, ordered (list ascending), values (rule of every value of a map with free keys).
RULES: dict[str, dict[str, dict]] = {
    "download": {
        "image_size": POS_INT,
        "samples_per_shard": POS_INT,
        "threads": POS_INT,
        "processes": {**POS_INT, "null": True},
        "timeout": POS_NUM,
        "deadline": {**POS_NUM, **CHECK},
        "retries": NONNEG_INT,
        "max_shard_retry": NONNEG_INT,
        "encode_quality": {"type": "int", "min": 0, "max": 100},
        "resize_mode": {"choices": ["keep_ratio", "keep_ratio_largest", "center_crop", "border", "no"]},
        "encode_format": {"choices": ["jpg", "png", "webp"]},
        "user_agent_token": CHECK,
        "disallowed_header_directives": {**STR_LIST, **CHECK},
        "allow_addresses": {**STR_LIST, **CHECK},
        "max_bytes": {**POS_INT, **CHECK},
        "max_pixels": {**POS_INT, **CHECK},
        "min_image_side": {**NONNEG_INT, **CHECK},
        "max_aspect_ratio": {"type": "number", "min": 1, **CHECK},
    },
    "sources": {
        "": {
            "type": "map",
            "values": {
                "type": "map",
                "keys": {
                    "columns": {
                        "type": "map",
                        "values": {"type": "list", "items": {"type": "str"}, "null": True, "or_str": True},
                    },
                    "score_threshold": {"type": "number", "null": True},
                    "special_tags": {"type": "bool"},
                },
            },
        },
    },
    "paths": {"": {"type": "map", "null": True, "values": {"type": "str"}}},
    "clip_score": {
        "model": {"type": "str"},
        "precision": {"choices": ["auto", "fp32", "bf16", "fp16"]},
        "batch_size": POS_INT,
        "read_batch": POS_INT,
        "actors": {**POS_INT, "null": True},
        "cpus_per_actor": POS_INT,
        "thresholds.default": _THRESHOLD,
        "thresholds.by_lang": {"type": "map", "null": True, "values": _THRESHOLD},
        "thresholds.by_source": {"type": "map", "null": True, "values": {"type": "any", "null": True}},
        "ray.num_cpus": {**POS_INT, "null": True},
        "ray.object_store_memory": {**POS_NUM, "null": True},
    },
    "synth_ocr": {
        "long_side": POS_INT,
        "aspect": _range(0.05, 1),
        "landscape_p": PROB,
        "paper_fill": _range(0.05, 1),
        "font_sizes": {"type": "list", "items": POS_INT, "min_len": 1},
        "line_spacing": _range(1, 10),
        "margin": {"type": "number", "min": 0, "max": 0.45},
        "max_lines": POS_INT,
        "rotate_deg": NONNEG_NUM,
        "perspective": {"type": "number", "min": 0, "max": 0.3},
        "shadow_p": PROB,
        "shadow_strength": _range(0, 1),
        "blur_p": PROB,
        "blur_sigma": _range(0, 20),
        "noise_p": PROB,
        "noise_sigma": _range(0, 255),
        "jpeg_quality": _range(1, 100, "int"),
        "max_shard_backgrounds": NONNEG_INT,
        "corpus_size": POS_INT,
        "corpus_seed": INT,
        "shard_size": POS_INT,
        **{f"{kind}.{k}": v for kind in ("pdf", "html") for k, v in _PAGE.items()},
        "pdf.scale": POS_NUM,
        "pdf.max_long_side": POS_INT,
        "html.viewport": {"type": "list", "len": 2, "items": POS_INT},
        "html.timeout_ms": POS_INT,
    },
    "tasks": {
        "shard_size": POS_INT,
        "max_pixels": {**POS_INT, **CHECK},
        "refcoco.splits": STR_LIST,
        "grit.min_confidence": {**PROB, **CHECK},
        "grit.resize_mode": {"choices": ["keep_ratio", "keep_ratio_largest", "center_crop", "border", "no"]},
        "text.max_chars": POS_INT,
    },
    "decontaminate": {
        "hash.method": {"choices": ["dhash", "phash"]},
        "hash.max_distance": {"type": "int", "min": 0, "max": 64},
        "max_pixels": {**POS_INT, **CHECK},
        # benchmark name (free) -> {dataset, path, splits, images}; null drops a shipped benchmark
        "benchmarks": {
            "type": "map",
            "null": True,
            "values": {
                "type": "map",
                "null": True,
                "keys": {
                    "dataset": {"type": "str"},
                    "path": {"type": "str"},
                    "splits": STR_LIST,
                    "images": {"type": "str"},
                },
            },
        },
    },
    "shards": {
        "shard_size": POS_INT,
        "seed": INT,
        **{f"stage{n}.weights": _WEIGHTS for n in (1, 2, 3)},
        **{f"stage{n}.default_weight": {**NONNEG_NUM, "null": True} for n in (1, 2, 3)},
        "stage3.zh_instruction_fraction": PROB,
        "stage3.system": {"type": "str"},
        "stage3.mask": {"choices": ["official", "answers"]},
    },
}

_TYPE_NAMES = {
    "int": "an integer",
    "number": "a number",
    "str": "a string",
    "bool": "true or false",
    "list": "a list",
    "map": "a mapping",
    "threshold": "a number or 'qP' (0<P<1)",
}


def _derived(default: Any) -> dict:
    """The rule a default value implies (its type; a mapping closed to its keys; a list's item type)."""
    if default is None:
        return {"type": "any", "null": True}
    if isinstance(default, bool):
        return {"type": "bool"}
    if isinstance(default, int):
        return {"type": "int"}
    if isinstance(default, float):
        return {"type": "number"}
    if isinstance(default, str):
        return {"type": "str"}
    if isinstance(default, list):
        return {"type": "list", **({"items": _derived(default[0])} if default else {})}
    if isinstance(default, dict):
        return {"type": "map", "keys": {k: _derived(v) for k, v in default.items()}}
    return {"type": "any"}


def _merge(base: dict, extra: dict) -> dict:
    out = {**base, **extra}
    if "choices" in extra and "type" not in extra:
        out["type"] = "any"
    if "values" in extra:
        out.pop("keys", None)  # free keys: the default's keys are only examples
    return out


def rule_for(section: str, default: Any) -> dict:
    """The whole rule of one section: derived from its defaults, RULES applied at their dotted keys."""
    root = _derived(default)
    for dotted, extra in sorted(RULES.get(section, {}).items(), key=lambda kv: kv[0].count(".")):
        if dotted == "":
            root = _merge(root, extra)
            continue
        node, parts = root, dotted.split(".")
        for part in parts[:-1]:
            node = node.get("keys", {}).get(part, {})
        keys = node.get("keys", {})
        if parts[-1] in keys:  # a rule never admits a key the documented defaults do not name
            keys[parts[-1]] = _merge(keys[parts[-1]], extra)
    return root


def _type_ok(kind: str, value: Any) -> bool:
    if kind in ("int", "number"):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return False
        return isinstance(value, int) or (kind == "number" and math.isfinite(value))
    if kind == "threshold":
        if isinstance(value, str):
            try:
                return value.startswith("q") and 0 < float(value[1:]) < 1
            except ValueError:
                return False
        return _type_ok("number", value)
    py = {"str": str, "bool": bool, "list": list, "map": dict}.get(kind)
    return py is None or isinstance(value, py)


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def check(value: Any, rule: dict, where: str) -> None:
    """UsageError naming `where` (file: dotted.key) at the first value that breaks `rule`."""
    if value is None:
        if rule.get("null"):
            return
        raise UsageError(f"{where}: must not be null (expected {_TYPE_NAMES.get(rule.get('type', ''), 'a value')})")
    if "choices" in rule and value not in rule["choices"]:
        raise UsageError(f"{where}: {_show(value)} is not one of {', '.join(map(str, rule['choices']))}")
    kind = rule.get("type", "any")
    if kind == "list" and rule.get("or_str") and isinstance(value, str):
        return
    if not _type_ok(kind, value):
        hint = " (write a list, e.g. [en, zh])" if kind == "list" and isinstance(value, str) else ""
        raise UsageError(f"{where}: expected {_TYPE_NAMES[kind]}, got {type(value).__name__} {_show(value)}{hint}")
    if kind in ("int", "number") or (kind == "threshold" and not isinstance(value, str)):
        if rule.get("min") is not None and value < rule["min"]:
            raise UsageError(f"{where}: {value} is below the minimum {rule['min']}")
        if rule.get("max") is not None and value > rule["max"]:
            raise UsageError(f"{where}: {value} is above the maximum {rule['max']}")
        if rule.get("gt") is not None and value <= rule["gt"]:
            raise UsageError(f"{where}: {value} must be greater than {rule['gt']}")
    elif kind == "list":
        if "len" in rule and len(value) != rule["len"]:
            raise UsageError(f"{where}: expected {rule['len']} values, got {len(value)}")
        if len(value) < rule.get("min_len", 0):
            raise UsageError(f"{where}: expected at least {rule['min_len']} value(s), got {len(value)}")
        for i, item in enumerate(value):
            if "items" in rule:
                check(item, rule["items"], f"{where}[{i}]")
        if rule.get("ordered") and list(value) != sorted(value):
            raise UsageError(f"{where}: {_show(value)} must be [low, high]")
    elif kind == "map":
        for k, v in value.items():
            if "values" in rule:
                check(v, rule["values"], f"{where}.{k}")
            elif k in rule.get("keys", {}):
                check(v, rule["keys"][k], f"{where}.{k}")
            else:
                known = list(rule.get("keys", {}))
                near = difflib.get_close_matches(str(k), known, n=1, cutoff=0.6)
                hint = f"; did you mean '{near[0]}'?" if near else f" (known: {', '.join(known)})"
                raise UsageError(f"{where}: unknown key '{k}'{hint}")


def check_section(section: str, value: Any, default: Any, source: str) -> None:
    """Validate one merged section against its schema; `source` names the user's file in errors."""
    if section in SELF_CHECKED:
        return
    check(value, rule_for(section, default), f"{source}: {section}")


def check_sections(user: dict, known: list[str], source: str) -> None:
    """A user file's top-level names: each must be a known section (with a "did you mean")."""
    for name in user:
        if name not in known:
            near = difflib.get_close_matches(str(name), known, n=1, cutoff=0.6)
            hint = f"; did you mean '{near[0]}'?" if near else f" (sections: {', '.join(known)})"
            raise UsageError(f"{source}: unknown section '{name}'{hint}")
