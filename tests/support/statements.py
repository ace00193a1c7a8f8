"""Which SQL statements a store runs: for tests that bound a read's or a write's statement count."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import event

from airflow_mltrack.store import TrackingStore


@contextmanager
def statements(store: TrackingStore) -> Iterator[list[str]]:
    """The SQL statements the store's engine runs inside the block."""
    seen: list[str] = []

    def before(_conn, _cursor, statement, _parameters, _context, _executemany) -> None:  # noqa: ANN001
        seen.append(statement)

    event.listen(store.engine, "before_cursor_execute", before)
    try:
        yield seen
    finally:
        event.remove(store.engine, "before_cursor_execute", before)
