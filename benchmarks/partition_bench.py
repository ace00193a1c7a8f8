"""Partitioning benchmark: ``metrics`` as our migrations make it (A) against ``metrics`` HASH-partitioned by
experiment_id into 16 partitions (B), side by side, in one process, on one throwaway PostgreSQL.

Both databases are built with our migrations (``airflow_mltrack.store.migrations.upgrade``); B's ``metrics``
is then converted by ``CONVERT_SQL`` below: same columns, same constraint and index names, the same
foreign key (ON DELETE CASCADE) and the same unique key, so the store's
``ON CONFLICT ON CONSTRAINT uq_metric_experiment_name_step_evalset`` still finds its arbiter. One thing has
to change: a partitioned table's primary key must contain the partition key, so B's ``metrics_pkey`` is
``(experiment_id, metric_id)`` instead of ``(metric_id)``. (``mltrack db check`` does not see that, since
Alembic does not compare primary keys; it lists each partition's table and indexes as not in the models.)

First, ``TrackingStore.log_metrics`` (unchanged) is run on both through every PostgreSQL write path: small
batches (array upsert), >=500-row batches (COPY straight into metrics; COPY into staging + ON CONFLICT when
rows are rewritten), step-less keys. Each path's success is recorded, and the stored rows and
``metric_latest`` are compared with what the successful calls wrote. On PostgreSQL 15, B refuses every path
but the direct COPY: ``RETURNING xmax`` (how the store tells replaced rows from new ones) is not allowed for
rows routed through a partitioned table. The measurements below use only paths that work on both, except
the 50-row batches, which are reported as failing on B.

Then, A and B interleaved (alternating which goes first, since the machine may be shared):
1. seeding N experiments / M metric rows with ``benchmarks._common.seed_at_scale`` (B through a thin
   connection wrapper, see ``PartitionAwarePg``), then table and index sizes;
2. reads at M rows, median of 5 after a warm-up: ``metric_history``, ``leaderboard``, ``metric_curves`` of
   10 experiments, ``SELECT count(*) .. WHERE experiment_id = X``, the delete of one experiment (cascade);
3. ``TrackingStore.log_metrics``: R rows in one call into a new experiment (2 rounds), r rows in 1k-row
   batches, 50-row batches;
4. W concurrent writer processes (spawn, each its own TrackingStore) logging K rows each in 1k-row batches
   into their own experiments: total rows/s (2 rounds);
5. maintenance: the delete of each R-row experiment, a bulk delete of every 25th experiment, VACUUM (A's
   whole table against one of B's partitions, and all of B), and dropping the metric rows of 1/16 of the
   experiments (A: DELETE; B: DETACH + DROP of one partition).

Usage: python -m benchmarks.partition_bench [--experiments 100000] [--metrics 10000000] [--quick]
       [--ingest-rows 1000000] [--batched-rows 100000] [--writers 8] [--writer-rows 50000] [--rounds 2]
       [--json benchmarks/results/partition.json]
"""

from __future__ import annotations

import multiprocessing
import re
import time
from collections.abc import Callable
from typing import Any

from rich.console import Console

from airflow_mltrack.store import TrackingStore
from airflow_mltrack.store.migrations import check_drift
from benchmarks._common import (
    arguments,
    batch_stats,
    loadavg,
    machine_info,
    make_rows,
    migrated_database,
    print_table,
    seed_at_scale,
    stats_ms,
    temp_postgres,
    timed,
    write_results,
)
from benchmarks._common import new_experiment as _new_experiment
from tests.support.pgserver import TempPostgres

PARTITIONS = 16
BATCH = 1_000
REPEAT = 5
SMALL_BATCHES = 200  # log_metrics calls of SMALL_ROWS rows (one step of 50 metrics) timed per database
SMALL_ROWS = 50
PROJECT = "partition-bench"

# Our metrics table -> a HASH-partitioned one, on a migrated (possibly populated) database, in one
# transaction. The plain table and its constraint/index names are moved aside first, so the partitioned
# table can take the same names; the id sequence changes owner before the plain table is dropped.
CONVERT_SQL = """
ALTER TABLE metrics RENAME TO metrics_plain;
ALTER TABLE metrics_plain RENAME CONSTRAINT metrics_pkey TO metrics_plain_pkey;
ALTER TABLE metrics_plain RENAME CONSTRAINT uq_metric_experiment_name_step_evalset TO metrics_plain_key;
ALTER TABLE metrics_plain RENAME CONSTRAINT fk_metric_experiment TO metrics_plain_fk;
ALTER TABLE metrics_plain RENAME CONSTRAINT metrics_evaluation_set_check TO metrics_plain_check;
ALTER INDEX uq_metric_stepless RENAME TO metrics_plain_stepless;
ALTER INDEX idx_metrics_experiment_id RENAME TO metrics_plain_experiment_id;
ALTER INDEX idx_metrics_name RENAME TO metrics_plain_name;
ALTER INDEX idx_metrics_evaluation_set RENAME TO metrics_plain_evaluation_set;

CREATE TABLE metrics (
    metric_id bigint NOT NULL DEFAULT nextval('metrics_metric_id_seq'::regclass),
    experiment_id integer NOT NULL,
    name varchar(100) NOT NULL,
    value double precision NOT NULL,
    step integer,
    evaluation_set varchar(50) NOT NULL,
    recorded_at timestamptz DEFAULT CURRENT_TIMESTAMP,
    -- A partitioned table's primary key must include the partition key: (experiment_id, metric_id).
    CONSTRAINT metrics_pkey PRIMARY KEY (experiment_id, metric_id),
    CONSTRAINT uq_metric_experiment_name_step_evalset
        UNIQUE NULLS NOT DISTINCT (experiment_id, name, step, evaluation_set),
    CONSTRAINT fk_metric_experiment FOREIGN KEY (experiment_id)
        REFERENCES experiments (experiment_id) ON DELETE CASCADE,
    CONSTRAINT metrics_evaluation_set_check
        CHECK (evaluation_set IN ('train', 'validation', 'test', 'inference'))
) PARTITION BY HASH (experiment_id);
{partitions}
CREATE UNIQUE INDEX uq_metric_stepless ON metrics (experiment_id, name, evaluation_set) WHERE step IS NULL;
CREATE INDEX idx_metrics_experiment_id ON metrics (experiment_id);
CREATE INDEX idx_metrics_name ON metrics (name);
CREATE INDEX idx_metrics_evaluation_set ON metrics (evaluation_set);

ALTER SEQUENCE metrics_metric_id_seq OWNED BY metrics.metric_id;
INSERT INTO metrics (metric_id, experiment_id, name, value, step, evaluation_set, recorded_at)
SELECT metric_id, experiment_id, name, value, step, evaluation_set, recorded_at FROM metrics_plain;
DROP TABLE metrics_plain;
"""


def convert_sql(partitions: int = PARTITIONS) -> str:
    parts = "\n".join(
        f"CREATE TABLE metrics_p{i:02d} PARTITION OF metrics FOR VALUES WITH (MODULUS {partitions}, REMAINDER {i});"
        for i in range(partitions)
    )
    return CONVERT_SQL.format(partitions=parts)


def partition(pg: TempPostgres, db: str) -> None:
    with pg.connect(db, autocommit=False) as conn:
        conn.execute(convert_sql())
        conn.commit()


SCHEMA_QUERY = """
SELECT 'column ' || column_name || ' ' || data_type || coalesce('(' || character_maximum_length || ')', '')
       || CASE WHEN is_nullable = 'NO' THEN ' NOT NULL' ELSE '' END
       || coalesce(' DEFAULT ' || column_default, '')
FROM information_schema.columns WHERE table_schema = 'public' AND table_name = 'metrics'
UNION ALL
SELECT 'constraint ' || conname || ' ' || pg_get_constraintdef(oid)
FROM pg_constraint WHERE conrelid = 'metrics'::regclass
UNION ALL
SELECT 'index ' || indexname FROM pg_indexes WHERE schemaname = 'public' AND tablename = 'metrics'
UNION ALL
SELECT 'referenced by ' || conrelid::regclass || '.' || conname
FROM pg_constraint WHERE confrelid = 'metrics'::regclass
ORDER BY 1
"""


def schema_lines(pg: TempPostgres, db: str) -> list[str]:
    return [r[0] for r in pg.psql(SCHEMA_QUERY, db)]


# ---------------------------------------------------------------------------------------------- seeding


class _RewritingConnection:
    """A psycopg connection whose ``execute`` turns ``CREATE INDEX .. ON ONLY`` into ``.. ON``."""

    def __init__(self, conn: Any) -> None:
        self._conn = conn

    def __enter__(self) -> _RewritingConnection:
        self._conn.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self._conn.__exit__(*exc)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._conn, name)

    def __setattr__(self, name: str, value: Any) -> None:
        if name == "_conn":
            object.__setattr__(self, name, value)
        else:
            setattr(self._conn, name, value)

    def execute(self, query: Any, *args: Any, **kwargs: Any) -> Any:
        if isinstance(query, str) and query.startswith("CREATE") and " ON ONLY " in query:
            query = query.replace(" ON ONLY ", " ON ", 1)
        return self._conn.execute(query, *args, **kwargs)


class PartitionAwarePg:
    """``TempPostgres`` as ``seed_at_scale`` sees it, adapted to a partitioned ``metrics``.

    ``seed_at_scale`` drops metrics' indexes before the bulk insert and replays their ``pg_indexes.indexdef``
    afterwards. For a partitioned table that definition reads ``CREATE INDEX .. ON ONLY public.metrics``,
    which would build an empty, invalid parent index with no partition indexes under it; replayed without
    ``ONLY`` it builds the parent index and one index per partition, as our conversion did. Its constraint
    handling (DROP / ADD CONSTRAINT by name) works on a partitioned table as it is.
    """

    def __init__(self, pg: TempPostgres) -> None:
        self._pg = pg

    def connect(self, db: str, **kwargs: Any) -> _RewritingConnection:
        return _RewritingConnection(self._pg.connect(db, **kwargs))


def seed_both(pg: TempPostgres, n: int, m: int, console: Console) -> dict[str, dict]:
    out = {}
    console.rule("[bold]A: seeding (seed_at_scale)")
    out["A"] = seed_at_scale(pg, "part_a", n, m, console)
    console.rule("[bold]B: seeding (seed_at_scale through PartitionAwarePg)")
    out["B"] = seed_at_scale(PartitionAwarePg(pg), "part_b", n, m, console)
    return out


# The leaves of a relation: itself if plain, else its partitions (one level: ours are not sub-partitioned).
SIZE_QUERY = """
WITH rel (label, oid) AS (
    SELECT 'table (heap + TOAST)', 'metrics'::regclass::oid
    UNION ALL
    SELECT indexrelid::regclass::text, indexrelid FROM pg_index WHERE indrelid = 'metrics'::regclass
), leaf AS (
    SELECT rel.label, c.oid, c.relkind FROM rel JOIN pg_class c ON c.oid = rel.oid
    UNION ALL
    SELECT rel.label, c.oid, c.relkind
    FROM rel JOIN pg_inherits h ON h.inhparent = rel.oid JOIN pg_class c ON c.oid = h.inhrelid
)
SELECT label, sum(CASE WHEN relkind = 'r' THEN pg_table_size(oid) ELSE pg_relation_size(oid) END)::bigint,
       count(*)::int,
       max(CASE WHEN relkind = 'r' THEN pg_table_size(oid) ELSE pg_relation_size(oid) END)::bigint
FROM leaf WHERE relkind IN ('r', 'i') GROUP BY label ORDER BY min(oid)
"""


def sizes(pg: TempPostgres, db: str) -> dict[str, dict[str, int]]:
    """Per relation (the table; each index): bytes summed over partitions, partitions, largest one."""
    found = {
        label: {"bytes": int(total), "parts": parts, "largest_part_bytes": int(largest)}
        for label, total, parts, largest in pg.psql(SIZE_QUERY, db)
    }
    found["total (table + indexes)"] = {
        "bytes": sum(v["bytes"] for v in found.values()),
        "parts": 0,
        "largest_part_bytes": 0,
    }
    return found


# ---------------------------------------------------------------------------------------------- checks


def new_experiment(store: TrackingStore, name: str) -> int:
    return _new_experiment(store, name, PROJECT)


def _final(rows: dict[int | None, float]) -> tuple[int | None, float]:
    step = None if None in rows else max(rows)
    return step, rows[step]


def verify_store(pg: TempPostgres, db: str, url: str) -> dict[str, Any]:
    """Every PostgreSQL path of ``TrackingStore.log_metrics``, each step on its own: which ones succeed,
    and whether ``metrics`` and ``metric_latest`` then hold exactly what the successful steps wrote."""
    store = TrackingStore.from_url(url)
    exp = new_experiment(store, "verify-log-metrics")
    bulk = [{"name": n, "value": float(s), "step": s} for s in range(100, 400) for n in ("loss", "acc")]
    steps: list[tuple[str, str, list[dict[str, Any]]]] = [
        ("step-less keys, small batch (array upsert)", "test", [{"name": "auc", "value": 0.5, "step": None}]),
        (
            "step-less keys again (array upsert, replaces)",
            "test",
            [{"name": "auc", "value": 0.6, "step": None}],
        ),
        (
            "100 new rows, small batch (array upsert)",
            "train",
            [{"name": "loss", "value": 1.0 / (s + 1), "step": s} for s in range(100)],
        ),
        ("600 new rows past the stored steps (COPY into metrics)", "train", bulk),
        (
            "the same 600 keys, new values (COPY into staging + ON CONFLICT ON CONSTRAINT)",
            "train",
            [dict(r, value=r["value"] * 2) for r in bulk],
        ),
        (
            "10 stored keys rewritten, small batch (array upsert)",
            "train",
            [{"name": "loss", "value": -1.0, "step": s} for s in range(10)],
        ),
    ]
    model: dict[tuple[str, str], dict[int | None, float]] = {}
    paths: list[dict[str, Any]] = []
    for label, split, batch in steps:
        try:
            store.log_metrics(exp, batch, evaluation_set=split)
        except Exception as exc:  # noqa: BLE001 - recorded: which write paths B refuses is the finding
            paths.append({"path": label, "ok": False, "error": f"{type(exc).__name__}: {_first_line(exc)}"})
            continue
        paths.append({"path": label, "ok": True})
        for r in batch:
            model.setdefault((r["name"], split), {})[r["step"]] = r["value"]
    stored: dict[tuple[str, str], dict[int | None, float]] = {}
    for name, split, step, value in pg.psql(
        "SELECT name, evaluation_set, step, value FROM metrics WHERE experiment_id = %s", db, (exp,)
    ):
        stored.setdefault((name, split), {})[step] = value
    latest = {
        (r["evaluation_set"], r["name"]): (r["step"], r["value"], r["min_value"], r["max_value"], r["points"])
        for r in store.latest_metrics(exp)
    }
    want = {
        (split, name): (*_final(rows), min(rows.values()), max(rows.values()), len(rows))
        for (name, split), rows in model.items()
    }
    where = pg.psql(
        "SELECT DISTINCT tableoid::regclass::text FROM metrics WHERE experiment_id = %s", db, (exp,)
    )
    return {
        "experiment_id": exp,
        "paths": paths,
        "metrics_rows_as_written": stored == model,
        "metric_latest_as_written": latest == want,
        "rows": sum(len(v) for v in stored.values()),
        "stored_in": sorted(r[0] for r in where),
    }


def _first_line(exc: BaseException) -> str:
    text = str(getattr(exc, "orig", None) or exc)
    return text.strip().splitlines()[0] if text.strip() else type(exc).__name__


INDEX_QUERY = """
SELECT i.indexrelid::regclass::text, i.indisvalid,
       (SELECT count(*) FROM pg_partition_tree(i.indexrelid) t WHERE t.isleaf)::int
FROM pg_index i WHERE i.indrelid = 'metrics'::regclass ORDER BY 1
"""


def index_health(pg: TempPostgres, db: str) -> dict[str, dict[str, Any]]:
    """Per index of metrics: valid, and how many leaf indexes (one per partition) it has."""
    return {
        name: {"valid": valid, "leaf_indexes": leaves} for name, valid, leaves in pg.psql(INDEX_QUERY, db)
    }


# ---------------------------------------------------------------------------------------------- timing
# The machine may be shared (other benchmarks): A and B are always measured interleaved, in alternating
# order (A B, B A, ...), so a burst of outside load hits both about equally.


def order(i: int) -> tuple[str, str]:
    return ("A", "B") if i % 2 == 0 else ("B", "A")


def interleaved(calls: dict[str, Callable[[], Any]], repeat: int = REPEAT) -> dict[str, dict[str, Any]]:
    """One warm-up call each, then ``repeat`` rounds in alternating order; ms per call."""
    for fn in calls.values():
        fn()
    times: dict[str, list[float]] = {k: [] for k in calls}
    for i in range(repeat):
        for k in order(i):
            times[k].append(timed(calls[k]) * 1000)
    return {k: stats_ms(v) for k, v in times.items()}


# ---------------------------------------------------------------------------------------------- reads


def history_sql() -> str:
    return (
        "SELECT step, value, recorded_at FROM metrics WHERE experiment_id = %s AND name = %s "
        "AND evaluation_set = %s ORDER BY step NULLS FIRST"
    )


def bench_reads(pg: TempPostgres, urls: dict[str, str], n: int, console: Console) -> dict[str, Any]:
    stores = {k: TrackingStore.from_url(url) for k, url in urls.items()}
    conns = {k: pg.connect(f"part_{k.lower()}") for k in urls}
    mid = n // 2 + 1
    ten = [1 + i * (n // 10) for i in range(10)]
    out: dict[str, Any] = {}
    try:
        calls: dict[str, dict[str, Callable[[], Any]]] = {
            "metric_history (1 experiment, validation/loss)": {
                k: (lambda s=s: s.metric_history(mid, "loss", "validation")) for k, s in stores.items()
            },
            "leaderboard top-10 (proj_0, validation/accuracy)": {
                k: (lambda s=s: s.leaderboard("proj_0", "accuracy", "validation", "max", 10))
                for k, s in stores.items()
            },
            "metric_curves (10 experiments)": {
                k: (lambda s=s: s.metric_curves(ten)) for k, s in stores.items()
            },
            "count(*) WHERE experiment_id = X": {
                k: (
                    lambda c=c: c.execute(
                        "SELECT count(*) FROM metrics WHERE experiment_id = %s", (mid,)
                    ).fetchone()
                )
                for k, c in conns.items()
            },
        }
        for label, pair in calls.items():
            out[label] = interleaved(pair)
            console.print(
                f"  {label:50s} A {out[label]['A']['median_ms']:8.1f} ms   B {out[label]['B']['median_ms']:8.1f} ms"
            )

        # The delete of one experiment: its metric_latest and metric rows go by ON DELETE CASCADE.
        # A different experiment each time (the first a warm-up), each its own transaction.
        times: dict[str, list[float]] = {"A": [], "B": []}
        for i in range(REPEAT + 1):
            exp = n // 3 + i
            for k in order(i):
                start = time.perf_counter()
                deleted = (
                    conns[k].execute("DELETE FROM experiments WHERE experiment_id = %s", (exp,)).rowcount
                )
                elapsed = (time.perf_counter() - start) * 1000
                if deleted != 1:
                    raise RuntimeError(f"{k}: experiment {exp} not deleted")
                if i:
                    times[k].append(elapsed)
        label = "delete 1 experiment (cascade)"
        out[label] = {k: stats_ms(v) for k, v in times.items()}
        console.print(
            f"  {label:50s} A {out[label]['A']['median_ms']:8.1f} ms   B {out[label]['B']['median_ms']:8.1f} ms"
        )

        # Plans, for the report: where the time goes.
        plans: dict[str, dict[str, list[str]]] = {}
        victim = n // 3 + REPEAT + 1
        for k, conn in conns.items():
            plans[k] = {
                "count(*)": [
                    r[0]
                    for r in conn.execute(
                        "EXPLAIN (ANALYZE, BUFFERS) SELECT count(*) FROM metrics WHERE experiment_id = %s",
                        (mid,),
                    )
                ],
                "metric_history": [
                    r[0]
                    for r in conn.execute(
                        "EXPLAIN (ANALYZE, BUFFERS) " + history_sql(), (mid, "loss", "validation")
                    )
                ],
            }
            with conn.transaction(force_rollback=True):
                plans[k]["delete 1 experiment (rolled back)"] = [
                    r[0]
                    for r in conn.execute(
                        "EXPLAIN (ANALYZE, BUFFERS) DELETE FROM experiments WHERE experiment_id = %s",
                        (victim,),
                    )
                ]
        out["plans"] = plans
    finally:
        for conn in conns.values():
            conn.close()
    return out


# ---------------------------------------------------------------------------------------------- writes


def bench_one_call(urls: dict[str, str], rows: list[dict[str, Any]], rounds: int) -> dict[str, list[dict]]:
    """``rows`` in one log_metrics call into a new experiment; rounds in order A B, B A, ..."""
    stores = {k: TrackingStore.from_url(url) for k, url in urls.items()}
    out: dict[str, list[dict]] = {"A": [], "B": []}
    for i in range(rounds):
        for k in order(i):
            exp = new_experiment(stores[k], f"one-call-{i}")
            seconds = timed(lambda k=k, exp=exp: stores[k].log_metrics(exp, rows))
            out[k].append(
                {
                    "experiment_id": exp,
                    "rows": len(rows),
                    "seconds": seconds,
                    "rows_per_second": len(rows) / seconds,
                }
            )
    return out


def bench_batches(
    urls: dict[str, str], rows: list[dict[str, Any]], size: int, step_rows: bool = True
) -> dict[str, dict[str, Any]]:
    """``rows`` in ``size``-row log_metrics calls, A's and B's calls interleaved (alternating order); a
    database whose call raises is recorded with the error and left out from then on."""
    stores = {k: TrackingStore.from_url(url) for k, url in urls.items()}
    exps = {k: new_experiment(s, f"batches-{size}") for k, s in stores.items()}
    times: dict[str, list[float]] = {"A": [], "B": []}
    errors: dict[str, str] = {}
    for i, start in enumerate(range(0, len(rows), size)):
        chunk = rows[start : start + size]
        for k in order(i):
            if k in errors:
                continue
            try:
                times[k].append(timed(lambda k=k, chunk=chunk: stores[k].log_metrics(exps[k], chunk)))
            except Exception as exc:  # noqa: BLE001 - B refuses the array upsert (see the verification)
                errors[k] = f"{type(exc).__name__}: {_first_line(exc)}"
    out: dict[str, dict[str, Any]] = {}
    for k, t in times.items():
        if k in errors:
            out[k] = {"error": errors[k], "batches_before_error": len(t)}
        else:
            out[k] = {**batch_stats(len(rows), t), "batch_rows": size}
    return out


def _writer(url: str, experiment_id: int, n: int, barrier: Any, results: Any) -> None:
    """One writer process: its own TrackingStore; ``n`` rows in 1k-row batches after the barrier."""
    try:
        store = TrackingStore.from_url(url)
        rows = make_rows(n)
        store.latest_metrics(experiment_id)  # connect before the clock starts
        barrier.wait(timeout=300)
        written = 0
        for start in range(0, n, BATCH):
            written += store.log_metrics(experiment_id, rows[start : start + BATCH])
        results.put({"written": written})
    except BaseException as exc:  # noqa: BLE001 - reported to the parent
        results.put({"error": f"{type(exc).__name__}: {exc}"})


def concurrent(url: str, writers: int, per_writer: int, tag: str) -> dict[str, float]:
    """``writers`` spawned processes, each logging ``per_writer`` rows into its own new experiment."""
    store = TrackingStore.from_url(url)
    ids = [new_experiment(store, f"writer-{tag}-{i}") for i in range(writers)]
    ctx = multiprocessing.get_context("spawn")
    barrier, results = ctx.Barrier(writers + 1), ctx.Queue()
    procs = [
        ctx.Process(target=_writer, args=(url, ids[i], per_writer, barrier, results), daemon=True)
        for i in range(writers)
    ]
    for p in procs:
        p.start()
    try:
        barrier.wait(timeout=300)  # every writer started, imported and connected: go
        start = time.perf_counter()
        outcomes = [results.get(timeout=1800) for _ in procs]
        seconds = time.perf_counter() - start
    finally:
        for p in procs:
            p.join(timeout=60)
            if p.is_alive():
                p.kill()
                p.join()
    errors = [o["error"] for o in outcomes if "error" in o]
    if errors:
        raise RuntimeError(f"writer failed: {errors[0]}")
    total = sum(o["written"] for o in outcomes)
    return {"writers": writers, "rows": total, "seconds": seconds, "rows_per_second": total / seconds}


def bench_concurrent(urls: dict[str, str], writers: int, per_writer: int, rounds: int) -> dict[str, list]:
    out: dict[str, list] = {"A": [], "B": []}
    for i in range(rounds):
        for k in order(i):
            out[k].append(concurrent(urls[k], writers, per_writer, str(i)))
    return out


# ---------------------------------------------------------------------------------------------- maintenance


def bench_maintenance(
    pg: TempPostgres, big: dict[str, list[int]], rows: int, n: int, console: Console
) -> dict[str, Any]:
    """Deletes and VACUUM, the operations partitioning is usually bought for.

    - the delete of each R-row experiment of the one-call ingest (cascade);
    - a bulk delete of every 25th seeded experiment (4% of the metric rows), then VACUUM: A's whole table
      against one of B's partitions, and all of B;
    - 'archiving' 1/16 of the experiments' metric rows: A deletes the rows of the experiments B holds in
      metrics_p15; B detaches and drops that partition (and creates an empty one in its place). With HASH
      partitions the unit is an arbitrary 1/16 of experiments; with RANGE partitions on experiment_id (or
      on time) it would be the oldest ones.
    """
    conns = {k: pg.connect(f"part_{k.lower()}") for k in ("A", "B")}
    out: dict[str, Any] = {}
    try:
        times: dict[str, list[float]] = {"A": [], "B": []}
        for i in range(len(big["A"])):
            for k in order(i):
                exp = big[k][i]
                count = conns[k].execute("SELECT count(*) FROM metrics WHERE experiment_id = %s", (exp,))
                if count.fetchone()[0] != rows:
                    raise RuntimeError(f"{k}: experiment {exp} does not hold {rows} rows")
                sql = "DELETE FROM experiments WHERE experiment_id = %s"
                times[k].append(timed(lambda k=k, exp=exp, sql=sql: conns[k].execute(sql, (exp,))) * 1000)
        out[f"delete a {rows:,}-row experiment (cascade)"] = {k: stats_ms(v) for k, v in times.items()}

        bulk = "DELETE FROM experiments WHERE experiment_id %% 25 = 0 AND experiment_id <= %s"
        out["delete every 25th experiment (cascade)"] = {
            k: timed(lambda k=k: conns[k].execute(bulk, (n,))) * 1000 for k in ("A", "B")
        }
        out["VACUUM after it: A whole table / B one partition"] = {
            "A": timed(lambda: conns["A"].execute("VACUUM metrics")) * 1000,
            "B": timed(lambda: conns["B"].execute("VACUUM metrics_p00")) * 1000,
        }
        b_rest = timed(lambda: conns["B"].execute("VACUUM metrics")) * 1000
        out["VACUUM after it: whole table (B: all partitions)"] = {
            "A": out["VACUUM after it: A whole table / B one partition"]["A"],
            "B": out["VACUUM after it: A whole table / B one partition"]["B"] + b_rest,
        }

        ids = [r[0] for r in conns["B"].execute("SELECT DISTINCT experiment_id FROM metrics_p15")]
        moved = conns["B"].execute("SELECT count(*) FROM metrics_p15").fetchone()[0]
        start = time.perf_counter()
        with conns["A"].transaction():
            deleted = conns["A"].execute("DELETE FROM metrics WHERE experiment_id = ANY(%s)", (ids,)).rowcount
        archive_a = (time.perf_counter() - start) * 1000
        start = time.perf_counter()
        with conns["B"].transaction():
            conns["B"].execute("ALTER TABLE metrics DETACH PARTITION metrics_p15")
            conns["B"].execute("DROP TABLE metrics_p15")
            conns["B"].execute(
                f"CREATE TABLE metrics_p15 PARTITION OF metrics FOR VALUES WITH (MODULUS {PARTITIONS}, REMAINDER 15)"
            )
        archive_b = (time.perf_counter() - start) * 1000
        # (A's count differs from B's by the rows of the experiments B refused to write: see the check.)
        out[f"drop the metric rows of 1/16 of experiments ({moved:,} rows)"] = {
            "A": archive_a,
            "B": archive_b,
            "rows": {"A": deleted, "B": moved},
        }
        for label, entry in out.items():
            a = entry["A"]["median_ms"] if isinstance(entry["A"], dict) else entry["A"]
            b = entry["B"]["median_ms"] if isinstance(entry["B"], dict) else entry["B"]
            console.print(f"  {label:60s} A {a:10.1f} ms   B {b:10.1f} ms")
    finally:
        for conn in conns.values():
            conn.close()
    return out


# ---------------------------------------------------------------------------------------------- report


def mib(n: int) -> str:
    return f"{n / 2**20:,.0f}"


def mean(values: list[float]) -> float:
    return sum(values) / len(values)


def main() -> int:
    parser = arguments(__doc__, "partition_bench")
    parser.add_argument("--experiments", type=int, default=None, help="seeded experiments (100000)")
    parser.add_argument("--metrics", type=int, default=None, help="seeded metric rows (10000000)")
    parser.add_argument("--quick", action="store_true", help="10k experiments / 1M rows, smaller ingest")
    parser.add_argument("--ingest-rows", type=int, default=None, help="rows in one call (1000000)")
    parser.add_argument("--batched-rows", type=int, default=None, help="rows in 1k-row batches (100000)")
    parser.add_argument("--writers", type=int, default=8)
    parser.add_argument("--writer-rows", type=int, default=None, help="rows per writer (50000)")
    parser.add_argument("--rounds", type=int, default=2, help="rounds of the ingest / writer runs (A B, B A)")
    args = parser.parse_args()
    quick = args.quick
    n = args.experiments or (10_000 if quick else 100_000)
    m = args.metrics or (1_000_000 if quick else 10_000_000)
    one_call = args.ingest_rows or (200_000 if quick else 1_000_000)
    batched = args.batched_rows or (20_000 if quick else 100_000)
    per_writer = args.writer_rows or (10_000 if quick else 50_000)
    settings = {
        "experiments": n,
        "metrics": m,
        "partitions": PARTITIONS,
        "partition_key": "HASH (experiment_id)",
        "ingest_one_call_rows": one_call,
        "ingest_batched_rows": batched,
        "batch_rows": BATCH,
        "small_batches": f"{SMALL_BATCHES} x {SMALL_ROWS} rows",
        "writers": args.writers,
        "rows_per_writer": per_writer,
        "rounds": args.rounds,
        "repeat": REPEAT,
        "quick": quick,
        "order": "A and B interleaved, alternating which goes first",
    }
    console = Console(width=max(Console().width, 150))

    started = time.perf_counter()
    load: dict[str, list[float]] = {"start": loadavg()}
    results: dict[str, dict[str, Any]] = {}

    def record(label: str, unit: str, a: Any, b: Any, better: str) -> None:
        both = isinstance(a, float | int) and isinstance(b, float | int)
        results[label] = {
            "unit": unit,
            "A": a,
            "B": b,
            "B/A": b / a if both and a else None,
            "better": better,
        }

    with temp_postgres() as pg:
        info = machine_info(pg)
        urls = {"A": migrated_database(pg, "part_a"), "B": migrated_database(pg, "part_b")}
        partition(pg, "part_b")
        schema = {k: schema_lines(pg, f"part_{k.lower()}") for k in urls}
        only_a = sorted(set(schema["A"]) - set(schema["B"]))
        only_b = sorted(set(schema["B"]) - set(schema["A"]))
        console.print("[bold]metrics, A -> B:[/bold]")
        for line in only_a:
            console.print(f"  A only: {line}")
        for line in only_b:
            console.print(f"  B only: {line}")
        drift = check_drift(urls["B"])
        # Each partition's table and indexes are reported as not in the models; the rest is the key.
        drift_key = [line for line in drift if not re.search(r"\bmetrics_p\d\d\b", line)]
        console.print(
            f"mltrack db check on B: {len(drift) - len(drift_key)} lines on the partitions' own tables and "
            f"indexes, and: {drift_key}"
        )

        seeding = seed_both(pg, n, m, console)
        load["after seeding"] = loadavg()
        size = {k: sizes(pg, f"part_{k.lower()}") for k in urls}
        indexes = {k: index_health(pg, f"part_{k.lower()}") for k in urls}
        if schema_lines(pg, "part_b") != schema["B"] or not all(
            i["valid"] and i["leaf_indexes"] == PARTITIONS for i in indexes["B"].values()
        ):
            raise RuntimeError(f"seeding changed B's metrics table or left an index incomplete: {indexes}")
        for key in ("metrics insert", "metrics indexes + constraints", "total"):
            record(f"seed: {key}", "s", seeding["A"]["seconds"][key], seeding["B"]["seconds"][key], "lower")

        console.rule("[bold]TrackingStore.log_metrics on A and B")
        verification = {k: verify_store(pg, f"part_{k.lower()}", url) for k, url in urls.items()}
        for k, found in verification.items():
            for p in found["paths"]:
                mark = "[green]ok[/green]" if p["ok"] else f"[red]FAILS[/red] {p.get('error', '')}"
                console.print(f"  {k}: {p['path']}: {mark}")
            console.print(
                f"  {k}: metrics rows as written: {found['metrics_rows_as_written']}, metric_latest as "
                f"written: {found['metric_latest_as_written']}, stored in {found['stored_in']}"
            )
        if not all(p["ok"] for p in verification["A"]["paths"]) or not all(
            found["metrics_rows_as_written"] and found["metric_latest_as_written"]
            for found in verification.values()
        ):
            raise RuntimeError(f"log_metrics check failed: {verification}")

        console.rule(f"[bold]reads at {seeding['A']['metrics']:,} rows")
        read = bench_reads(pg, urls, n, console)
        for label, entry in read.items():
            if label != "plans":
                record(label, "ms", entry["A"]["median_ms"], entry["B"]["median_ms"], "lower")
        load["after reads"] = loadavg()

        console.rule("[bold]ingest")
        rows = make_rows(one_call)
        one = bench_one_call(urls, rows, args.rounds)
        del rows
        console.print(f"  one call: {one}")
        record(
            f"log_metrics {one_call:,} rows, one call (mean of {args.rounds})",
            "rows/s",
            mean([r["rows_per_second"] for r in one["A"]]),
            mean([r["rows_per_second"] for r in one["B"]]),
            "higher",
        )
        thousand = bench_batches(urls, make_rows(batched), BATCH)
        console.print(f"  1k-row batches: {thousand}")
        record(
            f"log_metrics {batched:,} rows in 1k-row batches",
            "rows/s",
            thousand["A"]["rows_per_second"],
            thousand["B"]["rows_per_second"],
            "higher",
        )
        record(
            "  ms per 1k-row batch, median",
            "ms",
            thousand["A"]["ms_per_batch_median"],
            thousand["B"]["ms_per_batch_median"],
            "lower",
        )
        small = bench_batches(urls, make_rows(SMALL_BATCHES * SMALL_ROWS, names=SMALL_ROWS), SMALL_ROWS)
        console.print(f"  {SMALL_ROWS}-row batches: {small}")
        record(
            f"log_metrics {SMALL_ROWS}-row batch (array upsert), median",
            "ms",
            small["A"].get("ms_per_batch_median", small["A"].get("error")),
            small["B"].get("ms_per_batch_median", small["B"].get("error")),
            "lower",
        )
        load["after ingest"] = loadavg()

        console.rule("[bold]concurrent writers")
        conc = bench_concurrent(urls, args.writers, per_writer, args.rounds)
        console.print(f"  {conc}")
        record(
            f"{args.writers} writer processes x {per_writer:,} rows in 1k batches (mean of {args.rounds})",
            "rows/s",
            mean([r["rows_per_second"] for r in conc["A"]]),
            mean([r["rows_per_second"] for r in conc["B"]]),
            "higher",
        )
        load["after concurrent writers"] = loadavg()

        console.rule("[bold]deletes, VACUUM, archiving")
        big = {k: [r["experiment_id"] for r in one[k]] for k in urls}
        maint = bench_maintenance(pg, big, one_call, n, console)
        for label, entry in maint.items():
            a = entry["A"]["median_ms"] if isinstance(entry["A"], dict) else entry["A"]
            b = entry["B"]["median_ms"] if isinstance(entry["B"], dict) else entry["B"]
            record(label, "ms", a, b, "lower")
        load["end"] = loadavg()
    run_seconds = time.perf_counter() - started

    rows: list[tuple[str, ...]] = []
    for label, entry in results.items():
        fmt = "{:,.0f}" if entry["unit"] == "rows/s" else "{:,.1f}"
        a, b = entry["A"], entry["B"]
        rows.append(
            (
                label,
                entry["unit"],
                fmt.format(a) if isinstance(a, float | int) else f"[red]{a}[/red]",
                fmt.format(b) if isinstance(b, float | int) else "[red]fails[/red] (below)",
                f"{entry['B/A']:.2f}" if entry["B/A"] is not None else "",
                entry["better"],
            )
        )
    for label in size["A"]:
        a, b = size["A"][label], size["B"][label]
        note = f"largest of {b['parts']}: {mib(b['largest_part_bytes'])}" if b["parts"] > 1 else ""
        rows.append(
            (
                f"size after seeding: {label}",
                "MiB",
                mib(a["bytes"]),
                mib(b["bytes"]),
                f"{b['bytes'] / a['bytes']:.2f}" if a["bytes"] else "",
                note,
            )
        )
    print_table(
        console,
        f"metrics: plain (A) vs HASH(experiment_id) x {PARTITIONS} partitions (B); "
        f"{n:,} experiments / {seeding['A']['metrics']:,} seeded rows; PostgreSQL {info['postgresql']}, "
        f"{info['cpus']} CPUs, load average {load['start'][0] if load['start'] else '?'} at start",
        ("measure", "unit", "A plain", "B partitioned", "B/A", "better"),
        rows,
        left=("unit", "better"),
    )
    console.print(
        "B's primary key is metrics_pkey (experiment_id, metric_id), not (metric_id): a partitioned table's "
        "primary key must include the partition key. Everything else (columns, unique key "
        "uq_metric_experiment_name_step_evalset with NULLS NOT DISTINCT, uq_metric_stepless, the FK with ON "
        "DELETE CASCADE, the check, index names) is as in A."
    )
    refused = [p for p in verification["B"]["paths"] if not p["ok"]]
    if refused:
        console.print(
            f"[bold red]TrackingStore.log_metrics, unchanged, on B: {len(refused)} of "
            f"{len(verification['B']['paths'])} write paths fail[/bold red] ({refused[0]['error']}): the "
            "store's upserts tell replaced rows from new ones with RETURNING xmax, which PostgreSQL refuses "
            "for rows routed through a partitioned table. What works: COPY straight into metrics (batches of "
            ">= 500 rows whose steps only grow: every ingest and writer figure above)."
        )
        for p in refused:
            console.print(f"  fails: {p['path']}")
    else:
        console.print("TrackingStore.log_metrics ran unchanged on B, every write path.")
    console.print(f"run time {run_seconds / 60:.1f} min; load average {load}")

    write_results(
        args.json,
        {
            "machine": info,
            "settings": settings,
            "load_average_1_5_15_min": load,
            "run_seconds": run_seconds,
            "conversion_sql": convert_sql(),
            "schema_differences": {
                "only_in_A": only_a,
                "only_in_B": only_b,
                "drift_report_B": drift,
                "drift_not_partitions": drift_key,
            },
            "log_metrics_on_both": verification,
            "seeding": seeding,
            "sizes_bytes": size,
            "indexes_after_seeding": indexes,
            "results": results,
            "details": {
                "reads": read,
                "one_call": one,
                "batches_1k": thousand,
                "batches_small": small,
                "concurrent": conc,
                "maintenance": maint,
            },
        },
        console,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
