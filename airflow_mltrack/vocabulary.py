"""The words every layer shares: the default connection, the XCom keys, placeholder names, id references,
URL masking.

No Airflow import and no store import: the store, the hook, the operators, the decorator, the listener,
the plugin and the CLI all import these from here, so each word is spelled once (docs/architecture.md).
"""

from __future__ import annotations

import re
from typing import Any

DEFAULT_CONN_ID = "mltrack_default"
"""The Airflow connection of the tracking store when none is named (none defined: the embedded SQLite)."""

XCOM_RETURN_VALUE = "return_value"
XCOM_EXPERIMENT_ID = "mltrack_experiment_id"
"""The XCom key (and operator attribute) holding the id of the experiment a task created or wrote to."""
XCOM_UNSAVED = "mltrack_unsaved"
"""The XCom key where ``@task.mltrack`` pushes what it could not write (see :mod:`airflow_mltrack.reconcile.unsaved`)."""

# Catalog entries registered when a run names no model or dataset (``@task.mltrack``, the reconcile).
PLACEHOLDER_FRAMEWORK = "unspecified"
PLACEHOLDER_DATASET = "unspecified"
PLACEHOLDER_DATA_TYPE = "Other"
PLACEHOLDER_VERSION = "1.0"

SYSTEM_TAG_PREFIXES = ("mlflow.", "mltrack.")
"""Tags that tools set for themselves (MLflow's ``mlflow.*`` system tags, ours): kept and searchable, shown
apart from the user's tags (docs/mlflow.md)."""


def is_system_tag(name: str) -> bool:
    return name.startswith(SYSTEM_TAG_PREFIXES)


MASK = "***"
"""What a hidden secret (a URL password) is shown as."""


def experiment_ref(value: Any) -> int | None:
    """The id ``value`` names: an int or a digit string (``"3"``, a rendered template); else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    return None


def mask_url(url: Any) -> str:
    """``url`` (a string or a SQLAlchemy ``URL``) with its password replaced by ``***``: the only form in
    which a URL is ever logged or shown."""
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - never fail a message on a malformed URL
        return "<unparseable url>"


def mask_password(text: str, url: Any) -> str:
    """``text`` (an error message) with the password of ``url`` (if any) replaced by ``***``."""
    if not url:
        return text
    from sqlalchemy.engine import make_url

    try:
        password = make_url(url).password
    except Exception:  # noqa: BLE001 - an unparseable URL has no password to hide
        return text
    return text.replace(str(password), MASK) if password else text


#: A release-like version (``1``, ``2.0``, ``1.2.3-rc1``): shown with a ``v``; any other (``sgd-539ac701``,
#: a git hash ``539ac701``, a date ``2026-12-03``, ``candidates``) is shown as it is.
RELEASE_VERSION = re.compile(r"\d{1,4}(?:\.\d+){0,3}(?:[-+][0-9A-Za-z.]+)?")


def version_label(value: Any) -> str | None:
    """A version as the pages and the CLI show it: ``v1.2`` for a release-like one, any other as it is
    (never ``vsgd-539ac701``); None for no version."""
    if value is None:
        return None
    text = str(value)
    return f"v{text}" if RELEASE_VERSION.fullmatch(text) else text
