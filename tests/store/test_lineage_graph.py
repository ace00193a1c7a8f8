"""store/reads/lineage.lineage_graph: the drawn lineage graph, bounded per layer and in depth, on both
backends (around a dataset, an experiment and a model; hidden DAGs left out)."""

from __future__ import annotations

from collections import Counter

import pytest

from airflow_mltrack.errors import MLTrackError, NotFoundError
from airflow_mltrack.store.reads.lineage import lineage_graph


def _chain(store):
    """raw -> clean (job) -> small (job); 2 models; experiments on clean; one endpoint."""
    raw = store.register_dataset("p", "raw", "Tabular")
    clean = store.register_dataset("p", "clean", "Tabular", version="2.0")
    small = store.register_dataset("p", "small", "Tabular", version="sgd-539ac701")
    store.record_preprocessing_job("p", "clean-it", raw, clean, dag_id="d", run_id="r", task_id="t")
    store.record_preprocessing_job("p", "shrink", clean, small)
    m1 = store.register_model("p", "net", "PyTorch", version="1")
    m2 = store.register_model("p", "net", "PyTorch", version="2")
    e1 = store.create_experiment("p", "first", m1, clean, {}, dag_id="d", run_id="r", task_id="t")
    e2 = store.create_experiment("p", "second", m2, small, {}, dag_id="d", run_id="r", task_id="t")
    hidden = store.create_experiment("p", "hidden", m2, clean, {}, dag_id="secret", run_id="r", task_id="t")
    store.deploy_model("p", "prod", m1, 100)
    store.deploy_model("p", "prod", m2, 100)
    return {
        "raw": raw,
        "clean": clean,
        "small": small,
        "m1": m1,
        "m2": m2,
        "e1": e1,
        "e2": e2,
        "hidden": hidden,
    }


def _ids(graph, kind):
    return {n["ref"] for n in graph["nodes"] if n["kind"] == kind}


def test_graph_around_a_dataset_follows_the_chain_both_ways(store):
    ids = _chain(store)
    graph = lineage_graph(store, "dataset", ids["clean"], visible_dag_ids=["d"])
    assert graph["root"] == f"dataset:{ids['clean']}"
    assert _ids(graph, "dataset") == {ids["raw"], ids["clean"], ids["small"]}
    assert _ids(graph, "job") and len(_ids(graph, "job")) == 2
    assert _ids(graph, "experiment") == {ids["e1"], ids["e2"]}  # "hidden" is in a DAG the reader cannot see
    assert _ids(graph, "model") == {ids["m1"], ids["m2"]}
    assert len(_ids(graph, "endpoint")) == 1
    layer = {n["id"]: n["layer"] for n in graph["nodes"]}
    for edge in graph["edges"]:  # left to right
        assert layer[edge["source"]] < layer[edge["target"]], edge
    assert layer[f"dataset:{ids['raw']}"] == 0 and layer[f"dataset:{ids['clean']}"] == 2
    served = {e["source"]: e for e in graph["edges"] if e["target"].startswith("endpoint:")}
    assert served[f"model:{ids['m2']}"]["active"] is True and served[f"model:{ids['m2']}"]["traffic"] == 100
    assert served[f"model:{ids['m1']}"]["active"] is False
    everyone = lineage_graph(store, "dataset", ids["clean"])
    assert ids["hidden"] in _ids(everyone, "experiment")


def test_graph_around_an_experiment_and_a_model(store):
    ids = _chain(store)
    around_e = lineage_graph(store, "experiment", ids["e2"], visible_dag_ids=["d"])
    assert _ids(around_e, "experiment") == {ids["e2"]}
    assert _ids(around_e, "dataset") == {ids["raw"], ids["clean"], ids["small"]}  # its dataset's chain up
    assert _ids(around_e, "model") == {ids["m2"]}
    around_m = lineage_graph(store, "model", ids["m2"], visible_dag_ids=["d"])
    assert _ids(around_m, "experiment") == {ids["e2"]}
    assert _ids(around_m, "model") == {ids["m2"]} and len(_ids(around_m, "endpoint")) == 1
    with pytest.raises(NotFoundError, match="experiment_id"):
        lineage_graph(store, "experiment", ids["hidden"], visible_dag_ids=["d"])
    with pytest.raises(NotFoundError, match="model_id"):
        lineage_graph(store, "model", 999_999)
    with pytest.raises(MLTrackError, match="kind"):
        lineage_graph(store, "endpoint", 1)


def test_graph_is_bounded_per_layer_with_more_counts(store):
    raw = store.register_dataset("p", "raw", "Tabular")
    model = store.register_model("p", "net", "PyTorch")
    experiments = [store.create_experiment("p", f"e{i}", model, raw, {}) for i in range(40)]
    models = [store.register_model("p", f"m{i}", "PyTorch") for i in range(30)]
    for i, m in enumerate(models):
        store.create_experiment("p", f"x{i}", m, raw, {})
    graph = lineage_graph(store, "dataset", raw, per_layer=10)
    per_layer = Counter(n["layer"] for n in graph["nodes"] if n["kind"] != "more")
    assert per_layer and max(per_layer.values()) <= 10
    more = {n["name"]: n["count"] for n in graph["nodes"] if n["kind"] == "more"}
    assert more["experiment"] == 70 - 10  # the 10 newest drawn
    assert _ids(graph, "experiment") == set(range(max(experiments) + 21, max(experiments) + 31))
    assert len(graph["nodes"]) <= 10 * 3 + 3


def test_depth_limit_marks_a_deeper_chain(store):
    chain = [store.register_dataset("p", f"d{i}", "Tabular") for i in range(6)]
    for a, b in zip(chain, chain[1:], strict=False):
        store.record_preprocessing_job("p", f"job-{a}", a, b)
    graph = lineage_graph(store, "dataset", chain[0], depth=2)
    assert _ids(graph, "dataset") == set(chain[:3])
    assert graph["deeper"] is True
    whole = lineage_graph(store, "dataset", chain[0], depth=10)
    assert _ids(whole, "dataset") == set(chain) and whole["deeper"] is False
