"""Dataset naming (OpenLineage's naming spec, as openlineage-python's ``naming`` module implements it), the
Asset converter through Airflow's ProvidersManager, our facet schema, and the package without the extra."""

from __future__ import annotations

import json
import subprocess
import sys

import jsonschema
import pytest
from openlineage.client.naming import dataset as naming

from airflow_mltrack.operators import dataset_asset, dataset_asset_uri, lineage
from tests.lineage.conftest import REPO
from tests.lineage.schema import packaged_schema, validate_facet


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("s3://bucket/raw/digits.csv", naming.S3(bucket_name="bucket", object_key="raw/digits.csv")),
        ("s3a://bucket/k", naming.S3(bucket_name="bucket", object_key="k")),
        ("gs://bkt/data/part-0.parquet", naming.GCS(bucket_name="bkt", object_key="data/part-0.parquet")),
        ("gcs://bkt/x", naming.GCS(bucket_name="bkt", object_key="x")),
        (
            "postgres://db.example.com:6543/shop/public/orders",
            naming.Postgres(
                host="db.example.com", port="6543", database="shop", schema="public", table="orders"
            ),
        ),
        (
            "postgresql://db.example.com/shop.sales.orders",
            naming.Postgres(
                host="db.example.com", port="5432", database="shop", schema="sales", table="orders"
            ),
        ),
        ("mysql://m:3307/shop/orders", naming.MySQL(host="m", port="3307", database="shop", table="orders")),
        ("file:///data/digits.npz", naming.LocalFileSystem(path="/data/digits.npz")),
        ("/data/digits.npz", naming.LocalFileSystem(path="/data/digits.npz")),
        ("file://nas01/share/x.csv", naming.RemoteFileSystem(host="nas01", path="/share/x.csv")),
        (
            "hdfs://nn:8020/warehouse/t",
            naming.HDFS(namenode_host="nn", namenode_port="8020", path="/warehouse/t"),
        ),
        (
            "abfss://raw@acct.dfs.core.windows.net/a/b.csv",
            naming.ABFSS(container="raw", service="acct", path="a/b.csv"),
        ),
    ],
)
def test_known_stores_follow_the_openlineage_naming_spec(url, expected):
    assert lineage.source_identity(url) == (expected.get_namespace(), expected.get_name())
    assert lineage.dataset_identity("proj", "ds", url) == (expected.get_namespace(), expected.get_name())


@pytest.mark.parametrize(
    "url",
    [
        None,
        "",
        "https://archive.ics.uci.edu/dataset/80",  # a web page is no store
        "s3://bucket",  # no key
        "postgres://h:5432/db/table",  # no schema: we do not guess one
        "postgres://h:notaport/db/s/t",
        "mysql:///db/t",  # no host
        "kaggle:digits",
    ],
)
def test_other_sources_are_named_in_our_namespace(url):
    assert lineage.source_identity(url) is None
    assert lineage.dataset_identity("digits demo", "raw/v1", url) == (
        "mltrack://digits%20demo",
        "datasets/raw%2Fv1",
    )


def test_models_and_endpoints_are_named_in_the_project_namespace():
    assert lineage.model_identity(" p ", "m") == ("mltrack://p", "models/m")
    assert lineage.endpoint_identity("p", "e 1") == ("mltrack://p", "endpoints/e%201")


def test_asset_uri_round_trips_and_bad_uris_are_refused():
    uri = dataset_asset_uri("digits demo", "raw/v1")
    assert lineage.parse_dataset_asset_uri(uri) == ("digits demo", "raw/v1")
    for bad in ("s3://b/k", "x-mltrack://p", "x-mltrack://p/a/b", "x-mltrack:///n"):
        with pytest.raises(ValueError, match="not a dataset asset URI"):
            lineage.parse_dataset_asset_uri(bad)


def test_providers_manager_converts_our_assets_with_the_operators_naming(tracking_pg):
    """provider_info's ``asset-uris`` entry reaches the OpenLineage provider; the store's source_url
    decides the name, as it does for the operators' events."""
    from airflow.providers.common.compat.openlineage.utils.utils import translate_airflow_asset
    from airflow.providers.openlineage.extractors.manager import ExtractorManager
    from airflow.providers.standard.operators.empty import EmptyOperator

    from airflow_mltrack.store import TrackingStore

    store = TrackingStore.from_url(tracking_pg)
    store.register_dataset("p", "on-s3", "Tabular", version="1", source_url="s3://old/v1.csv")
    store.register_dataset("p", "on-s3", "Tabular", version="2", source_url="s3://lake/raw/v2.csv")
    store.register_dataset("p", "web", "Tabular", source_url="https://example.org/data")

    converted = translate_airflow_asset(dataset_asset("p", "on-s3"), None)
    assert (converted.namespace, converted.name) == ("s3://lake", "raw/v2.csv")  # the newest version's
    converted = translate_airflow_asset(dataset_asset("p", "web"), None)
    assert (converted.namespace, converted.name) == ("mltrack://p", "datasets/web")
    converted = translate_airflow_asset(dataset_asset("p", "never-registered"), None)
    assert (converted.namespace, converted.name) == ("mltrack://p", "datasets/never-registered")

    # a task of any operator with our Assets as inlets/outlets
    task = EmptyOperator(
        task_id="t", inlets=[dataset_asset("p", "web")], outlets=[dataset_asset("p", "on-s3")]
    )
    from airflow.providers.openlineage.extractors import OperatorLineage

    found = OperatorLineage()
    ExtractorManager().extract_inlets_and_outlets(found, task)
    assert [(d.namespace, d.name) for d in found.inputs] == [("mltrack://p", "datasets/web")]
    assert [(d.namespace, d.name) for d in found.outputs] == [("s3://lake", "raw/v2.csv")]


def test_facet_schema_is_shipped_valid_and_strict():
    schema = packaged_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    assert schema["$id"] == lineage.SCHEMA_URL
    good = {
        "_producer": lineage.PRODUCER,
        "_schemaURL": f"{lineage.SCHEMA_URL}#/$defs/MLTrackTrainingFacet",
        "project": "p",
        "experimentId": 3,
        "experimentName": "e",
        "status": "Completed",
        "metrics": [{"name": "loss", "evaluationSet": "test", "value": None, "step": None}],
    }
    validate_facet(good, "MLTrackTrainingFacet")
    for broken in (
        {k: v for k, v in good.items() if k != "_producer"},
        good | {"experimentId": "3"},
        good | {"status": "Done"},
        good | {"metrics": [{"name": "loss", "value": 1.0}]},  # no split
        good | {"metrics": [{"name": "loss", "evaluationSet": "test", "value": "NaN"}]},
        good | {"unknown": 1},
    ):
        with pytest.raises(jsonschema.ValidationError):
            validate_facet(broken, "MLTrackTrainingFacet")


def test_facets_built_here_serialize_to_the_schema(store):
    """Our facet classes, serialized as the OpenLineage client sends them, on both store backends; a NaN
    metric is sent as null (JSON has no NaN)."""
    from openlineage.client.serde import Serde

    d = store.register_dataset("p", "raw", "Tabular", source_url="gs://b/raw.csv", num_records=5)
    m = store.register_model("p", "m", "sklearn", version="v1", model_type="classifier")
    e = store.create_experiment("p", "e", m, d, hyperparameters={"C": 0.5, "api_key": "s3cr3t"})
    store.log_metrics(e, {"loss": float("nan"), "accuracy": 0.75})

    found = lineage.training(store, e)
    [inp], [out] = found.inputs, found.outputs
    assert (inp.namespace, inp.name) == ("gs://b", "raw.csv")
    assert [(s.namespace, s.name) for s in inp.facets["symlinks"].identifiers] == [
        ("mltrack://p", "datasets/raw")
    ]
    assert (out.namespace, out.name, out.facets["datasetType"].subType) == (
        "mltrack://p",
        "models/m",
        "classifier",
    )
    facet = json.loads(Serde.to_json(out.facets[lineage.TRAINING_FACET]))
    validate_facet(facet, "MLTrackTrainingFacet")
    assert {(x["name"], x.get("value")) for x in facet["metrics"]} == {("loss", None), ("accuracy", 0.75)}
    params = json.loads(Serde.to_json(found.run_facets[lineage.HYPERPARAMETERS_FACET]))
    validate_facet(params, "MLTrackParametersRunFacet")
    assert params["parameters"]["C"] == 0.5 and params["parameters"]["api_key"] != "s3cr3t"  # redacted

    # a source URL's password is not sent
    secret = store.register_dataset(
        "p", "orders", "Tabular", source_url="postgres://etl:hunter2@db:5432/shop/public/orders"
    )
    [sent] = lineage.registered_dataset(store, "p", "orders", "1.0").outputs
    assert (sent.namespace, sent.name) == ("postgres://db:5432", "shop.public.orders") and secret
    assert sent.facets["dataSource"].uri == "postgres://etl:***@db:5432/shop/public/orders"
    assert "hunter2" not in Serde.to_json(sent)

    # tasks that failed before their row existed report nothing (the provider then reads their outlets)
    assert lineage.training(store, None).outputs == []
    assert lineage.preprocessing(store, "p", None).inputs == []
    with pytest.raises(LookupError, match="no dataset 'raw' version '9'"):
        lineage.registered_dataset(store, "p", "raw", "9")


def test_operators_import_and_name_datasets_without_the_openlineage_extra():
    code = """
import sys
for blocked in ("openlineage", "airflow.providers.openlineage.extractors"):
    sys.modules[blocked] = None  # import of it fails, as when the extra is not installed
from airflow_mltrack.operators import RegisterDatasetOperator, lineage
assert lineage.dataset_identity("p", "d", "s3://b/k") == ("s3://b", "k")
try:
    lineage.training(None, None)
except ImportError as exc:
    print("IMPORT_ERROR:", exc)
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd=REPO)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "IMPORT_ERROR: OpenLineage lineage needs the openlineage extra" in done.stdout
