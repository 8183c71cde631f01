"""Column layouts of the public pair sources → normalised pair columns, and each row's stable uid.

`normalise(table, layout, source, file_stem, row_offset)` returns a table with
`uid, source, url, caption_raw, width, height, score, _meta_bad` where `_meta_bad` flags rows whose
published values could not be read as the right type (non-numeric sizes, bytes that are not UTF-8).
Dictionary-encoded, string_view and large_string columns read like plain ones; a column of a type that
cannot hold the field at all (a numeric URL, a list id) is a one-line BadInput naming file and column.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .errors import BadInput, UsageError

FIELDS = ("url", "caption", "width", "height", "score", "id")
REQUIRED = ("url", "caption")


@dataclass(frozen=True)
class Layout:
    name: str
    columns: dict  # field -> tuple of candidate column names
    score_threshold: float | None
    special_tags: bool

    @classmethod
    def from_config(cls, name: str, cfg: dict) -> Layout:
        cols = cfg.get("columns") or {}
        unknown = set(cols) - set(FIELDS)
        if unknown:
            raise UsageError(f"source '{name}': unknown column fields {sorted(unknown)} (allowed: {FIELDS})")
        for f in REQUIRED:
            if not cols.get(f):
                raise UsageError(f"source '{name}': the config must name its '{f}' column")
        norm = {f: tuple([c] if isinstance(c, str) else (c or ())) for f, c in cols.items()}
        return cls(name, norm, cfg.get("score_threshold"), bool(cfg.get("special_tags", False)))

    def resolve(self, names: list[str], path: str) -> dict:
        """Map each field to the column present in a file; error naming the column if a required one is missing."""
        present = set(names)
        found = {}
        for f in FIELDS:
            hit = next((c for c in self.columns.get(f, ()) if c in present), None)
            if hit is None and f in REQUIRED:
                raise BadInput(
                    f"{path}: missing column {self.columns[f][0]!r} for '{f}' "
                    f"(source layout '{self.name}' expects one of {list(self.columns[f])}; "
                    f"file has {sorted(present)[:12]})"
                )
            found[f] = hit
        return found


def layouts_from_config(sources_cfg: dict) -> dict[str, Layout]:
    return {name: Layout.from_config(name, cfg or {}) for name, cfg in (sources_cfg or {}).items()}


def source_for_path(path: str, explicit: str | None, path_map: dict, layouts: dict) -> str:
    name: str | None
    if explicit:
        name = explicit
    else:
        name = next((src for pattern, src in (path_map or {}).items() if fnmatch.fnmatch(path, pattern)), None)
        if name is None:
            raise UsageError(
                f"{path}: cannot tell its source layout: pass --source NAME or map the path "
                f"under `paths:` in the config (known: {sorted(layouts)})"
            )
    if name not in layouts:
        raise UsageError(f"unknown source '{name}' (known: {sorted(layouts)}; add it under `sources:` in the config)")
    return name


def _plain(arr: pa.ChunkedArray | pa.Array, where: str) -> pa.Array:
    """One contiguous array with dictionary encoding and view/large layouts undone (pandas categoricals,
    string_view and large_string columns read like plain ones)."""
    arr = arr.combine_chunks() if isinstance(arr, pa.ChunkedArray) else arr
    if pa.types.is_dictionary(arr.type):
        arr = arr.dictionary_decode()
    t = arr.type
    target = (
        pa.string()
        if (pa.types.is_large_string(t) or pa.types.is_string_view(t))
        else pa.binary()
        if (pa.types.is_large_binary(t) or pa.types.is_binary_view(t))
        else None
    )
    if target is not None:
        try:
            arr = arr.cast(target)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as e:
            raise BadInput(f"{where}: cannot read as {target} ({str(e).splitlines()[0][:120]})") from None
    return arr


def _decode_rows(arr: pa.Array) -> tuple[pa.Array, np.ndarray]:
    """Bytes -> utf8; rows that are not valid UTF-8 become null and are flagged (rare, so a loop is fine)."""
    bad = np.zeros(len(arr), dtype=bool)
    vals: list[str | None] = []
    for i, v in enumerate(arr.cast(pa.binary()).to_pylist()):
        if v is None:
            vals.append(None)
            continue
        try:
            vals.append(v.decode("utf-8"))
        except UnicodeDecodeError:
            vals.append(None)
            bad[i] = True
    return pa.array(vals, pa.string()), bad


def _as_string(arr: pa.ChunkedArray | pa.Array, where: str = "column") -> tuple[pa.Array, np.ndarray]:
    """A text column as utf8 strings + a mask of values that were present but not valid UTF-8.
    A column of another type (numbers, lists, ...) is a BadInput naming it: every row would be lost."""
    arr = _plain(arr, where)
    n = len(arr)
    bad = np.zeros(n, dtype=bool)
    if pa.types.is_string(arr.type):
        try:
            arr.validate(full=True)  # parquet readers do not check UTF-8; Python would fail on it later
            return arr, bad
        except pa.ArrowInvalid:
            return _decode_rows(arr)
    if pa.types.is_binary(arr.type):
        try:
            return arr.cast(pa.string()), bad
        except pa.ArrowInvalid:
            return _decode_rows(arr)
    if pa.types.is_null(arr.type):
        return pa.nulls(n, pa.string()), bad
    raise BadInput(f"{where}: holds {arr.type}, expected text (a string column)")


_NUMBER_RE = r"^\s*[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?\s*$"


def _as_float(arr) -> tuple[pa.Array, np.ndarray]:
    """A size/score column as float64 + a mask of present-but-not-a-number values (NaN included; the
    range of a number is the bad_metadata rule's to check, before anything casts it)."""
    arr = _plain(arr, "column")
    n = len(arr)
    if pa.types.is_integer(arr.type) or pa.types.is_floating(arr.type) or pa.types.is_decimal(arr.type):
        out = arr.cast(pa.float64())
        nan = pc.fill_null(pc.is_nan(out), False).to_numpy(zero_copy_only=False)
        return out, nan
    if pa.types.is_null(arr.type):
        return pa.nulls(n, pa.float64()), np.zeros(n, dtype=bool)
    if pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type):
        ok = pc.fill_null(pc.match_substring_regex(arr, _NUMBER_RE), False)
        clean = pc.if_else(ok, arr, pa.scalar(None, arr.type))
        out = pc.cast(pc.utf8_trim_whitespace(clean), pa.float64())
        present = ~np.asarray(arr.is_null().to_numpy(zero_copy_only=False))
        return out, present & ~ok.to_numpy(zero_copy_only=False)
    bad = ~np.asarray(arr.is_null().to_numpy(zero_copy_only=False))
    return pa.nulls(n, pa.float64()), bad


def _as_id(arr, where: str) -> pa.Array:
    """An id column (text or integers) as strings; another type is a BadInput naming the column."""
    arr = _plain(arr, where)
    if pa.types.is_integer(arr.type) or pa.types.is_decimal(arr.type):
        return arr.cast(pa.string())
    if pa.types.is_string(arr.type) or pa.types.is_binary(arr.type) or pa.types.is_null(arr.type):
        ids, _ = _as_string(arr, where)  # an id that is not UTF-8 falls back to file:row below
        return ids
    raise BadInput(f"{where}: holds {arr.type}, expected an id (text or integers)")


def normalise(
    table: pa.Table, layout: Layout, columns: dict, source: str, file_stem: str, row_offset: int, path: str = "input"
) -> pa.Table:
    """Published columns -> the normalised pair columns (before any rule)."""
    n = table.num_rows
    url, url_bad = _as_string(table.column(columns["url"]), f"{path}: column {columns['url']!r}")
    caption, cap_bad = _as_string(table.column(columns["caption"]), f"{path}: column {columns['caption']!r}")
    meta_bad = url_bad | cap_bad
    sizes = {}
    for f in ("width", "height"):
        if columns.get(f):
            vals, bad = _as_float(table.column(columns[f]))
            meta_bad |= bad
            sizes[f] = vals
        else:
            sizes[f] = pa.nulls(n, pa.float64())
    if columns.get("score"):
        score, _ = _as_float(table.column(columns["score"]))  # an unreadable score is treated as absent
        finite = pc.fill_null(pc.is_finite(score), True)  # NaN or inf: treated as absent
        score = pc.if_else(finite, score, pa.scalar(None, pa.float64()))
    else:
        score = pa.nulls(n, pa.float64())
    rows = pa.array(np.arange(row_offset, row_offset + n, dtype=np.int64))
    if columns.get("id"):
        ids = _as_id(table.column(columns["id"]), f"{path}: column {columns['id']!r}")
        fallback = pc.binary_join_element_wise(pa.scalar(file_stem), pc.cast(rows, pa.string()), ":")
        ids = pc.if_else(pc.fill_null(pc.greater(pc.utf8_length(ids), 0), False), ids, fallback)
    else:
        ids = pc.binary_join_element_wise(pa.scalar(file_stem), pc.cast(rows, pa.string()), ":")
    uid = pc.binary_join_element_wise(pa.scalar(source), ids, ":")
    return pa.table(
        {
            "uid": uid,
            "source": pa.array(np.full(n, source, dtype=object), pa.string()) if n else pa.array([], pa.string()),
            "url": url,
            "caption_raw": caption,
            "width": sizes["width"],
            "height": sizes["height"],
            "score": score,
            "_meta_bad": pa.array(meta_bad),
        }
    )
