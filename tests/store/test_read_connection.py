"""``TrackingStore.read()`` held around several reads: one connection for all of them in that thread."""

from __future__ import annotations

import threading

from sqlalchemy import event, text


def _read_once(store):
    with store.read() as conn:
        conn.execute(text("SELECT 1"))
        return conn


def test_nested_reads_share_the_outer_connection_of_their_thread(store):
    checkouts: list[int] = []

    def note(*_args) -> None:
        checkouts.append(1)

    event.listen(store.engine, "checkout", note)
    try:
        with store.read() as outer:
            with store.read() as inner:
                assert inner is outer
                assert inner.execute(text("SELECT 1")).scalar_one() == 1
            other: list[object] = []
            thread = threading.Thread(target=lambda: other.append(_read_once(store)))
            thread.start()
            thread.join()
            assert other and other[0] is not outer  # another thread reads on its own connection
            assert outer.execute(text("SELECT 2")).scalar_one() == 2  # still open after the nested block
        assert len(checkouts) == 2  # the outer read and the other thread's, not the nested one
        with store.read() as later:
            assert later is not outer  # the hold ended with the outer block
        assert len(checkouts) == 3
    finally:
        event.remove(store.engine, "checkout", note)
