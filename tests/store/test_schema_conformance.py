"""Our migrations against seed 002's DDL, on real PostgreSQL.

The seed DDL (``tests/fixtures/seed_002_schema.sql``, copied verbatim) goes into one fresh database, our
migrations into another; both are read back from ``pg_catalog``. Every seed column (type, NOT NULL,
default), constraint (by name: the seed's own names, and PostgreSQL's generated ones such as
``projects_name_key`` / ``projects_status_check`` for the unnamed ones), index and FK ON DELETE rule must
exist in ours and match, unless ``docs/schema.md`` lists it in its deviations table. A listed deviation
that no longer differs fails too, so the document cannot go stale.
"""

from __future__ import annotations

import re
import uuid
from pathlib import Path

import psycopg
import pytest
from sqlalchemy.engine import make_url

from airflow_mltrack.store.migrations import upgrade
from tests.support.seed import SEED_INDEXES

ROOT = Path(__file__).resolve().parents[2]
SEED_SQL = ROOT / "tests" / "fixtures" / "seed_002_schema.sql"
SCHEMA_DOC = ROOT / "docs" / "schema.md"
SEED_TABLES = ("projects", "datasets", "models", "experiments", "metrics")

COLUMNS_SQL = """
SELECT c.relname, a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull,
       pg_get_expr(d.adbin, d.adrelid)
FROM pg_attribute a
JOIN pg_class c ON c.oid = a.attrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
WHERE n.nspname = 'public' AND c.relkind = 'r' AND a.attnum > 0 AND NOT a.attisdropped
"""

CONSTRAINTS_SQL = """
SELECT c.relname, con.conname, con.contype, pg_get_constraintdef(con.oid), con.confdeltype
FROM pg_constraint con
JOIN pg_class c ON c.oid = con.conrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = 'public'
"""

# Indexes of their own (not the ones backing a PRIMARY KEY / UNIQUE constraint: those are constraints).
INDEXES_SQL = """
SELECT t.relname, i.relname, pg_get_indexdef(i.oid)
FROM pg_index x
JOIN pg_class i ON i.oid = x.indexrelid
JOIN pg_class t ON t.oid = x.indrelid
JOIN pg_namespace n ON n.oid = t.relnamespace
WHERE n.nspname = 'public'
  AND NOT EXISTS (SELECT 1 FROM pg_constraint con WHERE con.conindid = i.oid)
"""

ON_DELETE = {"a": "NO ACTION", "r": "RESTRICT", "c": "CASCADE", "n": "SET NULL", "d": "SET DEFAULT"}
CONTYPES = {"p": "PRIMARY KEY", "u": "UNIQUE", "c": "CHECK", "f": "FOREIGN KEY", "x": "EXCLUDE"}


def _libpq(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def snapshot(url: str) -> dict[str, dict[str, dict]]:
    """``{"columns"|"constraints"|"indexes": {"table.name": {...}}}`` read from pg_catalog."""
    with psycopg.connect(_libpq(url)) as conn:
        columns = {
            f"{t}.{name}": {"type": type_, "not null": notnull, "default": default}
            for t, name, type_, notnull, default in conn.execute(COLUMNS_SQL)
        }
        constraints = {
            f"{t}.{name}": {
                "kind": CONTYPES.get(contype, contype),
                "definition": definition,
                "on delete": ON_DELETE.get(deltype) if contype == "f" else None,
            }
            for t, name, contype, definition, deltype in conn.execute(CONSTRAINTS_SQL)
        }
        indexes = {
            f"{t}.{name}": {"definition": re.sub(r"\bpublic\.", "", definition)}
            for t, name, definition in conn.execute(INDEXES_SQL)
        }
    return {"columns": columns, "constraints": constraints, "indexes": indexes}


def documented_deviations(path: Path = SCHEMA_DOC) -> dict[str, str]:
    """Rows of the deviations table of docs/schema.md: ``{"table.object": "why"}``.

    The table is the first Markdown table after the heading ``## Deviations from seed 002``, with the
    header ``| Object | Seed 002 | Ours | Why |``. Its first cell names the object as ``table.object``
    (a column, constraint or index name; backticks allowed); rows whose first cell is not of that form
    (for example whole-schema additions) document things the seed does not have and are not matched.
    """
    text = path.read_text(encoding="utf-8")
    match = re.search(r"^## Deviations from seed 002\s*$(.*?)(?=^## |\Z)", text, re.M | re.S)
    assert match, f"{path} has no '## Deviations from seed 002' section"
    rows: dict[str, str] = {}
    header_seen = False
    for line in match.group(1).splitlines():
        line = line.strip()
        if not line.startswith("|"):
            if header_seen and rows:
                break  # the table ended
            continue
        cells = [c.strip() for c in line.strip("|").split("|")]
        if not header_seen:
            assert [c.lower() for c in cells[:4]] == ["object", "seed 002", "ours", "why"], cells
            header_seen = True
            continue
        if set(cells[0]) <= set("-: "):
            continue  # the separator row
        key = cells[0].strip("`")
        if re.fullmatch(r"[a-z_][a-z0-9_]*\.[a-z_][a-z0-9_]*", key):
            rows[key] = cells[3] if len(cells) > 3 else ""
    assert header_seen, "the deviations section has no table"
    return rows


def compare(seed: dict, ours: dict) -> dict[str, list[str]]:
    """``{"table.object": [difference, ...]}`` for every seed object we lack or that differs in ours."""
    problems: dict[str, list[str]] = {}

    def add(key: str, message: str) -> None:
        problems.setdefault(key, []).append(f"{key}: {message}")

    for key, col in seed["columns"].items():
        mine = ours["columns"].get(key)
        if mine is None:
            add(key, "column missing")
            continue
        for attr in ("type", "not null", "default"):
            if col[attr] != mine[attr]:
                add(key, f"{attr} is {col[attr]!r} in seed 002, {mine[attr]!r} in ours")

    for key, con in seed["constraints"].items():
        mine = ours["constraints"].get(key)
        if mine is None:
            add(key, f"{con['kind']} constraint missing ({con['definition']})")
            continue
        if con["kind"] != mine["kind"]:
            add(key, f"is a {con['kind']} in seed 002, a {mine['kind']} in ours")
        elif con["on delete"] != mine["on delete"]:
            add(key, f"ON DELETE {con['on delete']} in seed 002, ON DELETE {mine['on delete']} in ours")
        elif con["definition"] != mine["definition"]:
            add(key, f"{con['definition']!r} in seed 002, {mine['definition']!r} in ours")

    for key, index in seed["indexes"].items():
        mine = ours["indexes"].get(key)
        if mine is None:
            add(key, f"index missing ({index['definition']})")
        elif index["definition"] != mine["definition"]:
            add(key, f"{index['definition']!r} in seed 002, {mine['definition']!r} in ours")
    return problems


@pytest.fixture
def seed_and_ours(pg_server, request):
    """Two fresh databases: seed 002's DDL in one, our migrations (head) in the other."""
    suffix = uuid.uuid4().hex[:10]
    seed_name, ours_name = f"seed002_{suffix}", f"ours_{suffix}"
    seed_url = pg_server.create_database(seed_name, template="template0")
    ours_url = pg_server.create_database(ours_name, template="template0")
    try:
        with psycopg.connect(_libpq(seed_url), autocommit=True) as conn:
            conn.execute(SEED_SQL.read_text(encoding="utf-8"))
        upgrade(ours_url)
        yield snapshot(seed_url), snapshot(ours_url)
    finally:
        from airflow_mltrack.store.engine import dispose_engines

        dispose_engines()
        pg_server.drop_database(seed_name)
        pg_server.drop_database(ours_name)


def test_seed_fixture_is_the_seed_ddl():
    sql = SEED_SQL.read_text(encoding="utf-8")
    assert sql.count("CREATE TABLE") == len(SEED_TABLES)
    assert sql.count("CREATE INDEX") == len(SEED_INDEXES)


def test_deviations_table_parses():
    rows = documented_deviations()
    assert "metrics.value" in rows
    assert all(why for why in rows.values()), "every deviation needs a reason"


def test_seed_002_conformance(seed_and_ours):
    seed, ours = seed_and_ours
    # The fixture really is seed 002: five tables, fifteen named indexes.
    assert {k.split(".")[0] for k in seed["columns"]} == set(SEED_TABLES)
    assert {k.split(".")[1] for k in seed["indexes"]} == set(SEED_INDEXES)

    problems = compare(seed, ours)
    deviations = documented_deviations()
    undocumented = [msg for key, msgs in sorted(problems.items()) if key not in deviations for msg in msgs]
    assert not undocumented, "differences from seed 002 not listed in docs/schema.md:\n" + "\n".join(
        undocumented
    )

    seed_objects = set(seed["columns"]) | set(seed["constraints"]) | set(seed["indexes"])
    stale = sorted(key for key in deviations if key in seed_objects and key not in problems)
    assert not stale, f"docs/schema.md lists deviations that no longer differ from seed 002: {stale}"


def test_compare_catches_differences():
    """The comparison itself: a missing column, a changed ON DELETE and a changed index are reported."""
    seed = {
        "columns": {"t.a": {"type": "integer", "not null": True, "default": None}},
        "constraints": {
            "t.fk_t": {
                "kind": "FOREIGN KEY",
                "definition": "FOREIGN KEY (a) REFERENCES p(a)",
                "on delete": "CASCADE",
            }
        },
        "indexes": {"t.idx_t_a": {"definition": "CREATE INDEX idx_t_a ON t USING btree (a)"}},
    }
    ours = {
        "columns": {},
        "constraints": {
            "t.fk_t": {
                "kind": "FOREIGN KEY",
                "definition": "FOREIGN KEY (a) REFERENCES p(a)",
                "on delete": "RESTRICT",
            }
        },
        "indexes": {"t.idx_t_a": {"definition": "CREATE INDEX idx_t_a ON t USING btree (a, b)"}},
    }
    problems = compare(seed, ours)
    assert set(problems) == {"t.a", "t.fk_t", "t.idx_t_a"}
    assert "ON DELETE CASCADE in seed 002, ON DELETE RESTRICT in ours" in problems["t.fk_t"][0]
