"""The tracking store: schema, every read and write, all SQL. No Airflow imports here."""

from __future__ import annotations

from sqlalchemy import Engine

from airflow_mltrack.store.deployments import DeploymentStore
from airflow_mltrack.store.engine import get_engine
from airflow_mltrack.store.payloads import MetricRow, parse_metrics


class TrackingStore(DeploymentStore):
    """Every read and write of airflow-mltrack, on PostgreSQL or SQLite.

    Split by entity into mixins (catalog, experiments, metrics, preprocessing, deployments, tags);
    each public write is one transaction and is idempotent where Airflow may repeat it.
    """

    @classmethod
    def from_url(cls, url: str, *, auto_migrate: bool = False) -> TrackingStore:
        """A store on the database at ``url`` (SQLAlchemy URL); ``auto_migrate`` upgrades it to head
        (concurrent first uses of one SQLite file wait for one upgrade)."""
        if auto_migrate:
            from airflow_mltrack.store import migrations

            migrations.ensure_head(url)
        return cls(get_engine(url))

    @classmethod
    def from_engine(cls, engine: Engine) -> TrackingStore:
        return cls(engine)

    @property
    def url(self) -> str:
        """The database URL with the password hidden (safe to log)."""
        return self.engine.url.render_as_string(hide_password=True)


__all__ = ["MetricRow", "TrackingStore", "parse_metrics"]
