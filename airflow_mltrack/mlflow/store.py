"""The MLflow tracking store of ``mltrack://<conn_id>``: MLflow's ``AbstractStore`` over our
:class:`~airflow_mltrack.store.TrackingStore` (mapping and what is lossy: docs/mlflow.md)."""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Collection, Iterator
from contextlib import contextmanager
from types import SimpleNamespace
from typing import Any

from mlflow.entities import (
    LifecycleStage,
    Metric,
    Param,
    Run,
    RunData,
    RunInfo,
    RunStatus,
    RunTag,
    ViewType,
)
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import RESOURCE_DOES_NOT_EXIST
from mlflow.store.entities.paged_list import PagedList
from mlflow.store.tracking.abstract_store import AbstractStore
from mlflow.utils.mlflow_tags import MLFLOW_RUN_NAME, MLFLOW_USER
from mlflow.utils.validation import MAX_METRICS_PER_BATCH, MAX_PARAMS_TAGS_PER_BATCH

from airflow_mltrack.errors import MLTrackError, NotFoundError
from airflow_mltrack.mlflow import mapping as m
from airflow_mltrack.mlflow.exceptions import invalid as _invalid
from airflow_mltrack.mlflow.exceptions import missing, run_key
from airflow_mltrack.mlflow.exceptions import mlflow_errors as _mlflow_errors
from airflow_mltrack.mlflow.store_experiments import ExperimentsMixin
from airflow_mltrack.mlflow.store_inputs import RunInputsMixin, check_active
from airflow_mltrack.mlflow.store_models import LoggedModelsMixin
from airflow_mltrack.store import TrackingStore
from airflow_mltrack.store.payloads import MetricRow, dedupe
from airflow_mltrack.store.reads.experiment_list import MAX_PAGE, ExperimentFilter, experiment_page
from airflow_mltrack.store.reads.mlflow_runs import dataset_records, experiment_rows, run_records
from airflow_mltrack.store.search import parse_filter
from airflow_mltrack.vocabulary import PLACEHOLDER_DATA_TYPE, PLACEHOLDER_DATASET, PLACEHOLDER_FRAMEWORK

#: MLflow's order of ``search_runs`` without ``order_by`` (ties: newest first).
DEFAULT_RUN_ORDER = ("attributes.start_time DESC",)


def _holding_read(method: Callable[..., Any]) -> Callable[..., Any]:
    """``method`` with one read connection held around it: its reads share one pool checkout and ping
    (``StoreBase.read``)."""

    @functools.wraps(method)
    def held(self: Any, *args: Any, **kwargs: Any) -> Any:
        with self.tracking.read():
            return method(self, *args, **kwargs)

    return held


class MLTrackMlflowStore(ExperimentsMixin, LoggedModelsMixin, RunInputsMixin, AbstractStore):
    """MLflow experiments are our projects, MLflow runs our experiments (run_id = our experiment id),
    logged models our models (``m-<model_id>``)."""

    def __init__(self, store_uri: str | None = None, artifact_uri: str | None = None, *, store: Any = None):
        super().__init__()
        self.conn_id = m.conn_id_of(store_uri or "mltrack://")
        self.artifact_uri = artifact_uri
        self._tracking: TrackingStore | None = store
        #: The DAG ids whose runs ``search_runs`` (and whose logged models ``search_logged_models``) may
        #: return (None: every DAG); set by the REST layer.
        self.visible_dag_ids: Collection[str] | None = None
        #: Experiment rows the REST layer read moments ago for this request's auth check (one use each:
        #: :meth:`_row` takes them instead of reading again).
        self.checked_rows: dict[int, dict[str, Any]] = {}
        #: What ``search_runs`` makes of each run's parts (:meth:`_run_parts`) instead of an MLflow ``Run``:
        #: the REST layer writes its JSON straight from them (``rest_json.run_json``). None: ``Run``.
        self.render_run: Callable[..., Any] | None = None

    # -- the store, with the running task as its task link -------------------------------------------
    @property
    def tracking(self) -> TrackingStore:
        """Our store for the connection (resolved once, as ``MLTrackHook`` does); its task link is the
        task instance running now (MLflow caches this object per URI for the whole process)."""
        from airflow_mltrack.hooks.mltrack import MLTrackHook, current_task_link

        if self._tracking is None:
            self._tracking = MLTrackHook(mltrack_conn_id=self.conn_id).get_store()
        self._tracking.task_link = current_task_link()
        return self._tracking

    @contextmanager
    def _run(self, run_id: str) -> Iterator[tuple[TrackingStore, int]]:
        """(our store, the run's experiment id); a run id that is not ours, or names no experiment, is
        MLflow's RESOURCE_DOES_NOT_EXIST "Run '<id>' not found"."""
        experiment_id = run_key(run_id)
        try:
            yield self.tracking, experiment_id
        except NotFoundError as exc:
            if exc.field == "experiment_id" and exc.value == experiment_id:
                raise missing(f"Run '{run_id}' not found") from exc
            raise

    def _row(self, store: TrackingStore, experiment_id: int) -> dict[str, Any]:
        """The experiment's row (no label list), read once per request (NotFoundError when missing)."""
        row = self.checked_rows.pop(experiment_id, None)
        if row is None:
            row = experiment_rows(store, [experiment_id]).get(experiment_id)
        if row is None:
            raise NotFoundError("experiment_id", experiment_id, "no experiment with this id")
        return row

    def artifact_location(self, project_id: int | str, experiment_id: int | str, sub_path: str = "") -> str:
        """Where a run's (or, with ``sub_path`` ``models/<model_id>``, a logged model's) files go: in a task
        ``mltrack://<conn_id>/<experiment_id>/artifacts[/<sub_path>]``; with an ``artifact_uri`` root (the
        REST side gives ``mlflow-artifacts:``) ``<root>/<project_id>/<experiment_id>/artifacts[/<sub_path>]``."""
        from airflow_mltrack.mlflow.artifacts import artifact_uri

        if not self.artifact_uri:
            return artifact_uri(self.conn_id, experiment_id, sub_path)
        root = self.artifact_uri.rstrip("/")
        uri = f"{root}/{int(project_id)}/{int(experiment_id)}/artifacts"
        return f"{uri}/{sub_path.strip('/')}" if sub_path.strip("/") else uri

    def model_location(self, project_id: int | str, logged_id: str) -> str:
        """The ``artifact_location`` of a logged model no run of ours logged: under its project,
        ``<root>/<project_id>/models/<model_id>/artifacts`` (``mltrack://<conn_id>/...`` in a task); its files
        are artifacts owned by the model (``artifacts.model_id``; docs/mlflow.md, "Artifacts")."""
        root = (self.artifact_uri or f"mltrack://{self.conn_id}").rstrip("/")
        return f"{root}/{int(project_id)}/models/{logged_id}/artifacts"

    # -- runs (our experiments) ----------------------------------------------------------------------
    @_mlflow_errors
    def create_run(
        self, experiment_id: str, user_id: str, start_time: int, tags: Any, run_name: str | None
    ) -> Run:
        store = self.tracking
        project_id = int(self._active_project(experiment_id)["project_id"])
        start = None if start_time is None else m.from_millis("start_time", start_time)
        given = {t.key: t.value for t in tags or []}
        link = m.link_fields(given)
        if not link and store.task_link is not None:  # inside a task without the context provider
            tl = store.task_link
            link = {
                "dag_id": tl.dag_id,
                "run_id": tl.run_id,
                "task_id": tl.task_id,
                "map_index": tl.map_index,
            }
            if tl.try_number is not None:
                link["try_number"] = tl.try_number
        name = run_name or given.get(MLFLOW_RUN_NAME)
        if not name:
            from mlflow.utils.name_utils import _generate_random_name

            name = m.run_name_for(link) if link else _generate_random_name()
        model_id = store.register_model(project_id, name, framework=PLACEHOLDER_FRAMEWORK)
        dataset_id = store.register_dataset(project_id, PLACEHOLDER_DATASET, data_type=PLACEHOLDER_DATA_TYPE)
        if start is not None:  # the client's clock, as MLflow keeps it (a resumed run keeps its first)
            link["start_time"] = start
        run = store.create_experiment(project_id, name, model_id, dataset_id, status="Running", **link)
        found = store.get_experiment(run)
        if found["deleted_at"] is not None:  # the task runs again: its run is back
            store.set_experiment_deleted(run, False)
        if found["status"] != "Running":  # a retry of the task: resume the run
            try:
                store.set_status(run, "Running")
            except MLTrackError as exc:
                raise _invalid(f"run {run} cannot run again: {exc}") from exc
        values = {k: v for k, v in given.items() if k not in m.LINK_TAGS}
        values[MLFLOW_RUN_NAME] = name
        if user_id and MLFLOW_USER not in values:
            values[MLFLOW_USER] = user_id
        store.set_tags("experiment", run, values)
        return self.get_run(str(run))

    @_mlflow_errors
    def get_run(self, run_id: str) -> Run:
        experiment_id = run_key(run_id)
        runs = self._runs([experiment_id])
        if not runs:
            raise missing(f"Run '{run_id}' not found")
        return runs[0]

    def _runs(self, experiment_ids: list[int], known: list[dict[str, Any]] | None = None) -> list[Run]:
        """The MLflow runs of these experiments (in this order; a missing one left out), from a few
        batched queries (``reads.mlflow_runs``), not a dozen statements per run; ``known``: their rows
        when the caller has them."""
        store = self.tracking
        records = run_records(store, experiment_ids, known or ())
        entries = {i: self._io_entries(r["row"], r["tags"]) for i, r in records.items()}
        datasets = dataset_records(store, {int(e["dataset_id"]) for es in entries.values() for e in es})
        runs = []
        for experiment_id in experiment_ids:
            record = records.get(experiment_id)
            if record is None:
                continue
            row, stored = record["row"], record["tags"]
            inputs, outputs = self._run_io(entries[experiment_id], stored, datasets)
            if self.render_run is None:
                runs.append(self._run_of(row, stored, record["latest"], inputs, outputs))
            else:
                runs.append(
                    self.render_run(*self._run_parts(row, stored, record["latest"]), (inputs, outputs))
                )
        return runs

    def _run_parts(
        self, row: dict[str, Any], stored: dict[str, str | None], latest: list[dict[str, Any]]
    ) -> tuple[SimpleNamespace, list[dict[str, Any]], dict[str, str], dict[str, str]]:
        """A run's info (``RunInfo``'s fields), final metric values (``key``, ``value``, ``timestamp``,
        ``step``), params and tags: the one mapping of our rows to MLflow's run, rendered by :meth:`_run_of`
        or by :attr:`render_run`."""
        experiment_id = row["experiment_id"]
        tags = {k: v or "" for k, v in stored.items() if k not in m.HIDDEN_TAGS}
        tags.update(m.link_tags(row))
        params = {k: m.param_text(v) for k, v in (row.get("hyperparameters") or {}).items()}
        info = SimpleNamespace(
            run_id=str(experiment_id),
            experiment_id=str(row["project_id"]),
            user_id=tags.get(MLFLOW_USER, ""),
            status=m.TO_MLFLOW[row["status"]],
            start_time=m.millis(row.get("start_time")),
            end_time=m.millis(row.get("end_time")),
            lifecycle_stage=LifecycleStage.DELETED if row.get("deleted_at") else LifecycleStage.ACTIVE,
            artifact_uri=self.artifact_location(row["project_id"], experiment_id),
            run_name=tags.get(MLFLOW_RUN_NAME) or row["name"],
        )
        updated = m.millis(row.get("updated_at")) or 0
        metrics = [
            {"key": x["name"], "value": x["value"], "timestamp": updated, "step": x["step"] or 0}
            for x in latest
        ]
        return info, metrics, params, tags

    def _run_of(
        self,
        row: dict[str, Any],
        stored: dict[str, str | None],
        latest: list[dict[str, Any]],
        inputs: Any,
        outputs: Any,
    ) -> Run:
        info, metrics, params, tags = self._run_parts(row, stored, latest)
        data = RunData(
            metrics=[Metric(x["key"], x["value"], x["timestamp"], x["step"]) for x in metrics],
            params=[Param(k, v) for k, v in params.items()],
            tags=[RunTag(k, v) for k, v in tags.items()],
        )
        return Run(run_info=RunInfo(**vars(info)), run_data=data, run_inputs=inputs, run_outputs=outputs)

    @_mlflow_errors
    def update_run_info(
        self, run_id: str, run_status: Any, end_time: int | None, run_name: str | None
    ) -> Any:
        """The status move (and, for a final status, the client's ``end_time``, not before the run's start)."""
        with self._run(run_id) as (store, experiment_id):
            row = self._row(store, experiment_id)
            check_active(row, run_id)
            current = row["status"]
            ours = current
            if run_status is not None:
                status = RunStatus.to_string(run_status) if isinstance(run_status, int) else str(run_status)
                ours = m.TO_OURS.get(status)
                if ours is None:
                    raise _invalid(f"run_status {status!r} is not one of {', '.join(m.TO_OURS)}")
            end = None
            if end_time is not None and ours in m.FINAL_STATUSES:
                end = m.from_millis("end_time", end_time)
                if end < m.as_utc(row["start_time"]):
                    raise _invalid(
                        f"end_time {end_time} is before the run's start_time {m.millis(row['start_time'])}"
                    )
            owned = os.environ.get(m.TASK_RUN_ENV) == str(experiment_id)  # @task.mltrack's run
            if (current != ours or end is not None) and not (owned and ours != "Running"):
                store.set_status(experiment_id, ours, end_time=end)
            if run_name:
                store.set_tag("experiment", experiment_id, MLFLOW_RUN_NAME, run_name)
        return self.get_run(run_id).info

    @_mlflow_errors
    def delete_run(self, run_id: str) -> None:
        """Marks the experiment deleted (``deleted_at``); its rows stay, lists hide it."""
        with self._run(run_id) as (store, experiment_id):
            store.set_experiment_deleted(experiment_id, True)

    @_mlflow_errors
    def restore_run(self, run_id: str) -> None:
        with self._run(run_id) as (store, experiment_id):
            store.set_experiment_deleted(experiment_id, False)

    # -- logging -------------------------------------------------------------------------------------
    @_mlflow_errors
    def log_batch(self, run_id: str, metrics: Any, params: Any, tags: Any) -> None:
        metrics, params, tags = list(metrics or []), list(params or []), list(tags or [])
        if len(metrics) > MAX_METRICS_PER_BATCH:
            raise _invalid(f"A batch logging request can contain at most {MAX_METRICS_PER_BATCH} metrics")
        if len(params) + len(tags) > MAX_PARAMS_TAGS_PER_BATCH:
            raise _invalid(f"A batch can contain at most {MAX_PARAMS_TAGS_PER_BATCH} params and tags")
        reserved = sorted({t.key for t in tags} & m.HIDDEN_TAGS)
        if reserved:
            raise _invalid(
                f"Tag key {reserved[0]!r} is reserved by mltrack:// (it holds the run's inputs/outputs)"
            )
        with self._run(run_id) as (store, experiment_id):
            row = self._row(store, experiment_id)
            check_active(row, run_id)
            if row["status"] in ("Completed", "Cancelled"):
                raise _invalid(f"The run {run_id} must be in the 'active' state; it is {row['status']}")
            batch: list[MetricRow] = []
            by_model: dict[int, list[dict[str, Any]]] = {}
            if metrics:  # checked (times, model ids) before anything is written
                default = next((t.value for t in tags if t.key == m.DEFAULT_SPLIT_TAG), None)
                if not default and not all(m.has_split_prefix(x.key) for x in metrics):
                    default = store.tag_values("experiment", experiment_id).get(m.DEFAULT_SPLIT_TAG)
                batch = [
                    MetricRow(
                        x.key,
                        float(x.value),
                        int(x.step or 0),
                        m.split_of(x.key, default),
                        None if x.timestamp is None else m.from_millis("timestamp", x.timestamp),
                    )
                    for x in metrics
                ]
                by_model = self._metric_models(store, metrics)
            if params:
                self._log_params(store, experiment_id, row.get("hyperparameters") or {}, params)
            if tags:
                values = {t.key: t.value for t in tags if t.key not in m.LINK_TAGS}
                store.set_tags("experiment", experiment_id, values)
            if batch:
                store.log_metric_rows(experiment_id, dedupe(batch))
                for model_id, entries in by_model.items():
                    self._link_model_metrics(store, model_id, experiment_id, entries)

    @staticmethod
    def _log_params(store: TrackingStore, experiment_id: int, current: dict[str, Any], params: Any) -> None:
        """MLflow params are write-once: the same value again is fine, another value is refused."""
        new: dict[str, Any] = {}
        for param in params:
            value = str(param.value)
            before = new.get(param.key, current.get(param.key))
            if before is not None and m.param_text(before) != value and before != "***":
                raise _invalid(
                    f"Changing param values is not allowed. Param with key='{param.key}' was already "
                    f"logged with value='{m.param_text(before)}' for run ID='{experiment_id}'. "
                    f"Attempted logging new value '{value}'."
                )
            new[param.key] = m.param_value(value)
        store.log_hyperparameters(experiment_id, new)

    @_mlflow_errors
    def delete_tag(self, run_id: str, key: str) -> None:
        with self._run(run_id) as (store, experiment_id):
            check_active(self._row(store, experiment_id), run_id)
            if not store.delete_tag("experiment", experiment_id, key):
                raise MlflowException(
                    f"No tag with name: {key} in run with id {run_id}", error_code=RESOURCE_DOES_NOT_EXIST
                )

    @_mlflow_errors
    def get_metric_history(
        self, run_id: str, metric_key: str, max_results: int | None = None, page_token: str | None = None
    ) -> PagedList:
        with self._run(run_id) as (store, experiment_id):
            default = store.tag_values("experiment", experiment_id).get(m.DEFAULT_SPLIT_TAG)
            points = store.metric_history(experiment_id, metric_key, m.split_of(metric_key, default))
        history = [
            Metric(metric_key, p["value"], m.millis(p.get("recorded_at")) or 0, p["step"] or 0)
            for p in points
        ]
        if not str(page_token or 0).isdigit():
            raise _invalid(f"Invalid page token: {page_token!r}")
        start = int(page_token or 0)
        if max_results is None:
            return PagedList(history[start:], None)
        end = start + max_results
        return PagedList(history[start:end], str(end) if end < len(history) else None)

    # -- search --------------------------------------------------------------------------------------
    @_mlflow_errors
    @_holding_read
    def _search_runs(
        self,
        experiment_ids: list[str],
        filter_string: str | None,
        run_view_type: int,
        max_results: int,
        order_by: list[str] | None,
        page_token: str | None,
    ) -> tuple[list[Run], str | None]:
        """Through our search language (MLflow's syntax); page tokens are offsets."""
        if not experiment_ids:
            return [], None
        lifecycle = {ViewType.DELETED_ONLY: "deleted", ViewType.ALL: "all"}.get(run_view_type, "active")
        names = sorted({self._project(e)["name"] for e in experiment_ids})
        project = None
        search = ""
        if len(names) == 1:  # the project's own filter: a join PostgreSQL estimates well (an index plan)
            project = names[0]
        else:
            search = (
                "attributes.project IN (" + ", ".join("'" + n.replace("'", "''") + "'" for n in names) + ")"
            )
        if filter_string and filter_string.strip():
            parse_filter(filter_string)  # a mistake is reported at its position in the caller's text
            search = f"{search} AND ({filter_string})" if search else filter_string
        offset = int(page_token or 0) if str(page_token or 0).isdigit() else -1
        if offset < 0:
            raise _invalid(f"Invalid page token: {page_token!r}")
        limit = max(1, min(int(max_results), MAX_PAGE))
        where = ExperimentFilter(
            project=project,
            search=search or None,
            order_by=tuple(order_by or DEFAULT_RUN_ORDER),
            limit=limit,
            offset=offset,
            order="desc",
            lifecycle=lifecycle,
            tiebreak=_tiebreak(order_by),
            count=False,  # MLflow's pages carry no total: one row past the page tells if more follow
            labels=False,  # _runs reads the tags with their values
        )
        page = experiment_page(self.tracking, where, self.visible_dag_ids)
        runs = self._runs([int(item["experiment_id"]) for item in page["items"]], page["items"])
        return runs, (str(offset + len(runs)) if page["more"] and runs else None)


def _tiebreak(order_by: Any) -> str:
    """MLflow's order on ties (start_time newest first, then the run id as text) unless a metric orders
    the page: then ties go newest id first, which keeps the index walk on ``metric_latest`` that stops
    after the page (MLflow's text tie-break made PostgreSQL sort every match: 37 -> 391 ms at 100k runs)."""
    keys = [str(k).strip().lower() for k in order_by or ()]
    return "newest" if any(k.startswith(("metrics.", "metric.", "`metrics`")) for k in keys) else "mlflow"
