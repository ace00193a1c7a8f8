"""Options shared by every ``mltrack`` command that touches the tracking store."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any, TypeVar

import click

from airflow_mltrack.vocabulary import DEFAULT_CONN_ID, mask_password, mask_url

_URL_KEY = "mltrack.store_url"
_DEBUG_KEY = "mltrack.debug"

F = TypeVar("F", bound=Callable[..., object])


def _set_debug(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    if value:
        ctx.meta[_DEBUG_KEY] = True


def store_options(func: F) -> F:
    """Add ``--url`` and ``--conn-id`` (passed to the command as ``url`` and ``conn_id``), and ``--debug``."""
    func = click.option(
        "--debug",
        is_flag=True,
        expose_value=False,
        callback=_set_debug,
        help="Show the full traceback when the tracking store cannot be reached.",
    )(func)
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
        return remember_store_url(url)
    from airflow_mltrack.errors import MLTrackError
    from airflow_mltrack.hooks import MLTrackHook

    logs_to_stderr()  # importing the hook configured Airflow's logging, on stdout
    try:
        resolved = MLTrackHook.resolve_url(conn_id or DEFAULT_CONN_ID)
    except MLTrackError as exc:
        raise click.BadParameter(str(exc), param_hint="'--conn-id'") from None
    return remember_store_url(resolved)


def logs_to_stderr() -> None:
    """Send this process's log lines to stderr: Airflow's logging writes to stdout, which holds a command's
    data (``mltrack integrity --json`` or a CSV piped on must not start with "using embedded SQLite ...")."""
    import logging
    import sys

    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.StreamHandler) and handler.stream is sys.__stdout__:
            handler.setStream(sys.__stderr__)


def remember_store_url(url: str) -> str:
    """Note ``url`` as the store of the running command, so a failure to reach it can name it; returns it."""
    ctx = click.get_current_context(silent=True)
    if ctx is not None:
        ctx.meta[_URL_KEY] = url
    return url


def debug_enabled(ctx: click.Context) -> bool:
    """True when ``--debug`` (of the group or the command) or ``MLTRACK_DEBUG`` asks for tracebacks."""
    import os

    return bool(ctx.meta.get(_DEBUG_KEY)) or os.environ.get("MLTRACK_DEBUG", "").lower() in (
        "1",
        "true",
        "yes",
    )


def _reason(exc: BaseException) -> str:
    """The driver's reason in one line: ``Connection refused``, ``password authentication failed ...``."""
    text = str(getattr(exc, "orig", None) or exc)
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    line = lines[0] if lines else type(exc).__name__
    line = re.sub(r"^.*\bfailed:\s*", "", line)  # libpq: 'connection to server at "h", port 1 failed: ...'
    line = re.sub(r"^(FATAL|ERROR):\s*", "", line)
    return line or type(exc).__name__


def tag_engine_errors() -> None:
    """Mark every SQLAlchemy error with the URL of the engine that raised it (once per process).

    A command can touch two databases (``backfill`` reads Airflow's metadata database too); the mark
    lets :func:`store_error_message` blame the right one.
    """
    global _TAGGING  # noqa: PLW0603 - one class-level listener per process
    if _TAGGING:
        return
    from sqlalchemy import Engine, event

    def _tag(context: Any) -> None:
        if context.sqlalchemy_exception is not None and context.engine is not None:
            context.sqlalchemy_exception.mltrack_engine_url = context.engine.url

    event.listen(Engine, "handle_error", _tag)
    _TAGGING = True


_TAGGING = False


def _same_database(a: Any, b: Any) -> bool:
    return (a.get_backend_name(), a.host, a.port, a.database) == (
        b.get_backend_name(),
        b.host,
        b.port,
        b.database,
    )


def store_error_message(exc: BaseException, meta: Mapping[str, Any]) -> str | None:
    """One line for an error of the tracking store (or a refusal), None for anything else.

    Names the database (password masked), its host and port (or file) and the driver's reason.
    """
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import DBAPIError

    from airflow_mltrack.errors import MLTrackError

    if isinstance(exc, MLTrackError):
        return str(exc)
    if not isinstance(exc, DBAPIError | OSError):
        return None
    reason = _reason(exc) if isinstance(exc, DBAPIError) else f"{exc.strerror or exc}: {exc.filename}"
    what = "the tracking store"
    try:
        store = make_url(meta[_URL_KEY]) if meta.get(_URL_KEY) else None
    except Exception:  # noqa: BLE001 - resolve_url validated it; never fail the message
        store = None
    failing = getattr(exc, "mltrack_engine_url", None)
    if failing is not None and (store is None or not _same_database(failing, store)):
        what, store = "the database", failing
    if store is None:
        return f"{what} failed: {reason}"
    reason = mask_password(reason, store)
    if store.get_backend_name() == "sqlite":
        where = f"file {store.database or ':memory:'}"
        verb = "cannot open" if _is_connect_failure(exc) else "error from"
    else:
        where = f"host {store.host or 'local socket'}, port {store.port or 5432}"
        verb = "cannot connect to" if _is_connect_failure(exc) else "error from"
    return f"{verb} {what} {mask_url(store)} ({where}): {reason}"


def _is_connect_failure(exc: BaseException) -> bool:
    from sqlalchemy.exc import InterfaceError, OperationalError

    if isinstance(exc, OSError):
        return True
    text = str(getattr(exc, "orig", None) or exc).lower()
    return isinstance(exc, OperationalError | InterfaceError) and any(
        word in text for word in ("connect", "authentication", "does not exist", "resolve", "unable to open")
    )


@contextmanager
def revision_errors(revision: str) -> Iterator[None]:
    """Turn Alembic's "can't locate revision" into a usage error naming REVISION."""
    from alembic.util.exc import CommandError

    try:
        yield
    except CommandError as exc:
        raise click.BadParameter(f"{revision!r}: {exc}", param_hint="'REVISION'") from None
