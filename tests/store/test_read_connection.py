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


def test_a_read_held_by_a_generator_resumed_in_another_thread_is_released(store):
    """Starlette runs a streaming answer's generator a chunk at a time on any worker thread: a read held
    across a ``yield`` may be closed from another thread than the one that opened it, and must not stay
    behind as that first thread's (closed) connection."""

    def rows():
        with store.read() as conn:
            yield conn
            yield None

    generator = rows()
    opened = next(generator)  # this thread opens the read ...
    closer = threading.Thread(target=generator.close)  # ... another one ends it
    closer.start()
    closer.join()
    assert opened.closed
    fresh = _read_once(store)  # this thread reads again: a new connection that works
    assert fresh is not opened
