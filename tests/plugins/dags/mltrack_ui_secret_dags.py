"""A DAG as users write it, whose hyperparameters and failure message carry secrets in the shapes real code
uses: camelCase keys, ``pwd``, ``credentials``, a number under a secret key, a password inside a URL under a
plain key, and an exception that quotes a connection URL (tests/plugins/test_secret_shapes.py)."""

from __future__ import annotations

import datetime as dt

from airflow.sdk import dag, task

PROJECT = "secret-shapes"
SECRETS = {
    "dbPassword": "pw-camel-3b9d1f7a",
    "openaiApiKey": "sk-camel-9f8e7d6c5b4a39281706",
    "AWSSecretAccessKey": "aws-acronym-5e4d3c2b",
    "secretKey": "sk2-camel-7a6b5c4d",
    "pwd": "pwd-short-1f2e3d4c",
    "ssh_key": "ssh-rsa-AAAAB3-8c7b6a59",
    "auth": "auth-basic-2d3c4b5a",
    "url_password": "url-pw-6e5d4c3b",
    "error_password": "err-pw-0a1b2c3d",
}
NUMERIC_PIN = 90817263  # a number under a secret key
FEATURE_STORE = f"postgresql://trainer:{SECRETS['url_password']}@features.internal:5432/fs"


@dag(schedule="@daily", start_date=dt.datetime(2025, 1, 1), catchup=False, default_args={"retries": 0})
def mltrack_ui_secret_shapes():
    @task.mltrack(
        project=PROJECT,
        hyperparameters={
            "lr": 0.01,
            "dbPassword": SECRETS["dbPassword"],
            "openaiApiKey": SECRETS["openaiApiKey"],
            "AWSSecretAccessKey": SECRETS["AWSSecretAccessKey"],
            "credentials": {"secretKey": SECRETS["secretKey"], "pwd": SECRETS["pwd"]},
            "ssh_key": SECRETS["ssh_key"],
            "auth": SECRETS["auth"],
            "api_secret": NUMERIC_PIN,
            "feature_store": FEATURE_STORE,
        },
    )
    def train(tracker=None) -> dict:
        tracker.log_metric("loss", 0.4)
        return {"accuracy": 0.9}

    @task.mltrack(project=PROJECT, hyperparameters={"lr": 0.1})
    def flaky(tracker=None) -> dict:
        raise ConnectionError(
            f"cannot reach {FEATURE_STORE} (retrying with password={SECRETS['error_password']} failed)"
        )

    train()
    flaky()


mltrack_ui_secret_shapes()
