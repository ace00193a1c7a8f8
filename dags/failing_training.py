"""failing_training: a training run that diverges, so you can see what a Failed experiment looks like.

Plain gradient descent on the scikit-learn ``diabetes`` regression data with a learning rate far too
large: the loss grows every epoch until it overflows, and the task raises ``ValueError("loss diverged:
...")``. The experiment is then Failed with that error, and its loss curve shows the blow-up.
``retries=0`` so it fails for good on the first try. Run it with ``airflow dags test failing_training``
(the run is expected to fail).
"""

from __future__ import annotations

from airflow.sdk import DAG, task

from airflow_mltrack.operators import RegisterDatasetOperator, RegisterModelOperator

PROJECT = "diabetes-demo"

with DAG(
    dag_id="failing_training",
    schedule=None,
    catchup=False,
    tags=["mltrack", "example"],
    default_args={"retries": 0},
    doc_md=__doc__,
) as dag:
    register_dataset = RegisterDatasetOperator(
        task_id="register_dataset",
        project=PROJECT,
        name="diabetes",
        data_type="Tabular",
        source_url="https://www4.stat.ncsu.edu/~boos/var.select/diabetes.html",
        description="scikit-learn load_diabetes: 10 baseline variables, disease progression after one year",
        num_records=442,
    )
    register_model = RegisterModelOperator(
        task_id="register_model",
        project=PROJECT,
        name="diabetes-linear",
        framework="numpy",
        architecture="linear regression, full-batch gradient descent",
        model_type="regressor",
    )

    @task.mltrack(
        project=PROJECT,
        experiment="gd-too-large-learning-rate",
        model_id=register_model.output,
        dataset_id=register_dataset.output,
        evaluation_set="train",
    )
    def train(learning_rate: float = 20.0, max_epochs: int = 200, tracker=None) -> dict:
        import numpy as np
        from sklearn.datasets import load_diabetes

        x, y = load_diabetes(return_X_y=True)
        x = (x - x.mean(axis=0)) / x.std(axis=0)
        y = (y - y.mean()) / y.std()
        weights, bias = np.zeros(x.shape[1]), 0.0
        with np.errstate(all="ignore"):
            for epoch in range(max_epochs):
                residual = x @ weights + bias - y
                loss = float(np.mean(residual**2))
                if not np.isfinite(loss):
                    raise ValueError(
                        f"loss diverged: {loss} at epoch {epoch} (learning_rate={learning_rate})"
                    )
                tracker.log_metric("mse", loss, step=epoch)
                weights -= learning_rate * 2 * x.T @ residual / len(y)
                bias -= learning_rate * 2 * float(residual.mean())
        return {"mse": loss}

    train()
