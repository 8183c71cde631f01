"""Run a stage that works on local folders with its inputs and output on object storage (`s3://`, any fsspec URL).

    def run(args):
        with staged_args(args, stage="shards", inputs=("input", "tokenizer")) as args:
            return _run(args)          # sees local paths only

Why: tasks, decontaminate, shards, export and the trainer's --data read and write many files through
pathlib, tarfile and arrow; staging them through a local temp folder (storage.local_input /
storage.staged_output) gives every one of them object storage without touching that code.
- The remote output is held for the whole run with `own_output` on its URL (lock, in-progress marker,
  no overlap with the inputs as given); the marker is removed only after the upload finished, so a
  later stage never reads a half-uploaded folder. The stage's own `own_output` then holds the temp folder.
- A remote input is checked for an unfinished run's marker, then downloaded (a folder recursively); a
  glob among remote list inputs (`s3://b/tasks/*`) is expanded first.
- Resume: the temp output starts empty, so a rerun into a remote output rebuilds it (and overwrites
  the files by name) instead of skipping finished shards. Local paths are used as they are.
"""

from __future__ import annotations

import argparse
import contextlib
from collections.abc import Iterator

from . import storage
from .errors import UsageError
from .outdir import own_output, refuse_in_progress


def _expand(value) -> list:
    out: list = []
    for v in value:
        if v is not None and storage.is_remote(v) and any(c in str(v) for c in "*?["):
            hits = storage.glob(v)
            if not hits:
                raise UsageError(f"{v}: matches nothing")
            out += hits
        else:
            out.append(v)
    return out


@contextlib.contextmanager
def staged_args(
    args: argparse.Namespace, *, stage: str, inputs: tuple[str, ...] = ("input",), output: str | None = "output"
) -> Iterator[argparse.Namespace]:
    """A copy of `args` whose remote `inputs` (attribute names; a value may be a list) and remote
    `output` are local temp paths (the values as given in `staged_from`); `args` itself when nothing is remote."""
    values = {k: getattr(args, k, None) for k in inputs}
    values = {k: _expand(v) if isinstance(v, list) else v for k, v in values.items()}
    flat = [
        (f"--{k.replace('_', '-')}", v) for k, val in values.items() for v in (val if isinstance(val, list) else [val])
    ]
    out = getattr(args, output, None) if output else None
    if not any(v is not None and storage.is_remote(v) for _, v in flat + [("", out)]):
        yield args
        return
    new = argparse.Namespace(**vars(args), staged_from=values)
    with contextlib.ExitStack() as stack:
        if out is not None and storage.is_remote(out):
            stack.enter_context(own_output(out, stage=stage, inputs=flat))
        else:
            for _, v in flat:
                if v is not None and storage.is_remote(v):
                    refuse_in_progress(v)
        for k, val in values.items():
            if isinstance(val, list):
                setattr(new, k, [stack.enter_context(storage.local_input(v)) for v in val])
            else:
                setattr(new, k, stack.enter_context(storage.local_input(val)))
        if output:
            setattr(new, output, stack.enter_context(storage.staged_output(out)))
        yield new
