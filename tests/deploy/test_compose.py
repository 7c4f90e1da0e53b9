"""docker-compose.yaml, Dockerfile and .dockerignore hold together, checked without Docker.

Docker does not run on the development machine or in CI, so the stack is checked as files, and
every check compares the compose file with something outside it that can disagree:

- the official Compose Specification JSON schema, which the check-jsonschema package ships
  (check_jsonschema/builtin_schemas/vendor/compose-spec.json, vendored from compose-spec/compose-spec);
- Airflow itself: every `airflow ...` command of a service, its init script and healthchecks parses
  with Airflow's own CLI parser, every AIRFLOW__SECTION__KEY is an option Airflow or an installed
  provider defines, healthchecks probe the ports Airflow serves on, the database URL's driver loads;
- the project: the fakes and the demo driver accept the arguments their services pass (their own
  argparse), files that commands, COPY lines and bind mounts name exist, the fakes import nothing the
  demo image does not copy, plg-bridge loads the PLG_BRIDGE__ settings, connections point at the
  fakes' real ports and tokens, the image installs only pinned packages on the pinned base;
- Compose's own rules: depends_on conditions that can be met, unique host ports, services without
  a profile never wait for profiled ones, shallow `<<` merges that would drop the common environment.

Values are checked after Compose's `${VAR:-default}` interpolation with an empty environment, i.e.
what `docker compose --profile demo up` uses on a fresh clone.
"""

from __future__ import annotations

import argparse
import ast
import datetime as dt
import fnmatch
import importlib
import json
import os
import re
import runpy
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from tests.support import REPO

COMPOSE = REPO / "docker-compose.yaml"
DOCKERFILE = REPO / "Dockerfile"

AIRFLOW_COMMANDS = {
    "airflow-apiserver": "api-server",
    "airflow-scheduler": "scheduler",
    "airflow-dag-processor": "dag-processor",
    "airflow-triggerer": "triggerer",
    "airflow-worker": "celery worker",
}
CORE = {"postgres", "redis", "airflow-init", *AIRFLOW_COMMANDS}
FAKES = {
    "fake-hubspot": "hubspot",
    "fake-salesforce": "salesforce",
    "fake-intercom": "intercom",
    "fake-slack": "slack",
}
DEMO = {"moto", "demo-init", *FAKES}
ONE_SHOT = {"airflow-init", "demo-init"}
CONDITIONS = {"service_started", "service_healthy", "service_completed_successfully"}

_VAR = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?-)([^}]*))?\}|\$([A-Za-z_][A-Za-z0-9_]*)")


def interpolate(value: Any, env: dict[str, str]) -> Any:
    """Compose's variable substitution: ${VAR}, ${VAR:-default}, ${VAR-default}, $VAR and $$."""
    if isinstance(value, dict):
        return {k: interpolate(v, env) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v, env) for v in value]
    if not isinstance(value, str):
        return value

    def sub(m: re.Match) -> str:
        if m.group(0) == "$$":
            return "$"
        name = m.group(1) or m.group(4)
        if m.group(2) == ":-":
            return env.get(name) or m.group(3)
        if m.group(2) == "-":
            return env[name] if name in env else m.group(3)
        return env.get(name, "")

    return _VAR.sub(sub, value)


@pytest.fixture(scope="module")
def raw() -> dict:
    return yaml.safe_load(COMPOSE.read_text())  # resolves anchors and `<<` merge keys


@pytest.fixture(scope="module")
def compose(raw) -> dict:
    return interpolate(raw, env={})


@pytest.fixture(scope="module")
def services(compose) -> dict[str, dict]:
    return compose["services"]


def env_of(service: dict) -> dict[str, str]:
    env = service.get("environment", {})
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {k: str(v) for k, v in env.items()}


def command_of(service: dict) -> list[str]:
    cmd = service.get("command", [])
    return cmd.split() if isinstance(cmd, str) else [str(c) for c in cmd]


def dockerfile_args() -> dict[str, str]:
    return dict(re.findall(r"^ARG (\w+)=(\S+)", DOCKERFILE.read_text(), re.M))


def dockerfile_stages() -> dict[str, str]:
    """stage name -> base image, with the Dockerfile's ARG defaults substituted."""
    args = dockerfile_args()
    stages = {}
    for base, name in re.findall(r"^FROM\s+(\S+)(?:\s+AS\s+(\S+))?", DOCKERFILE.read_text(), re.M | re.I):
        stages[name] = re.sub(r"\$\{(\w+)\}", lambda m: args[m.group(1)], base)
    return stages


def dockerfile_copies(stage: str | None = None) -> list[tuple[str, str]]:
    """(source, destination) of every COPY from the build context (of `stage`, else of every stage);
    several sources into a folder give one pair each, the destination being that folder's file."""
    pairs = []
    current = None
    for line in DOCKERFILE.read_text().replace("\\\n", " ").splitlines():
        start = re.match(r"FROM\s+\S+(?:\s+AS\s+(\S+))?", line, re.I)
        if start:
            current = start.group(1)
        copy = re.match(r"COPY\s+(.*)$", line)
        if not copy or "--from" in line or (stage is not None and current != stage):
            continue
        words = [w for w in copy.group(1).split() if not w.startswith("--")]
        *sources, dest = words
        for src in sources:
            to_folder = dest.endswith("/") and len(sources) > 1
            pairs.append((src.rstrip("/"), (dest + Path(src).name) if to_folder else dest.rstrip("/")))
    return pairs


def copies() -> dict[str, str]:
    """Image path -> source path in the checkout, for the Airflow image."""
    return {dest: src for src, dest in dockerfile_copies("airflow")}


def where_of(where: dict[str, str], source: str) -> str:
    [dest] = [d for d, s in where.items() if s == source]
    return dest


def dockerfile_copy_sources(stage: str) -> set[str]:
    return {src for src, _ in dockerfile_copies(stage)}


class _Parsed(Exception):
    pass


def accepted_args(main, argv: list[str]) -> argparse.Namespace:
    """The namespace a program's own argparse makes of `argv`, stopping before the program runs;
    an argument it does not accept fails the test (argparse exits with 2)."""
    real = argparse.ArgumentParser.parse_args

    def stop(self, args=None, namespace=None):
        raise _Parsed(real(self, args, namespace))

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(argparse.ArgumentParser, "parse_args", stop)
        with pytest.raises(_Parsed) as parsed:
            main(argv)
    return parsed.value.args[0]


PROBE = """
import json, sys
from airflow.configuration import conf
from airflow.providers_manager import ProvidersManager
ProvidersManager().initialize_providers_configuration()
from airflow.cli.cli_parser import get_parser
req = json.loads(sys.argv[1])
def known(name):
    _, section, key = name.split("__", 2)
    return key.lower() in conf.configuration_description.get(section.lower(), {}).get("options", {})
def verdict(args):
    try:
        get_parser().parse_args(args)
        return "ok"
    except SystemExit as exc:
        return f"exit {exc.code}"
print(json.dumps({
    "options": {name: known(name) for name in req["options"]},
    "control_option": known("AIRFLOW__CORE__NOT_AN_OPTION"),
    "commands": {" ".join(args): verdict(args) for args in req["commands"]},
    "control": verdict(["celery", "wrker"]),
    "defaults": {name: conf.get(*name.split(".")) for name in req["defaults"]},
}))
"""


def airflow_commands(services: dict[str, dict]) -> list[list[str]]:
    """Every `airflow` command line of the stack: service commands, the init script, healthchecks."""
    found = []
    for service in services.values():
        if service.get("image") != "plg-bridge-airflow:local":
            continue
        cmd = command_of(service)
        if cmd and not cmd[0].startswith(("-", "python", "bash")):
            found.append(cmd)
        text = (
            " ".join(cmd)
            + "\n"
            + "\n".join(
                t for t in service.get("healthcheck", {}).get("test", []) if t not in ("CMD", "CMD-SHELL")
            )
        )
        for line in text.replace('"${HOSTNAME}"', "host").splitlines():
            for match in re.finditer(r"(?<![\w/.$-])airflow ([^;|&)\"\n]*)", line):
                words = shlex.split(match.group(1))
                if words and words[0] not in ("db", "version", "jobs", "pools", "users"):
                    continue  # prose in an echo line
                found.append(words)
    return found


@pytest.fixture(scope="module")
def airflow_probe(services, tmp_path_factory) -> dict:
    """Airflow's own view (CLI parser, configuration options and defaults), from a subprocess with a
    clean environment and the stack's executor, so the test run's Airflow settings do not leak in."""
    env = env_of(services["airflow-scheduler"])
    request = {
        "options": sorted(k for k in env if k.startswith("AIRFLOW__")),
        "commands": airflow_commands(services),
        "defaults": ["scheduler.scheduler_health_check_server_port", "api.port"],
    }
    clean = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(tmp_path_factory.mktemp("home")),
        "AIRFLOW_HOME": str(tmp_path_factory.mktemp("airflow")),
        "AIRFLOW__CORE__EXECUTOR": env["AIRFLOW__CORE__EXECUTOR"],
    }
    out = subprocess.run(
        [sys.executable, "-c", PROBE, json.dumps(request)],
        capture_output=True,
        text=True,
        env=clean,
        timeout=300,
        check=False,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


# -- the schema -------------------------------------------------------------------------------------


def test_valid_against_the_compose_specification(compose):
    """check-jsonschema is pinned in requirements-dev.txt: no skip, a missing schema is a failure."""
    from importlib.resources import files

    from jsonschema import Draft202012Validator

    schema = json.loads((files("check_jsonschema.builtin_schemas.vendor") / "compose-spec.json").read_text())
    errors = sorted(Draft202012Validator(schema).iter_errors(compose), key=lambda e: list(e.absolute_path))
    assert not errors, "\n".join(f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in errors[:10])


def test_the_schema_check_can_fail(compose):
    from importlib.resources import files

    from jsonschema import Draft202012Validator

    schema = json.loads((files("check_jsonschema.builtin_schemas.vendor") / "compose-spec.json").read_text())
    broken = json.loads(json.dumps(compose))
    broken["services"]["redis"]["helthcheck"] = broken["services"]["redis"].pop("healthcheck")
    broken["services"]["postgres"]["depends_on"] = {"redis": {"condition": "service_ready"}}
    assert len(list(Draft202012Validator(schema).iter_errors(broken))) >= 2


# -- services, commands, anchors ---------------------------------------------------------------------


def test_airflow_services_keep_the_common_block(raw, services):
    """`<<: *airflow-common` is a shallow merge: a service that sets its own `environment` or
    `volumes` without merging the common ones silently loses the executor, DB and connections."""
    common = raw["x-airflow-common"]
    for name in (*AIRFLOW_COMMANDS, "airflow-init", "demo-init"):
        service = raw["services"][name]
        for key in ("build", "image", "volumes", "user"):
            assert service[key] == common[key], f"{name} overrides the common {key}"
        assert env_of(common).items() <= env_of(service).items(), f"{name} lost common environment"


def test_bind_mounts_and_build_contexts_exist(services):
    for name, service in services.items():
        for volume in service.get("volumes", []):
            source = str(volume).split(":", 1)[0]
            if source.startswith((".", "/")):
                assert (REPO / source).exists(), f"{name} mounts {source}, which does not exist"
        if "build" in service:
            assert (REPO / service["build"]["context"] / "Dockerfile").is_file(), name


def test_the_stack_runs_every_airflow_3_component(services):
    """Airflow 3 with the CeleryExecutor needs these five long-running components."""
    commands = {" ".join(command_of(s)) for s in services.values() if not s.get("profiles")}
    assert set(AIRFLOW_COMMANDS.values()) <= commands


def test_every_airflow_command_parses_with_airflows_cli(services, airflow_probe):
    verdicts = airflow_probe["commands"]
    assert verdicts, "no airflow command found"
    assert {cmd: v for cmd, v in verdicts.items() if v != "ok"} == {}
    assert airflow_probe["control"] == "exit 2"  # the probe does reject a misspelt command


def test_healthchecks_probe_the_ports_airflow_serves(services, airflow_probe):
    defaults = airflow_probe["defaults"]
    scheduler = " ".join(services["airflow-scheduler"]["healthcheck"]["test"])
    assert f"localhost:{defaults['scheduler.scheduler_health_check_server_port']}/health" in scheduler
    api = " ".join(services["airflow-apiserver"]["healthcheck"]["test"])
    assert f"localhost:{defaults['api.port']}/api/v2/" in api
    assert any(str(p).endswith(f":{defaults['api.port']}") for p in services["airflow-apiserver"]["ports"])
    execution = urlsplit(env_of(services["airflow-worker"])["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"])
    assert (execution.hostname, str(execution.port)) == ("airflow-apiserver", defaults["api.port"])


def test_init_migrates_and_creates_admin_and_pools(services):
    script = " ".join(command_of(services["airflow-init"]))
    assert "airflow db migrate" in script
    # the file the script writes is the file the api-server reads
    assert "/opt/airflow/auth/passwords.json" in script
    assert env_of(services["airflow-init"])["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE"] == (
        "/opt/airflow/auth/passwords.json"
    )
    assert any(str(v).endswith(":/opt/airflow/auth") for v in services["airflow-apiserver"]["volumes"])
    # the pools script exists and the image has it where the script runs it
    assert "python /opt/airflow/scripts/create_pools.py" in script
    assert (REPO / "scripts" / "create_pools.py").is_file()
    assert copies()["/opt/airflow/scripts/create_pools.py"] == "scripts/create_pools.py"


def test_fakes_accept_their_arguments(services):
    for name, module in FAKES.items():
        cmd = command_of(services[name])
        assert cmd[:3] == ["python", "-m", f"tests.fakes.{module}"]
        args = accepted_args(importlib.import_module(f"tests.fakes.{module}").main, cmd[3:])
        # bound to its service name: the fake Salesforce returns its bound address as instance_url
        assert args.host == name
    moto = command_of(services["moto"])
    assert moto[:3] == ["python", "-m", "moto.server"]
    from moto.server import main as moto_main

    assert accepted_args(moto_main, moto[3:]).port == 5000


def test_fakes_import_only_what_the_demo_image_copies():
    """The demo-services image copies tests/__init__.py and tests/fakes/ only."""
    copied = {"tests/__init__.py", "tests/fakes"}
    assert {src for src in dockerfile_copy_sources("demo-services")} >= copied
    for path in (REPO / "tests" / "fakes").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            for imported in names:
                if imported.split(".")[0] == "tests":
                    assert imported == "tests" or imported.startswith("tests.fakes"), (
                        f"{path.name} imports {imported}, which the demo image does not have"
                    )


def test_demo_driver_accepts_its_arguments(services):
    cmd = command_of(services["demo-init"])
    assert cmd[0] == "python"
    source = copies()[cmd[1]]
    driver = runpy.run_path(str(REPO / source), run_name="demo_flow")
    args = accepted_args(driver["main"], cmd[2:])
    dt.date.fromisoformat(args.as_of)
    assert args.rows > 0


# -- health, dependencies, profiles ------------------------------------------------------------------


def test_long_running_services_have_healthchecks(services):
    for name, service in services.items():
        if name in ONE_SHOT or "debug" in service.get("profiles", []):
            assert service.get("restart") in (None, "no"), f"{name} is one-shot and must not restart"
            continue
        check = service.get("healthcheck", {})
        assert check.get("test"), f"{name} has no healthcheck"
        assert check["test"][0] in ("CMD", "CMD-SHELL"), name


def test_depends_on_can_be_met(services):
    for name, service in services.items():
        for target, spec in service.get("depends_on", {}).items():
            assert target in services, f"{name} depends on unknown service {target}"
            assert spec["condition"] in CONDITIONS, f"{name} -> {target}: {spec['condition']}"
            if spec["condition"] == "service_healthy":
                assert services[target].get("healthcheck"), f"{name} waits for {target} to be healthy"
            if spec["condition"] == "service_completed_successfully":
                assert target in ONE_SHOT, f"{name} waits for {target} to finish, but it never does"
            # a service outside a profile cannot wait for one inside it (compose up would fail)
            if not service.get("profiles"):
                assert not services[target].get("profiles"), f"{name} depends on profiled {target}"


def test_core_services_run_without_a_profile(services):
    """`docker compose up` (no profile) must start Airflow: none of it may sit in a profile."""
    for name in CORE:
        assert not services[name].get("profiles"), f"{name} must run without a profile"


def test_host_ports_are_unique(services):
    seen: dict[str, str] = {}
    for name, service in services.items():
        for port in service.get("ports", []):
            host = str(port).rsplit(":", 1)[0]  # [ip:]host:container
            host_port = host.rsplit(":", 1)[-1]
            assert host_port not in seen, f"host port {host_port} of {name} is also {seen[host_port]}'s"
            seen[host_port] = name


# -- environment -------------------------------------------------------------------------------------


def test_airflow_settings_are_options_airflow_defines(services, airflow_probe):
    """A misspelt AIRFLOW__SECTION__KEY is ignored by Airflow without a word: each must exist."""
    assert airflow_probe["options"], "no AIRFLOW__ settings found"
    assert [name for name, known in airflow_probe["options"].items() if not known] == []
    assert airflow_probe["control_option"] is False  # the probe does reject an unknown option


def test_database_broker_and_secrets(services):
    from sqlalchemy.engine import make_url

    env = env_of(services["airflow-scheduler"])
    # the driver must be named and installed: SQLAlchemy 2.1 maps a bare postgresql:// to psycopg 3
    for key, prefix in (
        ("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", ""),
        ("AIRFLOW__CELERY__RESULT_BACKEND", "db+"),
    ):
        assert env[key].startswith(prefix)
        url = make_url(env[key].removeprefix(prefix))
        url.get_dialect()  # imports the DBAPI driver
        assert url.host in services, f"{key} points at {url.host}, not a service"
        assert (url.username, url.password, url.database) == (
            services[url.host]["environment"]["POSTGRES_USER"],
            services[url.host]["environment"]["POSTGRES_PASSWORD"],
            services[url.host]["environment"]["POSTGRES_DB"],
        )
    broker = urlsplit(env["AIRFLOW__CELERY__BROKER_URL"])
    assert broker.scheme == "redis" and broker.hostname in services
    assert str(broker.port) in [str(p) for p in services[broker.hostname].get("expose", [])]
    # HS512 task tokens: Airflow refuses signing keys shorter than the hash
    assert len(env["AIRFLOW__API_AUTH__JWT_SECRET"].encode()) >= 64


def test_plg_bridge_settings_are_valid(services):
    from plg_bridge.config import load_settings

    env = env_of(services["airflow-worker"])
    settings = {k: v for k, v in env.items() if k.startswith("PLG_BRIDGE__")}
    assert {"PLG_BRIDGE__EXPORTS__LOCATION", "PLG_BRIDGE__WORK_LOCATION"} <= set(settings)
    loaded = load_settings(REPO / "include" / "config" / "plg_bridge.yaml", env=settings)
    assert loaded.exports.location.startswith("s3://") and loaded.work_location.startswith("s3://")
    assert loaded.exports.endpoint_url == "http://moto:5000"
    moto_port = command_of(services["moto"])[command_of(services["moto"]).index("--port") + 1]
    assert loaded.exports.endpoint_url.endswith(f":{moto_port}")
    # an empty endpoint means AWS S3 (the `-` default keeps an explicit empty value)
    overridden = interpolate(yaml.safe_load(COMPOSE.read_text()), {"PLG_BRIDGE__EXPORTS__ENDPOINT_URL": ""})
    empty = env_of(overridden["services"]["airflow-worker"])["PLG_BRIDGE__EXPORTS__ENDPOINT_URL"]
    assert load_settings(env={"PLG_BRIDGE__EXPORTS__ENDPOINT_URL": empty}).exports.endpoint_url is None


def test_connections_point_at_the_fakes(services):
    env = env_of(services["airflow-worker"])
    conns = {
        k[len("AIRFLOW_CONN_") :].lower(): json.loads(v)
        for k, v in env.items()
        if k.startswith("AIRFLOW_CONN_")
    }
    assert set(conns) == {"hubspot_default", "salesforce_default", "intercom_default", "slack_default"}
    for fake, vendor in FAKES.items():
        conn = conns[f"{vendor}_default"]
        url = conn["extra"]["base_url"] if vendor == "slack" else conn["host"]
        cmd = command_of(services[fake])
        assert url.startswith(f"http://{fake}:{cmd[cmd.index('--port') + 1]}"), f"{vendor}: {url}"
        token_flag = {"salesforce": "--client-secret", "slack": "--bot-token"}.get(vendor, "--token")
        assert conn["password"] == cmd[cmd.index(token_flag) + 1], f"{vendor}: token differs from the fake's"
    assert conns["salesforce_default"]["login"] == "plg-client-id"


# -- the images --------------------------------------------------------------------------------------


def test_dockerfile_base_matches_the_pins(services):
    pin = re.search(r"^apache-airflow==(\S+)", (REPO / "requirements.txt").read_text(), re.M).group(1)
    stages = dockerfile_stages()
    assert stages["airflow"] == f"apache/airflow:slim-{pin}-python{dockerfile_args()['PYTHON_VERSION']}"
    assert list(stages)[-1] == "airflow", "the default (last) stage is the Airflow image"
    # constraints.txt was resolved on the Python of pyproject's target
    target = re.search(r'^target-version = "py3(\d+)"', (REPO / "pyproject.toml").read_text(), re.M).group(1)
    assert dockerfile_args()["PYTHON_VERSION"] == f"3.{target}"
    for name, service in services.items():
        if "build" in service:
            assert service["build"]["target"] in stages, f"{name} builds unknown target"


def test_image_installs_only_pinned_packages():
    text = DOCKERFILE.read_text().replace("\\\n", " ")  # join continuation lines
    pinned = {
        line.split("==")[0].lower()
        for line in (REPO / "constraints.txt").read_text().splitlines()
        if "==" in line
    }
    runs = re.findall(r"pip install ([^\n]*)", text)
    assert len(runs) == 2
    for run in runs:
        words = [w.strip('"') for w in run.split()]
        assert "-c" in words, f"pip install without the constraints file: {run}"
        names = [
            re.split(r"[\[=<>]", w)[0].lower() for w in words if not w.startswith(("-", "/")) and w != "&&"
        ]
        names = names[: names.index("rm")] if "rm" in names else names
        assert set(names) <= pinned, f"not pinned in constraints.txt: {set(names) - pinned}"


def _ignored(path: str, patterns: list[str]) -> bool:
    """.dockerignore semantics (last match wins; a pattern also matches the path's parents)."""
    parts = path.split("/")
    excluded = False
    for pattern in patterns:
        negate = pattern.startswith("!")
        pat = pattern.lstrip("!")
        prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
        if any(
            fnmatch.fnmatchcase(p, pat) or fnmatch.fnmatchcase(p, pat.replace("**/", "")) for p in prefixes
        ):
            excluded = not negate
    return excluded


def test_dockerignore_keeps_what_the_dockerfile_copies():
    patterns = [
        ln.strip()
        for ln in (REPO / ".dockerignore").read_text().splitlines()
        if ln.strip() and not ln.startswith("#")
    ]
    sources = []
    for line in re.findall(r"^COPY (?!--from)(.*)$", DOCKERFILE.read_text(), re.M):
        words = [w for w in line.split() if not w.startswith("--")]
        sources += [w.rstrip("/") for w in words[:-1]]
    assert sources
    for src in sources:
        assert (REPO / src).exists(), f"COPY {src}: no such path"
        assert not _ignored(src, patterns), f"COPY {src} is excluded by .dockerignore"
    for private in (
        ".venv/bin/python",
        ".git/config",
        ".demo/bucket",
        "plugins/plg_bridge/__pycache__/x.pyc",
        "plugins/plg_bridge.egg-info/PKG-INFO",
        "tests/unit/test_pql.py",
        "docs/runbook.md",
    ):
        assert _ignored(private, patterns), f"{private} would be sent to the Docker daemon"
    assert not _ignored("tests/fakes/vendor_specs/slack-web-api-v2.json", patterns)


def test_airflow_image_finds_the_packaged_config(tmp_path):
    """In the image the package and the YAML land where the package's own lookup (no
    PLG_BRIDGE_CONFIG) finds it: run that lookup on the image's layout, rebuilt in a folder."""
    where = copies()
    plugins, include = Path(where_of(where, "plugins")), Path(where_of(where, "include"))
    root = tmp_path / "image"
    package = root / plugins.relative_to("/") / "plg_bridge"
    package.mkdir(parents=True)
    (package / "config.py").write_text((REPO / "plugins" / "plg_bridge" / "config.py").read_text())
    config = root / include.relative_to("/") / "config" / "plg_bridge.yaml"
    config.parent.mkdir(parents=True)
    config.write_text("{}\n")
    env = {k: v for k, v in os.environ.items() if k != "PLG_BRIDGE_CONFIG"}
    code = (
        "import runpy, sys; ns = runpy.run_path(sys.argv[1], run_name='plg_bridge_config'); "
        "print(ns['default_config_path']())"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(package / "config.py")],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert Path(out.stdout.strip().splitlines()[-1]) == config
