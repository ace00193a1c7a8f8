"""The search language's grammar: what it reads, and each mistake named with its token and position."""

from __future__ import annotations

import pytest

from airflow_mltrack.store.search import (
    BoolOp,
    Comparison,
    SearchError,
    parse_columns,
    parse_filter,
    parse_order_by,
)


def test_mlflow_filter_reads_into_nodes() -> None:
    node = parse_filter(
        "metrics.validation.accuracy > 0.9 and params.lr = '0.01' "
        "or (tags.baseline IS NOT NULL and attributes.status IN ('FINISHED', 'running'))"
    )
    assert isinstance(node, BoolOp) and node.op == "OR"
    first, second = node.parts
    assert isinstance(first, BoolOp) and first.op == "AND"
    metric, param = first.parts
    assert (metric.key.entity, metric.key.split, metric.key.name, metric.op, metric.value) == (
        "metrics",
        "validation",
        "accuracy",
        ">",
        0.9,
    )
    assert (param.key.path, param.op, param.value) == (("lr",), "=", "0.01")
    tag, status = second.parts
    assert (tag.key.entity, tag.op) == ("tags", "IS NOT NULL")
    assert status.value == ("Completed", "Running")  # MLflow's and any-case names read as ours


@pytest.mark.parametrize(
    ("text", "entity", "name", "split"),
    [
        ("metrics.accuracy > 1", "metrics", "accuracy", None),
        ("metric.train.loss < 1", "metrics", "loss", "train"),
        ("metrics.`val.acc` > 1", "metrics", "val.acc", None),
        ('metrics.test."my metric" > 1', "metrics", "my metric", "test"),
        ("params.model.depth = 3", "params", "model.depth", None),
        ("attributes.run_name = 'x'", "attributes", "name", None),
        ("run.id = 3", "attributes", "experiment_id", None),
        ("datasets.name = 'cifar'", "datasets", "name", None),
        ("status = 'FINISHED'", "attributes", "status", None),  # a bare name is an attribute (MLflow)
        ("run_name = 'x'", "attributes", "name", None),
        ("Created > 1", "attributes", "start_time", None),
        ("attributes.`Run name` = 'x'", "attributes", "name", None),
    ],
)
def test_keys_and_their_spellings(text: str, entity: str, name: str, split: str | None) -> None:
    node = parse_filter(text)
    assert isinstance(node, Comparison)
    assert (node.key.entity, node.key.name, node.key.split) == (entity, name, split)


@pytest.mark.parametrize(
    "op", ["=", "!=", "<", "<=", ">", ">=", "LIKE", "ILIKE", "NOT LIKE", "NOT ILIKE", "IN", "NOT IN"]
)
def test_every_operator_on_a_text_attribute(op: str) -> None:
    value = "('a', 'b')" if op.endswith("IN") else "'a%'"
    node = parse_filter(f"attributes.dag_id {op.lower()} {value}")
    assert isinstance(node, Comparison) and node.op == op


def test_strings_escape_quotes_both_ways() -> None:
    assert parse_filter("params.a = 'it''s'").value == "it's"
    assert parse_filter(r"params.a = 'it\'s'").value == "it's"
    assert parse_filter('params.a = "say ""hi"""').value == 'say "hi"'


@pytest.mark.parametrize(
    ("text", "token", "position"),
    [
        ("metrics.acc >> 0.9", ">", 13),
        ("metrics.acc > ", "end of expression", 14),
        ("foo.bar = 1", "foo.bar", 0),
        ("params.lr = 1 and", "end of expression", 17),
        ("metrics.a = 'x'", "'x'", 12),
        ("tags.a > 1", ">", 7),  # tags compare values as text: no ordering
        ("attributes.status = 'Done'", "'Done'", 20),
        ("params.a = 'open", "'open", 11),
        ("NOT params.a = 1", "NOT", 0),
        ("metrics.a IS 3", "3", 13),
        ("attributes.nope = 1", "attributes.nope", 0),
        ("nope = 1", "nope", 0),
        ("metrics > 1", "metrics", 0),
        ("start_time = 1 and nope = 2", "nope", 19),
        ("params.a = 1 params.b = 2", "params", 13),
        ("(params.a = 1", "end of expression", 13),
        ("params.a = 1 ; drop table experiments", ";", 13),
        ("metrics.a > 'nan'", "'nan'", 12),
        ("attributes.status IS NULL", "IS", 18),
    ],
)
def test_mistakes_name_the_token_and_position(text: str, token: str, position: int) -> None:
    with pytest.raises(SearchError) as caught:
        parse_filter(text)
    error = caught.value
    assert (error.field, error.token, error.position) == ("filter", token, position), str(error)
    assert f"position {position}" in str(error)


def test_limits_are_errors_not_minutes() -> None:
    with pytest.raises(SearchError, match="longer than 4000"):
        parse_filter("params.a = '" + "x" * 5000 + "'")
    with pytest.raises(SearchError, match="nested deeper"):
        parse_filter("(" * 30 + "params.a = 1" + ")" * 30)
    with pytest.raises(SearchError, match="more than 100 comparisons"):
        parse_filter(" and ".join(["params.a = 1"] * 101))


def test_empty_filter_is_no_filter() -> None:
    assert parse_filter("  ") is None
    assert parse_filter(None) is None


def test_order_by_clauses_and_columns() -> None:
    keys = parse_order_by(["metrics.accuracy DESC, attributes.start_time", "params.`a b` asc"])
    assert [(o.key.entity, o.key.name, o.descending) for o in keys] == [
        ("metrics", "accuracy", True),
        ("attributes", "start_time", False),
        ("params", "a b", False),
    ]
    bare = parse_order_by(["start_time DESC", "run_name, status ASC"])
    assert [(o.key.entity, o.key.name, o.descending) for o in bare] == [
        ("attributes", "start_time", True),
        ("attributes", "name", False),
        ("attributes", "status", False),
    ]
    assert [c.canonical() for c in parse_columns(["duration"])] == ["attributes.duration"]
    with pytest.raises(SearchError, match="cannot order") as caught:
        parse_order_by("tags.baseline")
    assert caught.value.field == "order_by"
    with pytest.raises(SearchError, match="expected ASC, DESC"):
        parse_order_by("metrics.a DESC metrics.b")
    columns = parse_columns(["metrics.test.accuracy,params.lr", "params.model.depth"])
    assert [c.canonical() for c in columns] == ["metrics.test.accuracy", "params.lr", "params.model.depth"]
    with pytest.raises(SearchError, match="one key per column"):
        parse_columns(["params.a = 1"])
