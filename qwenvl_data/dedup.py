"""Cross-row rules: one row per uid (`duplicate_uid`) and one per URL (`duplicate_url`): normalised URL,
stable hash partitioning, winner per uid and per URL.

The engines shuffle candidates by `partition_of(url_norm, n)` so that every copy of a URL meets in one
partition; `pick_winners` then keeps one row per URL inside a partition. No global set of URLs exists.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

_URL_PARTS = r"^\s*(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*)://(?P<host>[^/?#\s]*)(?P<rest>[^#]*)"


# A URL already in normal form: lower-case scheme and host without a default port or a trailing dot,
# a path, no fragment, no surrounding whitespace. Most are; only the others pay for the extraction.
_NORMAL = r"^[a-z][a-z0-9+.-]*://[a-z0-9.\-_~%!$&'()*+,;=@\[\]]*[a-z0-9\-_~%!$&'()*+,;=@\[\]](?::[0-9]+)?/[^#\s]*$"
_DEFAULT_PORT = r"^[^/]*//[^/]*:(?:80|443)/"


def normalise_url(urls: pa.Array) -> pa.Array:
    """Lower-case scheme and host, drop default ports, the fragment and surrounding whitespace;
    an empty path becomes '/'. The path and query keep their case (they are case-sensitive)."""
    normal = pc.and_(
        pc.fill_null(pc.match_substring_regex(urls, _NORMAL), False),
        pc.invert(pc.fill_null(pc.match_substring_regex(urls, _DEFAULT_PORT), False)),
    )
    n_odd = len(urls) - (pc.sum(normal).as_py() or 0)
    if n_odd == 0:
        return urls
    if n_odd < len(urls):
        return pc.replace_with_mask(urls, pc.invert(normal), _normalise_all(urls.filter(pc.invert(normal))))
    return _normalise_all(urls)


def _normalise_all(urls: pa.Array) -> pa.Array:
    parts = pc.extract_regex(urls, _URL_PARTS)
    scheme = pc.utf8_lower(pc.struct_field(parts, "scheme"))
    host = pc.replace_substring_regex(pc.utf8_lower(pc.struct_field(parts, "host")), r":(80|443)$", "")
    host = pc.replace_substring_regex(host, r"\.$", "")
    rest = pc.utf8_rtrim_whitespace(pc.struct_field(parts, "rest"))
    rest = pc.if_else(pc.equal(pc.utf8_length(rest), 0), "/", rest)
    return pc.binary_join_element_wise(scheme, "://", host, rest, "")


_MIX = np.uint64(0x9E3779B97F4A7C15)


def _word(sliding: np.ndarray, at: np.ndarray, end: np.ndarray) -> np.ndarray:
    """The 8 bytes of each string at offset `at` as a little-endian uint64, bytes at or past `end` zeroed."""
    w = sliding[np.minimum(at, len(sliding) - 1)].copy().view(np.uint64).ravel()
    valid = np.clip(end - at, 0, 8).astype(np.uint64)
    with np.errstate(over="ignore"):
        mask = np.where(
            valid == 8, np.uint64(0xFFFFFFFFFFFFFFFF), (np.uint64(1) << (valid * np.uint64(8))) - np.uint64(1)
        )
    return w & mask


def stable_hash(strings: pa.Array, head: int = 16, tail: int = 32) -> np.ndarray:
    """A 64-bit hash of each string's length, first `head` and last `tail` UTF-8 bytes (multiples of 8),
    vectorised and identical on every machine and process (Python's hash() is salted per process, so it
    cannot partition across workers). Equal strings always hash equal; strings that differ only in their
    middle may collide, which costs a partition some balance and the uid check an exact comparison."""
    arr = pc.fill_null(strings, "").cast(pa.large_binary())
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    n = len(arr)
    if n == 0:
        return np.zeros(0, dtype=np.uint64)
    offsets = np.frombuffer(arr.buffers()[1], dtype=np.int64)[arr.offset : arr.offset + n + 1]
    data = np.frombuffer(arr.buffers()[2], dtype=np.uint8) if arr.buffers()[2] is not None else np.zeros(0, np.uint8)
    start, end = offsets[:-1], offsets[1:]
    sliding = np.lib.stride_tricks.as_strided(
        np.concatenate([data, np.zeros(8, np.uint8)]), shape=(len(data) + 1, 8), strides=(1, 1)
    )
    tail_at = np.maximum(end - tail, start + head)
    words = [_word(sliding, start + k, end) for k in range(0, head, 8)] + [
        _word(sliding, tail_at + k, end) for k in range(0, tail, 8)
    ]
    h = (end - start).astype(np.uint64)
    with np.errstate(over="ignore"):
        for w in words:
            h = (h ^ w) * _MIX
            h ^= h >> np.uint64(29)
        h *= _MIX
        h ^= h >> np.uint64(32)
    return h


def partition_of(url_norm: pa.Array, num_partitions: int) -> np.ndarray:
    return (stable_hash(url_norm) % np.uint64(num_partitions)).astype(np.int32)


def _repeated(values) -> np.ndarray:
    """True for the rows whose value occurs more than once (a hash count, no sort)."""
    arr = values.combine_chunks() if isinstance(values, pa.ChunkedArray) else values
    counts = pc.value_counts(arr)
    many = counts.filter(pc.greater(counts.field("counts"), 1)).field("values")
    if len(many) == 0:
        return np.zeros(len(arr), dtype=bool)
    return pc.fill_null(pc.is_in(arr, value_set=many), False).to_numpy(zero_copy_only=False)


def _only_repeated(t: pa.Table, column: str, decide) -> np.ndarray:
    """`decide(sub_table) -> keep mask` run only on the rows whose `column` value repeats; the rest are kept."""
    keep = np.ones(t.num_rows, dtype=bool)
    rep = _repeated(t[column])
    if rep.any():
        keep[rep] = decide(t.filter(pa.array(rep)))
    return keep


def pick_winners(t: pa.Table, source_rank: dict[str, int]) -> np.ndarray:
    """Boolean mask over `t` (columns url_norm, caption, source, uid): True for the one row kept per URL —
    the longest cleaned caption, then the source earlier in the configured order, then the smaller uid."""
    if t.num_rows == 0:
        return np.zeros(0, dtype=bool)
    return _only_repeated(t, "url_norm", lambda sub: _pick_winners(sub, source_rank))


def _pick_winners(t: pa.Table, source_rank: dict[str, int]) -> np.ndarray:
    cap_len = pc.utf8_length(t["caption"])
    ranks = np.array([source_rank.get(s, len(source_rank)) for s in t["source"].unique().to_pylist()])
    src_idx = pc.index_in(t["source"], t["source"].unique())
    rank = pa.array(ranks[src_idx.to_numpy(zero_copy_only=False)])
    key = pa.table({"u": t["url_norm"], "l": cap_len, "r": rank, "id": t["uid"]})
    order = pc.sort_indices(
        key, sort_keys=[("u", "ascending"), ("l", "descending"), ("r", "ascending"), ("id", "ascending")]
    )
    urls = t["url_norm"].take(order).combine_chunks()
    first = np.ones(len(urls), dtype=bool)
    if len(urls) > 1:
        first[1:] = pc.not_equal(urls[1:], urls[:-1]).to_numpy(zero_copy_only=False)
    keep = np.zeros(t.num_rows, dtype=bool)
    keep[order.to_numpy()] = first
    return keep


def first_of_uid(t: pa.Table) -> np.ndarray:
    """Boolean mask over `t` (columns uid, _order): True for the earliest row (input order) of each uid."""
    if t.num_rows == 0:
        return np.zeros(0, dtype=bool)
    return _only_repeated(t, "uid", _first_of_uid)


def _first_of_uid(t: pa.Table) -> np.ndarray:
    order = pc.sort_indices(t, sort_keys=[("uid", "ascending"), ("_order", "ascending")])
    uids = t["uid"].take(order).combine_chunks()
    first = np.ones(len(uids), dtype=bool)
    if len(uids) > 1:
        first[1:] = pc.fill_null(pc.not_equal(uids[1:], uids[:-1]), True).to_numpy(zero_copy_only=False)
    keep = np.zeros(t.num_rows, dtype=bool)
    keep[order.to_numpy()] = first
    return keep
