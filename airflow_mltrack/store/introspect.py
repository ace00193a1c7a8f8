"""Read-only views of a LIVE tracking database: a Mermaid ER diagram and an integrity report.

Both reflect the database (``sqlalchemy.inspect``), not the models, so they show what is really there:
a dropped constraint, an extra table or an orphaned row. All queries are SQLAlchemy Core constructs.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    Engine,
    MetaData,
    Table,
    and_,
    exists,
    func,
    inspect,
    or_,
    select,
)

from airflow_mltrack.store import models as m
from airflow_mltrack.store.deployments import TRAFFIC_TOLERANCE

#: Alembic version tables: ours and Airflow's (when the store shares Airflow's database).
VERSION_TABLES = frozenset({"mltrack_alembic_version", "alembic_version"})

#: CHECK-listed columns and their allowed values (mirrors the CHECK constraints of the models).
ALLOWED_VALUES: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("projects", "status", m.PROJECT_STATUSES),
    ("datasets", "data_type", m.DATA_TYPES),
    ("experiments", "status", m.EXPERIMENT_STATUSES),
    ("metrics", "evaluation_set", m.EVALUATION_SETS),
    ("preprocessing_jobs", "status", m.JOB_STATUSES),
    ("deployment_endpoints", "status", m.ENDPOINT_STATUSES),
    ("tag_assignments", "entity_type", m.TAGGABLE_ENTITIES),
    ("endpoint_models", "kind", m.ROLLOUT_KINDS),
    ("experiment_tasks", "role", m.EXPERIMENT_TASK_ROLES),
    ("models", "status", m.MODEL_STATUSES),
)
#: CHECK-listed columns where NULL is allowed (endpoint_models.kind: rows written before revision 0004).
NULLABLE_CHECKED = frozenset({("endpoint_models", "kind")})

#: (table, earlier column, later column): the later one may not precede the earlier one.
TIME_ORDER: tuple[tuple[str, str, str], ...] = (
    ("experiments", "start_time", "end_time"),
    ("preprocessing_jobs", "start_time", "end_time"),
    ("endpoint_models", "promoted_at", "retired_at"),
)

MAX_TRAFFIC = 100.0
#: Kinds of check that are warnings (reported, but not problems: ``mltrack integrity`` exits 0 on them).
WARNING_KINDS = frozenset({"traffic_below"})

__all__ = ["erd_mermaid", "integrity_report", "tracking_tables"]


def tracking_tables(engine: Engine, all_tables: bool = False) -> list[str]:
    """Live tables to show: the tracking tables present plus any table linked to them by a foreign key.

    With ``all_tables``, every table except the Alembic version tables (useful when the store has a
    database of its own; when it shares Airflow's, the default keeps Airflow's tables out).
    """
    inspector = inspect(engine)
    live = [t for t in inspector.get_table_names() if t not in VERSION_TABLES]
    if all_tables:
        return sorted(live)
    ours = {t for t in live if t in m.Base.metadata.tables}
    linked = set(ours)
    for table in live:
        if table in ours:
            continue
        targets = {fk["referred_table"] for fk in inspector.get_foreign_keys(table)}
        if targets & ours:
            linked.add(table)
    return sorted(linked)


# ------------------------------------------------------------------------------------------------ ERD


def _mermaid_type(type_: Any, dialect: Any) -> str:
    try:
        rendered = str(type_.compile(dialect=dialect))
    except Exception:  # noqa: BLE001 - NullType and other types the dialect cannot render
        rendered = type(type_).__name__.upper()
    # Mermaid attribute types are one word: letters, digits, _ - ( ) [ ].
    rendered = re.sub(r"\s*,\s*", "_", rendered.strip())
    rendered = re.sub(r"\s+", "_", rendered)
    return re.sub(r"[^A-Za-z0-9_\-()\[\]]", "", rendered) or "UNKNOWN"


def _unique_column_sets(inspector: Any, table: str) -> list[frozenset[str]]:
    sets = [frozenset(uc["column_names"]) for uc in inspector.get_unique_constraints(table)]
    for index in inspector.get_indexes(table):
        options = index.get("dialect_options") or {}
        partial = any(key.endswith("_where") for key in options)
        if index.get("unique") and not partial and all(index.get("column_names") or [None]):
            sets.append(frozenset(index["column_names"]))
    return sets


def erd_mermaid(engine: Engine, tables: Iterable[str] | None = None) -> str:
    """The live schema as a Mermaid ``erDiagram``.

    Relationships come from the reflected foreign keys: a NOT NULL foreign key gives ``||--o{``
    (exactly one parent, many children), a nullable one ``|o--o{``; a foreign key whose columns are
    unique (or the primary key) makes the child side ``o|`` (one-to-one).
    """
    inspector = inspect(engine)
    names = sorted(tables) if tables is not None else tracking_tables(engine)
    dialect = engine.dialect
    lines = ["erDiagram"]
    blocks: list[str] = []
    for table in names:
        columns = inspector.get_columns(table)
        nullable = {c["name"]: c.get("nullable", True) for c in columns}
        pk = set(inspector.get_pk_constraint(table).get("constrained_columns") or [])
        fks = inspector.get_foreign_keys(table)
        fk_cols = {col for fk in fks for col in fk["constrained_columns"]}
        unique_sets = _unique_column_sets(inspector, table)
        # UK marks a column unique on its own; composite keys show up on their tables' FK labels only.
        uk_cols = {next(iter(cols)) for cols in unique_sets if len(cols) == 1}

        for fk in sorted(fks, key=lambda f: (f["referred_table"], f.get("name") or "")):
            cols = fk["constrained_columns"]
            optional = any(nullable.get(c, True) for c in cols)
            one_to_one = frozenset(cols) in unique_sets or (pk and set(cols) == pk)
            left = "|o" if optional else "||"
            right = "o|" if one_to_one else "o{"
            label = fk.get("name") or ", ".join(cols)
            label = f"{label} ({', '.join(cols)})" if fk.get("name") else label
            lines.append(f'    {fk["referred_table"]} {left}--{right} {table} : "{label}"')

        block = [f"    {table} {{"]
        for column in columns:
            name = column["name"]
            keys = [
                k for k, on in (("PK", name in pk), ("FK", name in fk_cols), ("UK", name in uk_cols)) if on
            ]
            key_str = f" {', '.join(keys)}" if keys else ""
            null_str = "" if column.get("nullable", True) or name in pk else ' "not null"'
            block.append(f"        {_mermaid_type(column['type'], dialect)} {name}{key_str}{null_str}")
        block.append("    }")
        blocks.append("\n".join(block))
    return "\n".join(lines + blocks) + "\n"


# ------------------------------------------------------------------------------------------ integrity


@dataclass(frozen=True)
class _ForeignKey:
    name: str
    table: str
    columns: tuple[str, ...]
    referred_table: str
    referred_columns: tuple[str, ...]


def _expected_foreign_keys(live: MetaData) -> list[_ForeignKey]:
    """The models' foreign keys (which a database may have lost) plus any other live ones."""
    found: dict[tuple, _ForeignKey] = {}
    for table in m.Base.metadata.sorted_tables:
        for fk in table.foreign_key_constraints:
            key = _ForeignKey(
                name=str(fk.name),
                table=table.name,
                columns=tuple(fk.column_keys),
                referred_table=fk.referred_table.name,
                referred_columns=tuple(e.column.name for e in fk.elements),
            )
            found[(key.table, key.columns, key.referred_table)] = key
    # By name, not ``sorted_tables``: experiments <-> models is a cycle (models.source_experiment_id,
    # revision 0008), and a dependency sort of reflected tables warns about it on stdout.
    for _, table in sorted(live.tables.items()):
        for fk in table.foreign_key_constraints:
            cols = tuple(fk.column_keys)
            ident = (table.name, cols, fk.referred_table.name)
            if ident not in found:
                found[ident] = _ForeignKey(
                    name=str(fk.name or f"{table.name}({', '.join(cols)})"),
                    table=table.name,
                    columns=cols,
                    referred_table=fk.referred_table.name,
                    referred_columns=tuple(e.column.name for e in fk.elements),
                )
    return list(found.values())


def _has(live: MetaData, table: str, *columns: str) -> bool:
    return table in live.tables and all(c in live.tables[table].c for c in columns)


def _row(table: str, check: str, kind: str, count: int, detail: str = "") -> dict[str, Any]:
    severity = "warning" if kind in WARNING_KINDS else "error"
    return {
        "table": table,
        "check": check,
        "kind": kind,
        "severity": severity,
        "count": int(count or 0),
        "detail": detail,
    }


def integrity_report(engine: Engine) -> list[dict[str, Any]]:
    """Count rows that break the schema's rules, one entry per check.

    Each entry: ``{"table", "check", "kind", "severity", "count", "detail"}``; ``kind`` is ``orphan`` (a
    child row whose parent is missing, for every foreign key of the models and of the live database,
    possible on SQLite with ``foreign_keys`` off or after a constraint was dropped), ``tag`` (a tag
    assignment pointing at no row), ``traffic`` (an endpoint whose active models' traffic sums past 100),
    ``traffic_below`` (one whose active traffic sums below 100), ``time`` (an end before its start) or
    ``allowed_values`` (a value outside a CHECK list). ``severity`` is ``"warning"`` for ``traffic_below``
    and ``"error"`` for every other check. Checks whose tables or columns do not exist are left out; an
    uninitialized database gives ``[]``.
    """
    live = MetaData()
    live.reflect(bind=engine, only=tracking_tables(engine))
    report: list[dict[str, Any]] = []

    with engine.connect() as conn:
        # Orphans: LEFT JOIN child -> parent, parent missing, child's key set.
        for fk in sorted(_expected_foreign_keys(live), key=lambda f: (f.table, f.name)):
            if not (
                _has(live, fk.table, *fk.columns) and _has(live, fk.referred_table, *fk.referred_columns)
            ):
                continue
            child: Table = live.tables[fk.table]
            parent = live.tables[fk.referred_table].alias("parent")
            on = and_(
                *(parent.c[p] == child.c[c] for c, p in zip(fk.columns, fk.referred_columns, strict=True))
            )
            query = (
                select(func.count())
                .select_from(child.outerjoin(parent, on))
                .where(*(child.c[c].is_not(None) for c in fk.columns))
                .where(parent.c[fk.referred_columns[0]].is_(None))
            )
            target = f"{fk.referred_table}.{', '.join(fk.referred_columns)}"
            report.append(
                _row(
                    fk.table,
                    f"orphaned rows: {fk.name} ({', '.join(fk.columns)} -> {target})",
                    "orphan",
                    conn.scalar(query),
                )
            )

        # Tag assignments whose (entity_type, entity_id) names no row.
        if _has(live, "tag_assignments", "entity_type", "entity_id"):
            ta = live.tables["tag_assignments"]
            total = 0
            parts = []
            for entity_type, (table_name, pk_name) in sorted(m.TAGGABLE_TABLES.items()):
                if not _has(live, table_name, pk_name):
                    continue
                target = live.tables[table_name]
                query = (
                    select(func.count())
                    .select_from(ta)
                    .where(ta.c.entity_type == entity_type)
                    .where(~exists().where(target.c[pk_name] == ta.c.entity_id))
                )
                count = int(conn.scalar(query) or 0)
                total += count
                if count:
                    parts.append(f"{entity_type}: {count}")
            report.append(
                _row("tag_assignments", "tag assignments pointing at no row", "tag", total, ", ".join(parts))
            )

        # Endpoints whose active (not retired) models' traffic sums past 100.
        if _has(live, "endpoint_models", "endpoint_id", "traffic_percentage", "retired_at"):
            em = live.tables["endpoint_models"]
            over = (
                select(em.c.endpoint_id)
                .where(em.c.retired_at.is_(None))
                .group_by(em.c.endpoint_id)
                .having(func.sum(em.c.traffic_percentage) > MAX_TRAFFIC + TRAFFIC_TOLERANCE)
                .subquery()
            )
            count = conn.scalar(select(func.count()).select_from(over))
            report.append(
                _row(
                    "deployment_endpoints",
                    "endpoints whose active traffic sums past 100",
                    "traffic",
                    count,
                )
            )
            # A warning, not an error: an endpoint serving part of its traffic (two DAGs deploying at 70
            # then 30 leave 30) may be intended, but is worth a look.
            below = (
                select(em.c.endpoint_id)
                .where(em.c.retired_at.is_(None))
                .group_by(em.c.endpoint_id)
                .having(func.sum(em.c.traffic_percentage) < MAX_TRAFFIC - TRAFFIC_TOLERANCE)
                .subquery()
            )
            ids = sorted(int(i) for i in conn.scalars(select(below.c.endpoint_id)))
            report.append(
                _row(
                    "deployment_endpoints",
                    "endpoints whose active traffic sums below 100",
                    "traffic_below",
                    len(ids),
                    ", ".join(f"endpoint_id {i}" for i in ids[:20]),
                )
            )

        # An end before its start.
        for table_name, start, end in TIME_ORDER:
            if not _has(live, table_name, start, end):
                continue
            table = live.tables[table_name]
            query = (
                select(func.count())
                .select_from(table)
                .where(table.c[end].is_not(None), table.c[start].is_not(None), table.c[end] < table.c[start])
            )
            report.append(_row(table_name, f"{end} before {start}", "time", conn.scalar(query)))

        # Values outside the CHECK lists.
        for table_name, column, allowed in ALLOWED_VALUES:
            if not _has(live, table_name, column):
                continue
            table = live.tables[table_name]
            col = table.c[column]
            bad = col.not_in(allowed)
            if (table_name, column) not in NULLABLE_CHECKED:
                bad = or_(col.is_(None), bad)
            query = select(func.count()).select_from(table).where(bad)
            report.append(
                _row(table_name, f"{column} outside the allowed values", "allowed_values", conn.scalar(query))
            )
    return report
