"""train_evaluate_deploy: a small, real ML pipeline tracked end to end with airflow-mltrack.

1. register the scikit-learn ``digits`` dataset (an Asset event ``x-mltrack://digits-demo/digits``);
2. split it 60/20/20 and standardize it, recorded as a preprocessing job that derives ``digits-scaled``;
3. train three SGD classifiers in parallel (dynamic task mapping over a hyperparameter grid), epoch by
   epoch, each one an experiment with its loss and accuracy curves (``@task.mltrack``);
4. pick the best on validation accuracy and register it as a model version;
5. evaluate that champion on the held-out test split in its own experiment
   (CreateExperimentOperator -> LogMetricsOperator -> SetExperimentStatusOperator);
6. roll it out: a 10% canary, then 100% if it beats the model serving the endpoint, else back to the
   incumbent.

Runs locally with no network: ``airflow dags test train_evaluate_deploy`` (or ``mltrack demo``).
Artifacts (arrays, pickled models) go under ``$AIRFLOW_HOME/mltrack-artifacts``: fine for one machine;
use object storage (``airflow.sdk.ObjectStoragePath``) when workers do not share a disk.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path

from airflow.sdk import DAG, task

from airflow_mltrack.operators import (
    CreateExperimentOperator,
    DeployModelOperator,
    LogMetricsOperator,
    PreprocessingJobOperator,
    RegisterDatasetOperator,
    RegisterModelOperator,
    SetExperimentStatusOperator,
)

PROJECT = "digits-demo"
ENDPOINT = "digits-classifier"
MODEL_NAME = "digits-sgd"
SEED = 42
EPOCHS = 20
CLASSES = list(range(10))
# One experiment per entry (one mapped task instance each); the keys are the training function's args.
GRID = [
    {"alpha": 1e-4, "eta0": 0.01},
    {"alpha": 1e-3, "eta0": 0.05},
    {"alpha": 1e-2, "eta0": 0.2},
]
CHAMPION_EXPERIMENT = "champion-evaluation"


def artifacts_dir(run_id: str) -> Path:
    """``$AIRFLOW_HOME/mltrack-artifacts/train_evaluate_deploy/<run_id>`` (created)."""
    home = os.environ.get("AIRFLOW_HOME") or os.path.expanduser("~/airflow")
    path = Path(home) / "mltrack-artifacts" / "train_evaluate_deploy" / re.sub(r"[^\w.-]+", "_", run_id)
    path.mkdir(parents=True, exist_ok=True)
    return path


def load_splits(path: str) -> dict:
    import numpy as np

    with np.load(path) as arrays:
        return {key: arrays[key] for key in arrays.files}


def evaluate(model, x, y) -> dict[str, float]:
    from sklearn.metrics import accuracy_score, f1_score, log_loss

    predicted = model.predict(x)
    return {
        "accuracy": float(accuracy_score(y, predicted)),
        "f1_macro": float(f1_score(y, predicted, average="macro")),
        "loss": float(log_loss(y, model.predict_proba(x), labels=CLASSES)),
    }


with DAG(
    dag_id="train_evaluate_deploy",
    schedule=None,
    catchup=False,
    tags=["mltrack", "example"],
    doc_md=__doc__,
) as dag:
    register_dataset = RegisterDatasetOperator(
        task_id="register_dataset",
        project=PROJECT,
        name="digits",
        data_type="Image",
        version="1.0",
        source_url="https://archive.ics.uci.edu/dataset/80/optical+recognition+of+handwritten+digits",
        description="8x8 images of handwritten digits (scikit-learn load_digits), 64 features, 10 classes",
        num_records=1797,
        tags=["scikit-learn", "example"],
    )

    @task
    def split_and_scale(run_id: str | None = None) -> dict:
        """Stratified 60/20/20 split, StandardScaler fitted on train only; arrays saved as one .npz."""
        import numpy as np
        from sklearn.datasets import load_digits
        from sklearn.model_selection import train_test_split
        from sklearn.preprocessing import StandardScaler

        x, y = load_digits(return_X_y=True)
        x_train, x_rest, y_train, y_rest = train_test_split(
            x, y, test_size=0.4, random_state=SEED, stratify=y
        )
        x_val, x_test, y_val, y_test = train_test_split(
            x_rest, y_rest, test_size=0.5, random_state=SEED, stratify=y_rest
        )
        scaler = StandardScaler().fit(x_train)
        path = artifacts_dir(run_id or "manual") / "digits-scaled.npz"
        np.savez(
            path,
            x_train=scaler.transform(x_train),
            y_train=y_train,
            x_validation=scaler.transform(x_val),
            y_validation=y_val,
            x_test=scaler.transform(x_test),
            y_test=y_test,
        )
        return {
            "path": str(path),
            "rows": {"train": len(y_train), "validation": len(y_val), "test": len(y_test)},
            "size_bytes": path.stat().st_size,
        }

    splits = split_and_scale()

    record_preprocessing = PreprocessingJobOperator(
        task_id="record_preprocessing",
        project=PROJECT,
        name="split-and-scale",
        input_dataset_id=register_dataset.output,
        output_dataset={
            "name": "digits-scaled",
            "data_type": "Tabular",
            "version": "1.0",
            "description": "digits split 60/20/20 (stratified) and standardized on the train split",
            "num_records": 1797,
        },
        parameters={"split": [0.6, 0.2, 0.2], "stratify": True, "scaler": "StandardScaler", "seed": SEED},
    )
    splits >> record_preprocessing
    scaled_dataset_id = record_preprocessing.output["output_dataset_id"]

    register_candidate_model = RegisterModelOperator(
        task_id="register_candidate_model",
        project=PROJECT,
        name=MODEL_NAME,
        version="candidates",
        framework="scikit-learn",
        architecture="SGDClassifier",
        model_type="classifier",
        description="the model family the grid search trains; each chosen champion is a version of it",
    )

    @task.mltrack(
        project=PROJECT,
        experiment="sgd-grid",
        model_id=register_candidate_model.output,
        dataset_id=scaled_dataset_id,
        evaluation_set="validation",
    )
    def train_candidate(data: dict, alpha: float, eta0: float, tracker=None, ti=None) -> dict:
        """SGD (logistic loss) fitted one epoch at a time; logs train loss and validation curves."""
        import pickle

        import numpy as np
        from sklearn.linear_model import SGDClassifier
        from sklearn.metrics import accuracy_score, log_loss

        tracker.log_params({"epochs": EPOCHS, "loss": "log_loss", "learning_rate": "constant", "seed": SEED})
        arrays = load_splits(data["path"])
        x_train, y_train = arrays["x_train"], arrays["y_train"]
        x_val, y_val = arrays["x_validation"], arrays["y_validation"]
        model = SGDClassifier(
            loss="log_loss", alpha=alpha, learning_rate="constant", eta0=eta0, random_state=SEED
        )
        for epoch in range(EPOCHS):
            model.partial_fit(x_train, y_train, classes=np.array(CLASSES))
            tracker.log_metric(
                "loss",
                log_loss(y_train, model.predict_proba(x_train), labels=CLASSES),
                step=epoch,
                evaluation_set="train",
            )
            tracker.log_metric(
                "loss",
                log_loss(y_val, model.predict_proba(x_val), labels=CLASSES),
                step=epoch,
                evaluation_set="validation",
            )
            tracker.log_metric("accuracy", accuracy_score(y_val, model.predict(x_val)), step=epoch)
        path = Path(data["path"]).with_name(f"candidate-{ti.map_index}.pkl")
        path.write_bytes(pickle.dumps(model))
        # Split first: final values per split, logged as step-less metrics and returned as XCom.
        return {
            split: evaluate(model, arrays[f"x_{split}"], arrays[f"y_{split}"])
            for split in ("train", "validation", "test")
        }

    candidates = train_candidate.partial(data=splits).expand_kwargs(GRID)
    record_preprocessing >> candidates

    @task
    def pick_best(results, data: dict, dag_run=None) -> dict:
        """The candidate with the best validation accuracy (then the lowest validation loss)."""
        from airflow_mltrack.hooks import MLTrackHook

        results = [results[i] for i in range(len(results))]  # one XCom per map index, in order
        best = max(
            range(len(results)),
            key=lambda i: (results[i]["validation"]["accuracy"], -results[i]["validation"]["loss"], -i),
        )
        experiments = (
            MLTrackHook()
            .get_store()
            .find_experiments(dag_id=dag_run.dag_id, run_id=dag_run.run_id, task_id="train_candidate")
        )
        experiment_id = next((e["experiment_id"] for e in experiments if e["map_index"] == best), None)
        params = GRID[best]
        canonical = json.dumps(params, sort_keys=True).encode()
        digest = hashlib.sha1(canonical, usedforsecurity=False).hexdigest()[:8]  # a label, not a signature
        print(f"champion: candidate {best} {params} (experiment {experiment_id}): {results[best]}")
        return {
            "map_index": best,
            "experiment_id": experiment_id,
            "hyperparameters": params,
            "version": f"sgd-{digest}",  # same hyperparameters -> same model version (and id)
            "model_path": str(Path(data["path"]).with_name(f"candidate-{best}.pkl")),
            "metrics": results[best],
        }

    best = pick_best(candidates, splits)

    register_champion = RegisterModelOperator(
        task_id="register_champion",
        project=PROJECT,
        name=MODEL_NAME,
        version="{{ ti.xcom_pull(task_ids='pick_best')['version'] }}",
        framework="scikit-learn",
        architecture="SGDClassifier",
        model_type="classifier",
        model_path="{{ ti.xcom_pull(task_ids='pick_best')['model_path'] }}",
        description="the best grid candidate on validation accuracy",
        input_schema={"type": "array", "dtype": "float64", "shape": [64], "scaled": "StandardScaler"},
        output_schema={"type": "integer", "classes": CLASSES},
    )
    best >> register_champion

    start_champion_evaluation = CreateExperimentOperator(
        task_id="start_champion_evaluation",
        project=PROJECT,
        name=CHAMPION_EXPERIMENT,
        model_id=register_champion.output,
        dataset_id=scaled_dataset_id,
        hyperparameters="{{ ti.xcom_pull(task_ids='pick_best')['hyperparameters'] | tojson }}",
        description="held-out test evaluation of the chosen model before it is deployed",
    )

    @task
    def evaluate_champion(choice: dict, data: dict) -> dict:
        """Test-split metrics of the pickled champion, split first."""
        import pickle

        arrays = load_splits(data["path"])
        model = pickle.loads(Path(choice["model_path"]).read_bytes())  # noqa: S301 - our own artifact
        return {"test": evaluate(model, arrays["x_test"], arrays["y_test"])}

    champion_metrics = evaluate_champion(best, splits)
    start_champion_evaluation >> champion_metrics

    log_champion_metrics = LogMetricsOperator(
        task_id="log_champion_metrics",
        experiment_id=start_champion_evaluation.output,
        source_task_ids=["evaluate_champion"],
        evaluation_set="test",
    )
    complete_champion_evaluation = SetExperimentStatusOperator(
        task_id="complete_champion_evaluation",
        experiment_id=start_champion_evaluation.output,
        status="Completed",
    )
    champion_metrics >> log_champion_metrics >> complete_champion_evaluation

    @task.short_circuit
    def needs_rollout(model_id) -> bool:
        """False (skip the rollout) when this model already serves all of the endpoint's traffic."""
        from airflow_mltrack.errors import NotFoundError
        from airflow_mltrack.hooks import MLTrackHook

        try:
            state = MLTrackHook().get_store().endpoint_state(PROJECT, ENDPOINT)
        except NotFoundError:
            return True  # no endpoint yet: first deployment
        serving = {row["model_id"]: row["traffic_percentage"] for row in state}
        if serving.get(int(model_id), 0) >= 100:
            print(f"model {model_id} already serves 100% of {ENDPOINT}: nothing to roll out")
            return False
        return True

    rollout = needs_rollout(register_champion.output)
    complete_champion_evaluation >> rollout

    deploy_canary = DeployModelOperator(
        task_id="deploy_canary",
        project=PROJECT,
        endpoint=ENDPOINT,
        model_id=register_champion.output,
        traffic_percentage=10,
        url="http://models.local/digits-classifier",
    )

    @task.branch
    def beats_incumbent(model_id, metrics: dict, ti=None) -> str:
        """promote if the champion's test accuracy beats the incumbent's (its champion-evaluation
        experiment on the leaderboard), else roll back to the incumbent."""
        from airflow_mltrack.hooks import MLTrackHook

        store = MLTrackHook().get_store()
        state = store.endpoint_state(PROJECT, ENDPOINT)
        others = [row for row in state if row["model_id"] != int(model_id)]
        if not others:
            print("no incumbent on the endpoint: promote")
            return "promote"
        incumbent = others[0]["model_id"]  # the largest share
        ti.xcom_push(key="incumbent_model_id", value=incumbent)
        board = store.leaderboard(PROJECT, "accuracy", evaluation_set="test", mode="max", limit=1000)
        scores = [
            r["value"] for r in board if r["model_id"] == incumbent and r["name"] == CHAMPION_EXPERIMENT
        ]
        champion = metrics["test"]["accuracy"]
        if not scores:
            print(f"incumbent model {incumbent} has no test accuracy: promote")
            return "promote"
        print(f"champion test accuracy {champion:.4f} vs incumbent model {incumbent}: {scores[0]:.4f}")
        return "promote" if champion > scores[0] else "rollback_canary"

    decision = beats_incumbent(register_champion.output, champion_metrics)

    promote = DeployModelOperator(
        task_id="promote",
        project=PROJECT,
        endpoint=ENDPOINT,
        model_id=register_champion.output,
        traffic_percentage=100,
    )
    rollback_canary = DeployModelOperator(
        task_id="rollback_canary",
        project=PROJECT,
        endpoint=ENDPOINT,
        model_id="{{ ti.xcom_pull(task_ids='beats_incumbent', key='incumbent_model_id') }}",
        traffic_percentage=100,
    )
    rollout >> deploy_canary >> decision >> [promote, rollback_canary]
