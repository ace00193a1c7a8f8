"""The tracking store: schema, every read and write, all SQL. No Airflow imports here."""

from __future__ import annotations

from sqlalchemy import Engine

from airflow_mltrack.store.artifacts import ArtifactStore
from airflow_mltrack.store.base import StoreBase
from airflow_mltrack.store.catalog import CatalogStore
from airflow_mltrack.store.deployments import DeploymentStore
from airflow_mltrack.store.engine import get_engine
from airflow_mltrack.store.experiments import ExperimentStore
from airflow_mltrack.store.logged_models import LoggedModelStore
from airflow_mltrack.store.metrics import MetricStore
from airflow_mltrack.store.payloads import MetricRow, parse_metrics
from airflow_mltrack.store.preprocessing import PreprocessingStore
from airflow_mltrack.store.redaction import RedactionPolicy
from airflow_mltrack.store.tags import TagStore
from airflow_mltrack.vocabulary import mask_url


class TrackingStore(
    TagStore,
    CatalogStore,
    ExperimentStore,
    MetricStore,
    PreprocessingStore,
    DeploymentStore,
    LoggedModelStore,
    ArtifactStore,
    StoreBase,
):
    """Every read and write of airflow-mltrack, on PostgreSQL or SQLite.

    One mixin per entity (tags, catalog, experiments, metrics, preprocessing, deployments, artifacts), side by side:
    each inherits only :class:`~airflow_mltrack.store.base.StoreBase`, which holds what they share
    (docs/architecture.md). Each public write is one transaction and is idempotent where Airflow may
    repeat it. ``redaction``: the policy that hides secrets in every write of hyperparameters, job
    parameters and error texts (default: :data:`~airflow_mltrack.store.redaction.DEFAULT_POLICY`).
    """

    @classmethod
    def from_url(
        cls, url: str, *, auto_migrate: bool = False, redaction: RedactionPolicy | None = None
    ) -> TrackingStore:
        """A store on the database at ``url`` (SQLAlchemy URL); ``auto_migrate`` upgrades it to head
        (concurrent first uses of one SQLite file wait for one upgrade)."""
        if auto_migrate:
            from airflow_mltrack.store import migrations

            migrations.ensure_head(url)
        return cls(get_engine(url), redaction=redaction)

    @classmethod
    def from_engine(cls, engine: Engine, *, redaction: RedactionPolicy | None = None) -> TrackingStore:
        """A store on an existing SQLAlchemy engine."""
        return cls(engine, redaction=redaction)

    @property
    def url(self) -> str:
        """The database URL with the password hidden (safe to log)."""
        return mask_url(self.engine.url)


__all__ = ["MetricRow", "RedactionPolicy", "TrackingStore", "parse_metrics"]
