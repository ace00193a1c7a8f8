#!/usr/bin/env bash
# The UI: `bash scripts/ui.sh`, from any directory, in a fresh shell (no venv activated). Run
# `bash scripts/demo.sh` first for something to look at.
#
# Starts `airflow standalone` (API server, scheduler, DAG processor, triggerer) from .venv on the demo's
# Airflow home: AIRFLOW_HOME if set, else .mltrack/airflow. The home's airflow.cfg is given the demo
# settings first (the example DAGs of this repository, no Airflow examples, new DAGs paused).
# Login: user admin, password in $AIRFLOW_HOME/simple_auth_manager_passwords.json.generated (written on
# the first start; printed when the UI answers). Port 8080, or AIRFLOW__API__PORT.
# Ctrl-C or SIGTERM stops every process it started.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
root="$PWD"

if [ ! -x .venv/bin/airflow ] || [ ! -x .venv/bin/mltrack ]; then
    echo "scripts/ui.sh: no .venv with Airflow and airflow-mltrack here; run 'bash scripts/demo.sh' first" >&2
    exit 1
fi
# `airflow standalone` starts its components as `airflow ...` looked up on PATH.
export PATH="$root/.venv/bin:$PATH"
export AIRFLOW_HOME="${AIRFLOW_HOME:-$root/.mltrack/airflow}"
port="${AIRFLOW__API__PORT:-8080}"
passwords="$AIRFLOW_HOME/simple_auth_manager_passwords.json.generated"

if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
    echo "scripts/ui.sh: port $port is in use; stop what listens there or set AIRFLOW__API__PORT=<port>" >&2
    exit 1
fi

mltrack demo --config-only >/dev/null
echo "scripts/ui.sh: starting Airflow on AIRFLOW_HOME=$AIRFLOW_HOME (about a minute on the first start)"
echo "  UI: http://localhost:$port  (user admin, password in $passwords)"
echo "  Ctrl-C stops it."

# Its own session and process group, so stopping it reaches every component and task it started.
setsid airflow standalone &
airflow_pid=$!

# Says when the UI answers (its own process group too, so stopping it leaves no `sleep` behind).
export MLTRACK_UI_PORT="$port" MLTRACK_UI_PASSWORDS="$passwords"
setsid bash -c '
    until (exec 3<>"/dev/tcp/127.0.0.1/$MLTRACK_UI_PORT") 2>/dev/null; do sleep 2; done
    password="$(python -c "import json, sys; print(json.load(open(sys.argv[1]))[\"admin\"])" \
        "$MLTRACK_UI_PASSWORDS" 2>/dev/null || true)"
    echo
    echo "scripts/ui.sh: the UI answers at http://localhost:$MLTRACK_UI_PORT :" \
        "user admin, password ${password:-in $MLTRACK_UI_PASSWORDS}; then ML Tracking in the navigation."
' &
watcher_pid=$!

group_alive() { kill -0 -- "-$airflow_pid" 2>/dev/null; }

stop() {
    trap - INT TERM EXIT
    kill -- "-$watcher_pid" 2>/dev/null || true
    if group_alive; then
        echo "scripts/ui.sh: stopping Airflow ..." >&2
        kill -INT -- "-$airflow_pid" 2>/dev/null || true # standalone stops its components on SIGINT
        for _ in $(seq 1 30); do group_alive || break; sleep 1; done
        if group_alive; then
            kill -TERM -- "-$airflow_pid" 2>/dev/null || true
            for _ in $(seq 1 10); do group_alive || break; sleep 1; done
        fi
        kill -KILL -- "-$airflow_pid" 2>/dev/null || true
    fi
    wait 2>/dev/null || true
}
trap 'stop; exit 130' INT
trap 'stop; exit 143' TERM
trap 'stop' EXIT

set +e
wait "$airflow_pid"
status=$?
set -e
exit "$status"
