"""MLflow 3 logged models on ``mltrack://``: a mixin of :class:`~airflow_mltrack.mlflow.store.MLTrackMlflowStore`.

A logged model is a row of our ``models`` (id ``m-<model_id>``, version the same text), of the project the
MLflow experiment is, logged by the run (our experiment) ``source_run_id`` or by none (then its files have no
place: see ``model_location``; a ``source_run_id`` that is not a run of ours is kept as text in a hidden model
tag, as MLflow keeps any text there) (docs/mlflow.md)."""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING, Any

from mlflow.entities import LoggedModel, LoggedModelStatus, Metric
from mlflow.exceptions import MlflowException
from mlflow.store.entities.paged_list import PagedList
from mlflow.utils.search_utils import SearchLoggedModelsUtils

from airflow_mltrack.errors import MLTrackError, NotFoundError
from airflow_mltrack.mlflow import mapping as m
from airflow_mltrack.mlflow.exceptions import invalid, missing, mlflow_errors, run_key
from airflow_mltrack.store.logged_models import MAX_MODEL_PAGE
from airflow_mltrack.store.tags import MAX_TAG_VALUE_LEN
from airflow_mltrack.vocabulary import PLACEHOLDER_FRAMEWORK

if TYPE_CHECKING:
    from airflow_mltrack.store import TrackingStore

#: The run tag MLflow's autologging sets (``sklearn``, ...): a logged model's framework when present.
AUTOLOGGING_TAG = "mlflow.autologging"
#: The framework of a logged model whose run names none.
DEFAULT_FRAMEWORK = "mlflow"
#: MLflow 2's run tag listing the models logged (``record_logged_model``).
LOG_MODEL_HISTORY_TAG = "mlflow.log-model.history"
#: A hidden model tag: the ``source_run_id`` given that is not a run of ours (MLflow does not check it).
SOURCE_RUN_TAG = "mltrack.source_run_id"
_CLAUSE = re.compile(
    r"\s*(?:attributes\.)?(name|status|source_run_id|model_type)\s*(=|!=)\s*'((?:[^']|'')*)'\s*",
    re.IGNORECASE,
)
_AND = re.compile(r"\s+AND\s+", re.IGNORECASE)


def parse_model_filter(text: str | None) -> dict[str, tuple[str, str]]:
    """``name = 'x' AND status = 'READY'`` -> ``{"name": ("=", "x"), "status": ("=", "READY")}``: the
    subset of MLflow's logged-model filter this store answers (``name``, ``status``, ``source_run_id``,
    ``model_type`` with ``=`` / ``!=``, joined by AND)."""
    found: dict[str, tuple[str, str]] = {}
    if not text or not text.strip():
        return found
    for clause in _AND.split(text.strip()):
        match = _CLAUSE.fullmatch(clause)
        if match is None:
            raise invalid(
                f"search_logged_models: unsupported filter {clause!r} (mltrack:// answers name, status, "
                "source_run_id, model_type with = or != and 'quoted' values, joined by AND)"
            )
        found[match.group(1).lower()] = (match.group(2), match.group(3).replace("''", "'"))
    return found


class LoggedModelsMixin:
    """``create_logged_model`` ... ``search_logged_models``: MLflow's signatures (abstract_store.py)."""

    tracking: TrackingStore
    visible_dag_ids: Any

    if TYPE_CHECKING:

        def _project_id(self, experiment_id: Any) -> int: ...
        def artifact_location(self, project_id: int, experiment_id: int, sub_path: str = "") -> str: ...
        def model_location(self, project_id: int, logged_id: str) -> str: ...

    # -- reads ----------------------------------------------------------------------------------------
    def _live_model_row(self, model_id: str, allow_deleted: bool = False) -> dict[str, Any]:
        row = self.tracking.get_model(m.model_id_of(model_id))
        if row["deleted_at"] is not None and not allow_deleted:
            raise missing(f"Logged model with ID '{model_id}' not found (deleted)")
        return row

    def _logged_model(self, row: dict[str, Any]) -> LoggedModel:
        store = self.tracking
        model_id = int(row["model_id"])
        tags = {k: val or "" for k, val in store.tag_values("model", model_id).items()}
        metrics = self._model_metrics(store, model_id, tags.pop(m.MODEL_METRICS_TAG, None))
        source = row["source_experiment_id"]
        given_source = tags.pop(SOURCE_RUN_TAG, None)
        if source is not None:
            location = self.artifact_location(
                row["project_id"], source, f"models/{m.logged_model_id(model_id)}"
            )
        else:
            location = self.model_location(row["project_id"], m.logged_model_id(model_id))
        return LoggedModel(
            experiment_id=str(row["project_id"]),
            model_id=m.logged_model_id(model_id),
            name=row["name"],
            artifact_location=location,
            creation_timestamp=m.millis(row.get("created_at")) or 0,
            last_updated_timestamp=m.millis(row.get("updated_at")) or 0,
            model_type=row.get("model_type"),
            source_run_id=str(source) if source is not None else given_source or None,
            status=LoggedModelStatus(m.MODEL_TO_MLFLOW[row["status"]]),
            tags=tags,
            params=dict(row.get("params") or {}),
            metrics=metrics,
        )

    @staticmethod
    def _model_metrics(store: TrackingStore, model_id: int, entries_by_run: str | None) -> list[Metric]:
        """The metrics logged with this model id: per run and key (and dataset), its final point in that
        run (value, step, and time: the metric's ``recorded_at``)."""
        found: list[Metric] = []
        for run_id, entries in sorted(_metric_entries(entries_by_run).items()):
            try:
                split = store.tag_values("experiment", int(run_id)).get(m.DEFAULT_SPLIT_TAG)
            except (NotFoundError, ValueError):
                continue
            for entry in entries:
                points = store.metric_history(int(run_id), entry["key"], m.split_of(entry["key"], split))
                if not points:
                    continue
                last = points[-1]
                found.append(
                    Metric(
                        entry["key"],
                        last["value"],
                        m.millis(last.get("recorded_at")) or 0,
                        last["step"] or 0,
                        model_id=m.logged_model_id(model_id),
                        dataset_name=entry.get("dataset_name"),
                        dataset_digest=entry.get("dataset_digest"),
                        run_id=str(run_id),
                    )
                )
        return found

    @mlflow_errors
    def get_logged_model(self, model_id: str, allow_deleted: bool = False) -> LoggedModel:
        return self._logged_model(self._live_model_row(model_id, allow_deleted))

    @mlflow_errors
    def search_logged_models(
        self,
        experiment_ids: list[str],
        filter_string: str | None = None,
        datasets: list[dict[str, Any]] | None = None,
        max_results: int | None = None,
        order_by: list[dict[str, Any]] | None = None,
        page_token: str | None = None,
    ) -> PagedList[LoggedModel]:
        """Newest first; filters: see :func:`parse_model_filter`; ``datasets``: models with a metric logged on
        one of them (as MLflow's filter, on the page); ``order_by``: creation_timestamp descending only. Models
        logged by a run of a DAG not in ``visible_dag_ids`` are not listed."""
        if any(not isinstance(d, dict) or not d.get("dataset_name") for d in datasets or []):
            raise invalid(f"search_logged_models: every dataset needs a dataset_name: {datasets!r}")
        if order_by and any(
            o.get("field_name") != "creation_timestamp" or o.get("ascending", False) for o in order_by
        ):
            raise invalid("search_logged_models: mltrack:// orders by creation_timestamp descending only")
        where = parse_model_filter(filter_string)
        offset = int(page_token or 0) if str(page_token or 0).isdigit() else -1
        if offset < 0:
            raise invalid(f"Invalid page token: {page_token!r}")
        limit = max(1, min(int(max_results or 100), MAX_MODEL_PAGE))
        project_ids = [self._project_id(e) for e in experiment_ids]
        equal = {k: val for k, (op, val) in where.items() if op == "="}
        statuses = [m.MODEL_TO_OURS.get(equal["status"].upper(), "?")] if "status" in equal else []
        if statuses == ["?"]:
            raise invalid(f"status {equal['status']!r} is not one of {', '.join(m.MODEL_TO_OURS)}")
        source = m.experiment_id_of(equal["source_run_id"]) if "source_run_id" in equal else None
        rows = self.tracking.find_models(
            project_ids,
            names=[equal["name"]] if "name" in equal else (),
            statuses=statuses,
            source_experiment_id=source,
            exclude_framework=PLACEHOLDER_FRAMEWORK,
            visible_dag_ids=self.visible_dag_ids,
            limit=limit + 1,
            offset=offset,
        )
        models = [self._logged_model(r) for r in rows[:limit]]
        for key, (op, value) in where.items():  # the != clauses and model_type, on the page
            models = [x for x in models if (str(_attr(x, key)) == value) == (op == "=")]
        if datasets:
            models = SearchLoggedModelsUtils.filter_logged_models(models, None, datasets)
        return PagedList(models, str(offset + limit) if len(rows) > limit else None)

    # -- metrics logged with a model_id (MLflow 3) ----------------------------------------------------
    @staticmethod
    def _metric_models(store: TrackingStore, metrics: list[Any]) -> dict[int, list[dict[str, Any]]]:
        """``{our model id: [{"key", "dataset_name", "dataset_digest"}]}`` of the metrics given a ``model_id``
        (each model checked to exist, before anything of the batch is written)."""
        found: dict[int, list[dict[str, Any]]] = {}
        for metric in metrics:
            logged = getattr(metric, "model_id", None)
            if not logged:
                continue
            model_id = m.model_id_of(logged)
            if model_id not in found:
                store.get_model(model_id)
            entry = {
                "key": metric.key,
                "dataset_name": getattr(metric, "dataset_name", None) or None,
                "dataset_digest": getattr(metric, "dataset_digest", None) or None,
            }
            if entry not in found.setdefault(model_id, []):
                found[model_id].append(entry)
        return found

    @staticmethod
    def _link_model_metrics(
        store: TrackingStore, model_id: int, experiment_id: int, entries: list[dict[str, Any]]
    ) -> None:
        """Remember that these metrics of the run were logged with the model (a hidden model tag, JSON
        ``{run_id: [{"key", "dataset_name", "dataset_digest"}]}``)."""
        by_run = _metric_entries(store.tag_values("model", model_id).get(m.MODEL_METRICS_TAG))
        known = by_run.setdefault(str(experiment_id), [])
        added = [e for e in entries if e not in known]
        if added:
            known.extend(added)
            store.set_tag("model", model_id, m.MODEL_METRICS_TAG, json.dumps(by_run, sort_keys=True))

    # -- writes ---------------------------------------------------------------------------------------
    @mlflow_errors
    def create_logged_model(
        self,
        experiment_id: str,
        name: str | None = None,
        source_run_id: str | None = None,
        tags: Any = None,
        params: Any = None,
        model_type: str | None = None,
    ) -> LoggedModel:
        """A Pending model; ``source_run_id`` None or "" (MLflow's client sends "" for none): no run logged it,
        its ``artifact_location`` is under the project and holds no files (docs/mlflow.md, what is lossy)."""
        store = self.tracking
        project_id = self._project_id(experiment_id)
        source, framework = None, DEFAULT_FRAMEWORK
        tags = {t.key: t.value for t in tags or []}
        if source_run_id:
            try:
                source = run_key(source_run_id)
                store.get_experiment(source)
                known = store.tag_values("experiment", source)
            except (MLTrackError, MlflowException):  # not a run of ours: kept as text, as MLflow keeps it
                source, known = None, {}
                tags[SOURCE_RUN_TAG] = str(source_run_id)
            framework = known.get(AUTOLOGGING_TAG) or DEFAULT_FRAMEWORK
        if not name:
            from mlflow.utils.name_utils import _generate_random_name

            name = _generate_random_name()
        model_id = store.create_logged_model(
            project_id,
            name,
            framework,
            source_experiment_id=source,
            model_type=model_type,
            params={p.key: p.value for p in params or []},
            tags=tags,
        )
        return self._logged_model(store.get_model(model_id))

    @mlflow_errors
    def finalize_logged_model(self, model_id: str, status: Any) -> LoggedModel:
        if isinstance(status, int) and not isinstance(status, LoggedModelStatus):
            status = LoggedModelStatus.from_int(status)
        ours = m.MODEL_TO_OURS.get(str(getattr(status, "value", status)).upper())
        if ours is None:
            raise invalid(f"status {status!r} is not one of {', '.join(m.MODEL_TO_OURS)}")
        self.tracking.set_model_status(m.model_id_of(model_id), ours)
        return self.get_logged_model(model_id)

    @mlflow_errors
    def set_logged_model_tags(self, model_id: str, tags: Any) -> None:
        self.tracking.set_model_tags(m.model_id_of(model_id), {t.key: t.value for t in tags or []})

    @mlflow_errors
    def delete_logged_model_tag(self, model_id: str, key: str) -> None:
        row = self._live_model_row(model_id)
        if not self.tracking.delete_tag("model", int(row["model_id"]), key):
            raise missing(f"No tag with key {key!r} found for logged model with ID '{model_id}'")

    @mlflow_errors
    def delete_logged_model(self, model_id: str) -> None:
        self.tracking.delete_model(m.model_id_of(model_id))

    @mlflow_errors
    def log_logged_model_params(self, model_id: str, params: Any) -> None:
        self.tracking.log_model_params(m.model_id_of(model_id), {p.key: p.value for p in params or []})

    @mlflow_errors
    def record_logged_model(self, run_id: str, mlflow_model: Any) -> None:
        """MLflow 2's model record: appended to the run's ``mlflow.log-model.history`` tag (JSON list;
        the oldest entries go when it would pass a tag value's MAX_TAG_VALUE_LEN characters)."""
        store = self.tracking
        experiment_id = run_key(run_id)
        history = m.json_list(store.tag_values("experiment", experiment_id).get(LOG_MODEL_HISTORY_TAG))
        history.append(mlflow_model.get_tags_dict())
        text = json.dumps(history)
        while len(text) > MAX_TAG_VALUE_LEN and len(history) > 1:
            history.pop(0)
            text = json.dumps(history)
        store.set_tag("experiment", experiment_id, LOG_MODEL_HISTORY_TAG, text)


def _metric_entries(text: str | None) -> dict[str, list[dict[str, Any]]]:
    """The hidden ``mltrack.model_metrics`` tag read: ``{run_id: [{"key", "dataset_name", "dataset_digest"}]}``
    (an entry written as a bare metric name, the tag's first form, is ``{"key": name}``)."""
    try:
        parsed = json.loads(text) if text else {}
    except ValueError:
        return {}
    if not isinstance(parsed, dict):
        return {}
    return {
        str(run): [e if isinstance(e, dict) else {"key": str(e)} for e in entries]
        for run, entries in parsed.items()
        if isinstance(entries, list)
    }


def _attr(model: LoggedModel, key: str) -> Any:
    value = getattr(model, key)
    return getattr(value, "value", value) if key == "status" else value
