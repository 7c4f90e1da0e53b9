"""docker-compose.yaml, Dockerfile and .dockerignore hold together, checked without Docker.

Docker does not run on the development machine or in CI, so the stack is checked as files:

- against the official Compose Specification JSON schema, which the check-jsonschema package ships
  (check_jsonschema/builtin_schemas/vendor/compose-spec.json, vendored from compose-spec/compose-spec);
  the test is skipped, saying so, where that package is not installed;
- by focused checks of what the schema cannot know: the services Airflow 3.3 needs and their
  commands, healthchecks and depends_on conditions that can actually be met, profiles, the
  executor / DB / broker settings, the connections pointing at the fakes' real ports, unique host
  ports, and the Dockerfile's base image matching the apache-airflow pin.

Values are checked after Compose's `${VAR:-default}` interpolation with an empty environment, i.e.
what `docker compose --profile demo up` uses on a fresh clone.
"""

from __future__ import annotations

import fnmatch
import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import REPO

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


# -- the schema -------------------------------------------------------------------------------------


def test_valid_against_the_compose_specification(compose):
    try:
        from importlib.resources import files

        schema_file = files("check_jsonschema.builtin_schemas.vendor") / "compose-spec.json"
        schema = json.loads(schema_file.read_text())
    except ModuleNotFoundError:
        pytest.skip("the Compose Specification schema comes with check-jsonschema (requirements-dev.txt)")
    from jsonschema import Draft202012Validator

    errors = sorted(Draft202012Validator(schema).iter_errors(compose), key=lambda e: list(e.absolute_path))
    assert not errors, "\n".join(f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in errors[:10])


# -- services, commands, anchors ---------------------------------------------------------------------


def test_every_service_of_the_topology_exists(services):
    assert set(services) >= CORE | DEMO


def test_airflow_services_share_the_common_block(raw, services):
    text = COMPOSE.read_text()
    assert "&airflow-common" in text and "&airflow-common-env" in text
    common = raw["x-airflow-common"]
    for name in (*AIRFLOW_COMMANDS, "airflow-init", "demo-init"):
        service = raw["services"][name]
        assert service["build"] == common["build"], f"{name} does not build our image"
        assert service["image"] == common["image"]
        assert service["volumes"] == common["volumes"]
        assert service["user"] == common["user"]
        assert env_of(common).items() <= env_of(service).items(), f"{name} lost common environment"
    assert services["airflow-worker"]["environment"]["DUMB_INIT_SETSID"] == "0"


@pytest.mark.parametrize(("name", "command"), AIRFLOW_COMMANDS.items())
def test_airflow_service_runs_its_component(services, name, command):
    assert " ".join(command_of(services[name])) == command


def test_init_migrates_and_creates_admin_and_pools(services):
    script = " ".join(command_of(services["airflow-init"]))
    assert "airflow db migrate" in script
    assert "/opt/airflow/auth/passwords.json" in script
    assert env_of(services["airflow-init"])["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE"] == (
        "/opt/airflow/auth/passwords.json"
    )
    assert "python /opt/airflow/scripts/create_pools.py" in script
    assert (REPO / "scripts" / "create_pools.py").is_file()
    assert "scripts/create_pools.py /opt/airflow/scripts/create_pools.py" in DOCKERFILE.read_text()


def test_fakes_run_the_project_fakes(services):
    for name, module in FAKES.items():
        cmd = command_of(services[name])
        assert cmd[:3] == ["python", "-m", f"tests.fakes.{module}"]
        assert (REPO / "tests" / "fakes" / f"{module}.py").is_file()
        # bound to its service name: the fake Salesforce returns its bound address as instance_url
        assert cmd[cmd.index("--host") + 1] == name
    assert command_of(services["moto"])[:3] == ["python", "-m", "moto.server"]


def test_demo_driver_exists_in_the_image(services):
    cmd = command_of(services["demo-init"])
    assert cmd[:2] == ["python", "/opt/plg-bridge/demo_flow.py"]
    assert "deploy/docker/demo_flow.py /opt/plg-bridge/demo_flow.py" in DOCKERFILE.read_text()
    assert cmd[cmd.index("--as-of") + 1] == "2026-11-20"


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


def test_profiles(services):
    for name in CORE:
        assert not services[name].get("profiles"), f"{name} must run without a profile"
    for name in DEMO:
        assert services[name].get("profiles") == ["demo"], f"{name} belongs to the demo profile"


def test_host_ports_are_unique(services):
    seen: dict[str, str] = {}
    for name, service in services.items():
        for port in service.get("ports", []):
            host = str(port).rsplit(":", 1)[0]  # [ip:]host:container
            host_port = host.rsplit(":", 1)[-1]
            assert host_port not in seen, f"host port {host_port} of {name} is also {seen[host_port]}'s"
            seen[host_port] = name
    assert "8080" in seen


# -- environment -------------------------------------------------------------------------------------


def test_executor_database_and_broker(services):
    env = env_of(services["airflow-scheduler"])
    assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
    assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].startswith(
        "postgresql+psycopg2://airflow:airflow@postgres/"
    )
    # the driver must be named: SQLAlchemy 2.1 maps a bare postgresql:// to psycopg 3, which is not installed
    assert env["AIRFLOW__CELERY__RESULT_BACKEND"].startswith(
        "db+postgresql+psycopg2://airflow:airflow@postgres/"
    )
    assert env["AIRFLOW__CELERY__BROKER_URL"].startswith("redis://:@redis:6379/")
    assert env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] == "http://airflow-apiserver:8080/execution/"
    assert len(env["AIRFLOW__API_AUTH__JWT_SECRET"].encode()) >= 64
    assert env["AIRFLOW__CORE__LOAD_EXAMPLES"] == "false"


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


def test_demo_driver_is_valid_python():
    import ast

    ast.parse((REPO / "deploy" / "docker" / "demo_flow.py").read_text())


def test_airflow_image_finds_the_packaged_config():
    """In the image the package is /opt/airflow/plugins/plg_bridge and the YAML is baked into
    /opt/airflow/include/config: the package's own lookup (no PLG_BRIDGE_CONFIG) finds it."""
    text = DOCKERFILE.read_text()
    assert "COPY --chown=airflow:0 plugins/ /opt/airflow/plugins/" in text
    assert "COPY --chown=airflow:0 include/ /opt/airflow/include/" in text
    assert Path("/opt/airflow/plugins/plg_bridge/config.py").parents[2] == Path("/opt/airflow")
