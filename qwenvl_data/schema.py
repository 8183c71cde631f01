"""JSON Schemas (schemas/*.schema.json): the contracts between stages.

Every sample json in a shard names its schema in the key "schema" (e.g. "sample", "ocr", "task",
"chat"); parquet files are checked against the pair schema unless told otherwise.
"""

from __future__ import annotations

import functools
import json
from importlib import resources

import fastjsonschema
import jsonschema


@functools.cache
def load_schema(name: str) -> dict:
    path = resources.files("qwenvl_data.schemas").joinpath(f"{name}.schema.json")
    if not path.is_file():
        raise KeyError(name)
    return json.loads(path.read_text(encoding="utf-8"))


@functools.cache
def validator(name: str) -> jsonschema.protocols.Validator:
    schema = load_schema(name)
    cls = jsonschema.validators.validator_for(schema)
    return cls(schema, format_checker=cls.FORMAT_CHECKER)


@functools.cache
def _compiled(name: str):
    # fastjsonschema compiles the schema to Python code: ~20x faster than jsonschema on OCR samples with
    # hundreds of quads. jsonschema (the reference) is consulted only to word the error of a bad sample.
    return fastjsonschema.compile(load_schema(name))


def first_error(name: str, instance) -> str | None:
    """None when `instance` conforms to schema `name`, else '<field>: <message>' for the first error."""
    try:
        _compiled(name)(instance)
        return None
    except fastjsonschema.JsonSchemaException:
        pass
    errors = sorted(validator(name).iter_errors(instance), key=lambda e: list(e.absolute_path))
    if not errors:  # the two validators disagree (a format only one of them checks): trust the reference
        return None
    e = errors[0]
    field = ".".join(str(p) for p in e.absolute_path) or "(root)"
    msg = e.message if len(e.message) < 200 else e.message[:200] + "..."
    return f"field '{field}': {msg}"
