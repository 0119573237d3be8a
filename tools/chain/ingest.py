"""Head office: a store's CSV export (``smartshelf store export-interactions``) to Parquet.

Every row is checked (columns, a known segment or ``generic``, a known outcome, a numeric time); a bad
row stops the file with its line number and nothing is written.
"""

from __future__ import annotations

import csv
from pathlib import Path

from admin_web.store_export import INTERACTION_COLUMNS
from device.recommend.data import SEGMENT_LABELS
from smartshelf.core.errors import ConfigError
from tools.chain.schema import OUTCOMES, arrow_schema


def csv_to_parquet(src: Path, out: Path) -> int:
    import pyarrow as pa
    import pyarrow.parquet as pq

    columns: dict[str, list] = {c: [] for c in INTERACTION_COLUMNS}
    segments = {*SEGMENT_LABELS, "generic"}
    with open(src, newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        if tuple(reader.fieldnames or ()) != INTERACTION_COLUMNS:
            raise ConfigError(f"{src}: header must be {','.join(INTERACTION_COLUMNS)}, got {reader.fieldnames}")
        for line, row in enumerate(reader, 2):
            if row["segment"] not in segments:
                raise ConfigError(f"{src} line {line}: segment {row['segment']!r} is not a segment label or generic")
            if row["outcome"] not in OUTCOMES:
                raise ConfigError(f"{src} line {line}: outcome {row['outcome']!r}; expected one of {OUTCOMES}")
            try:
                t = float(row["time"])
            except ValueError:
                raise ConfigError(f"{src} line {line}: time {row['time']!r} is not unix seconds") from None
            if not row["store"] or not row["item"]:
                raise ConfigError(f"{src} line {line}: store and item must not be empty")
            for c in INTERACTION_COLUMNS:
                columns[c].append(t if c == "time" else row[c])
    out.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table(columns, schema=arrow_schema()), out)
    return len(columns["store"])
