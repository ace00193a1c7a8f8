"""The example DAG ``train_evaluate_deploy`` run for real with the OpenLineage provider's file transport:
its events link raw dataset -> derived dataset -> model -> endpoint, with our facets valid against the
JSON Schema the package ships.

``dag.test()`` runs in a fresh interpreter (tests/lineage/run_dag.py): the provider's plugin decides once,
when it is imported, whether its listener is on (``[openlineage] transport`` set), so the setting must be
there before Airflow loads plugins.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from airflow_mltrack.operators import lineage
from tests.lineage.conftest import EXAMPLE_DAGS, REPO
from tests.lineage.schema import validate_facet

DAG_ID = "train_evaluate_deploy"
PROJECT = "digits-demo"
OURS = "mltrack://digits-demo"
RAW = (OURS, "datasets/digits")
DERIVED = (OURS, "datasets/digits-scaled")
MODEL = (OURS, "models/digits-sgd")
ENDPOINT = (OURS, "endpoints/digits-classifier")
OUR_TASKS = {
    "register_dataset",
    "record_preprocessing",
    "register_candidate_model",
    "register_champion",
    "start_champion_evaluation",
    "log_champion_metrics",
    "complete_champion_evaluation",
    "deploy_canary",
    "promote",
}


def _run_with_openlineage(tmp_path) -> list[dict]:
    events_file = tmp_path / "openlineage.jsonl"
    env = os.environ | {
        "AIRFLOW__OPENLINEAGE__TRANSPORT": json.dumps(
            {"type": "file", "log_file_path": str(events_file), "append": True}
        ),
        "AIRFLOW__OPENLINEAGE__NAMESPACE": "mltrack-tests",
        "AIRFLOW__OPENLINEAGE__DISABLED": "False",
    }
    done = subprocess.run(
        [sys.executable, "-m", "tests.lineage.run_dag", str(EXAMPLE_DAGS), DAG_ID],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert done.returncode == 0 and "DAG_RUN_STATE=success" in done.stdout, (
        done.stdout[-3000:] + done.stderr[-5000:]
    )
    assert events_file.is_file(), "the OpenLineage listener wrote no event:\n" + done.stderr[-5000:]
    return [json.loads(line) for line in events_file.read_text().splitlines() if line.strip()]


def _ids(datasets: list[dict]) -> list[tuple[str, str]]:
    return [(d["namespace"], d["name"]) for d in datasets]


def _one(datasets: list[dict], identity: tuple[str, str]) -> dict:
    [found] = [d for d in datasets if (d["namespace"], d["name"]) == identity]
    return found


def _reaches(edges: set[tuple[tuple[str, str], tuple[str, str]]], path: list[tuple[str, str]]) -> bool:
    return all((a, b) in edges for a, b in zip(path, path[1:], strict=False))


@pytest.mark.timeout(1200)
def test_train_evaluate_deploy_events_link_dataset_model_and_endpoint(airflow_db, tracking_pg, tmp_path):
    from airflow_mltrack.store import TrackingStore

    events = _run_with_openlineage(tmp_path)
    store = TrackingStore.from_url(tracking_pg)

    complete = {
        e["job"]["name"].removeprefix(f"{DAG_ID}."): e
        for e in events
        if e.get("eventType") == "COMPLETE" and e["job"]["name"].startswith(f"{DAG_ID}.")
    }
    assert OUR_TASKS <= set(complete), sorted(OUR_TASKS - set(complete))

    # the START events carry the tasks' outlets, our dataset Assets, through the asset converter: the
    # same datasets as the operators' own COMPLETE events
    started = {
        e["job"]["name"].removeprefix(f"{DAG_ID}."): e for e in events if e.get("eventType") == "START"
    }
    assert _ids(started["register_dataset"]["outputs"]) == [RAW]
    assert _ids(started["record_preprocessing"]["outputs"]) == [DERIVED]

    # registration and preprocessing: raw -> derived, the job's parameters as a run facet
    raw_out = _one(complete["register_dataset"]["outputs"], RAW)
    assert raw_out["facets"]["version"]["datasetVersion"] == "1.0"
    assert raw_out["outputFacets"]["outputStatistics"]["rowCount"] == 1797
    prep = complete["record_preprocessing"]
    assert _ids(prep["inputs"]) == [RAW] and _ids(prep["outputs"]) == [DERIVED]
    parameters = prep["run"]["facets"][lineage.PARAMETERS_FACET]
    assert parameters["parameters"]["scaler"] == "StandardScaler"
    validate_facet(parameters, "MLTrackParametersRunFacet")

    # training: derived dataset -> the champion model (type MODEL, its version), hyperparameters, metrics
    champion = store.get_model(
        next(m["model_id"] for m in store.list_models(PROJECT) if m["version"].startswith("sgd-"))
    )
    [evaluation] = [e for e in store.list_experiments(PROJECT) if e["name"] == "champion-evaluation"]
    start = complete["start_champion_evaluation"]
    assert _ids(start["inputs"]) == [DERIVED] and _ids(start["outputs"]) == [MODEL]
    model_out = start["outputs"][0]["facets"]
    assert model_out["datasetType"]["datasetType"] == "MODEL"
    assert model_out["version"]["datasetVersion"] == champion["version"]
    hyper = start["run"]["facets"][lineage.HYPERPARAMETERS_FACET]
    assert hyper["parameters"] == evaluation["hyperparameters"] and "alpha" in hyper["parameters"]
    validate_facet(hyper, "MLTrackParametersRunFacet")

    final = complete["complete_champion_evaluation"]["outputs"][0]["facets"][lineage.TRAINING_FACET]
    validate_facet(final, "MLTrackTrainingFacet")
    assert final["_producer"] == lineage.PRODUCER
    assert (final["experimentId"], final["status"], final["project"]) == (
        evaluation["experiment_id"],
        "Completed",
        PROJECT,
    )
    stored = {
        (r["evaluation_set"], r["name"]): r["value"]
        for r in store.latest_metrics(evaluation["experiment_id"])
    }
    assert {(m["evaluationSet"], m["name"]): m["value"] for m in final["metrics"]} == stored
    assert ("test", "accuracy") in stored
    at_start = start["outputs"][0]["facets"][lineage.TRAINING_FACET]
    assert (at_start["status"], at_start["metrics"]) == ("Running", [])  # before any metric was logged

    # deployment: the model -> the endpoint, with the split after each step
    for task, share in (("deploy_canary", 10.0), ("promote", 100.0)):
        event = complete[task]
        assert _ids(event["inputs"]) == [MODEL] and _ids(event["outputs"]) == [ENDPOINT]
        assert event["inputs"][0]["facets"]["version"]["datasetVersion"] == champion["version"]
        split = event["outputs"][0]["facets"][lineage.DEPLOYMENT_FACET]
        validate_facet(split, "MLTrackDeploymentFacet")
        assert split["serving"] == [
            {"modelName": "digits-sgd", "modelVersion": champion["version"], "trafficPercentage": share}
        ]

    # the whole chain, by namespace + name across events
    edges = {
        ((i["namespace"], i["name"]), (o["namespace"], o["name"]))
        for e in complete.values()
        for i in e.get("inputs", [])
        for o in e.get("outputs", [])
    }
    assert _reaches(edges, [RAW, DERIVED, MODEL, ENDPOINT]), sorted(edges)
    # every facet of ours in every event validates
    ours = [
        (name, facet)
        for e in events
        for scope in [e["run"].get("facets", {})]
        + [d.get("facets", {}) for d in e.get("inputs", []) + e.get("outputs", [])]
        for name, facet in scope.items()
        if name.startswith("mltrack_")
    ]
    assert len(ours) >= 9
    for _name, facet in ours:
        validate_facet(facet, facet["_schemaURL"].rpartition("/")[2])
