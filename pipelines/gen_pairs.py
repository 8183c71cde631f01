"""`qwenvl-data gen-pairs`: write LAION-layout noisy pair metadata (demo and benchmark input)."""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq

from qwenvl_data.outdir import own_output
from qwenvl_data.synthetic_pairs import generate


def add_arguments(p):
    p.add_argument("--output", required=True, metavar="DIR")
    p.add_argument("--rows", type=int, default=20_000)
    p.add_argument("--files", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--row-group", type=int, default=65_536, help="rows per parquet row group")


def run(args) -> int:
    out = Path(args.output)
    per = -(-args.rows // args.files)
    table = generate(args.rows, args.seed)
    with own_output(out, stage="gen-pairs"):
        for i in range(args.files):
            part = table.slice(i * per, per)
            pq.write_table(part, out / f"laion-{i:05d}.parquet", row_group_size=args.row_group)
    print(f"wrote {table.num_rows} rows in {args.files} files under {out}")
    return 0
