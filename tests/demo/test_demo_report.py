"""What ``mltrack demo`` prints: readable in an 80-column terminal, and honest about earlier runs."""

from __future__ import annotations

import io

from rich.cells import cell_len
from rich.console import Console

from airflow_mltrack.cli.demo import ENDPOINT, FAILING_DAG, FAILING_PROJECT, MAIN_DAG, PROJECT, _report

THIS_RUN = "scheduled__2026-03-01T00:00:00+00:00"
EARLIER_RUN = "manual__2026-02-27T10:11:12.123456+00:00"
FAILED_RUN = "manual__2026-03-01T00:05:00.654321+00:00"
ERROR = (
    "task train (try 2) failed: ValueError: loss diverged: inf at epoch 70 "
    "(learning_rate=20.0, a long explanation of what went wrong that does not fit one line)"
)


def _name(i: int) -> str:
    return f"sgd-grid-search-with-a-rather-long-descriptive-experiment-name-number-{i}"


def _seed(store) -> dict[str, str]:
    """Two demo runs (the earlier one and this one) of three experiments each, a deployment, a failure."""
    model = store.register_model(PROJECT, "digits-sgd", "scikit-learn")
    data = store.register_dataset(PROJECT, "digits", "Tabular")
    names = {}
    for run, accuracies in ((EARLIER_RUN, (0.91, 0.92, 0.93)), (THIS_RUN, (0.95, 0.97, 0.96))):
        for i, accuracy in enumerate(accuracies):
            eid = store.create_experiment(
                PROJECT,
                _name(i),
                model,
                data,
                hyperparameters={"alpha": 10 ** -(i + 2), "eta0": 0.05},
                dag_id=MAIN_DAG,
                run_id=run,
                task_id="train",
                map_index=i,
            )
            store.log_metrics(eid, {"accuracy": accuracy}, evaluation_set="validation")
            if run == THIS_RUN:
                names[str(eid)] = _name(i)
    store.deploy_model(PROJECT, ENDPOINT, model, 100)
    failing_model = store.register_model(FAILING_PROJECT, "gd", "numpy")
    failing_data = store.register_dataset(FAILING_PROJECT, "diabetes", "Tabular")
    failed = store.create_experiment(
        FAILING_PROJECT,
        "gd-too-large-learning-rate",
        failing_model,
        failing_data,
        dag_id=FAILING_DAG,
        run_id=FAILED_RUN,
        task_id="train",
    )
    store.set_status(failed, "Running")
    store.set_status(failed, "Failed", error=ERROR)
    return names


def _rows(text: str) -> list[list[str]]:
    """The leaderboard's rows, each cell re-joined across the lines it was folded onto."""
    rows: list[list[str]] = []
    for line in text.split("Endpoint")[0].splitlines():
        cells = [c.strip() for c in line.split("│")[1:-1]]
        if len(cells) < 7 or cells[0] == "rank":
            continue
        if cells[0]:
            rows.append(cells)
        else:
            rows[-1] = [a + b for a, b in zip(rows[-1], cells, strict=True)]
    return rows


def test_leaderboard_fits_80_columns_with_long_names_and_says_what_a_rerun_added(store, monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")
    names = _seed(store)
    out = io.StringIO()
    console = Console(file=out)  # as `mltrack demo` makes it: the width comes from the terminal
    _report(console, store, {MAIN_DAG: THIS_RUN, FAILING_DAG: FAILED_RUN}, skip_failing=False)
    text = out.getvalue()

    assert console.width == 80
    assert max(cell_len(line) for line in text.splitlines()) <= 80, text
    rows = _rows(text)
    # This run's three experiments, ranked, each id in its own column and each name whole.
    assert [r[0] for r in rows] == ["1", "2", "3"], text
    assert {r[1]: r[2] for r in rows} == names, text
    assert [r[6] for r in rows] == ["0.9700", "0.9600", "0.9500"], text
    assert THIS_RUN in text.replace("\n", "")
    flat = " ".join(text.split())
    assert "3 more experiment(s) in digits-demo come from earlier demo runs" in flat, text
    # The error of the failed experiment, whole, every wrapped line indented under its label.
    assert ERROR in flat, text
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("error"))
    continuation = [line for line in lines[start + 1 :] if line.strip()][:1]
    assert continuation and continuation[0].startswith(" " * 10), text
