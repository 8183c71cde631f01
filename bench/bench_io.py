"""Shared by the bench scripts (run as `python bench/<name>.py`, so this folder is on sys.path)."""

from __future__ import annotations

import json
from pathlib import Path


def write_result(path: str | Path, result, echo: bool = True) -> None:
    """Write a benchmark's result as JSON (creating the folder) and print it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=1))
    if echo:
        print(json.dumps(result, indent=1))
