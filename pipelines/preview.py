"""`qwenvl-data preview SHARD`: a PNG contact sheet of a shard's samples with quads and boxes drawn.

    qwenvl-data preview out/ocr/synthdog-en-000000.tar [--output sheet.png] [--max 16]

Works on any shard with images: OCR samples draw their structured `lines` (quads, and word quads
faintly); other samples (grounding, referring, training shards) have their `<ref>/<box>/<quad>`
text parsed back with qwenvl_data.boxes.parse_refs and denormalised with the image size, so the
sheet shows what the model will be told, not what the converter meant to write.
Hostile shards end as one line naming the sample: a json that is not an object, malformed `lines`,
an image over the pixel limit (checked before decoding) or that does not decode.
"""

from __future__ import annotations

import json
import tarfile
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from qwenvl_data.boxes import denormalise, parse_refs
from qwenvl_data.errors import BadInput, UsageError
from qwenvl_data.images import ImageLimits, ImageRejected, decode_fully, open_checked
from qwenvl_data.shards import iter_tar_samples
from qwenvl_data.vocab import is_image_ext

MAX_PIXELS = ImageLimits().max_pixels  # the download stage's limit, before any decoding
COLORS = [
    (230, 25, 75),
    (60, 180, 75),
    (0, 130, 200),
    (245, 130, 48),
    (145, 30, 180),
    (70, 240, 240),
    (240, 50, 230),
    (210, 245, 60),
]


def add_arguments(p):
    p.add_argument("shard", metavar="SHARD", help="a webdataset .tar")
    p.add_argument("--output", help="PNG to write (default: SHARD with .png)")
    p.add_argument("--max", type=int, default=16, help="samples on the sheet")
    p.add_argument("--cols", type=int, default=4)
    p.add_argument("--thumb", type=int, default=480, help="long side of each tile in pixels")


def _label_font(size: int = 14):
    from qwenvl_data.ocr.fonts import default_font_files

    for path in default_font_files():  # the CJK face last: labels may be Chinese
        if path.suffix == ".ttc":
            return ImageFont.truetype(str(path), size)
    return ImageFont.load_default()


def _image(files: dict) -> tuple[str, bytes] | None:
    for ext in sorted(files):
        if is_image_ext(ext):
            return ext, files[ext]
    return None


def _text(sample: dict) -> str:
    if isinstance(sample.get("target"), str):
        prompt = sample.get("prompt")
        return (prompt if isinstance(prompt, str) else "") + sample["target"]
    segments = sample.get("segments")
    return "".join(
        s["text"]
        for s in (segments if isinstance(segments, list) else [])
        if isinstance(s, dict) and isinstance(s.get("text"), str)
    )


def shapes(sample: dict, width: int, height: int) -> list[tuple[str, list[tuple[float, float]], str | None]]:
    """Pixel polygons to draw: ('line'|'word'|'quad'|'box', points, label)."""

    def px(points):
        return [(float(denormalise(x, width)), float(denormalise(y, height))) for x, y in points]

    out = []
    if isinstance(sample.get("lines"), list):
        for i, ln in enumerate(sample["lines"]):
            words = ln.get("words") or [] if isinstance(ln, dict) else []
            for j, w in enumerate(words if isinstance(words, list) else [None]):
                out.append(("word", px(_quad(w, f"lines[{i}].words[{j}]")), None))
            out.append(("line", px(_quad(ln, f"lines[{i}]")), None))
        return out
    for ref in parse_refs(_text(sample)):
        for x1, y1, x2, y2 in ref["boxes"]:
            out.append(("box", px([(x1, y1), (x2, y1), (x2, y2), (x1, y2)]), ref["ref"]))
        for q in ref["quads"]:
            out.append(("quad", px(q), ref["ref"]))
    return out


def _quad(obj, where: str) -> list[tuple[float, float]]:
    """An OCR line/word's `quad`: four [x, y] finite numbers, else ValueError naming the field."""
    quad = obj.get("quad") if isinstance(obj, dict) else None
    ok = (
        isinstance(quad, list)
        and len(quad) == 4
        and all(
            isinstance(pt, list)
            and len(pt) == 2
            and all(isinstance(v, (int, float)) and not isinstance(v, bool) and abs(v) < 1e9 for v in pt)
            for pt in quad
        )
    )
    if not ok:
        raise ValueError(f"{where}.quad is not four [x, y] points")
    return [(float(x), float(y)) for x, y in quad]


def draw_sample(img: Image.Image, sample: dict, font) -> Image.Image:
    img = img.convert("RGB")
    draw = ImageDraw.Draw(img)
    width = max(2, round(max(img.size) / 400))
    for i, (kind, pts, label) in enumerate(shapes(sample, *img.size)):
        color = COLORS[i % len(COLORS)]
        if kind == "word":
            draw.polygon(pts, outline=(255, 200, 0))
            continue
        draw.polygon(pts, outline=color, width=width)
        if label and kind == "box":
            x, y = pts[0]
            draw.text((x + 2, max(0, y - 16)), label[:40], fill=color, font=font)
    return img


def run(args) -> int:
    shard = Path(args.shard)
    if not shard.is_file():
        raise UsageError(f"{shard}: no such file")
    if args.max <= 0 or args.cols <= 0 or args.thumb < 32:
        raise UsageError("--max and --cols must be > 0, --thumb >= 32")
    font = _label_font()
    tiles = []
    try:
        for key, files in iter_tar_samples(shard):
            if len(tiles) >= args.max:
                break
            found = _image(files)
            if found is None:
                continue
            try:
                sample = json.loads(files.get("json", b"{}"))
            except (ValueError, RecursionError) as e:
                raise BadInput(f"{shard}: sample '{key}': .json is not valid JSON ({type(e).__name__})") from None
            if not isinstance(sample, dict):
                raise BadInput(f"{shard}: sample '{key}': .json is a {type(sample).__name__}, not an object")
            try:
                decode_fully(open_checked(found[1], MAX_PIXELS))  # every byte, before drawing on a fresh copy
                img = open_checked(found[1], MAX_PIXELS)
                img.load()
            except ImageRejected as e:
                raise BadInput(f"{shard}: sample '{key}': {found[0]}: {e}") from None
            try:
                tile = draw_sample(img, sample, font)
            except ValueError as e:
                raise BadInput(f"{shard}: sample '{key}': {e}") from None
            tile.thumbnail((args.thumb, args.thumb))
            tiles.append((key, tile))
    except (OSError, EOFError, tarfile.TarError) as e:
        raise BadInput(f"{shard}: not a readable tar file ({type(e).__name__})") from None
    if not tiles:
        raise BadInput(f"{shard}: no sample with an image")
    cols = min(args.cols, len(tiles))
    rows = -(-len(tiles) // cols)
    cell = args.thumb + 8
    sheet = Image.new("RGB", (cols * cell, rows * (cell + 18)), (255, 255, 255))
    draw = ImageDraw.Draw(sheet)
    for i, (key, tile) in enumerate(tiles):
        x, y = (i % cols) * cell + 4, (i // cols) * (cell + 18) + 4
        sheet.paste(tile, (x, y))
        draw.text((x, y + tile.size[1] + 2), key[:60], fill=(0, 0, 0), font=font)
    out = Path(args.output) if args.output else shard.with_suffix(".png")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        sheet.save(out, format="PNG")
    except OSError as e:
        raise UsageError(f"{out}: cannot write the preview ({e.strerror or e})") from None
    print(f"preview: {len(tiles)} samples -> {out}")
    return 0
