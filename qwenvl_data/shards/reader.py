"""A fast member list of a webdataset tar: (name, data offset, size) from the 512-byte headers.

Python's tarfile parses every header field into a TarInfo (~100 us a member), which is most of the
cost of scanning and reading shards; webdataset tars are plain ustar files, so reading name, size
and checksum is enough. Anything else (pax or GNU long-name headers, base-256 sizes) falls back to
tarfile for that file, so every valid tar is read.
"""
from __future__ import annotations

import tarfile
from pathlib import Path

from ..errors import BadInput

_REGULAR = (b"0", b"\0")
_SKIP = (b"1", b"2", b"3", b"4", b"5", b"6", b"7")  # links, devices, folders: no sample data


class _Fallback(Exception):
    pass


def _octal(field: bytes) -> int:
    if field[:1] and field[0] & 0x80:
        raise _Fallback  # base-256 number (a member over 8 GiB)
    text = field.split(b"\0", 1)[0].strip()
    return int(text, 8) if text else 0


def _fast(f) -> list[tuple[str, int, int]]:
    out, pos = [], 0
    while True:
        f.seek(pos)
        hdr = f.read(512)
        if len(hdr) < 512 or hdr.count(0) == 512:
            return out
        if _octal(hdr[148:156]) != sum(hdr[:148]) + 256 + sum(hdr[156:]):
            raise ValueError(f"bad header checksum at byte {pos}")
        kind, size = hdr[156:157], _octal(hdr[124:136])
        if kind in _REGULAR:
            name = hdr[:100].split(b"\0", 1)[0]
            if hdr[257:262] == b"ustar":
                prefix = hdr[345:500].split(b"\0", 1)[0]
                name = prefix + b"/" + name if prefix else name
            out.append((name.decode("utf-8"), pos + 512, size))
        elif kind not in _SKIP:
            raise _Fallback
        pos += 512 + (size + 511) // 512 * 512


def members(path: Path) -> list[tuple[str, int, int]]:
    """[(member name, byte offset of its data, size)] of the regular files, in tar order."""
    try:
        with open(path, "rb") as f:
            try:
                return _fast(f)
            except _Fallback:
                pass
        with tarfile.open(path, "r") as tar:
            return [(m.name, m.offset_data, m.size) for m in tar if m.isfile()]
    except (ValueError, UnicodeDecodeError, tarfile.TarError, OSError, EOFError) as e:
        raise BadInput(f"{path}: not a readable tar shard ({type(e).__name__}: {e})") from None


def split_member(name: str):
    """'dir/KEY.img0.jpg' -> ('dir/KEY', 'img0.jpg'): webdataset splits at the basename's first dot."""
    slash = name.rfind("/")
    dot = name.find(".", slash + 1)
    return (name[:dot], name[dot + 1:]) if dot >= 0 else (None, None)
