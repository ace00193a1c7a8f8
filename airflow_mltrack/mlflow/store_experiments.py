"""MLflow experiments on ``mltrack://``: our projects (a mixin of
:class:`~airflow_mltrack.mlflow.store.MLTrackMlflowStore`).

Experiment ``"0"`` is our project ``Default``, created when first needed (MLflow's store always has it). A
deleted experiment is a project with ``deleted_at`` (revision 0008); deleting one marks its runs deleted too, as
MLflow does. Search, filter, order and page tokens are MLflow's own (``SearchExperimentsUtils``, as its file
store answers them), over every project (docs/mlflow.md)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mlflow.entities import Experiment, ExperimentTag, LifecycleStage, ViewType
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import INVALID_STATE, RESOURCE_ALREADY_EXISTS
from mlflow.store.entities.paged_list import PagedList
from mlflow.store.tracking import SEARCH_MAX_RESULTS_DEFAULT, SEARCH_MAX_RESULTS_THRESHOLD
from mlflow.utils.search_utils import SearchExperimentsUtils, SearchUtils
from mlflow.utils.validation import _validate_experiment_name

from airflow_mltrack.errors import NotFoundError
from airflow_mltrack.mlflow import mapping as m
from airflow_mltrack.mlflow.exceptions import invalid, missing, mlflow_errors
from airflow_mltrack.store.models import NAME_LEN, TAG_NAME_LEN
from airflow_mltrack.store.tags import tag_value
from airflow_mltrack.store.validation import name as checked_name

if TYPE_CHECKING:
    from airflow_mltrack.store import TrackingStore


class ExperimentsMixin:
    """``create_experiment`` ... ``delete_experiment_tag``: MLflow's signatures (abstract_store.py)."""

    tracking: TrackingStore
    artifact_uri: str | None

    # -- lookups --------------------------------------------------------------------------------------
    def _default_project_id(self) -> int:
        """Our ``Default`` project (MLflow's experiment ``"0"``), created when missing."""
        try:
            return int(self.tracking.get_project(m.DEFAULT_PROJECT)["project_id"])
        except NotFoundError:
            return self.tracking.ensure_project(m.DEFAULT_PROJECT)

    def _project(self, experiment_id: Any) -> dict[str, Any]:
        """Our project of an MLflow experiment id (RESOURCE_DOES_NOT_EXIST as MLflow words it)."""
        project_id = m.project_id_of(experiment_id)
        if project_id is None:
            project_id = self._default_project_id()
        try:
            return self.tracking.get_project(project_id)
        except NotFoundError:
            raise missing(f"No Experiment with id={experiment_id} exists") from None

    def _project_id(self, experiment_id: Any) -> int:
        return int(self._project(experiment_id)["project_id"])

    def _active_project(self, experiment_id: Any) -> dict[str, Any]:
        """The project of an experiment that is not deleted (MLflow's ``_check_experiment_is_active``)."""
        project = self._project(experiment_id)
        if project.get("deleted_at") is not None:
            raise invalid(
                f"The experiment {experiment_id} must be in the 'active' state. Current state is deleted."
            )
        return project

    def _experiment(self, project: dict[str, Any]) -> Experiment:
        tags = self.tracking.tag_values("project", project["project_id"])
        deleted = project.get("deleted_at") is not None
        return Experiment(
            experiment_id=str(project["project_id"]),
            name=project["name"],
            artifact_location=self.artifact_uri or "",
            lifecycle_stage=LifecycleStage.DELETED if deleted else LifecycleStage.ACTIVE,
            tags=[ExperimentTag(k, v or "") for k, v in tags.items()],
            creation_time=m.millis(project.get("created_at") or project.get("start_date")),
            last_update_time=m.millis(project.get("updated_at") or project.get("created_at")),
        )

    # -- reads ----------------------------------------------------------------------------------------
    @mlflow_errors
    def get_experiment(self, experiment_id: str) -> Experiment:
        return self._experiment(self._project(experiment_id))

    @mlflow_errors
    def get_experiment_by_name(self, experiment_name: str) -> Experiment | None:
        """The experiment of that name, a deleted one too (as MLflow's store answers); None if none."""
        if experiment_name == m.DEFAULT_PROJECT:
            return self.get_experiment(m.DEFAULT_EXPERIMENT_ID)
        try:
            return self._experiment(self.tracking.get_project(experiment_name))
        except NotFoundError:
            return None

    @mlflow_errors
    def search_experiments(
        self,
        view_type: int = ViewType.ACTIVE_ONLY,
        max_results: int = SEARCH_MAX_RESULTS_DEFAULT,
        filter_string: str | None = None,
        order_by: list[str] | None = None,
        page_token: str | None = None,
    ) -> PagedList:
        """Every project of the view (deleted ones: ``DELETED_ONLY``/``ALL``), filtered, ordered (default:
        newest first) and paged by MLflow's own rules; the Default experiment always exists."""
        if not isinstance(max_results, int) or not 0 < max_results <= SEARCH_MAX_RESULTS_THRESHOLD:
            raise invalid(
                f"Invalid value {max_results} for parameter 'max_results' supplied. It must be a positive "
                f"integer at most {SEARCH_MAX_RESULTS_THRESHOLD}"
            )
        self._default_project_id()
        wanted = {
            ViewType.ACTIVE_ONLY: (False,),
            ViewType.DELETED_ONLY: (True,),
        }.get(view_type, (False, True))
        found = [
            self._experiment(p)
            for p in self.tracking.list_projects()
            if (p.get("deleted_at") is not None) in wanted
        ]
        found = SearchExperimentsUtils.filter(found, filter_string)
        if order_by:
            found = SearchExperimentsUtils.sort(found, order_by)
        else:  # MLflow's creation_time DESC, by our ids (their order; times can tie within a clock tick)
            found.sort(key=lambda e: int(e.experiment_id), reverse=True)
        page, token = SearchUtils.paginate(found, page_token, max_results)
        return PagedList(page, token)

    # -- writes ---------------------------------------------------------------------------------------
    @mlflow_errors
    def create_experiment(self, name: str, artifact_location: str | None = None, tags: Any = None) -> str:
        """A new project ``name`` with its tags. ``artifact_location`` is not kept: our artifact storage
        decides where files go (docs/mlflow.md, what is lossy)."""
        _validate_experiment_name(name)
        checked_name("name", name, NAME_LEN)
        values = {t.key: t.value for t in tags or []}
        for key, value in values.items():  # checked before anything is written
            checked_name("tags", key, TAG_NAME_LEN)
            tag_value(f"tags.{key}", value)
        try:
            existing = self.tracking.get_project(name)
        except NotFoundError:
            existing = None
        if existing is not None:
            state = " in deleted state" if existing.get("deleted_at") is not None else ""
            raise MlflowException(
                f"Experiment(name={name}) already exists{state}.", error_code=RESOURCE_ALREADY_EXISTS
            )
        project_id = self.tracking.ensure_project(name)
        if values:
            self.tracking.set_tags("project", project_id, values)
        return str(project_id)

    @mlflow_errors
    def delete_experiment(self, experiment_id: str) -> None:
        """Marks the project and its runs deleted (rows stay); the Default experiment cannot be deleted."""
        project = self._project(experiment_id)
        if project["name"] == m.DEFAULT_PROJECT:
            raise invalid(
                f"Cannot delete the default experiment '{experiment_id}'. This is a reserved experiment."
            )
        if project.get("deleted_at") is not None:
            raise missing(f"No Experiment with id={experiment_id} exists (it is deleted)")
        self.tracking.set_project_deleted(int(project["project_id"]), True)

    @mlflow_errors
    def restore_experiment(self, experiment_id: str) -> None:
        """Clears the mark, and restores the runs deleted with the experiment."""
        project = self._project(experiment_id)
        if project.get("deleted_at") is None:
            raise missing(f"No deleted Experiment with id={experiment_id} exists")
        self.tracking.set_project_deleted(int(project["project_id"]), False)

    @mlflow_errors
    def rename_experiment(self, experiment_id: str, new_name: str) -> None:
        """Renames the project (names are unique; the Default experiment keeps its name: id "0" is found
        by it)."""
        _validate_experiment_name(new_name)
        project = self._project(experiment_id)
        if project.get("deleted_at") is not None:
            raise MlflowException("Cannot rename a non-active experiment.", error_code=INVALID_STATE)
        if project["name"] == m.DEFAULT_PROJECT or new_name == m.DEFAULT_PROJECT:
            raise invalid(f"mltrack:// keeps the name {m.DEFAULT_PROJECT!r}: it is MLflow's experiment 0")
        if new_name == project["name"]:
            return
        try:
            self.tracking.get_project(new_name)
        except NotFoundError:
            pass
        else:
            raise MlflowException(
                f"Experiment(name={new_name}) already exists.", error_code=RESOURCE_ALREADY_EXISTS
            )
        self.tracking.rename_project(int(project["project_id"]), new_name)

    @mlflow_errors
    def set_experiment_tag(self, experiment_id: str, tag: Any) -> None:
        project = self._active_project(experiment_id)
        self.tracking.set_tag("project", int(project["project_id"]), tag.key, tag.value)

    @mlflow_errors
    def delete_experiment_tag(self, experiment_id: str, key: str) -> None:
        project = self._active_project(experiment_id)
        if not self.tracking.delete_tag("project", int(project["project_id"]), key):
            raise missing(f"No tag with name: {key} in experiment with id {experiment_id}")
