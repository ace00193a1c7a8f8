"""Provider metadata for Airflow's ProvidersManager (returned by ``airflow_mltrack.get_provider_info``).

Shaped like the PostgreSQL provider's ``get_provider_info()`` and valid against Airflow's
``provider_info.schema.json`` (checked in ``tests/hooks/test_hook.py``). Since Airflow 3.2 the connection form
is declared here (``ui-field-behaviour``, ``conn-fields``); the hook defines no form methods.

The plugin is deliberately NOT listed under ``plugins``: it is registered through the ``airflow.plugins``
entry point only (the provider-info key is read only with ``[core] lazy_discover_providers=False``, and a
second registration under the same name is an import error).
"""

from __future__ import annotations

from airflow_mltrack import __version__

INTEGRATION = "ML Tracking"

PROVIDER_INFO: dict = {
    "package-name": "airflow-mltrack",
    "name": "ML Tracking (airflow-mltrack)",
    "description": (
        "Experiment tracking that lives inside Apache Airflow 3: datasets, models, experiments, metrics "
        "and deployments in your own PostgreSQL (or an embedded SQLite file).\n"
    ),
    "versions": [__version__],
    "integrations": [
        {
            "integration-name": INTEGRATION,
            "external-doc-url": "https://github.com/airflow-mltrack/airflow-mltrack",
            "tags": ["software"],
        }
    ],
    "hooks": [
        {
            "integration-name": INTEGRATION,
            "python-modules": ["airflow_mltrack.hooks.mltrack"],
        }
    ],
    "operators": [
        {
            "integration-name": INTEGRATION,
            "python-modules": ["airflow_mltrack.operators"],
        }
    ],
    "connection-types": [
        {
            "hook-class-name": "airflow_mltrack.hooks.mltrack.MLTrackHook",
            "hook-name": "ML Tracking",
            "connection-type": "mltrack",
            "ui-field-behaviour": {
                "hidden-fields": [],
                "relabeling": {"schema": "Database"},
                "placeholders": {
                    "host": "PostgreSQL host, e.g. db.example.com (empty when URL or Backend=sqlite is set)",
                    "port": "5432",
                    "schema": "mltrack",
                    "login": "mltrack",
                    "password": "PostgreSQL password (also used for a URL that has none)",
                    "extra": '{"sslmode": "require"}',
                },
            },
            "conn-fields": {
                "backend": {
                    "label": "Backend",
                    "description": (
                        "postgresql: Host/Port/Login/Password/Database; "
                        "sqlite: a database file given in SQLite path."
                    ),
                    "schema": {
                        "type": ["string", "null"],
                        "enum": ["postgresql", "sqlite", None],
                        "default": "postgresql",
                    },
                },
                "path": {
                    "label": "SQLite path",
                    "description": "With Backend=sqlite: the database file (relative paths are under AIRFLOW_HOME).",
                    "schema": {"type": ["string", "null"]},
                },
                "sslmode": {
                    "label": "SSL mode",
                    "description": "libpq sslmode for PostgreSQL (any other libpq parameter can go in Extra).",
                    "schema": {
                        "type": ["string", "null"],
                        "enum": ["disable", "allow", "prefer", "require", "verify-ca", "verify-full", None],
                    },
                },
                "url": {
                    "label": "SQLAlchemy URL",
                    "description": (
                        "Overrides every other field, e.g. postgresql://user@host:5432/mltrack. "
                        "Keep the password in the Password field: it is added to a URL that has none."
                    ),
                    "schema": {"type": ["string", "null"]},
                },
            },
        }
    ],
    "task-decorators": [
        {"name": "mltrack", "class-name": "airflow_mltrack.decorators.mltrack_task.mltrack_task"},
    ],
    "extra-links": ["airflow_mltrack.operators.links.ExperimentLink"],
    # Our dataset Assets (x-mltrack://<project>/<name>, operators.catalog.dataset_asset_uri): no URI
    # normalization (handler None: kept as written), and their OpenLineage dataset when the optional
    # openlineage extra is installed (the same naming the operators report, operators/lineage.py).
    "asset-uris": [
        {
            "schemes": ["x-mltrack"],
            "handler": None,
            "to_openlineage_converter": "airflow_mltrack.operators.lineage.asset_to_openlineage",
        }
    ],
    # `airflow mltrack ...`: Airflow 3.3's cli_parser extends its command list with the CLICommands
    # returned by each function named here (ProvidersManager.cli_command_functions).
    "cli": ["airflow_mltrack.cli.airflow_cli.get_cli_commands"],
}
