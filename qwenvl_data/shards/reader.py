"""The one tar reader of every stage: member list, samples, and a truncation check against the sidecar.

- `members(path)`: (name, data offset, size) of the regular files, from the 512-byte ustar headers
  (Python's tarfile parses every field into a TarInfo, ~100 us a member). Pax or GNU long-name headers
  and base-256 sizes fall back to tarfile for that file, so every valid tar is read.
- A tar cut short is an error, never fewer samples: a header cut in two, member data running past the
  end of the file, or a file that ends without tar's end-of-archive blocks (a cut at a member boundary)
  raise `BadInput` naming the file and the last sample read.
- `expected_count(path)`: the sample count the shard's own stats sidecar records (`NAME.json` "count"
  from ShardWriter, `NAME_stats.json` "successes" from the download writer); `iter_tar_samples` and
  `scan` compare it with what the tar holds.
"""

from __future__ import annotations

import json
import tarfile
from collections.abc import Iterator
from pathlib import Path

from ..errors import BadInput

_REGULAR = (b"0", b"\0")
_SKIP = (b"1", b"2", b"3", b"4", b"5", b"6", b"7")  # links, devices, folders: no sample data
Member = tuple[str, int, int]


class _Fallback(Exception):
    pass


class Truncated(ValueError):
    pass


def _octal(field: bytes) -> int:
    if field[:1] and field[0] & 0x80:
        raise _Fallback  # base-256 number (a member over 8 GiB)
    text = field.split(b"\0", 1)[0].strip()
    return int(text, 8) if text else 0


def _fast(f, file_size: int) -> list[Member]:
    out: list[Member] = []
    pos = 0
    while True:
        f.seek(pos)
        hdr = f.read(512)
        if not hdr:
            raise Truncated(f"ends after {len(out)} members without the end-of-archive blocks")
        if len(hdr) < 512:
            raise Truncated(f"ends inside the header at byte {pos}")
        if hdr.count(0) == 512:
            return out
        if _octal(hdr[148:156]) != sum(hdr[:148]) + 256 + sum(hdr[156:]):
            raise ValueError(f"bad header checksum at byte {pos}")
        kind, size = hdr[156:157], _octal(hdr[124:136])
        if pos + 512 + size > file_size:
            raise Truncated(f"member at byte {pos} needs {size} bytes, the file ends first")
        if kind in _REGULAR:
            name = hdr[:100].split(b"\0", 1)[0]
            if hdr[257:262] == b"ustar":
                prefix = hdr[345:500].split(b"\0", 1)[0]
                name = prefix + b"/" + name if prefix else name
            out.append((name.decode("utf-8"), pos + 512, size))
        elif kind not in _SKIP:
            raise _Fallback
        pos += 512 + (size + 511) // 512 * 512


def _slow(path: Path, file_size: int) -> list[Member]:
    out = []
    with tarfile.open(path, "r") as tar:
        for m in tar:
            if m.offset_data + m.size > file_size:
                raise Truncated(f"member {m.name} needs {m.size} bytes, the file ends first")
            if m.isfile():
                out.append((m.name, m.offset_data, m.size))
    return out


def _last_key(found: list[Member]) -> str:
    return f" (last sample read: {split_member(found[-1][0])[0]!r})" if found else ""


def members(path: str | Path) -> list[Member]:
    """[(member name, byte offset of its data, size)] of the regular files, in tar order."""
    path = Path(path)
    partial: list[Member] = []
    try:
        size = path.stat().st_size
        if size == 0:
            raise Truncated("is empty (0 bytes)")
        with open(path, "rb") as f:
            try:
                return _fast(f, size)
            except _Fallback:
                pass
        return _slow(path, size)
    except Truncated as e:
        try:
            with open(path, "rb") as f:
                partial = _salvage(f, path.stat().st_size)
        except Exception:
            partial = []
        raise BadInput(f"{path}: truncated tar shard: {e}{_last_key(partial)}") from None
    except (ValueError, UnicodeDecodeError, tarfile.TarError, OSError, EOFError) as e:
        raise BadInput(f"{path}: not a readable tar shard ({type(e).__name__}: {e})") from None


def _salvage(f, file_size: int) -> list[Member]:
    """The whole members before a cut (only to name the last sample in the error message)."""
    out: list[Member] = []
    pos = 0
    while True:
        f.seek(pos)
        hdr = f.read(512)
        if len(hdr) < 512 or hdr.count(0) == 512:
            return out
        size = _octal(hdr[124:136])
        if pos + 512 + size > file_size:
            return out
        out.append((hdr[:100].split(b"\0", 1)[0].decode("utf-8", "replace"), pos + 512, size))
        pos += 512 + (size + 511) // 512 * 512


def split_member(name: str):
    """'dir/KEY.img0.jpg' -> ('dir/KEY', 'img0.jpg'): webdataset splits at the basename's first dot."""
    slash = name.rfind("/")
    dot = name.find(".", slash + 1)
    return (name[:dot], name[dot + 1 :]) if dot >= 0 else (None, None)


def group(found: list[Member]) -> list[tuple[str, dict[str, tuple[int, int]]]]:
    """[(key, {ext: (offset, size)})] grouping consecutive members by key, as webdataset does."""
    out: list[tuple[str, dict]] = []
    for name, offset, size in found:
        key, ext = split_member(name)
        if key is None:
            continue
        if not out or out[-1][0] != key:
            out.append((key, {}))
        out[-1][1][ext] = (offset, size)
    return out


def expected_count(path: str | Path) -> int | None:
    """The sample count written in the shard's stats sidecar, or None when it has none."""
    path = Path(path)
    for side, field in ((path.with_suffix(".json"), "count"), (path.with_name(f"{path.stem}_stats.json"), "successes")):
        try:
            value = json.loads(side.read_text(encoding="utf-8")).get(field)
        except (OSError, ValueError, AttributeError):
            continue
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    return None


def scan(path: str | Path, check_count: bool = True) -> list[tuple[str, dict[str, tuple[int, int]]]]:
    """The samples of a tar as (key, {ext: (offset, size)}), checked against the sidecar count."""
    samples = group(members(path))
    want = expected_count(path) if check_count else None
    if want is not None and want != len(samples):
        last = f" (last sample: {samples[-1][0]!r})" if samples else ""
        raise BadInput(
            f"{path}: holds {len(samples)} samples, its stats sidecar says {want}: truncated or altered shard{last}"
        )
    return samples


def iter_tar_samples(path: str | Path, exts=None, check_count: bool = True) -> Iterator[tuple[str, dict]]:
    """Yield (key, {ext: bytes}) in tar order; `exts` (a set or a predicate) limits what is read."""
    want = exts if exts is None or callable(exts) else set(exts).__contains__
    samples = scan(path, check_count)
    with open(path, "rb") as f:
        for key, found in samples:
            files = {}
            for ext, (offset, size) in found.items():
                if want is None or want(ext):
                    f.seek(offset)
                    files[ext] = f.read(size)
            yield key, files
