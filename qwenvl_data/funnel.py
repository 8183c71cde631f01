"""The funnel: rows in, dropped per rule, kept, per source and in total — the shape of the paper's Table 2.

The one counter of every stage. Counts are plain dicts so every engine can ship them between processes
and `merge` them (`Tally` builds them one record at a time); `finalise` (with an ordered rule list) and
`check_sources` enforce the conservation law in = kept + Σ dropped per source and fail loudly when it
does not hold. Every stage's summary carries a `stage` key (`write_summary`), and `qwenvl-data report`
dispatches on that key, never on a file name.
"""

from __future__ import annotations

import json
from pathlib import Path

from .errors import QwenVLDataError

# The summary file each stage writes into its output folder (one place; `report` reads the `stage` key).
SUMMARY_FILES = {
    "filter": "funnel.json",
    "download": "download.json",
    "clip-score": "clip.json",
    "synth-ocr": "synth_ocr.json",
}


def empty() -> dict:
    return {}


def add(counts: dict, source: str, key: str, n: int, sub: str | None = None):
    """counts[source][key] += n, or counts[source][key][sub] += n."""
    if not n:
        counts.setdefault(source, {})
        return
    s = counts.setdefault(source, {})
    if sub is None:
        s[key] = s.get(key, 0) + int(n)
    else:
        d = s.setdefault(key, {})
        d[sub] = d.get(sub, 0) + int(n)


def merge(*parts: dict) -> dict:
    out: dict = {}
    for part in parts:
        for source, stats in part.items():
            for key, v in stats.items():
                if isinstance(v, dict):
                    for sub, n in v.items():
                        add(out, source, key, n, sub)
                else:
                    add(out, source, key, v)
    return out


def _stats(s: dict, rules) -> dict:
    n_in, kept = s.get("in", 0), s.get("kept", 0)
    dropped = {r: s.get("dropped", {}).get(r, 0) for r in rules}
    by_lang = dict(sorted(s.get("kept_by_lang", {}).items()))
    return {
        "in": n_in,
        "kept": kept,
        "dropped": dropped,
        "kept_pct": round(100.0 * kept / n_in, 2) if n_in else 0.0,
        "kept_by_lang": by_lang,
        "lang_share_pct": {k: round(100.0 * v / kept, 2) if kept else 0.0 for k, v in by_lang.items()},
    }


class ConservationError(QwenVLDataError):
    exit_code = 1


class Tally:
    """Per-source counts of one worker: `seen`, then `keep` or `drop(reason)` for every record."""

    def __init__(self):
        self.counts: dict = {}

    def keep(self, source: str, lang: str | None = None):
        add(self.counts, source, "in", 1)
        add(self.counts, source, "kept", 1)
        if lang:
            add(self.counts, source, "kept_by_lang", 1, lang)

    def drop(self, source: str, reason: str):
        add(self.counts, source, "in", 1)
        add(self.counts, source, "dropped", 1, reason)


def check_sources(sources: dict) -> dict:
    """Merged per-source counts with `dropped` filled in; raises ConservationError if one does not add up."""
    out = {}
    for name, s in sorted(sources.items()):
        st = {
            "in": s.get("in", 0),
            "kept": s.get("kept", 0),
            "dropped": dict(sorted(s.get("dropped", {}).items())),
            **{k: v for k, v in s.items() if k not in ("in", "kept", "dropped")},
        }
        accounted = st["kept"] + sum(st["dropped"].values())
        if accounted != st["in"]:
            raise ConservationError(
                f"funnel does not add up for {name}: in={st['in']} but kept + dropped = "
                f"{accounted} (kept={st['kept']}, dropped={st['dropped']})"
            )
        out[name] = st
    return out


def finalise(counts: dict, rules, **extra) -> dict:
    """Per-source and total stats; raises ConservationError when a source's rows do not add up."""
    sources = {src: _stats(s, rules) for src, s in sorted(counts.items())}
    total = _stats(merge(*[{"total": s} for s in counts.values()]).get("total", {}), rules)
    for name, st in list(sources.items()) + [("total", total)]:
        accounted = st["kept"] + sum(st["dropped"].values())
        if accounted != st["in"]:
            raise ConservationError(
                f"funnel does not add up for {name}: in={st['in']} but kept + dropped = "
                f"{accounted} (kept={st['kept']}, dropped={st['dropped']})"
            )
    return {"rules": list(rules), "sources": sources, "total": total, **extra}


def to_markdown(funnel: dict, title: str = "Filter funnel") -> str:
    rules = [r for r in funnel["rules"] if funnel["total"]["dropped"].get(r, 0) or r != "bad_file"]
    head = ["source", "in"] + rules + ["kept", "kept %", "en", "zh", "en %", "zh %"]
    lines = [f"# {title}", "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    rows = list(funnel["sources"].items()) + [("**total**", funnel["total"])]
    for name, st in rows:
        langs, share = st.get("kept_by_lang", {}), st.get("lang_share_pct", {})
        cells = (
            [name, f"{st['in']:,}"]
            + [f"{st['dropped'].get(r, 0):,}" for r in rules]
            + [
                f"{st['kept']:,}",
                f"{st['kept_pct']:.2f}",
                f"{langs.get('en', 0):,}",
                f"{langs.get('zh', 0):,}",
                f"{share.get('en', 0):.1f}",
                f"{share.get('zh', 0):.1f}",
            ]
        )
        lines.append("| " + " | ".join(cells) + " |")
    if funnel.get("bad_files"):
        lines += ["", "Bad files skipped:"] + [f"- `{b['path']}`: {b['error']}" for b in funnel["bad_files"]]
    extra = {k: funnel[k] for k in ("engine", "seconds", "rows_per_s") if k in funnel}
    if extra:
        lines += ["", " · ".join(f"{k}: {v}" for k, v in extra.items())]
    return "\n".join(lines) + "\n"


def write_summary(out_dir: str | Path, stage: str, summary: dict) -> str:
    """Write a stage's summary (with its `stage` key) to OUT/SUMMARY_FILES[stage]; local path or fsspec URL.
    Returns the path written."""
    import fsspec

    if stage not in SUMMARY_FILES:
        raise ValueError(f"unknown stage {stage!r}; add it to funnel.SUMMARY_FILES")
    path = f"{str(out_dir).rstrip('/')}/{SUMMARY_FILES[stage]}"
    with fsspec.open(path, "w", encoding="utf-8") as f:
        f.write(json.dumps({"stage": stage, **summary}, indent=1, ensure_ascii=False, sort_keys=False))
    return path


def read_summary(path: str | Path) -> dict | None:
    """A stage summary (a JSON object with a known `stage` key) or None for any other JSON file."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and data.get("stage") in SUMMARY_FILES else None


def write(funnel: dict, out_dir: str | Path, title: str = "Filter funnel"):
    """The filter's OUT/funnel.json (stage "filter") and OUT/funnel.md; OUT may be a local path or any fsspec URL."""
    import fsspec

    write_summary(out_dir, "filter", funnel)
    with fsspec.open(f"{str(out_dir).rstrip('/')}/funnel.md", "w", encoding="utf-8") as f:
        f.write(to_markdown(funnel, title))
