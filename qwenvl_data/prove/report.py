"""The output of `make prove`: a table (Markdown + JSON) and one PNG to read at a glance.

The PNG holds the training loss of every stage of the real run and of the shuffled control, and a
grid of held-out images with the true box (green) and the predicted box (red) drawn, grounding
scenes first, then OCR pages with their predicted lines.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

from PIL import Image, ImageDraw

from .metrics import first_box, ocr_lines

RUNS = ("real", "shuffled", "constant")


def _fmt(v) -> str:
    return "–" if v is None else f"{v:.3f}"


def targets(results: dict) -> dict:
    """The issue's CPU targets, checked on the pooled (both languages) numbers; a target against a run that
    has no numbers (left out with --runs) is None: not measured, never met."""
    g = {r: results[r]["grounding"]["all"]["acc"] for r in RUNS}
    o = {r: results[r]["ocr"]["all"]["char_acc"] for r in RUNS}

    def beats(real, control, factor):
        if real is None or control is None:
            return None
        return real >= factor * control and real > 0

    return {
        "grounding_acc>=0.30": None if g["real"] is None else g["real"] >= 0.30,
        "grounding_acc>=3x_shuffled": beats(g["real"], g["shuffled"], 3),
        "ocr_char_acc>=2x_shuffled": beats(o["real"], o["shuffled"], 2),
    }


def _span(values: list) -> str:
    return "?" if not values else str(values[0]) if len(values) == 1 else f"{values[0]}-{values[-1]}"


def markdown(results: dict, meta: dict) -> str:
    lines = [
        "# make prove: does a model trained on our shards learn to point and to read?",
        "",
        f"Held-out images only. Command: `{meta['command']}`. Wall time {meta['seconds']:.0f} s.",
        "",
    ]
    plan = meta.get("plan")
    if plan:  # what was learnt from: a reader must see the scene sizes and the training length at a glance
        counts = sorted(set(plan.get("objects", ())))
        steps = {s: plan[f"stage{s}"].get("steps", 0) for s in (1, 2) if isinstance(plan.get(f"stage{s}"), dict)}
        lines += [
            f"Plan: {plan.get('train_scenes')} training scenes of {_span(counts)} object(s) "
            f"each, {plan.get('ocr_train_pages')} OCR pages, {plan.get('image_size')}-px images, "
            + ", ".join(f"stage {s}: {n} steps" for s, n in steps.items() if n)
            + f", model `{plan.get('model', {}).get('name', '?')}`.",
            "",
        ]
    lines += [
        "| run | lang | grounding acc (IoU≥0.5) | mean IoU | box parsed | OCR char acc | OCR word acc "
        "| OCR line box IoU | line box acc | n ground / OCR |",
        "|" + "---|" * 10,
    ]
    for run in RUNS:
        for lang in ("en", "zh", "all"):
            g, o = results[run]["grounding"][lang], results[run]["ocr"][lang]
            lines.append(
                f"| {run} | {lang} | {_fmt(g['acc'])} | {_fmt(g['miou'])} | {_fmt(g['parsed'])} | "
                f"{_fmt(o['char_acc'])} | {_fmt(o['word_acc'])} | {_fmt(o['line_miou'])} | "
                f"{_fmt(o['line_acc'])} | {g['n']} / {o['n']} |"
            )
    by_objects = [(run, results[run].get("grounding_by_objects") or {}) for run in RUNS]
    if any(int(n) > 1 for _, per_count in by_objects for n in per_count):  # scenes of several objects
        lines += [
            "",
            "Grounding by objects in the scene (both languages; *any object*: the box hits some object of the "
            "scene, the named one or another. A model that finds objects but ignores the words scores about "
            "any object / objects):",
            "",
            "| run | objects | n | named object (IoU≥0.5) | any object | mean IoU |",
            "|---|---|---|---|---|---|",
        ]
        for run, per_count in by_objects:
            for n, g in sorted(per_count.items(), key=lambda kv: int(kv[0])):
                lines.append(
                    f"| {run} | {n} | {g['n']} | {_fmt(g['acc'])} | {_fmt(g['any_acc'])} | {_fmt(g['miou'])} |"
                )
    reading = [(run, results[run].get("reading")) for run in RUNS if results[run].get("reading")]
    if reading:  # teacher-forced: does the model's next text token depend on the pixels?
        lines += [
            "",
            "Reading, teacher-forced (held-out OCR pages: share of the true text tokens the model's next-token "
            "guess gets right, with the page's own image and with another page's image):",
            "",
            "| run | lang | own image | another page's image |",
            "|---|---|---|---|",
        ]
        for run, r in reading:
            for lang in ("en", "zh", "all"):
                lines.append(f"| {run} | {lang} | {_fmt(r['own'][lang])} | {_fmt(r['other'][lang])} |")
    lines += [
        "",
        "Targets (both languages pooled): "
        + ", ".join(
            f"{k} {'not measured (a run was left out)' if v is None else 'met' if v else 'NOT met'}"
            for k, v in meta["targets"].items()
        ),
        "",
    ]
    lines += ["Step times (s): " + ", ".join(f"{k} {v}" for k, v in meta["timings"].items()), ""]
    return "\n".join(lines)


def write(out: Path, results: dict, meta: dict):
    meta = dict(meta, targets=targets(results))
    (out / "prove.json").write_text(json.dumps({"results": results, **meta}, indent=1, ensure_ascii=False))
    (out / "prove.md").write_text(markdown(results, meta))
    return meta["targets"]


def _loss(path: Path) -> tuple[list[int], list[float]]:
    if not path.exists():
        return [], []
    rows = [json.loads(x) for x in path.read_text().splitlines() if x.strip()]
    return [r["step"] for r in rows], [r["loss"] for r in rows]


def figure(
    out: Path, grounding: list[dict], g_answers: list[str], ocr: list[dict], o_answers: list[str], cells: int = 8
):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    stages = sorted({p.name for p in (out / "runs").glob("*/stage*")})
    fig = plt.figure(figsize=(13, 10))
    grid = fig.add_gridspec(3, 4, height_ratios=[1.1, 1, 1])
    for i, stage in enumerate(stages[:4]):
        ax = fig.add_subplot(grid[0, i])
        for run, colour in (("real", "tab:blue"), ("shuffled", "tab:orange")):
            x, y = _loss(out / "runs" / run / stage / "log.jsonl")
            ax.plot(x, y, color=colour, label=run, lw=1)
        ax.set_title(f"{stage} loss")
        ax.set_xlabel("step")
        ax.legend(fontsize=7)
    picks = [(q, a, "g") for q, a in zip(grounding, g_answers)][: cells // 2] + [
        (q, a, "o") for q, a in zip(ocr, o_answers)
    ][: cells // 2]
    for k, (q, answer, kind) in enumerate(picks[:cells]):
        ax = fig.add_subplot(grid[1 + k // 4, k % 4])
        ax.imshow(_drawn(q, answer, kind))
        ax.set_axis_off()
        title = q["ref"] if kind == "g" else " / ".join(ln["text"] for ln in ocr_lines(answer))[:30] or "(no text)"
        ax.set_title(title, fontsize=8, fontproperties=_cjk_font())
    fig.tight_layout()
    fig.savefig(out / "prove.png", dpi=80)
    plt.close(fig)


def _drawn(q: dict, answer: str, kind: str) -> Image.Image:
    img = Image.open(io.BytesIO(q["image"])).convert("RGB")
    w, h = img.size
    d = ImageDraw.Draw(img)

    def px(b):
        return [b[0] * w / 1000, b[1] * h / 1000, b[2] * w / 1000, b[3] * h / 1000]

    truths = [q["true"]] if kind == "g" else [ln["box"] for ln in q["true"]]
    preds = [first_box(answer)] if kind == "g" else [ln["box"] for ln in ocr_lines(answer)]
    for b in truths:
        d.rectangle(px(b), outline=(0, 200, 0), width=2)
    for b in preds:
        if b is not None and b[2] >= b[0] and b[3] >= b[1]:
            d.rectangle(px(b), outline=(230, 0, 0), width=2)
    return img


def _cjk_font():
    """A font that draws the Chinese titles (the OCR stage's own font finder), or matplotlib's default."""
    from matplotlib.font_manager import FontProperties

    try:
        from qwenvl_data.ocr.fonts import fonts_for

        return FontProperties(fname=fonts_for("zh").paths[0])
    except Exception:  # noqa: BLE001 - a missing CJK font only costs the titles' glyphs
        return FontProperties()
