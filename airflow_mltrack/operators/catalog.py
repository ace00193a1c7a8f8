"""Register datasets and models in the tracking store (get-or-create on project/name/version)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from airflow.sdk import Asset

from airflow_mltrack.operators.base import (
    MLTrackBaseOperator,
    coerce_structure,
    coerce_tags,
    drop_none,
)
from airflow_mltrack.sdk.arguments import check_static, is_template
from airflow_mltrack.store import validation as v
from airflow_mltrack.store.models import DATA_TYPES, NAME_LEN, VERSION_LEN

if TYPE_CHECKING:
    from airflow.sdk import Context

ASSET_SCHEME = "x-mltrack"


def dataset_asset_uri(project: str, name: str) -> str:
    """``x-mltrack://<project>/<dataset name>``: the Airflow Asset of a dataset (all its versions).

    Both parts are percent-encoded (``/``, spaces, ... included), so any project or dataset name gives
    one valid URI.
    """
    return f"{ASSET_SCHEME}://{quote(project.strip(), safe='')}/{quote(name.strip(), safe='')}"


def dataset_asset(project: str, name: str) -> Asset:
    """The Airflow Asset that :class:`RegisterDatasetOperator` updates for dataset ``name``."""
    return Asset(dataset_asset_uri(project, name))


def static_dataset_asset(project: Any, name: Any) -> Asset | None:
    """The dataset's Asset when ``project`` and ``name`` are known when the DAG is parsed, else None."""
    if not all(isinstance(x, str) and x.strip() and not is_template(x) for x in (project, name)):
        return None
    return dataset_asset(project, name)


def check_dataset_fields(prefix: str, fields: dict[str, Any]) -> None:
    """The literal arguments of a dataset registration, checked as the store checks them (at parse time)."""
    checks = {
        "name": lambda f, x: v.name(f, x, NAME_LEN),
        "data_type": lambda f, x: v.choice(f, x, DATA_TYPES),
        "version": lambda f, x: v.version(f, x, VERSION_LEN),
        "source_url": lambda f, x: v.optional_text(f, x, 512),
        "description": v.optional_text,
        "size_bytes": lambda f, x: v.integer(f, x, required=False),
        "num_records": lambda f, x: v.integer(f, x, required=False),
        "tags": lambda f, x: v.tag_names(f, coerce_tags(f, x)),
    }
    for key, value in fields.items():
        if key in checks:
            check_static(f"{prefix}{key}", value, checks[key])


def dataset_event_extra(store: Any, project: Any, dataset_id: int, *, new_version: bool) -> dict[str, Any]:
    """The ``extra`` of a dataset's Asset event (see :class:`RegisterDatasetOperator`)."""
    dataset = store.get_dataset(dataset_id)
    return {
        "project": str(project).strip(),
        "name": dataset["name"],
        "version": dataset["version"],
        "dataset_id": dataset_id,
        "data_type": dataset["data_type"],
        "num_records": dataset["num_records"],
        "size_bytes": dataset["size_bytes"],
        "new_version": new_version,
    }


def existing_dataset_id(store: Any, project: Any, name: Any, version: Any) -> int | None:
    """The id of this project/name/version if it is registered already (None when not, or unknown)."""
    try:
        found = store.list_datasets(project)
    except Exception:  # the project does not exist yet, or a bad name the write will report
        return None
    name = str(name).strip()
    version = str(version).strip()
    return next((d["dataset_id"] for d in found if d["name"] == name and str(d["version"]) == version), None)


class RegisterDatasetOperator(MLTrackBaseOperator):
    """Register a dataset version (or find it) and emit an Airflow Asset event for it.

    Returns (XCom) the dataset id; registering the same ``project``/``name``/``version`` again returns
    the same id and updates the given fields.

    The task's outlet is the Asset ``x-mltrack://<project>/<name>`` (one per dataset, every version);
    each successful run adds an event whose ``extra`` holds ``project``, ``name``, ``version``,
    ``dataset_id``, ``data_type``, ``num_records``, ``size_bytes`` and ``new_version`` (True when this
    run registered the version), so a DAG with ``schedule=[dataset_asset(project, name)]`` runs on every
    registration. The Asset is declared when the DAG is parsed, so it exists only when ``project`` and
    ``name`` are plain strings, not templates (pass ``outlets=`` yourself otherwise).

    :param project: project name (created if missing).
    :param name: dataset name.
    :param data_type: one of Image, Text, Tabular, Audio, Video, Other.
    :param version: dataset version (default ``"1.0"``).
    :param source_url: where the data comes from.
    :param description: free text.
    :param size_bytes: size of the data in bytes.
    :param num_records: number of records.
    :param tags: tag names (a list, or one string).
    :param emit_asset_event: set False to declare no Asset outlet.
    """

    template_fields: Sequence[str] = (
        "project",
        "name",
        "data_type",
        "version",
        "source_url",
        "description",
        "size_bytes",
        "num_records",
        "tags",
    )

    def __init__(
        self,
        *,
        project: str,
        name: str,
        data_type: str,
        version: str = "1.0",
        source_url: str | None = None,
        description: str | None = None,
        size_bytes: int | str | None = None,
        num_records: int | str | None = None,
        tags: list[str] | str | None = None,
        emit_asset_event: bool = True,
        **kwargs: Any,
    ) -> None:
        self.asset: Asset | None = None
        if emit_asset_event and "outlets" not in kwargs:
            self.asset = static_dataset_asset(project, name)
            if self.asset is not None:
                kwargs["outlets"] = [self.asset]
        super().__init__(**kwargs)
        self.project = project
        self.name = name
        self.data_type = data_type
        self.version = version
        self.source_url = source_url
        self.description = description
        self.size_bytes = size_bytes
        self.num_records = num_records
        self.tags = tags
        check_static("project", project, lambda f, x: v.name(f, x, NAME_LEN))
        check_dataset_fields(
            "",
            {
                "name": name,
                "data_type": data_type,
                "version": version,
                "source_url": source_url,
                "description": description,
                "size_bytes": size_bytes,
                "num_records": num_records,
                "tags": tags,
            },
        )

    def execute(self, context: Context) -> int:
        store = self.store
        existed = existing_dataset_id(store, self.project, self.name, self.version)
        dataset_id = store.register_dataset(
            self.project,
            self.name,
            self.data_type,
            version=self.version,
            **drop_none(
                {
                    "description": self.description,
                    "source_url": self.source_url,
                    "size_bytes": self.size_bytes,
                    "num_records": self.num_records,
                    "tags": coerce_tags("tags", self.tags),
                }
            ),
        )
        self.log.info(
            "dataset %s/%s version %s: id %s (%s)",
            self.project,
            self.name,
            self.version,
            dataset_id,
            "already registered" if existed else "registered",
        )
        if self.asset is not None:
            extra = dataset_event_extra(store, self.project, dataset_id, new_version=existed is None)
            context["outlet_events"][self.asset].extra = extra
        return dataset_id

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        """OpenLineage (optional extra): the registered dataset version as output (see ``lineage.py``)."""
        from airflow_mltrack.operators import lineage

        return lineage.registered_dataset(self.store, self.project, self.name, self.version)


class RegisterModelOperator(MLTrackBaseOperator):
    """Register a model version (or find it); returns (XCom) the model id.

    Registering the same ``project``/``name``/``version`` again returns the same id and updates the
    given fields (e.g. a new ``model_path``).

    :param project: project name (created if missing).
    :param name: model name.
    :param framework: e.g. ``"scikit-learn"``, ``"pytorch"``.
    :param version: model version (default ``"1.0"``).
    :param architecture: e.g. ``"SGDClassifier"``.
    :param description: free text.
    :param model_path: where the artifact is stored (a path or URI).
    :param model_type: e.g. ``"classifier"``.
    :param input_schema: a dict (or its JSON / Python-literal string) describing the inputs.
    :param output_schema: likewise for the outputs.
    :param tags: tag names (a list, or one string).
    """

    template_fields: Sequence[str] = (
        "project",
        "name",
        "framework",
        "version",
        "architecture",
        "description",
        "model_path",
        "model_type",
        "input_schema",
        "output_schema",
        "tags",
    )
    literal_fields = ("input_schema", "output_schema")

    def __init__(
        self,
        *,
        project: str,
        name: str,
        framework: str,
        version: str = "1.0",
        architecture: str | None = None,
        description: str | None = None,
        model_path: str | None = None,
        model_type: str | None = None,
        input_schema: dict[str, Any] | str | None = None,
        output_schema: dict[str, Any] | str | None = None,
        tags: list[str] | str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.project = project
        self.name = name
        self.framework = framework
        self.version = version
        self.architecture = architecture
        self.description = description
        self.model_path = model_path
        self.model_type = model_type
        self.input_schema = input_schema
        self.output_schema = output_schema
        self.tags = tags
        self.remember_templates()
        for field, size in (("project", NAME_LEN), ("name", NAME_LEN), ("framework", 100)):
            check_static(field, getattr(self, field), lambda f, x, n=size: v.name(f, x, n))
        check_static("version", version, lambda f, x: v.version(f, x, VERSION_LEN))
        for field in ("input_schema", "output_schema"):
            check_static(field, getattr(self, field), lambda f, x: v.json_object(f, coerce_structure(f, x)))
        check_static("tags", tags, lambda f, x: v.tag_names(f, coerce_tags(f, x)))

    def execute(self, context: Context) -> int:
        model_id = self.store.register_model(
            self.project,
            self.name,
            self.framework,
            version=self.version,
            **drop_none(
                {
                    "architecture": self.architecture,
                    "description": self.description,
                    "model_path": self.model_path,
                    "model_type": self.model_type,
                    "input_schema": coerce_structure("input_schema", self.native("input_schema")),
                    "output_schema": coerce_structure("output_schema", self.native("output_schema")),
                    "tags": coerce_tags("tags", self.tags),
                }
            ),
        )
        self.log.info("model %s/%s version %s: id %s", self.project, self.name, self.version, model_id)
        return model_id

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        """OpenLineage (optional extra): the registered model version as output (see ``lineage.py``)."""
        from airflow_mltrack.operators import lineage

        return lineage.registered_model(self.store, self.project, self.name, self.version)
