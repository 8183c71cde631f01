"""Output folders owned by one run: a lock, an in-progress marker, and no overlap with the inputs.

Every stage writes through `own_output(output, inputs=..., stage=...)`:
- refuses when an input and the output overlap (either holds the other: `filter --input out/pairs
  --output out` would clear its own input, `--input out --output out/x` would read its own output);
- takes `OUT/.qwenvl.lock` (pid, host, process start time, run id, stage), created atomically; a second
  run into the same folder stops with one line naming the holder. A lock whose process is gone (same
  host, pid dead or reused) is stale and taken over;
- writes `OUT/.qwenvl.in-progress` first and removes it last, only when the run succeeded, so a killed
  or failed run leaves the marker behind and `qwenvl-data validate`, `report` and every later stage
  (an input inside such a folder) refuse it until a rerun completes it.

Paths stay path-like strings: a local path is used as is; a URL (`s3://...`) goes through
qwenvl_data.storage (fsspec), where the lock is best effort (object stores have no atomic
create-if-absent here).
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import time
import uuid
from collections.abc import Iterable, Iterator
from pathlib import Path

from . import storage
from .errors import BadInput, UsageError

LOCK = ".qwenvl.lock"
MARKER = ".qwenvl.in-progress"
# Inputs read although their folder is unfinished: a killed training's last checkpoint is complete.
RESUMABLE_INPUTS = ("--init",)


def _is_url(path: str) -> bool:
    return storage.is_remote(path)


def _norm(path: str | os.PathLike) -> str:
    """An absolute, symlink-free form for comparing paths (URLs: protocol + path without trailing /)."""
    text = os.fspath(path)
    if _is_url(text):
        return text.rstrip("/")
    text = text.removeprefix("file://")
    for i, ch in enumerate(text):  # a glob: compare the folder part before its first wildcard
        if ch in "*?[":
            text = text[:i].rsplit("/", 1)[0] or "."
            break
    return str(Path(text).expanduser().resolve())


def _contains(outer: str, inner: str) -> bool:
    return inner == outer or inner.startswith(outer.rstrip("/") + "/")


def check_no_overlap(output: str | os.PathLike, inputs: Iterable[tuple[str, str | os.PathLike | None]]):
    """UsageError when an input (flag, path) and the output overlap; None inputs are skipped."""
    out = _norm(output)
    for flag, path in inputs:
        if path is None or path == "":
            continue
        inp = _norm(path)
        if _contains(out, inp) or _contains(inp, out):
            where = "is inside" if _contains(out, inp) and inp != out else "holds" if inp != out else "is"
            raise UsageError(
                f"{flag} {os.fspath(path)} {where} the output folder {os.fspath(output)}: "
                f"a run must not write where it reads; choose separate folders"
            )


def _start_time(pid: int) -> str | None:
    """The process's start time in clock ticks (Linux), to tell a reused pid from the lock's owner."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def _alive(info: dict) -> bool:
    """False only when the lock's process is surely gone: same host, and pid dead or reused."""
    if info.get("host") != socket.gethostname():
        return True
    pid = info.get("pid")
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    started = info.get("start")
    return not (started and _start_time(pid) not in (None, started))


def _describe(info: dict) -> str:
    since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(info["time"])) if info.get("time") else "?"
    return (
        f"run {info.get('run_id', '?')} ({info.get('stage', '?')}, pid {info.get('pid', '?')} on "
        f"{info.get('host', '?')}, since {since})"
    )


def _read_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def _take_local(folder: Path, info: dict) -> None:
    lock = folder / LOCK
    payload = json.dumps(info).encode()
    for _ in range(5):
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            held = _read_json(lock)
            if not held and time.time() - _mtime(lock) < 5:
                time.sleep(0.2)  # being written by its owner right now
                continue
            if held and _alive(held):
                raise UsageError(
                    f"{folder}: output folder is in use by {_describe(held)}; wait for it to "
                    f"finish, or remove {lock} if that run is gone"
                ) from None
            _break_stale(lock, held)
            continue
        except OSError as e:
            raise UsageError(f"{folder}: cannot write to the output folder ({e.strerror or e})") from None
        with os.fdopen(fd, "wb") as f:
            f.write(payload)
        return
    raise UsageError(f"{folder}: could not take the output folder's lock {lock}; try again")


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0


def _break_stale(lock: Path, held: dict) -> None:
    """Move a dead run's lock aside; put it back if another run replaced it meanwhile."""
    aside = lock.with_name(f"{LOCK}.stale-{os.getpid()}-{uuid.uuid4().hex[:8]}")
    try:
        os.rename(lock, aside)
    except FileNotFoundError:
        return
    if _read_json(aside) != held:  # not the lock we judged: someone took the folder in between
        with contextlib.suppress(OSError):
            os.link(aside, lock)
    aside.unlink(missing_ok=True)


@contextlib.contextmanager
def own_output(
    output: str | os.PathLike,
    *,
    stage: str,
    inputs: Iterable[tuple[str, str | os.PathLike | None]] = (),
    marker: bool = True,
    allow_overlap: bool = False,
) -> Iterator[str]:
    """Hold `output` for this run (see the module docstring); yields the output path as given."""
    inputs = list(inputs)
    if not allow_overlap:
        check_no_overlap(output, inputs)
    for flag, path in inputs:  # an input a killed or failed run left half-written is not read as final
        if path and flag not in RESUMABLE_INPUTS:
            refuse_in_progress(path)
    text = os.fspath(output)
    pid = os.getpid()
    info = {
        "run_id": uuid.uuid4().hex[:12],
        "stage": stage,
        "pid": pid,
        "host": socket.gethostname(),
        "start": _start_time(pid),
        "time": round(time.time(), 3),
    }
    if _is_url(text):
        with _own_url(text, info, marker):
            yield text
        return
    folder = Path(storage.local_path(text))  # file:///x is the local folder /x, not ./file:/x
    if folder.exists() and not folder.is_dir():
        raise UsageError(f"{text}: the output exists and is not a folder")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UsageError(f"{text}: cannot create the output folder ({e.strerror or e})") from None
    _take_local(folder, info)
    ok = False
    try:
        if marker:
            try:
                (folder / MARKER).write_text(json.dumps(info), encoding="utf-8")
            except OSError as e:
                raise UsageError(f"{text}: cannot write to the output folder ({e.strerror or e})") from None
        yield text
        ok = True
    finally:
        if ok and marker:
            (folder / MARKER).unlink(missing_ok=True)
        if _read_json(folder / LOCK).get("run_id") == info["run_id"]:
            (folder / LOCK).unlink(missing_ok=True)


@contextlib.contextmanager
def _own_url(url: str, info: dict, marker: bool) -> Iterator[None]:
    lock, mark = storage.join(url, LOCK), storage.join(url, MARKER)
    held = _read_url_json(lock) if storage.exists(lock) else None
    if held is not None and (not held or _alive(held)):  # a dead run of this host: taken over
        raise UsageError(
            f"{url}: output folder is in use by {_describe(held)}; wait for it to finish, or "
            f"remove {lock} if that run is gone"
        )
    storage.makedirs(url)
    storage.write_json(lock, info)
    ok = False
    try:
        if marker:
            storage.write_json(mark, info)
        yield
        ok = True
    finally:
        if ok and marker:
            storage.remove(mark)
        if _read_url_json(lock).get("run_id") == info["run_id"]:
            storage.remove(lock)


def _read_url_json(url: str) -> dict:
    try:
        data = storage.read_json(url)
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def in_progress(path: str | os.PathLike) -> tuple[str, dict] | None:
    """(folder, marker info) when `path` or a folder above it holds an in-progress marker, else None."""
    text = os.fspath(path)
    if _is_url(text):
        folder = text.rstrip("/")
        while "/" in folder.split("://", 1)[1]:  # up to the bucket
            if storage.exists(storage.join(folder, MARKER)):
                return folder, _read_url_json(storage.join(folder, MARKER))
            folder = storage.parent(folder)
        return None
    p = Path(storage.local_path(text)).expanduser().resolve()
    for folder in ([p] if p.is_dir() else []) + list(p.parents):
        if (folder / MARKER).exists():
            return str(folder), _read_json(folder / MARKER)
    return None


def refuse_in_progress(path: str | os.PathLike) -> None:
    """BadInput naming the run when `path` lies in an output folder a run has not finished."""
    hit = in_progress(path)
    if hit:
        folder, info = hit
        raise BadInput(
            f"{os.fspath(path)}: {folder} is an unfinished output ({MARKER} left by "
            f"{_describe(info)}): rerun that stage to complete it"
        )
