"""`qwenvl-data report DIR...`: the corpus funnel as Markdown + HTML with a bar chart.

    qwenvl-data report OUT/clip                 # follows clip -> download -> filter by recorded inputs
    qwenvl-data report OUT/filter OUT/download  # or name the stage directories yourself

Each DIR is recognised by the stage summaries it holds: any top-level JSON object whose `stage` key
names a stage (`filter`, `download`, `clip-score`, `synth-ocr`; written by `qwenvl_data.funnel.write_summary`),
never by its file name. A download or clip summary records its input directory, so the stages
before it are found without being named (the filter funnel sits beside the pairs directory).
Writes `report.md`, `report.html` (the chart embedded) and `report.png` into --output (default: the
first DIR). Every number comes from the stage's own summary; nothing is recounted here.
"""

from __future__ import annotations

import base64
import html
import json
from pathlib import Path

from qwenvl_data import funnel
from qwenvl_data.errors import BadInput, UsageError
from qwenvl_data.outdir import own_output, refuse_in_progress


def add_arguments(p):
    p.add_argument("dirs", nargs="+", metavar="DIR", help="filter, download or clip-score output directories")
    p.add_argument("--output", help="where report.md/.html/.png go (default: the first DIR)")


def _read(path: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise BadInput(f"{path}: not a readable stage summary ({e})") from None
    if not isinstance(data, dict):
        raise BadInput(f"{path}: a stage summary must be a JSON object")
    return data


_COUNTS = ("in", "kept", "samples", "out", "removed")  # non-negative integers wherever they appear
_COUNT_MAPS = ("dropped", "failed", "kept_by_lang", "samples_by_lang")  # {name: non-negative integer}


def _check_counts(obj, path: Path, where: str = "") -> None:
    """The numbers a report adds up: a hand-edited or hostile summary is bad input, not a crash."""
    if not isinstance(obj, dict):
        return
    for key, value in obj.items():
        at = f"{where}.{key}" if where else str(key)
        if (
            key in _COUNTS
            and value is not None
            and (isinstance(value, bool) or not isinstance(value, int) or value < 0)
        ):
            raise BadInput(f"{path}: '{at}' must be a non-negative integer, got {value!r:.60}")
        if key in _COUNT_MAPS and value is not None:
            if not isinstance(value, dict):
                raise BadInput(f"{path}: '{at}' must be an object of counts, got {type(value).__name__}")
            for k, n in value.items():
                if isinstance(n, bool) or not isinstance(n, int) or n < 0:
                    raise BadInput(f"{path}: '{at}.{k}' must be a non-negative integer, got {n!r:.60}")
        elif key in ("total", "sources") and value is not None and not isinstance(value, dict):
            raise BadInput(f"{path}: '{at}' must be an object, got {type(value).__name__}")
        elif isinstance(value, dict) and key not in _COUNT_MAPS:
            _check_counts(value, path, at)


def find_stages(dirs: list[str]) -> dict[str, dict]:
    """{stage: summary} from the named dirs and the inputs their summaries record."""
    stages: dict[str, dict] = {}
    todo = [Path(d) for d in dirs]
    for d in todo:
        if not d.is_dir():
            raise UsageError(f"{d}: not a directory")
    while todo:
        d = todo.pop(0)
        if not d.is_dir():
            continue
        for path in sorted(d.glob("*.json")):
            summary = _read(path) if path.name in funnel.SUMMARY_FILES.values() else funnel.read_summary(path)
            stage = summary.get("stage") if summary else None
            if stage not in funnel.SUMMARY_FILES or stage in stages:
                continue
            _check_counts(summary, path)
            summary["_dir"] = str(d)
            stages[stage] = summary
            for up in [Path(summary["input"])] if isinstance(summary.get("input"), str) else []:
                todo += [up, up.parent]  # download's input is OUT/pairs; the funnel is in OUT
    if not stages:
        raise UsageError(f"{', '.join(dirs)}: no stage summary (a JSON object with a 'stage' key) found")
    return stages


def funnel_rows(stages: dict) -> list[tuple[str, int, int]]:
    """(stage, in, out) for each stage present, in pipeline order."""
    rows = []
    if "filter" in stages:
        t = stages["filter"].get("total", {})
        rows.append(("filter", int(t.get("in", 0)), int(t.get("kept", 0))))
    if "download" in stages:
        s = stages["download"]
        rows.append(("download", int(s.get("in", 0)), int(s.get("samples", 0))))
    if "clip-score" in stages:
        s = stages["clip-score"]
        rows.append(("clip-score", int(s.get("in", 0)), int(s.get("kept", 0))))
    return rows


def _synth_totals(stages: dict) -> tuple[int, int, dict]:
    sources = stages.get("synth-ocr", {}).get("sources", {})
    dropped: dict = {}
    for s in sources.values():
        for r, n in s.get("dropped", {}).items():
            dropped[r] = dropped.get(r, 0) + n
    return sum(s.get("in", 0) for s in sources.values()), sum(s.get("kept", 0) for s in sources.values()), dropped


def drop_reasons(stages: dict) -> list[tuple[str, str, int]]:
    """(stage, reason, count) for every reason a pair or sample left the corpus."""
    out = []
    if "filter" in stages:
        out += [("filter", r, n) for r, n in stages["filter"].get("total", {}).get("dropped", {}).items() if n]
    if "download" in stages:
        out += [("download", r, n) for r, n in stages["download"].get("failed", {}).items()]
    if "clip-score" in stages:
        out += [("clip-score", r, n) for r, n in stages["clip-score"].get("dropped", {}).items()]
    if "synth-ocr" in stages:
        out += [("synth-ocr", r, n) for r, n in _synth_totals(stages)[2].items() if n]
    return sorted(out, key=lambda t: -t[2])


def _pct(a: int, b: int) -> str:
    return f"{100.0 * a / b:.1f}%" if b else "-"


def _table(header: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(lines)


def _source_table(sources: dict, out_key: str, reasons_key: str) -> str:
    rows = []
    for name, s in sorted(sources.items()):
        n_in, n_out = int(s.get("in", 0)), int(s.get(out_key, 0))
        top = sorted(s.get(reasons_key, {}).items(), key=lambda kv: -kv[1])[:4]
        rows.append([name, n_in, n_out, _pct(n_out, n_in), ", ".join(f"{r} {n}" for r, n in top) or "-"])
    return _table(["source", "in", out_key, "rate", "top reasons"], rows)


def markdown(stages: dict, chart: str | None) -> str:
    parts = ["# qwenvl-data corpus report", ""]
    rows = funnel_rows(stages)
    parts += ["## Funnel", "", _table(["stage", "in", "out", "kept"], [[s, a, b, _pct(b, a)] for s, a, b in rows]), ""]
    subsets = [(prev, cur) for prev, cur in zip(rows, rows[1:]) if cur[1] != prev[2]]
    if len(rows) > 1 and not subsets:
        parts += [f"Overall: {rows[0][1]} input rows -> {rows[-1][2]} samples ({_pct(rows[-1][2], rows[0][1])}).", ""]
    for prev, cur in subsets:  # e.g. a demo or a partial run: say so rather than print a false total
        parts += [
            f"Note: {cur[0]} read {cur[1]} rows while {prev[0]} wrote {prev[2]}: the stages ran on "
            f"different subsets, so there is no overall rate.",
            "",
        ]
    if chart:
        parts += [f"![funnel and reasons]({chart})", ""]
    if "filter" in stages:
        f = stages["filter"]
        parts += [
            "## Filter",
            "",
            f"Rules in order: {', '.join(f.get('rules', []))}.",
            "",
            _source_table(f.get("sources", {}), "kept", "dropped"),
            "",
        ]
        if f.get("bad_files"):
            parts += [f"Unreadable input files skipped: {len(f['bad_files'])}.", ""]
    if "download" in stages:
        d = stages["download"]
        parts += [
            "## Download",
            "",
            f"Success rate: {d.get('samples', 0)}/{d.get('in', 0)} "
            f"({_pct(d.get('samples', 0), d.get('in', 0))}) in {d.get('seconds', '?')} s.",
            "",
            _table(
                ["failure reason", "pairs", "share of input"],
                [[r, n, _pct(n, d.get("in", 0))] for r, n in d.get("failed", {}).items()],
            ),
            "",
            _source_table(d.get("sources", {}), "samples", "failed"),
            "",
        ]
    if "clip-score" in stages:
        c = stages["clip-score"]
        models = ", ".join(sorted(set(c.get("models", {}).values())))
        parts += [
            "## CLIP score",
            "",
            f"Models: {models}. Kept {c.get('kept', 0)}/{c.get('in', 0)} ({_pct(c.get('kept', 0), c.get('in', 0))}).",
            "",
            _source_table(c.get("sources", {}), "kept", "dropped"),
            "",
            _table(
                ["source", "lang", "threshold"],
                [
                    [t["source"], t["lang"], "-" if t.get("threshold_max") is None else f"{t['threshold_max']:.4f}"]
                    for t in c.get("thresholds", [])
                ],
            ),
            "",
        ]
    if "synth-ocr" in stages:
        n_in, kept, _ = _synth_totals(stages)
        parts += [
            "## OCR pages (synth-ocr)",
            "",
            f"Pages kept {kept}/{n_in} ({_pct(kept, n_in)}).",
            "",
            _source_table(stages["synth-ocr"].get("sources", {}), "kept", "dropped"),
            "",
        ]
    return "\n".join(parts)


def plot(stages: dict, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = funnel_rows(stages) or [("synth-ocr", *_synth_totals(stages)[:2])]
    reasons = drop_reasons(stages)[:15]
    fig, (a, b) = plt.subplots(1, 2, figsize=(12, 4.5))
    labels = ["input"] + [s for s, _, _ in rows]
    values = ([rows[0][1]] if rows else [0]) + [o for _, _, o in rows]
    a.bar(labels, values, color=["#999"] + ["#3b7dd8"] * len(rows))
    for i, v in enumerate(values):
        a.text(i, v, str(v), ha="center", va="bottom", fontsize=8)
    a.set_title("pairs left after each stage")
    b.barh([f"{s}: {r}" for s, r, _ in reasons][::-1], [n for _, _, n in reasons][::-1], color="#d8643b")
    b.set_title("why pairs left (top 15)")
    b.tick_params(axis="y", labelsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def render_html(md: str, png: Path) -> str:
    """A self-contained page: the Markdown tables as HTML tables, the chart inlined."""
    body, table = [], []

    def flush():
        if table:
            head, rows = table[0], table[2:]

            def cells(r, tag):
                return "".join(f"<{tag}>{html.escape(c.strip())}</{tag}>" for c in r.strip("|").split("|"))

            body.append(
                "<table><tr>"
                + cells(head, "th")
                + "</tr>"
                + "".join("<tr>" + cells(r, "td") + "</tr>" for r in rows)
                + "</table>"
            )
            table.clear()

    img = base64.b64encode(png.read_bytes()).decode()
    for line in md.splitlines():
        if line.startswith("|"):
            table.append(line)
            continue
        flush()
        if line.startswith("!["):
            body.append(f'<img alt="funnel chart" src="data:image/png;base64,{img}">')
        elif line.startswith("## "):
            body.append(f"<h2>{html.escape(line[3:])}</h2>")
        elif line.startswith("# "):
            body.append(f"<h1>{html.escape(line[2:])}</h1>")
        elif line:
            body.append(f"<p>{html.escape(line)}</p>")
    flush()
    style = (
        "body{font-family:sans-serif;max-width:1100px;margin:2em auto}table{border-collapse:collapse}"
        "td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}img{max-width:100%}"
    )
    return (
        f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>qwenvl-data report</title>"
        f"<style>{style}</style></head><body>{''.join(body)}</body></html>\n"
    )


def run(args) -> int:
    for d in args.dirs:  # numbers of a run that has not finished would be reported as final
        refuse_in_progress(d)
    stages = find_stages(args.dirs)
    out = Path(args.output or args.dirs[0])
    with own_output(out, stage="report", marker=False, allow_overlap=True):  # it writes beside its inputs
        png = plot(stages, out / "report.png")
        md = markdown(stages, png.name)
        (out / "report.md").write_text(md, encoding="utf-8")
        (out / "report.html").write_text(render_html(md, png), encoding="utf-8")
    found = ", ".join(f"{s} ({v['_dir']})" for s, v in stages.items())
    print(f"report: {out / 'report.md'} and {out / 'report.html'} from {found}")
    return 0
