"""Numbers on the command line, range-checked while argparse reads them (a bad one is exit 2).

`check_numbers(parser)` wraps the `type=int` / `type=float` of every option of a parser: a value must be
finite and at least its minimum (`--workers -1`, `--timeout 0`, `--lr nan` are usage errors naming the
flag). Minimums are by option name, shared by every command (`--batch-size` means the same everywhere);
an option not listed must be >= 0.
"""

from __future__ import annotations

import argparse
import math

# option dest -> (minimum, minimum allowed itself)
MINIMUM: dict[str, tuple[float, bool]] = {
    **{
        k: (1, True)
        for k in (
            "processes",
            "threads",
            "samples_per_shard",
            "image_size",
            "shard_size",
            "batch_size",
            "grad_accum",
            "max",
            "cols",
            "thumb",
            "files",
            "row_group",
            "max_new_tokens",
            "steps",
            "stop_at",
            "save_every",
            "log_every",
            "seq_len",
            "read_batch",
        )
    },
    **{k: (0, False) for k in ("timeout", "deadline", "clip", "vit_lr_decay")},
}


def _checked(kind, minimum: float, inclusive: bool):
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"invalid {kind.__name__} value: {text!r}") from None
        if not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"{text!r} is not a finite number")
        if value < minimum or (value == minimum and not inclusive):
            bound = f"at least {minimum}" if inclusive else f"greater than {minimum}"
            raise argparse.ArgumentTypeError(f"must be {bound}, got {text}")
        return value

    parse.__name__ = kind.__name__  # argparse names the type in its own messages
    return parse


def check_numbers(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Wrap every int/float option of `parser` with its range check; returns the parser."""
    for action in parser._actions:
        if action.type in (int, float) and not action.choices:
            minimum, inclusive = MINIMUM.get(action.dest, (0, True))
            action.type = _checked(action.type, minimum, inclusive)
    return parser
