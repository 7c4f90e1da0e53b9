"""deploy/package.py lays out a copy of the project that each managed Airflow platform can run.

For every layout the copy is placed as the platform places it (Astro: the project is
$AIRFLOW_HOME; MWAA: S3 dags/ synced to /usr/local/airflow/dags, plugins.zip unpacked into
/usr/local/airflow/plugins; Composer: gs://BUCKET/{dags,plugins} at /home/airflow/gcs/{dags,plugins}),
with the platform's root mapped to a temporary folder. Then platform_probe.py imports it in a clean
process (only the platform's environment; nothing of the checkout on sys.path) the way the
dag-processor does, and reports what it saw. The probes run concurrently (~3 s of CPU each).
"""

from __future__ import annotations

import ast
import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from tests.support import REPO

PACKAGE = REPO / "deploy" / "package.py"
PROBE = Path(__file__).with_name("platform_probe.py")
CONNECTIONS = {"hubspot_default", "salesforce_default", "intercom_default", "slack_default"}
POOL_SLOTS = {"plg_hubspot": 1, "plg_salesforce": 1, "plg_intercom": 1, "plg_slack": 1}


@dataclass(frozen=True)
class Layout:
    args: tuple[str, ...]
    home: str  # the platform's folder that holds dags/ and plugins/
    package: str  # where plg_bridge/ must be imported from, relative to the copy
    config: str  # where the settings YAML must be found, relative to the copy
    env_file: str | None = None  # the platform's environment, as package.py writes it
    unzip_plugins: bool = False
    drop: str | None = None  # a file to delete first (negative control)


LAYOUTS = {
    "astronomer": Layout(
        ("astronomer",), "/usr/local/airflow", "plugins/plg_bridge", "include/config/plg_bridge.yaml"
    ),
    "mwaa": Layout(
        ("mwaa",),
        "/usr/local/airflow",
        "dags/plg_bridge",
        "dags/include/config/plg_bridge.yaml",
        "startup.sh",
    ),
    "mwaa-plugins-zip": Layout(
        ("mwaa", "--plugins-zip"),
        "/usr/local/airflow",
        "plugins/plg_bridge",
        "dags/include/config/plg_bridge.yaml",
        "startup.sh",
        unzip_plugins=True,
    ),
    "composer": Layout(
        ("composer",),
        "/home/airflow/gcs",
        "plugins/plg_bridge",
        "dags/include/config/plg_bridge.yaml",
        "env_variables.env",
    ),
    # negative control: without plugins/.airflowignore the probe must see the plugin walk run the
    # package's modules as top-level plugins (else the checks above would prove nothing)
    "composer-without-airflowignore": Layout(
        ("composer",),
        "/home/airflow/gcs",
        "plugins/plg_bridge",
        "dags/include/config/plg_bridge.yaml",
        "env_variables.env",
        drop="plugins/.airflowignore",
    ),
}


def package(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(PACKAGE), *args], capture_output=True, text=True, check=False)


def platform_env(out: Path, layout: Layout) -> dict[str, str]:
    """The variables the platform would set (startup.sh exports, Composer's KEY=VALUE file), with
    the platform's absolute root mapped onto the copy."""
    if layout.env_file is None:
        return {}
    env = {}
    for raw in (out / layout.env_file).read_text().splitlines():
        match = re.fullmatch(r'\s*(?:export\s+)?([A-Z_][A-Z0-9_]*)="?([^"]*)"?\s*', raw)
        if match and not raw.lstrip().startswith("#"):
            env[match.group(1)] = match.group(2).replace(layout.home, str(out))
    return env


@pytest.fixture(scope="module")
def probes(tmp_path_factory) -> dict[str, tuple[Path, dict]]:
    started = {}
    for name, layout in LAYOUTS.items():
        root = tmp_path_factory.mktemp(name)
        out = root / "platform"
        done = package(*layout.args, str(out))
        assert done.returncode == 0, done.stderr
        if layout.unzip_plugins:
            with zipfile.ZipFile(out / "plugins.zip") as zf:
                zf.extractall(out / "plugins")
        (out / "plugins").mkdir(exist_ok=True)  # MWAA has the folder even without plugins.zip
        if layout.drop:
            (out / layout.drop).unlink()
        env = {
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}/usr/bin{os.pathsep}/bin",
            "HOME": str(root),
            "LANG": "C.UTF-8",
            "AIRFLOW_HOME": str(root / "airflow-home"),
            "AIRFLOW__CORE__DAGS_FOLDER": str(out / "dags"),
            "AIRFLOW__CORE__PLUGINS_FOLDER": str(out / "plugins"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__LOGGING__LOGGING_LEVEL": "ERROR",
            **platform_env(out, layout),
        }
        result = root / "probe.json"
        proc = subprocess.Popen(
            [sys.executable, "-P", str(PROBE), str(REPO), str(result)],
            cwd=root,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        started[name] = (out, result, proc)
    results = {}
    for name, (out, result, proc) in started.items():
        log, _ = proc.communicate(timeout=120)
        assert proc.returncode == 0 and result.exists(), f"{name}: probe failed\n{log[-4000:]}"
        results[name] = (out, json.loads(result.read_text()))
    return results


@pytest.mark.parametrize("name", [n for n, layout in LAYOUTS.items() if not layout.drop])
def test_dags_import_from_the_platform_layout(probes, name):
    out, seen = probes[name]
    layout = LAYOUTS[name]
    dag_files = sorted(p.name for p in (REPO / "dags").glob("*.py"))

    assert seen["import_errors"] == {}
    assert "plg_reverse_etl" in seen["dag_ids"]
    # .airflowignore keeps the package and include/ out of the DAG walk
    assert seen["walked"] == dag_files
    assert seen["plugin_errors"] == {}
    assert seen["strays"] == [], "plugin manager executed package modules as plugins"
    # everything came from the copy, nothing from the checkout
    assert seen["from_checkout"] == []
    assert Path(seen["plg_bridge_file"]) == (out / layout.package / "__init__.py").resolve()
    config = (out / layout.config).resolve()
    assert config.is_file()
    assert Path(seen["config_path"]) == config
    assert seen["settings_error"] is None


def test_the_probe_sees_a_missing_plugins_airflowignore(probes):
    _, seen = probes["composer-without-airflowignore"]
    assert "config" in seen["strays"]  # plugins/plg_bridge/config.py executed as module `config`


def test_sql_travels_with_the_config(probes):
    sql = sorted(
        p.relative_to(REPO / "include").as_posix() for p in (REPO / "include" / "sql").rglob("*.sql")
    )
    for name, (out, _) in probes.items():
        include = out / Path(LAYOUTS[name].config).parents[1]
        assert sorted(p.relative_to(include).as_posix() for p in (include / "sql").rglob("*.sql")) == sql


def test_plugins_zip_has_the_package_at_its_root(probes):
    out, _ = probes["mwaa-plugins-zip"]
    names = zipfile.ZipFile(out / "plugins.zip").namelist()
    assert ".airflowignore" in names and "plg_bridge/__init__.py" in names
    assert not any("__pycache__" in n or n.endswith(".pyc") or "egg-info" in n for n in names)
    assert not (out / "dags" / "plg_bridge").exists()
    assert (out / "dags" / ".airflowignore").read_text().split()[-1:] == ["include/"]


def requirement_names(lines: list[str]) -> set[str]:
    return {re.split(r"[<>=!~;\[ ]", line, maxsplit=1)[0].lower() for line in lines}


def runtime_requirements() -> set[str]:
    lines = [ln.split("#")[0].strip() for ln in (REPO / "requirements.txt").read_text().splitlines()]
    return requirement_names([ln for ln in lines if ln]) - {"apache-airflow"}


def test_mwaa_requirements_have_a_constraints_line(probes):
    out, _ = probes["mwaa"]
    lines = (out / "requirements.txt").read_text().splitlines()
    pin = re.search(r"^apache-airflow==(\S+)", (REPO / "requirements.txt").read_text(), re.M).group(1)
    assert lines[0] == (
        '--constraint "https://raw.githubusercontent.com/apache/airflow/'
        f'constraints-{pin}/constraints-3.12.txt"'
    )
    reqs = [ln for ln in lines[1:] if ln and not ln.startswith("#")]
    assert requirement_names(reqs) == runtime_requirements()
    assert not any("==" in ln for ln in reqs), "versions come from the constraints file"


def test_mwaa_can_ship_its_own_constraints_file(tmp_path):
    done = package("mwaa", str(tmp_path / "out"), "--constraints-file", str(REPO / "constraints.txt"))
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "out" / "dags" / "constraints.txt").read_text() == (
        REPO / "constraints.txt"
    ).read_text()
    first = (tmp_path / "out" / "requirements.txt").read_text().splitlines()[0]
    assert first == '--constraint "/usr/local/airflow/dags/constraints.txt"'


def test_composer_requirements_are_plain_pep508(probes):
    from packaging.requirements import Requirement

    out, _ = probes["composer"]
    lines = (out / "requirements.txt").read_text().splitlines()
    assert all(line and not line.startswith(("#", "-")) for line in lines)
    parsed = [Requirement(line) for line in lines]
    assert {r.name.lower() for r in parsed} == runtime_requirements()
    assert not any(str(s).startswith("==") for r in parsed for s in r.specifier)


def test_astronomer_project(probes):
    out, _ = probes["astronomer"]
    for name in (
        "Dockerfile",
        "packages.txt",
        "requirements.txt",
        "airflow_settings.yaml",
        ".env",
        ".dockerignore",
    ):
        assert (out / name).is_file(), name
    python = re.search(r"^ARG PYTHON_VERSION=(\S+)", (REPO / "Dockerfile").read_text(), re.M).group(1)
    assert re.search(
        rf"^FROM \S+/runtime:3\.\d+-\d+-python-{re.escape(python)}$", (out / "Dockerfile").read_text(), re.M
    )

    pins = {ln.split("#")[0].strip() for ln in (REPO / "requirements.txt").read_text().splitlines()} - {""}
    shipped = {
        ln for ln in (out / "requirements.txt").read_text().splitlines() if ln and not ln.startswith("#")
    }
    assert shipped == {p for p in pins if not p.startswith("apache-airflow==")}

    settings = yaml.safe_load((out / "airflow_settings.yaml").read_text())["airflow"]
    assert {c["conn_id"] for c in settings["connections"]} == CONNECTIONS
    assert {p["pool_name"]: p["pool_slot"] for p in settings["pools"]} == POOL_SLOTS
    assert all(not c["conn_password"] for c in settings["connections"]), "no secret in the project"
    ast.parse((out / "tests" / "dags" / "test_dag_integrity.py").read_text())


def test_pools_cover_every_delivery_task(probes):
    from plg_bridge.delivery.targets import TARGETS

    used = {f"plg_{t.destination}" for t in TARGETS.values()}
    for out, _ in probes.values():
        pools = json.loads((out / "pools.json").read_text())
        assert {name: p["slots"] for name, p in pools.items()} == POOL_SLOTS
        assert used <= set(pools)


def test_connection_names_match_the_package():
    """Every conn id package.py documents is a default conn id of a destination module."""
    sources = "\n".join(p.read_text() for p in (REPO / "plugins" / "plg_bridge" / "delivery").rglob("*.py"))
    defaults = set(re.findall(r'^DEFAULT_CONN_ID = "([a-z_]+)"', sources, re.M))
    assert defaults == CONNECTIONS


def test_package_refuses_to_overwrite_and_checks_its_options(tmp_path):
    (tmp_path / "keep.txt").write_text("x")
    assert package("composer", str(tmp_path)).returncode == 2
    assert (tmp_path / "keep.txt").exists()
    assert package("composer", str(tmp_path / "new"), "--plugins-zip").returncode == 2
    done = package("composer", str(tmp_path), "--force")
    assert done.returncode == 0, done.stderr
    assert not (tmp_path / "keep.txt").exists()
    shutil.rmtree(tmp_path)
