"""Options shared by every ``mltrack`` command that touches the tracking store."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

import click

DEFAULT_CONN_ID = "mltrack_default"

F = TypeVar("F", bound=Callable[..., object])


def store_options(func: F) -> F:
    """Add ``--url`` and ``--conn-id`` (passed to the command as ``url`` and ``conn_id``)."""
    func = click.option(
        "--conn-id",
        "conn_id",
        default=DEFAULT_CONN_ID,
        show_default=True,
        help="Airflow connection of the tracking store (resolved as MLTrackHook does; "
        "AIRFLOW_CONN_MLTRACK_DEFAULT works). Ignored when --url is given.",
    )(func)
    func = click.option(
        "--url",
        "url",
        default=None,
        metavar="SQLALCHEMY_URL",
        help="SQLAlchemy URL of the tracking store, e.g. postgresql://user@host/db or sqlite:///mltrack.db.",
    )(func)
    return func


def resolve_url(url: str | None, conn_id: str | None) -> str:
    """``url`` if given, else the URL of Airflow connection ``conn_id`` (or the embedded SQLite default).

    A malformed URL or connection is a usage error naming ``--url`` / ``--conn-id`` (never echoing the
    URL, which may hold a password), not a traceback.
    """
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    if url:
        try:
            make_url(url)
        except ArgumentError:
            raise click.BadParameter(
                "not a SQLAlchemy URL (e.g. postgresql://user@host/db or sqlite:///mltrack.db)",
                param_hint="'--url'",
            ) from None
        return url
    from airflow_mltrack.errors import MLTrackError
    from airflow_mltrack.hooks import MLTrackHook

    try:
        return MLTrackHook.resolve_url(conn_id or DEFAULT_CONN_ID)
    except MLTrackError as exc:
        raise click.BadParameter(str(exc), param_hint="'--conn-id'") from None


@contextmanager
def revision_errors(revision: str) -> Iterator[None]:
    """Turn Alembic's "can't locate revision" into a usage error naming REVISION."""
    from alembic.util.exc import CommandError

    try:
        yield
    except CommandError as exc:
        raise click.BadParameter(f"{revision!r}: {exc}", param_hint="'REVISION'") from None


def display_url(url: str) -> str:
    """``url`` with the password masked, for messages."""
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - never fail a message on a malformed URL
        return "<url>"
