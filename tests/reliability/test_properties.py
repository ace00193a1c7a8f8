"""Property tests (hypothesis): the metric payload parser and the metric upsert.

(a) ``parse_metrics``: every generated valid payload of each shape of docs/operators.md (LogMetricsOperator)
    parses to exactly the rows the test expects (computed here, independently of the parser); every
    generated invalid payload raises ``MLTrackError`` whose ``field`` starts with ``metrics``, and never
    any other exception type.
(b) ``log_metrics`` on SQLite and PostgreSQL: logging a list of rows twice leaves the same table as logging
    it once, one row per key, each holding the last value given for that key.
"""

from __future__ import annotations

import math
import random
import unicodedata
import uuid
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from airflow_mltrack import MLTrackError
from airflow_mltrack.store import TrackingStore
from airflow_mltrack.store.models import Metric
from airflow_mltrack.store.payloads import parse_metrics

SPLITS = ("train", "validation", "test", "inference")
MAX_STEP = 2**31 - 1
NAME_MAX = 100

# -- strategies: valid pieces -----------------------------------------------------------------------
_NAME_CHARS = st.characters(codec="utf-8", categories=("L", "N", "P", "S"), exclude_characters="\x00")
core_names = st.text(_NAME_CHARS, min_size=1, max_size=NAME_MAX)
# Surrounding blanks are allowed and stripped; the stripped name must keep 1..100 characters.
names = st.builds(
    lambda pad_l, core, pad_r: pad_l + core + pad_r,
    st.sampled_from(["", " ", "\t"]),
    core_names,
    st.sampled_from(["", " ", "\n"]),
)
values = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(min_value=-(2**53), max_value=2**53),
)
steps = st.integers(min_value=0, max_value=MAX_STEP)
split_spellings = st.sampled_from(SPLITS).flatmap(
    lambda s: st.sampled_from([s, s.upper(), s.title(), f" {s} "])
)


def canon_split(spelling: str) -> str:
    return spelling.strip().lower()


def norm(rows: list[tuple]) -> list[tuple]:
    """Rows comparable with ==: NaN becomes a marker, ints become floats, names are NFC (as stored)."""
    out = []
    for name, value, step, split, *_recorded_at in rows:  # MetricRow has recorded_at (None when parsed)
        value = float(value)
        out.append((unicodedata.normalize("NFC", name), "NaN" if math.isnan(value) else value, step, split))
    return out


# Each valid strategy yields (payload, default evaluation_set, default step, expected rows).
@st.composite
def scalar_dicts(draw):
    payload = draw(st.dictionaries(names, values, min_size=1, max_size=8))
    split = draw(st.sampled_from(SPLITS))
    step = draw(st.one_of(st.none(), steps))
    expected = [(k.strip(), val, step, split) for k, val in payload.items()]
    return payload, split, step, expected


@st.composite
def curve_dicts(draw):
    payload = draw(
        st.dictionaries(
            names,
            st.one_of(st.lists(values, min_size=1, max_size=20), st.tuples(values, values)),
            min_size=1,
            max_size=5,
        )
    )
    split = draw(st.sampled_from(SPLITS))
    expected = [(k.strip(), val, i, split) for k, curve in payload.items() for i, val in enumerate(curve)]
    return payload, split, None, expected


@st.composite
def split_first(draw):
    inner = st.dictionaries(
        names, st.one_of(values, st.lists(values, min_size=1, max_size=5)), min_size=1, max_size=5
    )
    spellings = draw(st.lists(split_spellings, min_size=1, max_size=4, unique_by=canon_split))
    payload: dict[str, Any] = {s: draw(inner) for s in spellings}
    # Scalars at the top level may sit next to the splits (they take the default split).
    extra = draw(st.dictionaries(names.filter(lambda n: canon_split(n) not in SPLITS), values, max_size=3))
    payload.update(extra)
    default = draw(st.sampled_from(SPLITS))
    expected = []
    for key, item in payload.items():
        if isinstance(item, dict):
            for name, val in item.items():
                if isinstance(val, list):
                    expected += [(name.strip(), x, i, canon_split(key)) for i, x in enumerate(val)]
                else:
                    expected.append((name.strip(), val, None, canon_split(key)))
        else:
            expected.append((key.strip(), item, None, default))
    return payload, default, None, expected


@st.composite
def row_lists(draw):
    default_split = draw(st.sampled_from(SPLITS))
    default_step = draw(st.one_of(st.none(), steps))
    payload, expected = [], []
    for _ in range(draw(st.integers(1, 12))):
        row: dict[str, Any] = {"name": draw(names), "value": draw(values)}
        step_kind = draw(st.sampled_from(["absent", "none", "int", "text", "float"]))
        step = draw(steps)
        if step_kind == "none":
            row["step"] = None
        elif step_kind == "int":
            row["step"] = step
        elif step_kind == "text":  # templates render numbers as text
            row["step"] = str(step)
        elif step_kind == "float":
            step = min(step, 2**52)
            row["step"] = float(step)
        split_kind = draw(st.sampled_from(["absent", "none", "given"]))
        split = default_split
        if split_kind == "none":
            row["evaluation_set"] = None
        elif split_kind == "given":
            spelling = draw(split_spellings)
            row["evaluation_set"] = spelling
            split = canon_split(spelling)
        payload.append(row)
        expected.append(
            (
                row["name"].strip(),
                row["value"],
                step if step_kind in ("int", "text", "float") else default_step,
                split,
            )
        )
    if draw(st.booleans()):
        payload = tuple(payload)
    return payload, default_split, default_step, expected


valid_payloads = st.one_of(scalar_dicts(), curve_dicts(), split_first(), row_lists())


@settings(max_examples=400, deadline=None)
@given(valid_payloads)
def test_valid_payloads_parse_to_exactly_the_expected_rows(case):
    payload, split, step, expected = case
    got = parse_metrics(payload, evaluation_set=split, step=step)
    assert norm([tuple(r) for r in got]) == norm(expected)


# -- strategies: invalid payloads -------------------------------------------------------------------
long_names = st.integers(NAME_MAX + 1, NAME_MAX + 60).map(lambda n: "x" * n)
blank_names = st.sampled_from(["", " ", "\t\n"])
bad_scalars = st.one_of(
    st.text(max_size=5),  # "0.5" is not a number
    st.booleans(),
    st.none(),
    st.binary(max_size=3),
    st.lists(values, min_size=1, max_size=3).map(lambda xs: [xs]),  # nested list
    st.complex_numbers(allow_nan=False).filter(lambda c: c.imag != 0),
    st.just(object()),
)
bad_values = st.one_of(bad_scalars, st.just({}))
unknown_splits = st.text(min_size=0, max_size=12).filter(lambda s: canon_split(s) not in SPLITS)


@st.composite
def invalid_payloads(draw):
    kind = draw(
        st.sampled_from(
            [
                "string",
                "bytes",
                "scalar",
                "bool",
                "none",
                "empty_dict",
                "empty_list",
                "bad_value",
                "bad_curve_item",
                "nested_curve",
                "empty_curve",
                "long_name",
                "blank_name",
                "non_str_name",
                "unknown_split",
                "empty_split",
                "row_not_dict",
                "row_unknown_key",
                "row_missing",
                "row_bad_step",
                "row_bad_split",
                "row_bad_value",
                "row_long_name",
                "curve_with_step",
            ]
        )
    )
    step = None
    if kind == "string":
        payload = draw(st.text(max_size=20))
    elif kind == "bytes":
        payload = draw(st.binary(max_size=20))
    elif kind == "scalar":
        payload = draw(values)
    elif kind == "bool":
        payload = draw(st.booleans())
    elif kind == "none":
        payload = None
    elif kind == "empty_dict":
        payload = {}
    elif kind == "empty_list":
        payload = draw(st.sampled_from([[], ()]))
    elif kind == "bad_value":
        payload = {draw(names): draw(bad_values)}
    elif kind == "bad_curve_item":
        payload = {draw(names): [draw(values), draw(bad_scalars)]}
    elif kind == "nested_curve":
        payload = {draw(names): [[draw(values)]]}
    elif kind == "empty_curve":
        payload = {draw(names): draw(st.sampled_from([[], ()]))}
    elif kind == "long_name":
        payload = {draw(long_names): draw(values)}
    elif kind == "blank_name":
        payload = {draw(blank_names): draw(values)}
    elif kind == "non_str_name":
        payload = {draw(st.one_of(st.integers(), st.booleans(), st.none(), st.tuples(st.integers()))): 1.0}
    elif kind == "unknown_split":
        payload = {draw(unknown_splits): {draw(names): draw(values)}}
    elif kind == "empty_split":
        payload = {draw(split_spellings): {}}
    elif kind == "row_not_dict":
        payload = [draw(st.one_of(values, st.text(max_size=5), st.lists(values, max_size=2), st.none()))]
    elif kind == "row_unknown_key":
        extra = draw(
            st.text(min_size=1, max_size=10).filter(
                lambda k: k not in ("name", "value", "step", "evaluation_set")
            )
        )
        payload = [{"name": draw(names), "value": draw(values), extra: 1}]
    elif kind == "row_missing":
        payload = [draw(st.sampled_from([{"name": "a"}, {"value": 1.0}, {}]))]
    elif kind == "row_bad_step":
        bad_step = draw(
            st.one_of(
                st.integers(max_value=-1),
                st.integers(min_value=MAX_STEP + 1, max_value=2**70),
                st.booleans(),
                st.floats().filter(lambda f: not f.is_integer()),
                st.text(alphabet="ab.-x", min_size=1),
            )
        )
        payload = [{"name": draw(names), "value": draw(values), "step": bad_step}]
    elif kind == "row_bad_split":
        payload = [
            {
                "name": draw(names),
                "value": draw(values),
                "evaluation_set": draw(st.one_of(unknown_splits, st.integers(), st.booleans())),
            }
        ]
    elif kind == "row_bad_value":
        payload = [{"name": draw(names), "value": draw(bad_values)}]
    elif kind == "row_long_name":
        payload = [{"name": draw(long_names), "value": draw(values)}]
    else:  # curve_with_step: a list gives its own steps
        payload = {draw(names): draw(st.lists(values, min_size=1, max_size=3))}
        step = draw(steps)
    # Hide the bad part among valid entries half the time: one bad entry refuses the whole payload.
    if kind not in ("string", "bytes", "scalar", "bool", "none", "empty_dict", "empty_list") and draw(
        st.booleans()
    ):
        if isinstance(payload, dict) and step is None:
            good = draw(st.dictionaries(names.map(lambda n: "ok_" + n.strip()[:90]), values, max_size=4))
            items = list(good.items())
            items.insert(draw(st.integers(0, len(items))), next(iter(payload.items())))
            payload = dict(items)
        elif isinstance(payload, list):
            good = [{"name": "ok", "value": 1.0}] * draw(st.integers(0, 3))
            payload = good + payload + good
    return kind, payload, step


@settings(max_examples=600, deadline=None)
@given(invalid_payloads())
def test_invalid_payloads_raise_mltrackerror_naming_metrics(case):
    kind, payload, step = case
    try:
        parse_metrics(payload, step=step)
    except MLTrackError as exc:
        assert exc.field.startswith("metrics"), (kind, exc.field)
        assert exc.field in str(exc)
    else:
        pytest.fail(f"{kind}: accepted {payload!r}")


@pytest.mark.parametrize(
    "payload", [{"a": 10**400}, {"a": [1.0, 10**400]}, [{"name": "a", "value": -(10**400)}]]
)
def test_int_too_large_for_a_double_is_an_mltrackerror(payload):
    with pytest.raises(MLTrackError) as info:
        parse_metrics(payload)
    assert info.value.field.startswith("metrics")


# -- (b) the upsert, both backends --------------------------------------------------------------------
key_names = st.sampled_from(["loss", "acc", "f1", "x" * NAME_MAX, "ünï ☃"])
key_steps = st.one_of(st.none(), st.integers(0, 5), st.just(MAX_STEP))
stored_values = st.floats(allow_nan=True, allow_infinity=True)
small_row_lists = st.lists(
    st.tuples(key_names, key_steps, st.sampled_from(SPLITS), stored_values), min_size=1, max_size=40
)


@st.composite
def big_row_lists(draw):
    """500..1500 rows (PostgreSQL's COPY path), many repeated keys, built from a seed."""
    n, seed = draw(st.integers(500, 1500)), draw(st.integers(0, 2**32))
    rng = random.Random(seed)
    return [
        (f"m{rng.randrange(6)}", rng.choice([None, *range(300)]), rng.choice(SPLITS), rng.uniform(-1e6, 1e6))
        for _ in range(n)
    ]


row_inputs = st.one_of(small_row_lists, small_row_lists, big_row_lists())


def as_payload(rows: list[tuple]) -> list[dict[str, Any]]:
    return [{"name": n, "value": val, "step": s, "evaluation_set": sp} for n, s, sp, val in rows]


def last_per_key(*batches: list[tuple]) -> dict[tuple, Any]:
    out: dict[tuple, Any] = {}
    for rows in batches:
        for name, step, split, value in rows:
            out[(name, step, split)] = "NaN" if math.isnan(value) else float(value)
    return out


def table(store: TrackingStore, experiment_id: int) -> tuple[int, dict[tuple, Any]]:
    m = Metric.__table__
    with store.engine.connect() as conn:
        found = conn.execute(
            select(m.c.name, m.c.step, m.c.evaluation_set, m.c.value).where(
                m.c.experiment_id == experiment_id
            )
        ).all()
    got = {}
    for name, step, split, value in found:
        value = math.nan if value is None else float(value)  # SQLite stores NaN as NULL (docs/schema.md)
        got[(name, step, split)] = "NaN" if math.isnan(value) else value
    return len(found), got


def new_experiment(store: TrackingStore) -> int:
    dataset_id = store.register_dataset("props", "d", "Tabular")
    model_id = store.register_model("props", "m", "scikit-learn")
    return store.create_experiment("props", f"e-{uuid.uuid4().hex[:12]}", model_id, dataset_id)


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture], max_examples=25, deadline=None)
@given(first=row_inputs, second=small_row_lists)
def test_upsert_twice_equals_once_and_last_value_wins(store: TrackingStore, first, second):
    expected = last_per_key(first)
    once, twice = new_experiment(store), new_experiment(store)

    assert store.log_metrics(once, as_payload(first)) == len(expected)
    store.log_metrics(twice, as_payload(first))
    assert store.log_metrics(twice, as_payload(first)) == len(expected)

    count_once, got_once = table(store, once)
    count_twice, got_twice = table(store, twice)
    assert count_once == count_twice == len(expected)  # one row per key: nothing lost, nothing doubled
    assert got_once == got_twice == expected

    # A later batch overrides the keys it repeats and keeps the others.
    store.log_metrics(twice, as_payload(second))
    count, got = table(store, twice)
    merged = last_per_key(first, second)
    assert count == len(merged)
    assert got == merged
