"""`qwenvl-data <command>`: one entry point for every stage.

Each command lives in its own module under pipelines/ exposing `add_arguments(parser)` and
`run(args) -> int`; modules are imported only when their command runs, so `qwenvl-data validate`
does not pay for importing torch or ray. Numeric options are range-checked as they are parsed
(qwenvl_data/cliargs.py). Bad input ends as one line and exit 1 (data) or 2 (usage); anything else
that escapes a command is reported as one line naming a log file that holds the traceback (exit 1).
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from qwenvl_data.cliargs import check_numbers
from qwenvl_data.errors import QwenVLDataError, internal_error

COMMANDS = {
    "filter": ("filter", "clean web image-text pairs into an English+Chinese corpus"),
    "download": ("download", "fetch, check and shard the images of the clean pairs (img2dataset)"),
    "clip-score": ("clip_score", "score samples with an open_clip model and drop low scores"),
    "synth-ocr": ("synth_ocr", "synthetic OCR pages and real PDF/HTML pages with quads"),
    "tasks": ("tasks", "convert grounding/VQA/caption datasets to Qwen-VL task samples"),
    "decontaminate": ("decontaminate", "drop benchmark evaluation images and questions from training shards"),
    "shards": ("shards", "mix and write stage-1/2/3 training shards with an index"),
    "export": ("export", "training shards -> Qwen-VL fine-tuning JSON and LLaMA-Factory/ms-swift chat JSON"),
    "validate": ("validate", "check parquet files and shards against the schemas"),
    "report": ("report", "funnel and corpus statistics as Markdown + HTML"),
    "preview": ("preview", "a PNG contact sheet of a shard with boxes and quads drawn"),
    "gen-pairs": ("gen_pairs", "generate LAION-like noisy pair metadata (demo and bench)"),
    "prove": ("prove", "train on our own shards and measure that the model learns (make prove)"),
}


def _usage() -> str:
    lines = ["usage: qwenvl-data <command> [options]", "", "commands:"]
    lines += [f"  {name:<11} {help_}" for name, (_, help_) in COMMANDS.items()]
    lines += ["", "Run 'qwenvl-data <command> --help' for a command's options."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(_usage())
        return 0 if argv else 2
    cmd = argv[0]
    if cmd not in COMMANDS:
        print(f"qwenvl-data: error: unknown command '{cmd}'\n\n{_usage()}", file=sys.stderr)
        return 2
    modname, help_ = COMMANDS[cmd]
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
    module = importlib.import_module(f"qwenvl_data.pipelines.{modname}")
    parser = argparse.ArgumentParser(prog=f"qwenvl-data {cmd}", description=help_)
    module.add_arguments(parser)
    check_numbers(parser)
    args = parser.parse_args(argv[1:])  # exits 2 with a one-line error on bad usage
    try:
        return int(module.run(args) or 0)
    except QwenVLDataError as e:
        print(f"qwenvl-data {cmd}: error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print(f"qwenvl-data {cmd}: interrupted", file=sys.stderr)
        return 130
    except Exception as e:  # noqa: BLE001 - last resort: one line, the traceback in a log file
        print(f"qwenvl-data {cmd}: error: {internal_error(f'qwenvl-data-{cmd}', e)}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
