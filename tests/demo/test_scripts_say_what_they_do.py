"""The first ``bash scripts/demo.sh`` / ``bash scripts/test.sh`` say they are installing, and for how long."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

# A stand-in for .venv: records each call in order, so the test sees what was said before the install.
FAKE = """#!/bin/bash
echo "CALL $(basename "$0") $*" >> "$LOG"
"""


@pytest.mark.parametrize("script", ["demo.sh", "test.sh"])
def test_a_fresh_install_says_what_is_happening_and_how_long(script: str, tmp_path: Path) -> None:
    clone = tmp_path / "clone"
    (clone / "scripts").mkdir(parents=True)
    shutil.copy(ROOT / "scripts" / script, clone / "scripts" / script)
    shutil.copy(ROOT / "pyproject.toml", clone / "pyproject.toml")
    bin_dir = clone / ".venv" / "bin"
    bin_dir.mkdir(parents=True)
    for name in ("python", "mltrack"):
        (bin_dir / name).write_text(FAKE)
        (bin_dir / name).chmod(0o755)
    log = tmp_path / "calls.log"
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "LOG": str(log)}
    env["MLTRACK_TEST_PG_URL"] = "postgresql://postgres@127.0.0.1:1/postgres"  # test.sh: no apt
    result = subprocess.run(  # noqa: S603
        [
            "/usr/bin/env",
            "-i",
            *(f"{k}={v}" for k, v in env.items()),
            "bash",
            str(clone / "scripts" / script),
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    said = result.stderr.splitlines()
    installing = [line for line in said if "installing" in line and ".venv" in line]
    assert installing and "minutes" in installing[0], result.stderr
    assert any(line.startswith(f"scripts/{script}: installed in ") for line in said), result.stderr
    calls = log.read_text().splitlines()
    assert calls[0].startswith("CALL python -m pip install"), calls
