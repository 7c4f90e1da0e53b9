"""CI cannot pass with the end-to-end tests silently skipped: `.ci/run` and `make test` under CI
require them (PLG_E2E_REQUIRE=1), so missing PostgreSQL or Redis fails the run."""

from __future__ import annotations

import os
import shutil
import subprocess
import textwrap

import pytest

from tests.support import REPO


def _stub(folder, name: str, body: str) -> None:
    path = folder / name
    path.write_text(f"#!/usr/bin/env bash\n{body}\n")
    path.chmod(0o755)


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_ci_entry_point_requires_the_end_to_end_tests(tmp_path):
    """.ci/run with the services up (stubbed) calls `make test` with PLG_E2E_REQUIRE=1 and CI set."""
    seen = tmp_path / "seen.env"
    _stub(tmp_path, "pg_isready", "exit 0")
    _stub(tmp_path, "redis-cli", "exit 0")
    _stub(tmp_path, "make", f'echo "args=$*" > {seen}; env >> {seen}')
    env = {k: v for k, v in os.environ.items() if k not in ("CI", "PLG_E2E_REQUIRE")}
    env["PATH"] = f"{tmp_path}:{env['PATH']}"
    out = subprocess.run([str(REPO / ".ci" / "run")], env=env, capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stderr
    lines = seen.read_text().splitlines()
    assert "args=test" in lines
    assert "PLG_E2E_REQUIRE=1" in lines
    assert any(line.startswith("CI=") and line != "CI=" for line in lines)


@pytest.mark.parametrize(("ci", "expected"), [("true", "PLG_E2E_REQUIRE=1 "), ("", "PLG_E2E_REQUIRE= ")])
def test_make_test_requires_the_end_to_end_tests_under_ci(ci, expected):
    env = {k: v for k, v in os.environ.items() if k not in ("CI", "PLG_E2E_REQUIRE")}
    if ci:
        env["CI"] = ci
    out = subprocess.run(
        ["make", "-n", "-o", ".venv/.installed", "test"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    pytest_line = [line for line in out.stdout.splitlines() if "-m pytest" in line]
    assert pytest_line, textwrap.shorten(out.stdout, 500)
    assert pytest_line[-1].startswith(expected)
