#!/usr/bin/env bash
# The demo: `bash scripts/demo.sh [args...]`, from any directory. Uses the embedded SQLite store under
# $AIRFLOW_HOME (default: .mltrack/airflow in the repository), so it needs no server. The first run
# installs into .venv (about 5-7 minutes); the demo itself takes about half a minute to two minutes.
# Then `bash scripts/ui.sh` opens the UI on the same home.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

if [ ! -x .venv/bin/python ]; then
    PYTHON="$(command -v python3.11 || command -v python3)"
    echo "scripts/demo.sh: creating .venv with $PYTHON" >&2
    "$PYTHON" -m venv .venv
fi

stamp=".venv/.mltrack-examples-install"
want="$(sha256sum pyproject.toml | cut -d' ' -f1)"
if [ "${MLTRACK_FORCE_INSTALL:-}" = "1" ] || [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
    echo "scripts/demo.sh: installing Airflow, scikit-learn and this package into .venv" \
        "(the first time about 5-7 minutes, quiet; later runs skip this) ..." >&2
    started=$SECONDS
    .venv/bin/python -m pip install -q --disable-pip-version-check -e ".[examples]" \
        2> >(grep -v "is ignored: it is neither a file nor a directory" >&2)
    echo "$want" > "$stamp"
    echo "scripts/demo.sh: installed in $((SECONDS - started))s" >&2
fi

export AIRFLOW_HOME="${AIRFLOW_HOME:-$PWD/.mltrack/airflow}"
export AIRFLOW__CORE__LOAD_EXAMPLES="${AIRFLOW__CORE__LOAD_EXAMPLES:-False}"
mkdir -p "$AIRFLOW_HOME"
mltrack=.venv/bin/mltrack

if "$mltrack" demo --help >/dev/null 2>&1; then
    exec "$mltrack" demo "$@"
fi

echo "scripts/demo.sh: no 'mltrack demo' yet; migrating the embedded store and checking it" >&2
"$mltrack" db upgrade
"$mltrack" erd
"$mltrack" integrity
