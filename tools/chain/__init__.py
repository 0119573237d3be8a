"""The chain's head office (issue 19): stores' anonymous interactions in, one signed factor file per store
out, trained on Apache Spark. A development/ops tool: nothing here ships to a shelf or a store's hub, and
nothing shipped imports pyspark or pyarrow (an import-linter contract says so).

- :mod:`tools.chain.schema`: the interaction table (store, shelf, segment, item, time, outcome) and the
  catalogue map (store, item -> chain item), as Parquet;
- :mod:`tools.chain.ingest`: a store's CSV export (``smartshelf store export-interactions`` on the hub)
  to Parquet;
- :mod:`tools.chain.simulate`: a chain simulator sized from MovieLens' segment mix and the Myntra catalogue;
- :mod:`tools.chain.trainer`: the Spark trainer (MLlib ALS, per-store shrinkage, signed per-store files);
- :mod:`tools.chain.scale` and :mod:`tools.chain.pool`: the measurements in docs/store-and-chain.md.
"""
