"""``mltrack experiments list|show|compare`` and ``mltrack leaderboard`` on SQLite and PostgreSQL."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from airflow_mltrack.cli import cli

SECRET = "hunter2-s3cret"  # noqa: S105 - a test value that must never be printed
ESC_NAME = "evil\x1b[31m [bold]x[/bold] \u202egnp.exe"
FORMULA_NAME = '=HYPERLINK("http://x")'


def seed(url: str) -> dict[str, int]:
    """Three experiments of project ``vision`` and one of ``other``. Secrets are written through a store
    without redaction (as an older version wrote them), so only the CLI's read-side redaction hides them."""
    from airflow_mltrack.store import TrackingStore
    from airflow_mltrack.store.redaction import NO_REDACTION

    store = TrackingStore.from_url(url, redaction=NO_REDACTION)
    data = store.register_dataset("vision", "cifar", "Image", version="2.0")
    model = store.register_model("vision", "resnet", "PyTorch", version="sgd-539ac701")
    ids = {
        "baseline": store.create_experiment(
            "vision",
            "baseline",
            model,
            data,
            {"lr": 0.1, "optimizer": "adam", "net": {"depth": 18, "act": "relu"}, "db": {"password": SECRET}},
            dag_id="train",
            run_id="manual__1",
            task_id="fit",
            tags=["baseline"],
            notes="first try",
        ),
        "tuned": store.create_experiment(
            "vision", FORMULA_NAME, model, data, {"lr": 0.01, "optimizer": "adam", "net": {"depth": 50}}
        ),
        "failed": store.create_experiment("vision", ESC_NAME, model, data, {"lr": 0.5, "optimizer": "sgd"}),
    }
    for key, accuracy, loss in (("baseline", 0.81, 0.4), ("tuned", 0.88, 0.3), ("failed", 0.95, 0.2)):
        store.set_status(ids[key], "Running")
        store.log_metrics(ids[key], {"loss": [1.0, 0.6, loss]}, evaluation_set="train")
        store.log_metrics(ids[key], {"accuracy": accuracy}, evaluation_set="test")
    store.log_metrics(ids["tuned"], {"f1": float("nan")}, evaluation_set="test")
    store.set_status(ids["baseline"], "Completed")
    store.set_status(ids["tuned"], "Completed")
    store.set_status(ids["failed"], "Failed", error=f"boom: postgresql://u:{SECRET}@db/x")
    other_data = store.register_dataset("other", "d", "Tabular")
    other_model = store.register_model("other", "m", "sklearn")
    ids["other"] = store.create_experiment("other", "elsewhere", other_model, other_data, {"lr": 0.1})
    return ids


@pytest.fixture
def seeded(tracking_url: str) -> tuple[str, dict[str, int]]:
    return tracking_url, seed(tracking_url)


def run(url: str, *args: str) -> Result:
    return CliRunner().invoke(cli, [*args, "--url", url])


def ok(result: Result) -> str:
    assert result.exit_code == 0, result.output
    assert SECRET not in result.output
    return result.stdout


def strict(text: str) -> Any:
    """JSON that Python's non-standard NaN/Infinity literals would fail."""

    def refuse(constant: str) -> None:
        raise AssertionError(f"non-standard JSON constant {constant}")

    return json.loads(text, parse_constant=refuse)


def test_list_filter_columns_table(seeded) -> None:
    url, ids = seeded
    out = ok(
        run(
            url,
            *(
                "experiments",
                "list",
                "--filter",
                "metrics.test.accuracy > 0.85 and params.optimizer = 'adam'",
            ),
            *("--columns", "metrics.test.accuracy,params.lr", "--columns", "params.net.depth"),
        )
    )
    lines = out.splitlines()
    header = next(line for line in lines if "ID" in line)
    for title in ("Name", "Project", "Status", "Start", "Duration", "metrics.test.accuracy", "params.lr"):
        assert title in header, out
    row = next(line for line in lines if f" {ids['tuned']} " in line)
    assert "vision" in row and "Completed" in row and "0.88" in row and "0.01" in row and "50" in row, out
    assert "baseline" not in out and "1-1 of 1 experiment(s)" in out


def test_list_order_by_csv(seeded) -> None:
    url, ids = seeded
    out = ok(
        run(
            url,
            *("experiments", "list", "--project", "vision", "--order-by", "metrics.test.accuracy ASC"),
            *("--columns", "metrics.test.accuracy,metrics.test.f1,params.net", "--format", "csv"),
        )
    )
    table = list(csv.reader(io.StringIO(out)))
    assert table[0] == [
        *("experiment_id", "name", "project", "status", "start_time", "end_time", "duration_seconds"),
        *("metrics.test.accuracy", "metrics.test.f1", "params.net"),
    ]
    assert [int(r[0]) for r in table[1:]] == [ids["baseline"], ids["tuned"], ids["failed"]]
    by_id = {int(r[0]): r for r in table[1:]}
    tuned = by_id[ids["tuned"]]
    assert tuned[1] == "'" + FORMULA_NAME  # a spreadsheet shows the text, does not run it
    assert tuned[7:] == ["0.88", "NaN", '{"depth": 50}']
    assert by_id[ids["baseline"]][8] == ""  # no f1: an empty cell
    assert float(by_id[ids["baseline"]][6]) >= 0 and by_id[ids["baseline"]][4].endswith("+00:00")


def test_list_json_is_strict_and_redacted(seeded) -> None:
    url, ids = seeded
    out = ok(
        run(
            url,
            *("experiments", "list", "--order-by", "metrics.train.loss DESC", "--filter", "params.lr < 1"),
            *("--columns", "metrics.test.f1,params.db,params.lr", "-f", "json"),
        )
    )
    items = strict(out)
    assert [i["experiment_id"] for i in items] == [ids["baseline"], ids["tuned"], ids["failed"], ids["other"]]
    tuned = next(i for i in items if i["experiment_id"] == ids["tuned"])
    assert tuned["metrics.test.f1"] == {"value": "NaN", "min": "NaN", "max": "NaN", "step": None, "points": 1}
    assert tuned["params.lr"] == 0.01 and tuned["params.db"] is None and tuned["name"] == FORMULA_NAME
    baseline = next(i for i in items if i["experiment_id"] == ids["baseline"])
    assert baseline["params.db"] == {"password": "***"} and baseline["tags"] == ["baseline"]
    assert baseline["metrics.test.f1"] is None and baseline["status"] == "Completed"


def test_list_columns_by_their_canonical_key(seeded) -> None:
    """``metrics.accuracy`` is the split it is logged on; attributes are columns too."""
    url, ids = seeded
    out = ok(
        run(
            url,
            "experiments",
            "list",
            "--columns",
            "metrics.accuracy,attributes.status",
            "--project",
            "vision",
            "-f",
            "json",
        )
    )
    items = {i["experiment_id"]: i for i in strict(out)}
    assert items[ids["failed"]]["metrics.test.accuracy"]["value"] == 0.95
    assert (
        items[ids["failed"]]["attributes.status"] == "Failed"
        and "metrics.accuracy" not in items[ids["failed"]]
    )


@pytest.mark.parametrize(
    ("option", "expression", "token"),
    [
        ("--filter", "metrics.test.accuracy >> 0.9", "'>'"),
        ("--filter", "params.lr = 0.1 and (", "position"),
        ("--order-by", "metrics.test.accuracy SIDEWAYS", "SIDEWAYS"),
        ("--columns", "metrics.test.accuracy,nothing.here", "nothing"),
    ],
)
def test_bad_expression_is_one_line(seeded, option: str, expression: str, token: str) -> None:
    url, _ = seeded
    result = run(url, "experiments", "list", option, expression)
    assert result.exit_code == 2, result.output
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.output
    assert lines[0].startswith(f"Error: Invalid value for '{option}': ") and "position" in lines[0], lines
    assert token in lines[0] and "Traceback" not in result.output


def test_console_script_on_the_embedded_store(tmp_path: Path) -> None:
    """As typed in a terminal, the venv's ``mltrack`` in a fresh process, no --url: the embedded SQLite
    store of ``$AIRFLOW_HOME``. stdout holds only the data (Airflow's log line goes to stderr); a bad
    filter is one line on stderr and exit code 2."""
    import os

    from airflow_mltrack.store.migrations import upgrade

    url = f"sqlite:///{tmp_path / 'mltrack.db'}"
    upgrade(url)
    ids = seed(url)
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW_CONN_")}
    env["AIRFLOW_HOME"] = str(tmp_path)
    mltrack = str(Path(sys.executable).parent / "mltrack")

    def mltrack_run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(  # noqa: S603
            [mltrack, *args], capture_output=True, text=True, timeout=180, check=False, env=env
        )

    listed = mltrack_run("experiments", "list", "--columns", "metrics.test.accuracy", "-f", "json")
    assert listed.returncode == 0, listed.stderr
    items = strict(listed.stdout)
    assert sorted(i["experiment_id"] for i in items) == sorted(ids.values())
    assert SECRET not in listed.stdout + listed.stderr
    bad = mltrack_run("experiments", "list", "--filter", "metrics.test.accuracy > 0.9 and")
    assert bad.returncode == 2 and bad.stdout == "", bad
    errors = [line for line in bad.stderr.splitlines() if "embedded SQLite" not in line]
    assert len(errors) == 1 and "Invalid value for '--filter'" in errors[0], bad.stderr
    assert "position 31" in errors[0], errors
    # Every store command, not only these: `mltrack integrity --json | jq` gets JSON alone on stdout.
    checked = mltrack_run("integrity", "--json")
    assert checked.returncode == 0, checked.stderr
    assert json.loads(checked.stdout) and "embedded SQLite" in checked.stderr


def test_show(seeded) -> None:
    url, ids = seeded
    out = ok(run(url, "experiments", "show", str(ids["baseline"])))
    for text in ("Experiment", "baseline", "vision", "cifar v2.0", "resnet sgd-539ac701", "first try"):
        assert text in out, out
    assert "train / manual__1 / fit" in out and "Completed" in out and "Tags" in out
    tree = out[out.index("Hyperparameters") :]
    assert "net" in tree and "depth: 18" in tree and "act: relu" in tree and "password: ***" in tree, out
    metric_lines = [line for line in out.splitlines() if "loss" in line]
    assert metric_lines and all(x in metric_lines[0] for x in ("train", "0.4", "1", "3")), out

    failed = ok(run(url, "experiments", "show", str(ids["failed"])))
    assert "\x1b" not in failed and "\u202e" not in failed  # the name's control characters, escaped
    assert "\\x1b[31m [bold]x[/bold] \\u202egnp.exe" in failed and "Failed" in failed
    assert "boom: postgresql://u:***@db/x" in failed

    detail = strict(ok(run(url, "experiments", "show", str(ids["tuned"]), "-f", "json")))
    assert detail["experiment"]["name"] == FORMULA_NAME and detail["experiment"]["status"] == "Completed"
    metrics = {(m["evaluation_set"], m["name"]): m for m in detail["metrics"]}
    assert metrics[("test", "f1")]["value"] == "NaN" and metrics[("train", "loss")]["points"] == 3


def test_show_unknown_id_is_one_line(seeded) -> None:
    url, _ = seeded
    result = run(url, "experiments", "show", "999999")
    assert result.exit_code == 1 and len(result.output.splitlines()) == 1, result.output
    assert "999999" in result.output and "no experiment" in result.output


def test_compare(seeded) -> None:
    url, ids = seeded
    a, b, c = ids["baseline"], ids["tuned"], ids["failed"]
    out = ok(run(url, "experiments", "compare", str(a), str(b), str(c)))
    params = out[: out.index("Final metrics")]
    assert "lr" in params and "net" in params and "optimizer" in params and "db" in params
    two = ok(run(url, "experiments", "compare", str(a), str(b)))
    assert "optimizer" not in two[: two.index("Final metrics")]  # equal in both: shown with --all only
    assert "optimizer" in ok(run(url, "experiments", "compare", str(a), str(b), "--all"))
    rows = {line.split("│")[2].strip(): line for line in out.splitlines() if line.count("│") > 4}
    assert "*0.95" in rows["accuracy ↑"] and "*0.2" in rows["loss ↓"], out  # higher / lower is better
    assert rows["accuracy ↑"].count("*") == 1

    table = list(csv.reader(io.StringIO(ok(run(url, "experiments", "compare", str(a), str(b), "-f", "csv")))))
    assert table[0] == ["key", str(a), str(b)]
    by_key = {r[0]: r[1:] for r in table[1:]}
    assert by_key["name"] == ["baseline", "'" + FORMULA_NAME]
    assert by_key["params.lr"] == ["0.1", "0.01"] and by_key["metrics.test.accuracy"] == ["0.81", "0.88"]
    assert by_key["params.db"] == ['{"password":"***"}', ""] and "params.optimizer" not in by_key

    data = strict(ok(run(url, "experiments", "compare", str(a), str(b), str(c), "-f", "json")))
    accuracy = next(m for m in data["metrics"] if m["name"] == "accuracy")
    assert accuracy["best"] == [c] and accuracy["lower_is_better"] is False
    assert (
        data["differing"] == ["db", "lr", "net", "optimizer"]
        and list(data["hyperparameters"]) == data["differing"]
    )
    assert data["hyperparameters"]["db"] == {str(a): {"password": "***"}, str(b): None, str(c): None}


def test_limits_are_the_stores() -> None:
    from airflow_mltrack.cli import experiments
    from airflow_mltrack.store.reads import compare, experiment_list

    assert experiments.MAX_LIMIT == experiment_list.MAX_PAGE
    assert experiments.MAX_COMPARED == compare.MAX_COMPARED


@pytest.mark.parametrize("ids", [["1"], ["1", "1"], [str(i) for i in range(1, 102)]])
def test_compare_needs_two_ids(tmp_path: Path, ids: list[str]) -> None:
    result = CliRunner().invoke(cli, ["experiments", "compare", *ids, "--url", f"sqlite:///{tmp_path}/x.db"])
    assert result.exit_code == 2 and "give 2 to 100" in result.output, result.output


def test_compare_unknown_id_is_one_line(seeded) -> None:
    url, ids = seeded
    result = run(url, "experiments", "compare", str(ids["baseline"]), "424242")
    assert result.exit_code == 1 and len(result.output.splitlines()) == 1, result.output
    assert "424242" in result.output


def test_leaderboard(seeded) -> None:
    url, ids = seeded
    out = ok(run(url, "leaderboard", "--project", "vision", "--metric", "accuracy"))
    lines = [line for line in out.splitlines() if line.count("│") > 4]
    assert [line.split("│")[2].strip() for line in lines] == [str(ids["tuned"]), str(ids["baseline"])]
    assert "0.88" in lines[0] and str(ids["failed"]) not in [line.split("│")[2].strip() for line in lines]
    board = strict(
        ok(
            run(
                url,
                "leaderboard",
                "--project",
                "vision",
                "--metric",
                "loss",
                "--split",
                "train",
                "--mode",
                "min",
                "-f",
                "json",
            )
        )
    )
    assert [(r["rank"], r["experiment_id"], r["value"]) for r in board] == [
        (1, ids["tuned"], 0.3),
        (2, ids["baseline"], 0.4),
    ]
    assert board[1]["hyperparameters"]["db"] == {"password": "***"}
    csv_out = ok(
        run(url, "leaderboard", "--project", "vision", "--metric", "accuracy", "--limit", "1", "-f", "csv")
    )
    table = list(csv.reader(io.StringIO(csv_out)))
    assert table[0][:5] == ["rank", "experiment_id", "name", "status", "value"] and len(table) == 2
    assert table[1][2] == "'" + FORMULA_NAME


def test_leaderboard_unknown_project_is_one_line(seeded) -> None:
    url, _ = seeded
    result = run(url, "leaderboard", "--project", "nope", "--metric", "accuracy")
    assert result.exit_code == 1 and len(result.output.splitlines()) == 1 and "nope" in result.output


def test_conn_id_from_an_airflow_connection_variable(seeded, monkeypatch) -> None:
    url, ids = seeded
    monkeypatch.setenv(
        "AIRFLOW_CONN_EXPLORER_STORE", json.dumps({"conn_type": "mltrack", "extra": {"url": url}})
    )
    result = CliRunner().invoke(cli, ["experiments", "list", "--conn-id", "explorer_store", "-f", "json"])
    assert result.exit_code == 0, result.output
    assert sorted(i["experiment_id"] for i in strict(result.stdout)) == sorted(ids.values())
    result = CliRunner().invoke(
        cli,
        [
            "leaderboard",
            "--conn-id",
            "explorer_store",
            "--project",
            "vision",
            "--metric",
            "accuracy",
            "-f",
            "json",
        ],
    )
    assert [r["experiment_id"] for r in strict(result.stdout)] == [ids["tuned"], ids["baseline"]]


UNREACHABLE = "postgresql://nouser:pw-never-shown@127.0.0.1:1/none"


@pytest.mark.parametrize(
    "args",
    [
        ["experiments", "list"],
        ["experiments", "show", "1"],
        ["experiments", "compare", "1", "2"],
        ["leaderboard", "--project", "p", "--metric", "m"],
    ],
    ids=["list", "show", "compare", "leaderboard"],
)
def test_unreachable_store_is_one_line(args: list[str]) -> None:
    result = CliRunner().invoke(cli, [*args, "--url", UNREACHABLE])
    assert result.exit_code == 1 and len(result.output.splitlines()) == 1, result.output
    assert "host 127.0.0.1, port 1" in result.output and "pw-never-shown" not in result.output


def test_airflow_sensitive_names_are_hidden(tracking_url: str, monkeypatch) -> None:
    """The store the CLI opens has the hook's policy: ``[core] sensitive_var_conn_names`` counts too."""
    from airflow_mltrack.store import TrackingStore
    from airflow_mltrack.store.redaction import NO_REDACTION

    store = TrackingStore.from_url(tracking_url, redaction=NO_REDACTION)
    data = store.register_dataset("p", "d", "Tabular")
    model = store.register_model("p", "m", "sklearn")
    exp = store.create_experiment(
        "p", "e", model, data, {"svc": {"wandbkeyzz": "visible-only-without-policy"}}
    )
    monkeypatch.setenv("AIRFLOW__CORE__SENSITIVE_VAR_CONN_NAMES", "wandbkeyzz")
    for args in (
        ["experiments", "show", str(exp)],
        ["experiments", "list", "--columns", "params.svc"],
    ):
        out = ok(run(tracking_url, *args, "-f", "json"))
        assert "visible-only-without-policy" not in out and "***" in out, out
    monkeypatch.delenv("AIRFLOW__CORE__SENSITIVE_VAR_CONN_NAMES")
    assert "visible-only-without-policy" in ok(
        run(tracking_url, "experiments", "show", str(exp), "-f", "json")
    )


def test_versions_read_as_on_the_pages() -> None:
    """One rule for the CLI and the pages (``vocabulary.version_label``): no "v" glued to a non-release."""
    from airflow_mltrack.cli.tables import fmt_version
    from airflow_mltrack.plugins.rendering import fmt_version as page_version

    for version, shown in (("1.2", "v1.2"), ("sgd-539ac701", "sgd-539ac701"), ("2026-12-03", "2026-12-03")):
        assert fmt_version(version) == page_version(version) == shown
