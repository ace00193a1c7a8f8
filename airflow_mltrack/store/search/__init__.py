"""One search language for experiments: MLflow's ``search_runs`` filter and order-by syntax, plus splits
(``metrics.validation.accuracy``) and label tags (``tags.baseline IS NOT NULL``).

:mod:`.grammar` reads text into typed nodes (every mistake a :class:`SearchError` naming the token and its
position); :mod:`.keys` says what each key names and accepts; :mod:`.sql` turns nodes into SQL with bound
parameters only. The API's ``filter=``/``order_by=``, the experiments page's filter box, ``mltrack
experiments list`` and the MLflow adapter all go through here (docs/architecture.md, "Search").
"""

from airflow_mltrack.store.search.grammar import (
    SYNTAX_HINT,
    BoolOp,
    Comparison,
    Node,
    OrderKey,
    SearchError,
    parse_columns,
    parse_filter,
    parse_order_by,
)
from airflow_mltrack.store.search.keys import Key
from airflow_mltrack.store.search.sql import TIEBREAKS, Compiler

__all__ = [
    "SYNTAX_HINT",
    "TIEBREAKS",
    "BoolOp",
    "Comparison",
    "Compiler",
    "Key",
    "Node",
    "OrderKey",
    "SearchError",
    "parse_columns",
    "parse_filter",
    "parse_order_by",
]
