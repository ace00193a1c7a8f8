#!/usr/bin/env bash
# The test command: `bash scripts/test.sh [pytest args...]`, from any directory.
#
# On a fresh Debian machine (as root) it installs what the tests need from apt: the PostgreSQL server
# (tests run a throwaway one; see tests/support/pgserver.py), PgBouncer (tests/support/pgbouncer.py),
# Redis (the Celery broker, tests/support/redis.py) and Chromium (UI tests). Then it creates .venv if
# missing, installs the package with its test extras, and runs pytest, exiting with its code.
#
#   MLTRACK_TEST_PG_URL=postgresql://postgres@host:5432/postgres  use that server instead of starting one
#   MLTRACK_FORCE_INSTALL=1                                         reinstall even if pyproject.toml is unchanged
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

have_postgres() {
    local initdb version
    for initdb in /usr/lib/postgresql/*/bin/initdb; do
        [ -x "$initdb" ] || continue
        version="$(basename "$(dirname "$(dirname "$initdb")")")"
        version="${version%%.*}"
        if [[ "$version" =~ ^[0-9]+$ ]] && [ "$version" -ge 15 ]; then
            return 0
        fi
    done
    return 1
}

missing=()
if [ -z "${MLTRACK_TEST_PG_URL:-}" ] && ! have_postgres; then
    missing+=(postgresql)
fi
if [ ! -x /usr/bin/chromium ]; then
    missing+=(chromium)
fi
if ! command -v pgbouncer >/dev/null 2>&1 && [ ! -x /usr/sbin/pgbouncer ]; then
    missing+=(pgbouncer)  # tests/scaling: the store behind PgBouncer in transaction pooling mode
fi
if ! command -v redis-server >/dev/null 2>&1 && [ ! -x /usr/bin/redis-server ]; then
    missing+=(redis-server)  # tests/celery: the Celery broker (tests/support/redis.py)
fi

if [ "${#missing[@]}" -gt 0 ]; then
    SUDO=()
    if [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
        SUDO=(sudo -n)
    fi
    if [ "$(id -u)" -eq 0 ] || [ "${#SUDO[@]}" -gt 0 ]; then
        echo "scripts/test.sh: installing ${missing[*]} with apt-get (a minute or two) ..." >&2
        export DEBIAN_FRONTEND=noninteractive
        "${SUDO[@]}" apt-get update -qq >/dev/null
        "${SUDO[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    else
        echo "scripts/test.sh: missing system packages: ${missing[*]}." >&2
        echo "  Install them as root: apt-get install -y ${missing[*]}" >&2
        echo "  (PostgreSQL >= 15 server binaries are needed for the postgres tests, or set MLTRACK_TEST_PG_URL;" >&2
        echo "   PgBouncer for tests/scaling; Redis for tests/celery; Chromium for the browser tests.)" >&2
        echo "  Continuing; the tests that need them will say so." >&2
    fi
fi

if [ ! -x .venv/bin/python ]; then
    PYTHON="$(command -v python3.11 || command -v python3)"
    echo "scripts/test.sh: creating .venv with $PYTHON" >&2
    "$PYTHON" -m venv .venv
fi

# Reinstall when pyproject.toml changed (entry points, dependencies) or on request; it takes a while.
stamp=".venv/.mltrack-test-install"
want="$(sha256sum pyproject.toml | cut -d' ' -f1)"
if [ "${MLTRACK_FORCE_INSTALL:-}" = "1" ] || [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
    echo "scripts/test.sh: installing Airflow and this package with its test extras into .venv" \
        "(the first time about 5-7 minutes, quiet; later runs skip this) ..." >&2
    started=$SECONDS
    .venv/bin/python -m pip install -q --disable-pip-version-check -e ".[test]" \
        2> >(grep -v "is ignored: it is neither a file nor a directory" >&2)
    echo "$want" > "$stamp"
    echo "scripts/test.sh: installed in $((SECONDS - started))s" >&2
fi

if [ "$#" -eq 0 ]; then
    echo "scripts/test.sh: running the whole suite (about 12 minutes on 2 cores) ..." >&2
fi
set +e
.venv/bin/python -m pytest "$@"
status=$?
set -e
exit "$status"
