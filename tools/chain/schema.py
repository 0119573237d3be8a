"""The head office's tables. An interaction is anonymous by construction: a segment label (or
``generic``), never a person; the only identifiers are the store's, the shelf's and the item's.

interactions (Parquet, one file or a folder of files, e.g. one per store and day):

=======  =======  ====================================================================
column   type     meaning
=======  =======  ====================================================================
store    string   the store's id in the chain
shelf    string   the shelf's name in its store
segment  string   ``female/25-34``... (16 labels) or ``generic`` (not personalised)
item     string   the store's own item id (its factor-file id / product item_id)
time     double   unix seconds (UTC)
outcome  string   ``bought`` (a sale attributed to a pick or a segment), ``shown`` (a pick lit)
=======  =======  ====================================================================

catalogue map (Parquet): ``store``, ``item`` (the store's id), ``chain_item`` (the chain's id).
"""

from __future__ import annotations

from typing import Any

from admin_web.store_export import INTERACTION_COLUMNS  # written by the hub

MAP_COLUMNS = ("store", "item", "chain_item")
__all__ = ["INTERACTION_COLUMNS", "MAP_COLUMNS", "OUTCOMES", "OUTCOME_WEIGHTS", "arrow_schema", "map_schema"]

OUTCOMES = ("bought", "shown")
#: How much each outcome counts as evidence of preference in the implicit-feedback fit: a pick that was
#: only shown says little (the shelf chose it), a sale says the most.
OUTCOME_WEIGHTS = {"bought": 1.0, "shown": 0.0}


def arrow_schema() -> Any:
    import pyarrow as pa

    return pa.schema([
        ("store", pa.string()), ("shelf", pa.string()), ("segment", pa.string()), ("item", pa.string()),
        ("time", pa.float64()), ("outcome", pa.string()),
    ])


def map_schema() -> Any:
    import pyarrow as pa

    return pa.schema([("store", pa.string()), ("item", pa.string()), ("chain_item", pa.string())])
