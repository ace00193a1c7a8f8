"""Edits of an experiment's tags and notes (``TrackingStore.edit_experiment``) on both backends: one
transaction that moves ``updated_at``, nothing partly written on a refusal, the optimistic check, and two
concurrent edits creating the same new tag (PostgreSQL, threads)."""

from __future__ import annotations

import datetime as dt
import threading
import time

import pytest
from sqlalchemy import func, select, text

from airflow_mltrack import MLTrackError
from airflow_mltrack.errors import NotFoundError
from airflow_mltrack.store import TrackingStore
from airflow_mltrack.store.tables import tags as tags_t
from airflow_mltrack.store.tags import MAX_NOTES_LEN, EditConflictError


def utc(value: dt.datetime) -> dt.datetime:
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


def new_experiment(store: TrackingStore, name: str = "run", **fields) -> int:
    dataset_id = store.register_dataset("vision", "cifar", "Image")
    model_id = store.register_model("vision", "resnet", "PyTorch")
    return store.create_experiment("vision", name, model_id, dataset_id, {"lr": 0.1}, **fields)


def test_edit_replaces_notes_adds_and_removes_tags_and_moves_updated_at(store: TrackingStore):
    exp = new_experiment(store, notes="first notes", tags=["old", "keep"])
    before = store.get_experiment(exp)
    edited = store.edit_experiment(
        exp, notes="second notes", add_tags=["new", " fresh "], remove_tags=["old"]
    )
    assert edited["notes"] == "second notes"
    assert edited["tags"] == ["fresh", "keep", "new"]
    assert utc(edited["updated_at"]) > utc(before["updated_at"])
    again = store.get_experiment(exp)
    assert (again["notes"], again["tags"]) == ("second notes", ["fresh", "keep", "new"])
    assert utc(again["updated_at"]) == utc(edited["updated_at"])
    assert again["status"] == before["status"] == "Pending"  # an edit does not start the experiment


def test_a_tags_only_edit_keeps_the_notes_and_still_moves_updated_at(store: TrackingStore):
    exp = new_experiment(store, notes="kept")
    first = store.edit_experiment(exp, add_tags=["a"])
    second = store.edit_experiment(exp, remove_tags=["a"])
    assert (first["notes"], first["tags"]) == ("kept", ["a"])
    assert (second["notes"], second["tags"]) == ("kept", [])
    assert utc(second["updated_at"]) > utc(first["updated_at"])


def test_notes_none_clears_them_and_removing_an_absent_tag_is_no_error(store: TrackingStore):
    exp = new_experiment(store, notes="to clear")
    edited = store.edit_experiment(exp, notes=None, remove_tags=["never-there"])
    assert edited["notes"] is None
    assert store.get_experiment(exp)["notes"] is None


def test_a_bad_tag_in_the_list_writes_nothing(store: TrackingStore):
    exp = new_experiment(store, notes="original", tags=["keep"])
    before = store.get_experiment(exp)
    with pytest.raises(MLTrackError) as info:
        store.edit_experiment(exp, notes="changed", add_tags=["fine", "x" * 251])  # names: 250 at most
    assert info.value.field == "add_tags"
    assert info.value.value == "x" * 251
    with pytest.raises(MLTrackError) as info:
        store.edit_experiment(exp, notes="changed", add_tags=["fine", "   "])
    assert info.value.field == "add_tags"
    after = store.get_experiment(exp)
    assert (after["notes"], after["tags"]) == ("original", ["keep"])
    assert utc(after["updated_at"]) == utc(before["updated_at"])
    with store.engine.connect() as conn:  # no tag row was created for the good name either
        assert conn.execute(select(func.count()).where(tags_t.c.name == "fine")).scalar_one() == 0


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"notes": "n" * (MAX_NOTES_LEN + 1)}, "notes"),
        ({"notes": "bad\x00nul"}, "notes"),
        ({"notes": 42}, "notes"),
        ({"add_tags": 7}, "add_tags"),
        ({"add_tags": ["a"], "remove_tags": ["a"]}, "remove_tags"),
        ({}, "edit"),
        ({"notes": "x", "expected_updated_at": "yesterday"}, "expected_updated_at"),
    ],
)
def test_bad_input_names_the_field_and_writes_nothing(store: TrackingStore, kwargs, field):
    exp = new_experiment(store, notes="original")
    with pytest.raises(MLTrackError) as info:
        store.edit_experiment(exp, **kwargs)
    assert info.value.field == field
    assert field in str(info.value)
    assert store.get_experiment(exp)["notes"] == "original"


def test_an_unknown_experiment_is_not_found(store: TrackingStore):
    new_experiment(store)
    with pytest.raises(NotFoundError):
        store.edit_experiment(999_999, notes="x")


def test_a_failure_after_the_first_write_rolls_the_whole_edit_back(store: TrackingStore, monkeypatch):
    """The notes UPDATE ran before the tag write failed: one transaction, so neither is kept."""
    exp = new_experiment(store, notes="original", tags=["keep"])
    before = store.get_experiment(exp)

    def broken(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr("airflow_mltrack.store.experiments.drop_tags", broken)
    with pytest.raises(RuntimeError):
        store.edit_experiment(exp, notes="changed", add_tags=["added"], remove_tags=["keep"])
    after = store.get_experiment(exp)
    assert (after["notes"], after["tags"]) == ("original", ["keep"])
    assert utc(after["updated_at"]) == utc(before["updated_at"])


def test_optimistic_check(store: TrackingStore):
    exp = new_experiment(store, notes="v1")
    seen = store.get_experiment(exp)["updated_at"]
    edited = store.edit_experiment(exp, notes="v2", expected_updated_at=seen)  # the datetime as read
    with pytest.raises(EditConflictError) as info:
        store.edit_experiment(exp, notes="stale", add_tags=["t"], expected_updated_at=seen)
    assert info.value.field == "expected_updated_at"
    after = store.get_experiment(exp)
    assert (after["notes"], after["tags"]) == ("v2", [])
    # The value as the API gives it back (ISO text) is accepted too.
    assert (
        store.edit_experiment(exp, notes="v3", expected_updated_at=edited["updated_at"].isoformat())["notes"]
        == "v3"
    )


def test_two_edits_adding_the_same_new_tag_at_once_both_succeed(pg_server, pg_template, request):
    """Both transactions insert the tag row at the same moment (held back by a third transaction that
    inserted it first and then rolls back): the unique index decides, neither edit fails."""
    from tests.conftest import _db_name

    name = _db_name(request)
    url = pg_server.create_database(name, template=pg_template, strategy="FILE_COPY")
    try:
        store = TrackingStore.from_url(url)
        first, second = new_experiment(store, "a"), new_experiment(store, "b")
        results: dict[int, object] = {}

        def edit(exp: int) -> None:
            try:
                results[exp] = store.edit_experiment(exp, add_tags=["race"], notes=f"edited {exp}")
            except Exception as exc:  # noqa: BLE001 - reported by the assertion below
                results[exp] = exc

        with store.engine.connect() as blocker, store.engine.connect() as watcher:
            blocker.execute(text("INSERT INTO tags (name) VALUES ('race')"))  # uncommitted: holds the key
            threads = [threading.Thread(target=edit, args=(exp,)) for exp in (first, second)]
            for thread in threads:
                thread.start()
            deadline = time.monotonic() + 60
            waiting = 0
            while waiting < 2 and time.monotonic() < deadline:
                waiting = watcher.execute(
                    text(
                        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                        "AND wait_event_type = 'Lock' AND query ILIKE 'INSERT INTO tags%'"
                    )
                ).scalar_one()
                watcher.rollback()
                time.sleep(0.05)
            assert waiting == 2, "both edits should wait on the tag's unique key"
            blocker.rollback()
        for thread in threads:
            thread.join(timeout=60)
        assert all(isinstance(results.get(exp), dict) for exp in (first, second)), results
        assert store.tags_of("experiment", first) == store.tags_of("experiment", second) == ["race"]
        with store.engine.connect() as conn:
            assert conn.execute(select(func.count()).where(tags_t.c.name == "race")).scalar_one() == 1
    finally:
        from airflow_mltrack.store.engine import dispose_engines

        dispose_engines()
        pg_server.drop_database(name)
