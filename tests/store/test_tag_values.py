"""Tags with a value (revision 0006, MLflow's key=value tags) on SQLite and PostgreSQL: set_tag overwrites,
labels keep working, delete_tag, bad input named, the search language on values (labels never match a value
comparison), and injection attempts through tag names and values."""

from __future__ import annotations

import unicodedata
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import func, select

from airflow_mltrack.errors import MLTrackError, NotFoundError
from airflow_mltrack.store import TrackingStore
from airflow_mltrack.store.membership import TaskLink
from airflow_mltrack.store.reads.experiment_list import ExperimentFilter, experiment_page
from airflow_mltrack.store.search import SearchError
from airflow_mltrack.store.tables import experiment_tasks, tag_assignments
from airflow_mltrack.store.tags import MAX_TAG_VALUE_LEN

LABEL = None  # a label tag's value


def _experiment(store: TrackingStore, name: str, **link: Any) -> int:
    dataset = store.register_dataset("tagging", "customers", "Tabular")
    model = store.register_model("tagging", "mlp", "torch")
    return store.create_experiment("tagging", name, model, dataset, **link)


def _assignments(store: TrackingStore) -> int:
    with store.read() as conn:
        return conn.execute(select(func.count()).select_from(tag_assignments)).scalar_one()


def test_set_tag_overwrites_and_labels_keep_working(store: TrackingStore) -> None:
    experiment = _experiment(store, "e")
    store.set_tag("experiment", experiment, "team", "vision")
    assert store.tag_values("experiment", experiment) == {"team": "vision"}
    store.set_tag("experiment", experiment, "team", "nlp")  # MLflow's set_tag overwrites
    assert store.tag_values("experiment", experiment) == {"team": "nlp"}
    assert _assignments(store) == 1

    assert store.tag("experiment", experiment, ["baseline"]) == ["baseline", "team"]
    store.tag("experiment", experiment, ["team"])  # adding a label keeps the value it has
    assert store.tag_values("experiment", experiment) == {"baseline": LABEL, "team": "nlp"}
    store.set_tag("experiment", experiment, "team", None)  # back to a label
    store.set_tag("experiment", experiment, "baseline", "")  # the empty string is a value, not a label
    assert store.tag_values("experiment", experiment) == {"baseline": "", "team": LABEL}
    assert store.tags_of("experiment", experiment) == ["baseline", "team"]

    decomposed = unicodedata.normalize("NFD", " Café ")  # names are stored in their canonical form
    store.set_tag("experiment", experiment, decomposed, "x" * MAX_TAG_VALUE_LEN)
    assert store.tag_values("experiment", experiment)["Café"] == "x" * MAX_TAG_VALUE_LEN
    assert _assignments(store) == 3


def test_set_tags_is_one_transaction_and_entities_are_apart(store: TrackingStore) -> None:
    experiment = _experiment(store, "e")
    dataset = store.register_dataset("tagging", "customers", "Tabular")
    store.set_tags("experiment", experiment, {"b": "2", "a": "1", "label": None})
    store.set_tags("dataset", dataset, {"a": "dataset's"})
    assert store.tag_values("experiment", experiment) == {"a": "1", "b": "2", "label": LABEL}
    assert store.tag_values("dataset", dataset) == {"a": "dataset's"}

    with pytest.raises(MLTrackError) as caught:  # one bad value: nothing of the call is written
        store.set_tags("experiment", experiment, {"a": "changed", "c": "new", "d": "bad\x00"})
    assert (caught.value.field, caught.value.value) == ("tags.d", "bad\x00")
    assert store.tag_values("experiment", experiment) == {"a": "1", "b": "2", "label": LABEL}

    with pytest.raises(MLTrackError, match="given twice") as caught:
        store.set_tags("experiment", experiment, {"Café": "1", unicodedata.normalize("NFD", "Café"): "2"})
    assert caught.value.field == "tags"
    with pytest.raises(MLTrackError, match="mapping"):
        store.set_tags("experiment", experiment, ["a", "b"])  # type: ignore[arg-type]


def test_delete_tag(store: TrackingStore) -> None:
    experiment = _experiment(store, "e")
    store.set_tags("experiment", experiment, {"team": "vision", "baseline": None, "keep": "me"})
    assert store.delete_tag("experiment", experiment, "team") is True
    assert store.delete_tag("experiment", experiment, "team") is False  # not carried any more
    assert store.delete_tag("experiment", experiment, "baseline") is True  # labels too
    assert store.tag_values("experiment", experiment) == {"keep": "me"}
    store.untag("experiment", experiment, "keep")  # the label API removes a valued tag as well
    assert store.tag_values("experiment", experiment) == {}
    with pytest.raises(NotFoundError) as caught:
        store.delete_tag("experiment", experiment + 1000, "team")
    assert (caught.value.field, caught.value.value) == ("entity_id", experiment + 1000)


@pytest.mark.parametrize(
    ("call", "field", "value", "reason"),
    [
        (("experiment", "team", "x" * (MAX_TAG_VALUE_LEN + 1)), "value", "x" * 8001, "8001 characters"),
        (("experiment", "team", "a\x00b"), "value", "a\x00b", "NUL"),
        (("experiment", "team", "\ud800"), "value", "\ud800", "surrogate"),
        (("experiment", "team", 12), "value", 12, "must be a string, not int"),
        (("experiment", "team", ["a"]), "value", ["a"], "must be a string"),
        (("experiment", "", "x"), "name", "", "must not be empty"),
        (("experiment", "\u200b", "x"), "name", "\u200b", "must not be empty"),
        (("experiment", "t" * 251, "x"), "name", "t" * 251, "251 characters"),  # MLflow's key limit: 250
        (("experiment", 3, "x"), "name", 3, "must be a string"),
        (("run", "team", "x"), "entity_type", "run", "one of"),
    ],
)
def test_bad_input_is_named(
    store: TrackingStore, call: tuple[Any, ...], field: str, value: Any, reason: str
) -> None:
    experiment = _experiment(store, "e")
    entity_type, name, tag_value = call
    with pytest.raises(MLTrackError, match=reason) as caught:
        store.set_tag(entity_type, experiment, name, tag_value)
    assert (caught.value.field, caught.value.value) == (field, value)
    assert store.tag_values("experiment", experiment) == {}


def test_missing_entity_is_not_found(store: TrackingStore) -> None:
    with pytest.raises(NotFoundError) as caught:
        store.set_tag("model", 4242, "team", "x")
    assert (caught.value.field, caught.value.value) == ("entity_id", 4242)
    assert _assignments(store) == 0


def test_set_and_delete_record_the_writing_task(store: TrackingStore) -> None:
    experiment = _experiment(store, "e", dag_id="train", run_id="r1", task_id="create")
    store.task_link = TaskLink("train", "r1", "mlflow_code")
    store.set_tag("experiment", experiment, "team", "vision")
    store.task_link = TaskLink("train", "r1", "cleanup")
    store.delete_tag("experiment", experiment, "team")
    with store.read() as conn:
        roles = dict(
            conn.execute(
                select(experiment_tasks.c.task_id, experiment_tasks.c.role).where(
                    experiment_tasks.c.experiment_id == experiment
                )
            ).all()
        )
    assert roles == {"create": "creator", "mlflow_code": "writer", "cleanup": "writer"}
    assert store.get_experiment(experiment)["status"] == "Running"  # a task wrote to it


# -- search --------------------------------------------------------------------------------------------

#: experiment name -> its tags ({name: value}, None for a label)
TAGGED: dict[str, dict[str, str | None]] = {
    "e0": {"team": "vision"},
    "e1": {"team": "Vision"},
    "e2": {"team": "nlp", "owner": "ana"},
    "e3": {"team": LABEL},
    "e4": {"team": ""},
    "e5": {"owner": "team"},
    "e6": {"team": "100% done"},
    "e7": {"team": "it's"},
    "e8": {"my tag": "x y", "team": "1"},
    "e9": {},
}


@pytest.fixture
def tagged(store: TrackingStore) -> dict[int, dict[str, str | None]]:
    """Experiments tagged as TAGGED: {experiment id: tags}."""
    facts = {}
    for name, tags in TAGGED.items():
        experiment = _experiment(store, name)
        if tags:
            store.set_tags("experiment", experiment, tags)
        facts[experiment] = tags
    return facts


def found(store: TrackingStore, text: str) -> set[int]:
    page = experiment_page(store, ExperimentFilter(search=text, limit=100))
    return {row["experiment_id"] for row in page["items"]}


def valued(tags: dict[str, str | None], name: str, test: Callable[[str], bool]) -> bool:
    """A value comparison: the tag is there, has a value (not a label), and the value passes."""
    value = tags.get(name)
    return value is not None and test(value)


SEARCHES: list[tuple[str, Callable[[dict[str, str | None]], bool]]] = [
    ("tags.team = 'vision'", lambda t: valued(t, "team", lambda v: v == "vision")),
    ("tags.team = 'VISION'", lambda t: False),  # = is case-sensitive
    ("tags.team != 'vision'", lambda t: valued(t, "team", lambda v: v != "vision")),
    ("tags.team LIKE 'v%'", lambda t: valued(t, "team", lambda v: v.startswith("v"))),
    ("tags.team ILIKE 'V%'", lambda t: valued(t, "team", lambda v: v.lower().startswith("v"))),
    ("tags.team NOT LIKE 'v%'", lambda t: valued(t, "team", lambda v: not v.startswith("v"))),
    ("tags.team NOT ILIKE 'v%'", lambda t: valued(t, "team", lambda v: not v.lower().startswith("v"))),
    ("tags.team IN ('nlp', 'vision')", lambda t: valued(t, "team", lambda v: v in ("nlp", "vision"))),
    ("tags.team NOT IN ('nlp', '')", lambda t: valued(t, "team", lambda v: v not in ("nlp", ""))),
    ("tags.team = ''", lambda t: valued(t, "team", lambda v: v == "")),
    ("tags.team = 1", lambda t: valued(t, "team", lambda v: v == "1")),  # an unquoted number is its text
    ("tags.team IN (1, 'nlp')", lambda t: valued(t, "team", lambda v: v in ("1", "nlp"))),
    ("tags.team LIKE '%100\\% done'", lambda t: t.get("team") == "100% done"),
    ("tags.team = 'it''s'", lambda t: t.get("team") == "it's"),
    ("tags.team IS NOT NULL", lambda t: "team" in t),  # present: label or value
    ("tags.team IS NULL", lambda t: "team" not in t),
    ("tags.`my tag` = 'x y'", lambda t: t.get("my tag") == "x y"),
    ("tags.\"my tag\" LIKE 'x%'", lambda t: t.get("my tag") == "x y"),
    ("tags.owner = 'team'", lambda t: t.get("owner") == "team"),
    ("tag.owner IS NOT NULL and tags.team = 'nlp'", lambda t: "owner" in t and t.get("team") == "nlp"),
    (
        "tags.team = 'vision' or tags.team IS NOT NULL and tags.team != 'nlp'",
        lambda t: t.get("team") == "vision" or valued(t, "team", lambda v: v != "nlp"),
    ),
    ("tags.nope = 'x'", lambda t: False),
    ("tags.nope IS NULL", lambda t: True),
]


def test_search_on_tag_values_matches_python(
    store: TrackingStore, tagged: dict[int, dict[str, str | None]]
) -> None:
    wrong = {}
    selective = 0
    for text, predicate in SEARCHES:
        expected = {i for i, tags in tagged.items() if predicate(tags)}
        selective += 0 < len(expected) < len(tagged)
        got = found(store, text)
        if got != expected:
            wrong[text] = {"missing": sorted(expected - got), "extra": sorted(got - expected)}
    assert not wrong
    assert selective >= 18


def test_a_label_matches_no_value_comparison(
    store: TrackingStore, tagged: dict[int, dict[str, str | None]]
) -> None:
    label = next(i for i, tags in tagged.items() if tags == {"team": LABEL})
    for text in (
        "tags.team != 'x'",
        "tags.team NOT IN ('x')",
        "tags.team NOT LIKE 'x%'",
        "tags.team LIKE '%'",
    ):
        assert label not in found(store, text), text
    assert label in found(store, "tags.team IS NOT NULL")


@pytest.mark.parametrize(
    ("text", "token"),
    [
        ("tags.team > 'a'", ">"),
        ("tags.team <= 1", "<="),
    ],
)
def test_ordering_comparisons_on_tags_are_refused(store: TrackingStore, text: str, token: str) -> None:
    with pytest.raises(SearchError, match="does not compare tag values") as caught:
        found(store, text)
    assert (caught.value.field, caught.value.token, caught.value.position) == ("filter", token, 10)
    with pytest.raises(SearchError, match="cannot order"):
        experiment_page(store, ExperimentFilter(order_by=("tags.team",)))


INJECTED_NAMES = ["x' OR '1'='1", 'a"); DROP TABLE tags; --', "back`tick", "%", "_"]
INJECTED_VALUES = ["'; DROP TABLE tag_assignments; --", "' OR 1=1 --", "%", "\\"]


def _key(name: str) -> str:
    return "tags.`" + name.replace("`", "``") + "`"


def _string(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "''") + "'"


def test_injection_through_tag_names_and_values(store: TrackingStore) -> None:
    """Names and values full of SQL find exactly what carries them, and change nothing."""
    by_name = {name: _experiment(store, f"n{i}") for i, name in enumerate(INJECTED_NAMES)}
    for name, experiment in by_name.items():
        store.set_tag("experiment", experiment, name, "v")
    by_value = {value: _experiment(store, f"v{i}") for i, value in enumerate(INJECTED_VALUES)}
    for value, experiment in by_value.items():
        store.set_tag("experiment", experiment, "payload", value)
    assigned = _assignments(store)

    for name, experiment in by_name.items():
        assert found(store, f"{_key(name)} = 'v'") == {experiment}, name
        assert found(store, f"{_key(name)} IS NOT NULL") == {experiment}, name
        assert store.tag_values("experiment", experiment) == {name: "v"}
    for value, experiment in by_value.items():
        assert found(store, f"tags.payload = {_string(value)}") == {experiment}, value
        assert found(store, f"tags.payload IN ({_string(value)})") == {experiment}, value
    assert found(store, "tags.payload LIKE '\\\\%'") == {by_value["%"]}  # \\% in the filter: a literal %
    assert found(store, "tags.payload = 'x'' OR ''1''=''1'") == set()
    assert found(store, "tags.`x' OR '1'='1` = 'x'' OR 1=1 --'") == set()
    assert _assignments(store) == assigned
    assert experiment_page(store, ExperimentFilter(limit=100))["total"] == len(by_name) + len(by_value)
