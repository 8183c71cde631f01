"""The shard sink of `qwenvl-data tasks`: samples into rolling shards, rejects counted by reason.

One member set per shard (qwenvl_data/shards/writer.py): a dataset whose images come as JPEG and PNG
(OCR-VQA, DVQA) rolls one shard series per family. The first family met keeps the plain name
`{dataset}-{000000}`; any other is `{dataset}-{family}-{000000}` (`ocrvqa-png-000000`). A uid seen
twice is rejected (`duplicate_uid`), never written twice. A rerun writes every shard again and the
writer keeps a finished shard whose fingerprint matches (counted as `skipped_shards`).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import BadInput
from ..shards import ShardWriter, shard_name
from ..shards.writer import remove_stale_series
from .common import Reject, Sample, sample_json, task_error


@dataclass
class _Series:
    prefix: str
    shard_id: int = 0
    in_shard: int = 0
    writer: ShardWriter | None = None
    stats: dict = field(default_factory=dict)


class TaskSink:
    def __init__(self, out_dir: str | Path, dataset: str, shard_size: int = 1000):
        self.out_dir, self.dataset, self.shard_size = Path(out_dir), dataset, shard_size
        self.prefix = dataset.replace("+", "plus")
        self.seen = self.out = 0
        self.rejected: dict[str, int] = {}
        self.by_task: dict[str, dict[str, int]] = {}
        self._rejects: list[dict] = []
        self._series: dict[str, _Series] = {}
        self.shards = self.skipped_shards = 0
        self._uids: set[bytes] = set()  # 16-byte digests: a few hundred MB for the largest sets

    def _reject(self, item: Reject):
        self.rejected[item.reason] = self.rejected.get(item.reason, 0) + 1
        if len(self._rejects) < 100_000:
            self._rejects.append({"uid": item.uid, "reason": item.reason, "detail": item.detail[:500]})

    def add(self, item: Sample | Reject):
        self.seen += 1
        if isinstance(item, Reject):
            self._reject(item)
            return
        digest = hashlib.blake2b(item.uid.encode("utf-8", "surrogatepass"), digest_size=16).digest()
        if digest in self._uids:  # the first sample with a uid is kept; later ones are counted, not written
            self._reject(Reject(item.uid, "duplicate_uid", "uid already written by this dataset"))
            return
        obj = sample_json(item, self.dataset)
        err = task_error(obj)
        if err:  # a converter bug, not a data problem: stop loudly with the sample named
            raise BadInput(f"{self.dataset}: sample {item.uid} does not match schema 'task': {err}")
        self._uids.add(digest)
        fam = item.image.ext if item.image else "text"
        series = self._series.get(fam)
        if series is None:
            series = self._series[fam] = _Series(self.prefix if not self._series else f"{self.prefix}-{fam}")
        if series.writer is None:
            series.writer, series.stats = ShardWriter(self.out_dir, series.shard_id, series.prefix), {}
        key = f"{self.out:09d}"
        files: dict[str, bytes | dict] = {item.image.ext: item.image.data} if item.image else {}
        files["json"] = obj
        series.writer.add(key, files, {"key": key, "uid": item.uid, "task": item.task, "lang": item.lang})
        self.out += 1
        series.in_shard += 1
        for per in (self.by_task.setdefault(item.task, {}), series.stats.setdefault(item.task, {})):
            per[item.lang] = per.get(item.lang, 0) + 1
        if series.in_shard >= self.shard_size:
            self._close(series)

    def add_all(self, items: Iterable[Sample | Reject]):
        for item in items:
            self.add(item)

    def _close(self, series: _Series):
        if series.writer is not None:
            series.writer.close({"dataset": self.dataset, "by_task": series.stats})
            self.skipped_shards += bool(getattr(series.writer, "reused", False))
            self.shards += 1
        series.writer, series.in_shard = None, 0
        series.shard_id += 1

    def abort(self):
        for series in self._series.values():
            if series.writer is not None:
                series.writer.abort()

    def finish(self, seconds: float | None = None) -> dict:
        for series in self._series.values():
            if series.in_shard:
                self._close(series)
        written = {shard_name(s.prefix, i) for s in self._series.values() for i in range(s.shard_id)}
        remove_stale_series(self.out_dir, self.prefix, written)  # shards an earlier, longer run left
        n_rej = sum(self.rejected.values())
        if self.seen != self.out + n_rej:
            raise BadInput(f"{self.dataset}: accounting error: in {self.seen} != out {self.out} + rejected {n_rej}")
        self.out_dir.mkdir(parents=True, exist_ok=True)
        # JSON lines, not parquet: `validate DIR` reads every parquet as pair rows.
        with open(self.out_dir / f"{self.prefix}-rejects.jsonl", "w", encoding="utf-8") as f:
            for r in self._rejects:
                f.write(json.dumps(r, ensure_ascii=False) + "\n")
        stats = {
            "stage": "tasks",
            "dataset": self.dataset,
            "in": self.seen,
            "out": self.out,
            "rejected": self.rejected,
            "by_task": self.by_task,
            "shards": self.shards,
            "skipped_shards": self.skipped_shards,
            "seconds": seconds,
        }
        (self.out_dir / f"{self.prefix}-stats.json").write_text(json.dumps(stats, indent=1, sort_keys=True))
        return stats
