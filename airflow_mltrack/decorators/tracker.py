"""Tracker: what a ``@task.mltrack`` function receives as its ``tracker`` argument.

Metric rows are validated when logged (a bad payload is the caller's bug and raises at once) and kept in a
buffer that is written in one transaction per batch: when ``flush_every`` rows are waiting, when
``flush_seconds`` have passed since the last write, and at the end of the task. Logging one value per
epoch therefore costs a list append, not a round trip.

If the tracking store cannot be reached (at the start, or at any write), the tracker keeps everything in
memory, logs one warning, and the decorator pushes the unsaved rows to the XCom key ``mltrack_unsaved``
(rows payload: ``[{"name", "value", "step", "evaluation_set"}]``) so they can be backfilled later. The
Task SDK sends XComs as strict JSON, which has no NaN or infinity: those values travel as the strings
``"NaN"``, ``"Infinity"`` and ``"-Infinity"`` (``store.payloads.NON_FINITE``), which the backfill turns back into
floats. The training itself never fails because tracking is down.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from airflow_mltrack.store.payloads import MetricRow, dedupe, json_number, parse_metric, parse_metrics
from airflow_mltrack.vocabulary import XCOM_UNSAVED

if TYPE_CHECKING:
    from airflow_mltrack.store import TrackingStore

log = logging.getLogger(__name__)

DEFAULT_FLUSH_EVERY = 1000
DEFAULT_FLUSH_SECONDS = 10.0


def is_store_unavailable(exc: BaseException) -> bool:
    """True for errors that mean "the tracking database cannot be reached", not "the input is wrong"."""
    from sqlalchemy.exc import DBAPIError, SQLAlchemyError

    from airflow_mltrack.errors import MLTrackError, SchemaOutOfDateError

    if isinstance(exc, SchemaOutOfDateError):
        return True
    if isinstance(exc, MLTrackError):
        return False
    if isinstance(exc, DBAPIError):
        # IntegrityError/DataError are about the data; everything else is the connection or the server.
        from sqlalchemy.exc import DataError, IntegrityError

        return not isinstance(exc, IntegrityError | DataError)
    return isinstance(exc, SQLAlchemyError | OSError | TimeoutError | ImportError)


class Tracker:
    """Buffered metric and parameter logging for one experiment.

    ``experiment_id`` is ``None`` when the tracking store could not be reached at the start of the task;
    everything logged is then kept for the ``mltrack_unsaved`` XCom.
    """

    def __init__(
        self,
        store: TrackingStore | None,
        experiment_id: int | None,
        *,
        evaluation_set: str = "validation",
        flush_every: int = DEFAULT_FLUSH_EVERY,
        flush_seconds: float | None = DEFAULT_FLUSH_SECONDS,
    ) -> None:
        self._store = store
        self._experiment_id = experiment_id
        self.evaluation_set = evaluation_set
        self.flush_every = max(1, int(flush_every))
        self.flush_seconds = flush_seconds
        self._buffer: list[MetricRow] = []
        self._params: dict[str, Any] = {}
        self._last_flush = time.monotonic()
        self._warned = False
        self.rows_written = 0

    # -- public API (what a training function calls) ---------------------------------------------
    @property
    def experiment_id(self) -> int | None:
        """Id of the experiment this task logs into (None when the tracking store is unreachable)."""
        return self._experiment_id

    @property
    def available(self) -> bool:
        """False once the tracking store has failed: everything is kept for ``mltrack_unsaved``."""
        return self._store is not None and self._experiment_id is not None

    def log_metric(
        self, name: str, value: float, step: int | None = None, evaluation_set: str | None = None
    ) -> None:
        """Log one value (e.g. ``tracker.log_metric("loss", 0.31, step=epoch)``); a bad argument raises an
        MLTrackError naming it (``log_metric('acc') value='high': must be a number, not str``)."""
        self._add(parse_metric(name, value, evaluation_set or self.evaluation_set, step))

    def log_metrics(self, payload: Any, evaluation_set: str | None = None, step: int | None = None) -> None:
        """Log a payload of any shape the store accepts (``{"acc": 0.9}``, curves, splits, rows); errors name
        the payload as ``log_metrics`` (``log_metrics.acc='high': must be a number, not str``)."""
        self._add(parse_metrics(payload, evaluation_set or self.evaluation_set, step, field="log_metrics"))

    def log_rows(self, rows: list[MetricRow]) -> None:
        """Buffer rows parsed already (``store.payloads.parse_metrics``), e.g. a returned payload."""
        self._add(list(rows))

    def log_params(self, params: Mapping[str, Any]) -> None:
        """Merge ``params`` into the experiment's hyperparameters (written at once; params are few).

        Checked as the store checks them (JSON values, no NaN), also while the store is unavailable: a
        value the store would refuse must not break the ``mltrack_unsaved`` push of everything else.
        """
        from airflow_mltrack.store import validation as v

        if not isinstance(params, Mapping):
            from airflow_mltrack.errors import MLTrackError

            raise MLTrackError("params", params, "must be a dict")
        v.json_object("params", params)
        self._params.update(params)
        if self.available:
            try:
                self._store.log_hyperparameters(self._experiment_id, dict(params))  # type: ignore[union-attr]
                for key in params:
                    self._params.pop(key, None)
            except Exception as exc:
                if not is_store_unavailable(exc):
                    raise
                self._lose_store(exc)

    def flush(self) -> int:
        """Write the buffered rows now (one transaction); returns rows written (0 when unavailable)."""
        self._last_flush = time.monotonic()
        if not self._buffer or not self.available:
            return 0
        batch = dedupe(self._buffer)
        try:
            written = self._store.log_metric_rows(self._experiment_id, batch)  # type: ignore[union-attr]
        except Exception as exc:
            if not is_store_unavailable(exc):
                raise
            self._lose_store(exc)
            return 0
        self._buffer.clear()
        self.rows_written += written
        return written

    # -- for the decorator -----------------------------------------------------------------------
    def unsaved_rows(self) -> list[dict[str, Any]]:
        """Rows not written to the store, in the rows shape, as strict JSON (NaN/inf spelled as strings)."""
        return [
            {
                "name": r.name,
                "value": json_number(r.value),
                "step": r.step,
                "evaluation_set": r.evaluation_set,
            }
            for r in dedupe(self._buffer)
        ]

    def unsaved_params(self) -> dict[str, Any]:
        return dict(self._params)

    # -- internals -------------------------------------------------------------------------------
    def _add(self, rows: list[MetricRow]) -> None:
        self._buffer.extend(rows)
        if not self.available:
            return
        due = len(self._buffer) >= self.flush_every or (
            self.flush_seconds is not None and time.monotonic() - self._last_flush >= self.flush_seconds
        )
        if due:
            self.flush()

    def _lose_store(self, exc: BaseException) -> None:
        self._store = None
        if not self._warned:
            self._warned = True
            log.warning(
                "mltrack: the tracking store is unavailable (%s: %s); metrics are kept and pushed to the "
                "XCom %r for a later backfill. The task continues.",
                type(exc).__name__,
                _first_line(exc),
                XCOM_UNSAVED,
            )


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:300] if text else ""
