"""OpenLineage lineage of the airflow-mltrack operators (the optional ``openlineage`` extra).

With ``apache-airflow-providers-openlineage`` installed and configured, the provider's listener calls each
operator's ``get_openlineage_facets_on_complete``, which delegates here:

- ``RegisterDatasetOperator``: -> the dataset; ``RegisterModelOperator``: -> the model;
- ``PreprocessingJobOperator``: input dataset -> derived dataset, run facet ``mltrack_parameters``;
- ``CreateExperimentOperator``, ``LogMetricsOperator``, ``SetExperimentStatusOperator`` (training): the
  experiment's dataset -> its model, with facet ``mltrack_training`` (experiment, final metrics so far)
  on the model and run facet ``mltrack_hyperparameters``;
- ``DeployModelOperator``: model -> endpoint, with facet ``mltrack_deployment`` (the traffic split).

Naming (https://openlineage.io/docs/spec/naming): a dataset whose ``source_url`` is in a known store is
named as that store (``s3://bucket/key`` -> ``s3://bucket`` + ``key``; ``postgres://h:p/db/schema/table``
-> ``postgres://h:p`` + ``db.schema.table``; ``file:///p`` -> ``file`` + ``/p``; ...), any other one is
``mltrack://<project>`` + ``datasets/<name>``; models are ``models/<name>`` and endpoints
``endpoints/<name>`` there. Versions are not part of a name: they are the ``version`` facet, so the
Airflow Asset of a dataset (``x-mltrack://<project>/<name>``, every version) converts to the same
dataset (:func:`asset_to_openlineage`, declared under ``asset-uris`` in ``provider_info.py``).

Nothing here imports OpenLineage at module level: without the extra, the operators work as before.
Our facets are defined in ``airflow_mltrack/schemas/openlineage-facets.json`` (shipped in the wheel).
"""

from __future__ import annotations

import logging
import math
import os
from functools import cache
from importlib import resources
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, unquote, urlsplit

from airflow_mltrack import __version__
from airflow_mltrack.operators.catalog import ASSET_SCHEME
from airflow_mltrack.vocabulary import DEFAULT_CONN_ID, mask_password

if TYPE_CHECKING:
    from airflow_mltrack.store import TrackingStore

log = logging.getLogger(__name__)

PRODUCER = f"https://github.com/airflow-mltrack/airflow-mltrack/tree/{__version__}"
SCHEMA_RESOURCE = "schemas/openlineage-facets.json"
SCHEMA_URL = (
    "https://raw.githubusercontent.com/airflow-mltrack/airflow-mltrack/main/airflow_mltrack/"
    + SCHEMA_RESOURCE
)
NAMESPACE_SCHEME = "mltrack"
TRAINING_FACET = "mltrack_training"
HYPERPARAMETERS_FACET = "mltrack_hyperparameters"
PARAMETERS_FACET = "mltrack_parameters"
DEPLOYMENT_FACET = "mltrack_deployment"
# Object stores whose OpenLineage namespace is ``<scheme>://<authority>`` and name the key (no leading /).
_OBJECT_STORES = {
    "s3": "s3",
    "s3a": "s3",
    "s3n": "s3",
    "gs": "gs",
    "gcs": "gs",
    "abfss": "abfss",
    "wasbs": "wasbs",
}
_DEFAULT_PORTS = {"postgres": 5432, "mysql": 3306}


# -- naming: pure functions ------------------------------------------------------------------------------
def namespace(project: str) -> str:
    """``mltrack://<project>`` (percent-encoded): the OpenLineage namespace of a project's rows."""
    return f"{NAMESPACE_SCHEME}://{quote(str(project).strip(), safe='')}"


def _ours(project: str, kind: str, name: str) -> tuple[str, str]:
    return namespace(project), f"{kind}/{quote(str(name).strip(), safe='')}"


def source_identity(url: str | None) -> tuple[str, str] | None:
    """``(namespace, name)`` of ``url`` in OpenLineage's naming when it is in a known store, else None.

    Object stores (``s3``, ``gs``, ``abfss``, ``wasbs``), ``hdfs``, local and remote files (a bare
    absolute path is a local file), ``postgres``/``postgresql`` (``/db/schema/table`` or
    ``/db.schema.table``) and ``mysql`` (``/db/table`` or ``/db.table``).
    """
    if not isinstance(url, str) or not url.strip():
        return None
    text = url.strip()
    if text.startswith("/"):
        return "file", text
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError:
        return None
    scheme, host, path = parts.scheme.lower(), parts.hostname or "", parts.path
    if scheme in _OBJECT_STORES:
        key = path.lstrip("/")
        authority = (
            parts.netloc.rpartition("@")[2] if scheme in ("s3", "s3a", "s3n", "gs", "gcs") else parts.netloc
        )
        return (f"{_OBJECT_STORES[scheme]}://{authority}", key) if authority and key else None
    if scheme == "file":
        if not path:
            return None
        return ("file", path) if host in ("", "localhost") else (f"file://{host}", path)
    if scheme == "hdfs":
        return (f"hdfs://{parts.netloc.rpartition('@')[2]}", path) if host and path else None
    if scheme in ("postgres", "postgresql", "mysql"):
        kind = "postgres" if scheme.startswith("postgres") else "mysql"
        pieces = [p for p in path.strip("/").split("/") if p]
        if len(pieces) == 1:
            pieces = pieces[0].split(".")
        if not host or len(pieces) != (3 if kind == "postgres" else 2):
            return None
        return f"{kind}://{host}:{port or _DEFAULT_PORTS[kind]}", ".".join(pieces)
    return None


def dataset_identity(project: str, name: str, source_url: str | None = None) -> tuple[str, str]:
    """``(namespace, name)`` of a dataset: its ``source_url``'s store naming, else ours."""
    return source_identity(source_url) or _ours(project, "datasets", name)


def model_identity(project: str, name: str) -> tuple[str, str]:
    return _ours(project, "models", name)


def endpoint_identity(project: str, name: str) -> tuple[str, str]:
    return _ours(project, "endpoints", name)


def parse_dataset_asset_uri(uri: str) -> tuple[str, str]:
    """``x-mltrack://<project>/<name>`` -> ``(project, name)``; ValueError for another URI."""
    parts = urlsplit(uri)
    name = parts.path[1:] if parts.path.startswith("/") else ""
    if parts.scheme.lower() != ASSET_SCHEME or not parts.netloc or not name or "/" in name:
        raise ValueError(f"not a dataset asset URI ({ASSET_SCHEME}://<project>/<name>): {uri!r}")
    return unquote(parts.netloc), unquote(name)


def schema_text() -> str:
    """The JSON Schema of our facets, as shipped in the package."""
    return resources.files("airflow_mltrack").joinpath(SCHEMA_RESOURCE).read_text(encoding="utf-8")


# -- OpenLineage objects (need the extra) ----------------------------------------------------------------
@cache
def _ol() -> Any:
    """The OpenLineage classes used here, and our facet classes (defined once, on first use)."""
    try:
        import attrs
        from airflow.providers.openlineage.extractors import OperatorLineage
        from openlineage.client import event_v2, facet_v2
    except ImportError as exc:  # pragma: no cover - exercised only without the extra
        raise ImportError(
            "OpenLineage lineage needs the openlineage extra: pip install 'airflow-mltrack[openlineage]'"
        ) from exc

    def schema(definition: str) -> Any:
        return staticmethod(lambda: f"{SCHEMA_URL}#/$defs/{definition}")

    @attrs.define
    class MLTrackTrainingFacet(facet_v2.DatasetFacet):
        project: str
        experimentId: int  # noqa: N815 - OpenLineage facet fields are camelCase
        experimentName: str  # noqa: N815
        status: str
        metrics: list[dict[str, Any]]
        _get_schema = schema("MLTrackTrainingFacet")

    @attrs.define
    class MLTrackParametersRunFacet(facet_v2.RunFacet):
        parameters: dict[str, Any]
        _get_schema = schema("MLTrackParametersRunFacet")

    @attrs.define
    class MLTrackDeploymentFacet(facet_v2.DatasetFacet):
        project: str
        endpoint: str
        serving: list[dict[str, Any]]
        _get_schema = schema("MLTrackDeploymentFacet")

    return type(
        "OL",
        (),
        {
            "OperatorLineage": OperatorLineage,
            "event": event_v2,
            "facet": facet_v2,
            "Training": MLTrackTrainingFacet,
            "Parameters": MLTrackParametersRunFacet,
            "Deployment": MLTrackDeploymentFacet,
        },
    )


def _dataset_facets(project: str, row: dict[str, Any]) -> tuple[tuple[str, str], dict[str, Any]]:
    """The identity of a dataset row and its dataset facets (version, data source, description, symlink)."""
    f = _ol().facet
    identity = dataset_identity(project, row["name"], row.get("source_url"))
    facets: dict[str, Any] = {
        "version": f.dataset_version_dataset.DatasetVersionDatasetFacet(datasetVersion=str(row["version"])),
    }
    if row.get("source_url"):
        shown = mask_password(row["source_url"], row["source_url"])  # a database URL's password stays home
        facets["dataSource"] = f.datasource_dataset.DatasourceDatasetFacet(name=shown, uri=shown)
    if row.get("description"):
        facets["documentation"] = f.documentation_dataset.DocumentationDatasetFacet(
            description=row["description"]
        )
    ours = _ours(project, "datasets", row["name"])
    if identity != ours:  # named after its store: say which registered dataset it is
        facets["symlinks"] = f.symlinks_dataset.SymlinksDatasetFacet(
            identifiers=[f.symlinks_dataset.Identifier(namespace=ours[0], name=ours[1], type="DATASET")]
        )
    return identity, facets


def input_dataset(project: str, row: dict[str, Any]) -> Any:
    """A dataset row as an OpenLineage input."""
    (ns, name), facets = _dataset_facets(project, row)
    return _ol().event.InputDataset(namespace=ns, name=name, facets=facets)


def output_dataset(project: str, row: dict[str, Any]) -> Any:
    """A dataset row as an OpenLineage output (with its row count and size when known)."""
    ol = _ol()
    (ns, name), facets = _dataset_facets(project, row)
    stats = {}
    if row.get("num_records") is not None or row.get("size_bytes") is not None:
        stats["outputStatistics"] = (
            ol.facet.output_statistics_output_dataset.OutputStatisticsOutputDatasetFacet(
                rowCount=row.get("num_records"), size=row.get("size_bytes")
            )
        )
    return ol.event.OutputDataset(namespace=ns, name=name, facets=facets, outputFacets=stats)


def model_dataset(
    project: str, row: dict[str, Any], *, output: bool, extra: dict[str, Any] | None = None
) -> Any:
    """A model row as an OpenLineage dataset of type MODEL, with its version."""
    ol = _ol()
    ns, name = model_identity(project, row["name"])
    facets: dict[str, Any] = {
        "datasetType": ol.facet.dataset_type_dataset.DatasetTypeDatasetFacet(
            datasetType="MODEL", subType=row.get("model_type") or None
        ),
        "version": ol.facet.dataset_version_dataset.DatasetVersionDatasetFacet(
            datasetVersion=str(row["version"])
        ),
    }
    if row.get("description"):
        facets["documentation"] = ol.facet.documentation_dataset.DocumentationDatasetFacet(
            description=row["description"]
        )
    facets |= extra or {}
    kind = ol.event.OutputDataset if output else ol.event.InputDataset
    return kind(namespace=ns, name=name, facets=facets)


def _metric(row: dict[str, Any]) -> dict[str, Any]:
    value = row["value"]
    finite = isinstance(value, int | float) and math.isfinite(value)
    return {
        "name": row["name"],
        "evaluationSet": row["evaluation_set"],
        "value": float(value) if finite else None,
        "step": row.get("step"),
    }


# -- what each operator reports ---------------------------------------------------------------------------
def registered_dataset(store: TrackingStore, project: str, name: str, version: str) -> Any:
    """RegisterDatasetOperator: no input -> the dataset version it registered."""
    row = _find(store.list_datasets(project), "dataset", name, version)
    return _ol().OperatorLineage(outputs=[output_dataset(project, row)])


def registered_model(store: TrackingStore, project: str, name: str, version: str) -> Any:
    """RegisterModelOperator: no input -> the model version it registered."""
    row = _find(store.list_models(project), "model", name, version)
    return _ol().OperatorLineage(outputs=[model_dataset(project, row, output=True)])


def preprocessing(store: TrackingStore, project: str, job_id: int | None) -> Any:
    """PreprocessingJobOperator: input dataset -> output dataset of the job it recorded (nothing when the
    task failed before recording it), the job's parameters as a run facet."""
    if job_id is None:
        return _ol().OperatorLineage()
    job = store.get_preprocessing_job(job_id)
    ol = _ol()
    inputs = [input_dataset(project, store.get_dataset(job["input_dataset_id"]))]
    outputs = []
    if job.get("output_dataset_id") is not None:
        outputs.append(output_dataset(project, store.get_dataset(job["output_dataset_id"])))
    facets = {
        PARAMETERS_FACET: ol.Parameters(parameters=dict(job.get("parameters") or {}), producer=PRODUCER)
    }
    return ol.OperatorLineage(inputs=inputs, outputs=outputs, run_facets=facets)


def training(store: TrackingStore, experiment_id: int | None) -> Any:
    """An experiment: its dataset -> its model, with the experiment and its final metrics on the model
    (nothing when the task failed before it knew its experiment)."""
    ol = _ol()
    if experiment_id is None:
        return ol.OperatorLineage()
    experiment = store.get_experiment(experiment_id)
    project = experiment["project"]
    facet = ol.Training(
        project=project,
        experimentId=int(experiment_id),
        experimentName=experiment["name"],
        status=experiment["status"],
        metrics=[_metric(r) for r in store.latest_metrics(experiment_id)],
        producer=PRODUCER,
    )
    model = model_dataset(
        project, store.get_model(experiment["model_id"]), output=True, extra={TRAINING_FACET: facet}
    )
    hyperparameters = ol.Parameters(
        parameters=dict(experiment.get("hyperparameters") or {}), producer=PRODUCER
    )
    return ol.OperatorLineage(
        inputs=[input_dataset(project, store.get_dataset(experiment["dataset_id"]))],
        outputs=[model],
        run_facets={HYPERPARAMETERS_FACET: hyperparameters},
    )


def deployment(store: TrackingStore, project: str, endpoint: str, model_id: int) -> Any:
    """DeployModelOperator: the model -> the endpoint, with the endpoint's traffic split after it."""
    ol = _ol()
    ns, name = endpoint_identity(project, endpoint)
    serving = [
        {
            "modelName": r["model_name"],
            "modelVersion": str(r["model_version"]),
            "trafficPercentage": float(r["traffic_percentage"]),
        }
        for r in store.endpoint_state(project, endpoint)
    ]
    facets: dict[str, Any] = {
        "datasetType": ol.facet.dataset_type_dataset.DatasetTypeDatasetFacet(datasetType="ENDPOINT"),
        DEPLOYMENT_FACET: ol.Deployment(
            project=project, endpoint=endpoint, serving=serving, producer=PRODUCER
        ),
    }
    url = next((e.get("url") for e in store.list_endpoints(project) if e["name"] == endpoint), None)
    if url:
        facets["dataSource"] = ol.facet.datasource_dataset.DatasourceDatasetFacet(
            name=endpoint, uri=mask_password(url, url)
        )
    return ol.OperatorLineage(
        inputs=[model_dataset(project, store.get_model(model_id), output=False)],
        outputs=[ol.event.OutputDataset(namespace=ns, name=name, facets=facets)],
    )


def _find(rows: list[dict[str, Any]], kind: str, name: str, version: str) -> dict[str, Any]:
    name, version = str(name).strip(), str(version).strip()
    for row in rows:
        if row["name"] == name and str(row["version"]) == version:
            return row
    raise LookupError(f"no {kind} {name!r} version {version!r}")


# -- the Asset converter (provider_info "asset-uris") -----------------------------------------------------
def asset_to_openlineage(asset: Any, lineage_context: Any = None) -> Any:
    """``x-mltrack://<project>/<name>`` -> the OpenLineage dataset the operators name for that dataset.

    The dataset's ``source_url`` (its newest registered version's) is read from the tracking store of
    ``lineage_context`` when it is an ``MLTrackHook``, else of the default connection; without a
    readable store, the dataset is named in our namespace.
    """
    project, name = parse_dataset_asset_uri(asset.uri)
    source_url = _registered_source_url(project, name, lineage_context)
    ns, ol_name = dataset_identity(project, name, source_url)
    return _ol().event.Dataset(namespace=ns, name=ol_name)


def _registered_source_url(project: str, name: str, lineage_context: Any) -> str | None:
    try:
        from airflow_mltrack.hooks.connection_urls import embedded_db_path
        from airflow_mltrack.hooks.mltrack import MLTrackHook

        hook = (
            lineage_context
            if isinstance(lineage_context, MLTrackHook)
            else MLTrackHook(mltrack_conn_id=DEFAULT_CONN_ID)
        )
        if hook.is_embedded and not os.path.exists(embedded_db_path()):
            return None  # never create the embedded database just to name an asset
        rows = [d for d in hook.get_store().list_datasets(project) if d["name"] == name]
    except Exception as exc:  # lineage is best effort: an unreadable store names the dataset ours
        log.debug("dataset %s/%s: source_url not read (%s)", project, name, exc)
        return None
    return max(rows, key=lambda d: d["dataset_id"])["source_url"] if rows else None
