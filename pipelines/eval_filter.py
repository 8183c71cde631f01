"""`make eval-filter`: score the pair filter's caption rules on a labelled caption set.

    python -m qwenvl_data.pipelines.eval_filter [--dir FOLDER] [--config my.yaml] [--json out.json]

A labelled set is JSON lines `{"label": "en"|"zh"|"other"|"junk", "text": "...", "class": "..."}` (class
optional) or TSV `label<TAB>text` lines, in every *.jsonl / *.tsv file of --dir. Default: the set this
project wrote itself (tests/data/filter_eval/captions.jsonl: each failure class of the caption rules).
Point --dir (EVAL_DIR= in make) at a local folder of third-party labelled captions; never commit them.

Each caption runs through the filter's rules as a LAION row with good metadata (so only the caption
rules decide). Printed: precision and recall per language (recall leaves out rows dropped by
`text_length`, which drops short captions by design), other languages kept, junk kept, and the rules
that dropped the most English/Chinese captions, with examples.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter, defaultdict
from pathlib import Path

import pyarrow as pa

from qwenvl_data.errors import BadInput, UsageError
from qwenvl_data.pipelines.filter import load_config
from qwenvl_data.rules import PairRules
from qwenvl_data.sources import layouts_from_config, normalise

DEFAULT_SET = Path(__file__).resolve().parent.parent / "tests" / "data" / "filter_eval"
LABELS = ("en", "zh", "other", "junk")


def read_set(folder: Path) -> list[dict]:
    files = sorted(list(folder.glob("*.jsonl")) + list(folder.glob("*.tsv")))
    if not files:
        raise UsageError(f"{folder}: no *.jsonl or *.tsv labelled caption files")
    rows = []
    for f in files:
        for i, line in enumerate(f.read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            if f.suffix == ".jsonl":
                try:
                    r = json.loads(line)
                except json.JSONDecodeError as e:
                    raise BadInput(f"{f}:{i}: not JSON ({e.msg})") from None
            else:
                label, _, text = line.partition("\t")
                r = {"label": label, "text": text}
            if r.get("label") not in LABELS or not isinstance(r.get("text"), str):
                raise BadInput(f"{f}:{i}: needs label in {LABELS} and a text string")
            rows.append({"label": r["label"], "text": r["text"], "class": r.get("class") or r["label"], "file": f.name})
    return rows


def run_rules(rows: list[dict], cfg: dict) -> list[dict]:
    layouts = layouts_from_config(cfg["sources"])
    layout = layouts["laion"]
    t = pa.table(
        {
            "URL": [f"https://img.example.com/{i}.jpg" for i in range(len(rows))],
            "TEXT": [r["text"] for r in rows],
            "WIDTH": [640] * len(rows),
            "HEIGHT": [480] * len(rows),
            "similarity": [0.35] * len(rows),
        }
    )
    cols = layout.resolve(t.column_names, "eval")
    out = PairRules.from_config(cfg["filter"]).apply(normalise(t, layout, cols, "laion", "eval", 0), layout)
    return [
        dict(r, reason=o["reason"], lang=o["lang"], caption=o["caption"])
        for r, o in zip(rows, out.select(["reason", "lang", "caption"]).to_pylist())
    ]


def score(res: list[dict]) -> dict:
    kept = [r for r in res if r["reason"] is None]
    out: dict = {"n": len(res), "by_label": dict(Counter(r["label"] for r in res)), "languages": {}}
    for lang in ("en", "zh"):
        as_lang = [r for r in kept if r["lang"] == lang]
        mine = [r for r in res if r["label"] == lang]
        judged = [r for r in mine if r["reason"] != "text_length"]
        hit = sum(r["lang"] == lang and r["reason"] is None for r in judged)
        out["languages"][lang] = {
            "kept_as": len(as_lang),
            "labelled": len(mine),
            "text_length": len(mine) - len(judged),
            "precision": round(sum(r["label"] == lang for r in as_lang) / len(as_lang), 4) if as_lang else None,
            "recall": round(hit / len(judged), 4) if judged else None,
        }
    other = [r for r in res if r["label"] == "other"]
    junk = [r for r in res if r["label"] == "junk"]
    out["other_kept"] = {"kept": sum(r["reason"] is None for r in other), "of": len(other)}
    out["junk_kept"] = {"kept": sum(r["reason"] is None for r in junk), "of": len(junk)}
    losses: dict[str, list] = defaultdict(list)
    for r in res:
        if r["label"] in ("en", "zh") and r["reason"] not in (None, "text_length"):
            losses[r["reason"]].append(r)
        elif r["label"] in ("en", "zh") and r["reason"] is None and r["lang"] != r["label"]:
            losses[f"kept as {r['lang']}"].append(r)
    out["losses"] = {
        k: {"n": len(v), "examples": [f"[{r['label']}] {r['text'][:70]}" for r in v[:4]]}
        for k, v in sorted(losses.items(), key=lambda kv: -len(kv[1]))
    }
    out["leaks"] = [
        f"[{r['label']}/{r['class']}] {r['text'][:70]} -> {r['lang']}" for r in other + junk if r["reason"] is None
    ][:10]
    by_class: dict[str, Counter] = defaultdict(Counter)
    for r in res:
        ok = (
            (r["reason"] is None and r["lang"] == r["label"]) if r["label"] in ("en", "zh") else r["reason"] is not None
        )
        by_class[r["class"]]["ok" if ok else "wrong"] += 1
    out["by_class"] = {c: dict(v) for c, v in sorted(by_class.items())}
    return out


def to_markdown(s: dict, title: str) -> str:
    lines = [
        f"# Filter evaluation: {title}",
        "",
        f"{s['n']} labelled captions: {s['by_label']}",
        "",
        "| language | kept as | precision | recall | (text_length, not counted) |",
        "|---|---|---|---|---|",
    ]
    for lang, v in s["languages"].items():
        lines.append(f"| {lang} | {v['kept_as']} | {v['precision']} | {v['recall']} | {v['text_length']} |")
    o, j = s["other_kept"], s["junk_kept"]
    lines += [
        "",
        f"other languages kept: {o['kept']} of {o['of']} ({100 * o['kept'] / max(o['of'], 1):.1f}%)",
        f"junk kept: {j['kept']} of {j['of']} ({100 * j['kept'] / max(j['of'], 1):.1f}%)",
        "",
        "Top losses of English/Chinese captions by reason:",
    ]
    lines += [f"- {k}: {v['n']} (e.g. {'; '.join(v['examples'][:2])})" for k, v in list(s["losses"].items())[:8]] or [
        "- none"
    ]
    if s["leaks"]:
        lines += ["", "Kept though labelled other/junk:"] + [f"- {x}" for x in s["leaks"]]
    lines += [
        "",
        "Per class (right / wrong): "
        + ", ".join(f"{c} {v.get('ok', 0)}/{v.get('wrong', 0)}" for c, v in s["by_class"].items()),
    ]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="eval-filter", description=__doc__.splitlines()[0])
    ap.add_argument("--dir", type=Path, default=DEFAULT_SET, help="folder of labelled *.jsonl / *.tsv")
    ap.add_argument("--config", help="YAML overriding configs/filter.yaml")
    ap.add_argument("--json", type=Path, help="also write the scores here")
    args = ap.parse_args(argv)
    try:
        res = run_rules(read_set(args.dir), load_config(args.config))
    except (UsageError, BadInput) as e:
        print(f"eval-filter: error: {e}", file=sys.stderr)
        return e.exit_code
    s = score(res)
    print(to_markdown(s, str(args.dir)))
    if args.json:
        args.json.write_text(json.dumps(s, indent=1, ensure_ascii=False), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
