"""Stage data loaders over the training shards (docs/CONTRACTS.md "shards -> train").

One flat webdataset pipeline per stage, open_clip style:
shard list (shuffled per epoch) -> split by node -> split by worker -> tar -> sample shuffle ->
`ToExample` (json + JPEG decode, bicubic resize, tokenize, loss mask) -> `Batcher` (stage 2: pack
same-task samples into fixed-length sequences; stages 1/3: pad to the batch's longest).

- Every stage is seeded from (seed, epoch), so the same position always yields the same batch; the
  data position is (epoch, batches taken in that epoch) and a resume replays the epoch to it.
- Each rank streams endlessly (epoch after epoch) so ranks never run dry at different steps.
- A bad sample is dropped with a snake_case reason and counted; counts ride along with the batches
  (workers live in other processes), and `samples + rejected` accounts for every sample read.
- Images leave the workers as uint8; `normalise` applies CLIP mean/std on the training device
  (4x less traffic between processes, and the GPU does the arithmetic).
"""

from __future__ import annotations

import io
import json
import os
import random
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import torch
import webdataset as wds
from PIL import Image

from qwenvl_data.errors import BadInput, QwenVLDataError, UsageError
from qwenvl_data.shards.reader import scan

from .tokenizer import IGNORE, TextEncoder

# every reason `ToExample` gives: the trainer sums the counts over ranks as one fixed-length vector
REASONS = ("bad_json", "wrong_stage", "bad_segments", "no_target", "too_long", "missing_image", "bad_image")
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


def shard_urls(data_dir: str | Path, skip_bad_files: bool = False) -> list[str]:
    """The shards of a folder, each checked before training starts, not inside a loader worker
    (qwenvl_data.shards.reader: a 0-byte or text file, a tar cut short, one holding fewer samples than
    its stats sidecar): a bad one stops the run with a one-line error, or with `skip_bad_files` is
    named on stderr and left out."""
    d = Path(data_dir)
    urls = sorted(str(p) for p in d.glob("*.tar") if not p.name.startswith(".tmp-")) if d.is_dir() else []
    if not urls:
        raise UsageError(f"no training shards (*.tar) in {data_dir}")
    good = []
    for url in urls:
        try:
            scan(url)
            good.append(url)
        except BadInput as e:
            if not skip_bad_files:
                raise BadInput(f"{e} (--skip-bad-files leaves such shards out)") from None
            print(f"qwenvl-train: skipped bad shard: {e}", file=sys.stderr)
    if not good:
        raise BadInput(f"no readable training shards in {data_dir} (all {len(urls)} are bad)")
    return good


def load_image(data: bytes, size: int) -> np.ndarray:
    """JPEG/PNG bytes -> (size, size, 3) uint8, bicubic, no crop (the paper's preprocessing)."""
    img = Image.open(io.BytesIO(data))
    img.draft("RGB", (size, size))  # JPEG: decode at a reduced scale when the image is much larger
    img = img.convert("RGB").resize((size, size), Image.Resampling.BICUBIC)
    return np.array(img, dtype=np.uint8)  # writable: torch.from_numpy warns on read-only arrays


def normalise(images: torch.Tensor) -> torch.Tensor:
    """(N, H, W, 3) uint8 -> (N, 3, H, W) float, CLIP mean/std."""
    mean = torch.tensor(CLIP_MEAN, device=images.device).view(1, 3, 1, 1)
    std = torch.tensor(CLIP_STD, device=images.device).view(1, 3, 1, 1)
    return (images.permute(0, 3, 1, 2).float() / 255.0 - mean) / std


class ToExample:
    """A raw webdataset sample -> {'ids', 'labels', 'images', 'task', 'key'} or {'rejected': reason}."""

    def __init__(self, encoder: TextEncoder, stage: int, image_size: int, seq_len: int):
        self.encoder, self.stage, self.image_size, self.seq_len = encoder, stage, image_size, seq_len

    def __call__(self, sample: dict) -> dict:
        key = f"{sample.get('__url__', '?')}:{sample.get('__key__', '?')}"
        try:
            meta = json.loads(sample["json"])
            segments = meta["segments"]
            if meta.get("schema") != "train" or not isinstance(segments, list):
                return {"rejected": "bad_json", "key": key}
        except (KeyError, ValueError, TypeError, RecursionError):  # RecursionError: JSON nested too deep
            return {"rejected": "bad_json", "key": key}
        if meta.get("stage") not in (None, self.stage):
            return {"rejected": "wrong_stage", "key": key}
        try:
            ids, labels, refs = self.encoder.encode(segments, append_eot=self.stage in (1, 2))
        except (KeyError, TypeError):
            return {"rejected": "bad_segments", "key": key}
        if not any(seg["loss"] and seg["text"] for seg in segments):  # the appended eot alone is no target
            return {"rejected": "no_target", "key": key}
        if len(ids) > self.seq_len:  # cut text at the end, never inside an image
            last_image_end = np.flatnonzero(ids == self.encoder.img_end)
            if len(last_image_end) and last_image_end[-1] >= self.seq_len:
                return {"rejected": "too_long", "key": key}
            ids, labels = ids[: self.seq_len], labels[: self.seq_len]
            if not (labels != IGNORE).any():
                return {"rejected": "too_long", "key": key}
        images = []
        for ref in refs:
            if ref not in sample:
                return {"rejected": "missing_image", "key": key}
            try:
                images.append(load_image(sample[ref], self.image_size))
            except (OSError, ValueError, Image.DecompressionBombError):
                return {"rejected": "bad_image", "key": key}
        return {"ids": ids, "labels": labels, "images": images, "task": meta.get("task", ""), "key": key}


class Batcher:
    """Examples -> batches. `pack`: same-task examples share a `seq_len` row (stage 2).

    `position_ids` restart at 0 for every example of a packed row, so the LLM sees each example at
    the positions it would have alone, and transformers builds a block-diagonal causal mask from the
    restarts (an example never attends to the one packed before it). `isolate=False` (environment
    QWENVL_PACK_ISOLATION=0) keeps one running position per row, the old behaviour, for comparison.
    """

    def __init__(self, batch_size: int, seq_len: int, pad_id: int, pack: bool, isolate: bool | None = None):
        self.batch_size, self.seq_len, self.pad_id, self.pack = batch_size, seq_len, pad_id, pack
        self.isolate = os.environ.get("QWENVL_PACK_ISOLATION", "1") != "0" if isolate is None else isolate

    def __call__(self, examples):
        rejected, rows = Counter(), []
        bins: dict[str, list] = {}  # task -> examples of the row being filled
        for ex in examples:
            if "rejected" in ex:
                rejected[ex["rejected"]] += 1
                continue
            if not self.pack:
                rows.append([ex])
            else:
                row = bins.setdefault(ex["task"], [])
                if row and sum(len(e["ids"]) for e in row) + len(ex["ids"]) > self.seq_len:
                    rows.append(row)
                    row = bins[ex["task"]] = []
                row.append(ex)
            if len(rows) >= self.batch_size:
                yield self.collate(rows[: self.batch_size], rejected)
                rows, rejected = rows[self.batch_size :], Counter()
        rows.extend(row for row in bins.values() if row)
        if not rows and rejected:  # every sample rejected: still report the counts
            yield {"samples": 0, "rejected": dict(rejected)}
        while rows:  # the end of the stream: partial rows and a short last batch
            yield self.collate(rows[: self.batch_size], rejected)
            rows, rejected = rows[self.batch_size :], Counter()

    def collate(self, rows: list[list[dict]], rejected: Counter) -> dict:
        lengths = [sum(len(e["ids"]) for e in row) for row in rows]
        width = self.seq_len if self.pack else -(-max(lengths) // 8) * 8  # multiple of 8 for GPU kernels
        ids = np.full((len(rows), width), self.pad_id, np.int64)
        labels = np.full((len(rows), width), IGNORE, np.int64)
        positions = np.tile(np.arange(width, dtype=np.int64), (len(rows), 1))
        images = []
        for r, row in enumerate(rows):
            pos = 0
            for e in row:
                n = len(e["ids"])
                ids[r, pos : pos + n], labels[r, pos : pos + n] = e["ids"], e["labels"]
                if self.isolate:  # padding after the last example continues its count: one block with it
                    positions[r, pos:] = np.arange(width - pos)
                pos += n
                images.extend(e["images"])
        return {
            "input_ids": torch.from_numpy(ids),
            "labels": torch.from_numpy(labels),
            "position_ids": torch.from_numpy(positions),
            "images": torch.from_numpy(np.stack(images)) if images else None,
            "samples": sum(len(row) for row in rows),
            "tokens": int(sum(lengths)),
            "keys": [[e["key"] for e in row] for row in rows],
            "rejected": dict(rejected),
        }


class StageLoader:
    """Endless batches for one rank that resume exactly, with or without loader workers.

    The position is {"taken": batches consumed, "workers": [[epoch, batches taken in it], ...]}, one entry
    per loader worker: each worker streams its own shards epoch after epoch, and torch's DataLoader
    takes batches from workers in turn, so after `taken` batches worker `taken % W` is next. A resumed
    run relabels its workers to keep that order and each worker replays at most one epoch of its
    shards to its place. Workers are capped at shards per rank so none of them idles.
    """

    def __init__(
        self,
        data_dir,
        encoder: TextEncoder,
        stage: int,
        image_size: int,
        seq_len: int,
        batch_size: int,
        workers: int = 0,
        seed: int = 0,
        shuffle_buffer: int = 1000,
        rank: int = 0,
        world: int = 1,
        skip_bad_files: bool = False,
    ):
        self.urls = shard_urls(data_dir, skip_bad_files)
        if len(self.urls) < world:  # split by node is per shard: a rank without a shard has no data
            raise UsageError(
                f"{len(self.urls)} shard(s) in {data_dir} for {world} ranks: write at least one shard per rank"
            )
        self.to_example = ToExample(encoder, stage, image_size, seq_len)
        self.batcher = Batcher(batch_size, seq_len, encoder.eot, pack=stage == 2)
        self.workers = min(workers, max(1, len(self.urls) // world)) if workers else 0
        self.seed, self.shuffle_buffer, self.rank, self.world = seed, shuffle_buffer, rank, world

    def start(self) -> dict:
        return {"taken": 0, "workers": [[0, 0] for _ in range(max(1, self.workers))]}

    def rank_shards(self, epoch: int) -> list[str]:
        """This rank's shards in `epoch`: one shuffle, the same on every rank, then every world-th."""
        urls = list(self.urls)
        random.Random(self.seed * 1_000_003 + epoch).shuffle(urls)
        return urls[self.rank :: self.world]

    def pipeline(self, epoch: int, worker: int, workers: int) -> wds.DataPipeline:
        mine = self.rank_shards(epoch)[worker::workers]  # split by node, then by (logical) worker
        return wds.DataPipeline(
            wds.SimpleShardList(mine),
            wds.tarfile_to_samples(),
            wds.shuffle(
                self.shuffle_buffer,
                initial=min(100, self.shuffle_buffer),
                seed=((self.seed * 1_000_003 + epoch) * 7919 + self.rank) * 97 + worker,
            ),
            wds.map(self.to_example),
            self.batcher,
        )

    def batches(self, position: dict | None = None):
        """Yields (batch, position after it). A worker whose epoch has no usable sample is an error."""
        position = json.loads(json.dumps(position or self.start()))  # a private copy
        if len(position["workers"]) != max(1, self.workers):
            raise UsageError(
                f"the checkpoint's data position has {len(position['workers'])} loader workers, "
                f"this run {max(1, self.workers)}: pass --workers {len(position['workers'])}"
            )
        stream = _WorkerStreams(self, position)
        source = (
            stream
            if self.workers == 0
            else torch.utils.data.DataLoader(
                stream, batch_size=None, num_workers=self.workers, persistent_workers=False
            )
        )
        carried = Counter()  # rejects of an all-rejected batch ride on the next batch, so none is lost
        try:
            for batch in source:
                worker, epoch, taken = batch.pop("_position")
                if not batch["samples"]:
                    carried.update(batch["rejected"])
                    continue
                if carried:
                    batch["rejected"] = dict(carried + Counter(batch["rejected"]))
                    carried = Counter()
                position["taken"] += 1
                position["workers"][worker] = [epoch, taken]
                yield batch, json.loads(json.dumps(position))
        except QwenVLDataError as e:
            raise _own_line(e) from None


def _own_line(e: QwenVLDataError) -> QwenVLDataError:
    """A loader worker's error as its own one line: torch re-raises it in the main process with the
    worker's traceback in the message ("Caught UsageError in DataLoader worker process 0. Original ...")."""
    lines = str(e).strip().splitlines()
    if len(lines) <= 1:
        return e
    prefix = f"{type(e).__module__}.{type(e).__qualname__}: "
    return type(e)(lines[-1][len(prefix) :] if lines[-1].startswith(prefix) else lines[-1])


class _WorkerStreams(torch.utils.data.IterableDataset):
    def __init__(self, loader: StageLoader, position: dict):
        self.loader, self.position = loader, position

    def __iter__(self):
        info = torch.utils.data.get_worker_info()
        physical, workers = (info.id, info.num_workers) if info else (0, 1)
        worker = (physical + self.position["taken"]) % workers  # keep the round-robin order across resumes
        epoch, skip = self.position["workers"][worker]
        while True:
            taken, rejected = 0, Counter()
            for batch in self.loader.pipeline(epoch, worker, workers):
                rejected.update(batch["rejected"])
                if batch["samples"]:
                    taken += 1
                if taken > skip or not batch["samples"]:
                    batch["_position"] = (worker, epoch, taken)
                    yield batch
            if taken == 0:
                raise UsageError(
                    f"no usable training samples for worker {worker} of rank {self.loader.rank} "
                    f"in {Path(self.loader.urls[0]).parent} (rejected: {dict(rejected) or 'none read'})"
                )
            epoch, skip = epoch + 1, 0
