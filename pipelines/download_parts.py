"""The pieces we plug into img2dataset: a guarded downloader, a checking resizer, an atomic writer.

img2dataset keeps fetching, resizing and tar writing; we only swap three seams it exposes:
- `GuardedDownloader` installs the netguard opener in each worker process before a shard runs
  (img2dataset fetches with urllib.request.urlopen, which uses the installed opener), so every
  connection and every redirect hop is address-checked, and non-http(s) URLs are refused.
- `CheckedResizer` runs qwenvl_data.images checks (pixel limit before decode, full decode, real
  sizes) before img2dataset's own resizer, and returns the failure reason as the error message.
- `AtomicShardWriter` writes the tar and sidecar parquet under temporary names, rewrites them sorted by
  key with fixed member metadata (the same input gives the same bytes), and renames them when
  the shard is complete; img2dataset writes `{shard}_stats.json` after that, which marks it done.
  Each sample json carries `"schema": "sample"` (schemas/sample.schema.json).

All three are module-level classes: they are pickled into spawn/ray/spark workers.
"""

from __future__ import annotations

import json
import os

import fsspec
import numpy as np
import pyarrow.parquet as pq
import webdataset as wds
from img2dataset.downloader import Downloader
from img2dataset.resizer import Resizer
from img2dataset.writer import BufferedParquetWriter

from qwenvl_data import netguard, storage
from qwenvl_data.images import ImageLimits, ImageRejected, inspect_image
from qwenvl_data.shards.writer import write_sorted_tar


class GuardedDownloader(Downloader):
    """img2dataset's Downloader, with every fetch in its process going through the address policy."""

    def __init__(self, policy: netguard.AddressPolicy, **kwargs):
        super().__init__(**kwargs)
        self.policy = policy

    def __call__(self, row):
        netguard.install(self.policy)
        return super().__call__(row)


class CheckedResizer:
    """Our safety and geometry checks on the downloaded bytes, then img2dataset's Resizer."""

    def __init__(self, limits: ImageLimits, **resizer_kwargs):
        self.limits = limits
        self.resizer = Resizer(**resizer_kwargs)

    def __call__(self, img_stream, blurring_bbox_list=None):
        data = img_stream.read()
        try:
            inspect_image(data, self.limits)
        except ImageRejected as e:
            return None, None, None, None, None, str(e)
        img_stream.seek(0)
        return self.resizer(img_stream, blurring_bbox_list)


def shard_base(output_folder: str, shard_id: int, oom_shard_count: int) -> str:
    return f"{output_folder}/{shard_id:0{oom_shard_count}d}"


class AtomicShardWriter:
    """img2dataset's webdataset writer, but nothing appears under its final name until complete."""

    def __init__(self, shard_id, output_folder, save_caption, oom_shard_count, schema, encode_format):
        base = shard_base(output_folder, shard_id, oom_shard_count)
        self.fs, _ = fsspec.core.url_to_fs(output_folder)
        name = os.path.basename(base)
        # On an object store an object appears whole when its upload completes: final names directly.
        tmp = base if storage.is_remote(output_folder) else f"{output_folder}/.tmp-{os.getpid()}-{name}"
        self.paths = {ext: (f"{tmp}{ext}", f"{base}{ext}") for ext in (".tar", ".parquet")}
        self.tar_fd = self.fs.open(self.paths[".tar"][0], "wb")
        self.tarwriter = wds.TarWriter(self.tar_fd)
        self.parquet = BufferedParquetWriter(self.paths[".parquet"][0], schema, 100)
        self.save_caption = save_caption
        self.encode_format = encode_format

    def write(self, img_str, key, caption, meta):
        if img_str is not None:
            sample = {"__key__": key, self.encode_format: img_str}
            if self.save_caption:
                sample["txt"] = str(caption) if caption is not None else ""
            doc = {"schema": "sample", "image_format": self.encode_format}
            doc.update({k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in meta.items()})
            sample["json"] = json.dumps(doc, ensure_ascii=False, sort_keys=True)
            self.tarwriter.write(sample)
        self.parquet.write(meta)

    def close(self):
        self.parquet.close()
        self.tarwriter.close()
        self.tar_fd.close()
        if "file" in self.fs.protocol:  # same input, same bytes: samples sorted by key, fixed metadata
            make_deterministic(*(self.paths[ext][0] for ext in (".tar", ".parquet")))
        for ext in (".parquet", ".tar"):  # the tar last: a shard's tar implies its parquet
            if self.paths[ext][0] != self.paths[ext][1]:
                self.fs.mv(*self.paths[ext])


def make_deterministic(tar: str, parquet: str):
    """Rewrite img2dataset's tar (wall-clock mtimes, mode 0444, its owner, samples in the order the
    threads finished) and its sidecar parquet (rows in that order) sorted by key with fixed metadata."""
    sorted_tar = f"{tar}.sorted"
    write_sorted_tar(tar, sorted_tar)
    os.replace(sorted_tar, tar)
    table = pq.read_table(parquet)
    if "key" in table.column_names:
        pq.write_table(table.sort_by("key"), parquet)
