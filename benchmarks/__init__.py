"""Benchmarks of airflow-mltrack, run from the repository root as modules: ``python -m benchmarks.<name>``.

What they share (timing and statistics, tables, JSON results with machine info, a throwaway PostgreSQL,
temporary SQLite stores, store seeding) is in :mod:`benchmarks._common`; the throwaway server itself is
``tests/support/pgserver.py``.
"""
