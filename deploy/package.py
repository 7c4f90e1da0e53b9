"""Lay out a copy of plg-bridge the way a managed Airflow platform expects it.

    python deploy/package.py astronomer OUT   # an Astro project: Dockerfile, dags/ include/ plugins/
                                              #   tests/, requirements.txt, packages.txt,
                                              #   airflow_settings.yaml (connections, pools), .env
    python deploy/package.py mwaa OUT         # Amazon MWAA: dags/ (DAGs + plg_bridge/ + include/ +
                                              #   .airflowignore), requirements.txt with a --constraint
                                              #   line, startup.sh (PLG_BRIDGE_CONFIG), pools.json
        [--plugins-zip]                       #   plg_bridge/ in OUT/plugins.zip instead of dags/
        [--airflow-version 3.3.2] [--python 3.12] [--constraints-file FILE]
    python deploy/package.py composer OUT     # Cloud Composer: dags/ (DAGs + include/), plugins/
                                              #   (plg_bridge/ + .airflowignore), PEP 508
                                              #   requirements.txt, env_variables.env, pools.json

What goes where, and why, is in docs/deployment.md; tests/deploy/test_packaging.py imports the DAGs
from each layout the way the platform does. OUT must be empty or missing (or pass --force).
Exit codes: 0 written, 2 bad arguments.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import re
import shutil
import sys
import tomllib
import zipfile
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEPLOY = REPO / "deploy"
PLATFORMS = ("astronomer", "mwaa", "composer")

# Where each platform puts AIRFLOW_HOME-level folders (dags_folder, plugins_folder).
ASTRO_HOME = "/usr/local/airflow"  # {dags,include,plugins,tests} of the Astro project
MWAA_HOME = "/usr/local/airflow"  # S3 dags/ -> dags/, plugins.zip unpacked -> plugins/
COMPOSER_HOME = "/home/airflow/gcs"  # gs://BUCKET/{dags,plugins,data} -> same names here

# include/ inside the dags folder on platforms that do not sync a root include/ (MWAA, Composer)
INCLUDE_IN_DAGS = "include"
CONFIG_IN_INCLUDE = "config/plg_bridge.yaml"

COPY_IGNORE = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info", ".DS_Store")


@dataclass(frozen=True)
class Connection:
    conn_id: str
    conn_type: str
    host: str
    holds: str  # what login / password / extra carry, for people
    login: str = ""
    extra: str = ""


# The connections the package reads (conn ids are the defaults of plg_bridge.delivery.*).
CONNECTIONS = (
    Connection("hubspot_default", "http", "https://api.hubapi.com", "password = private app token"),
    Connection(
        "salesforce_default",
        "http",
        "https://MYDOMAIN.my.salesforce.com",
        "login = client id, password = client secret of the External Client App",
        extra=json.dumps({"api_version": "v67.0"}),
    ),
    Connection("intercom_default", "http", "https://api.intercom.io", "password = access token"),
    Connection("slack_default", "slack", "", "password = bot token (xoxb-...)"),
)


# -- the project's own files ---------------------------------------------------------------------


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def pinned_requirements() -> list[tuple[str, str]]:
    """(name, version) of every `name==version` line of requirements.txt."""
    pins = []
    for raw in (REPO / "requirements.txt").read_text().splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        match = re.fullmatch(r"([A-Za-z0-9][A-Za-z0-9._-]*(?:\[[^\]]*\])?)\s*==\s*([^\s;]+)", line)
        if not match:
            raise SystemExit(f"package: requirements.txt line {raw!r} is not `name==version`")
        pins.append((match.group(1), match.group(2)))
    return pins


def airflow_pin() -> str:
    return next(v for n, v in pinned_requirements() if _norm(n) == "apache-airflow")


def lower_bounds() -> dict[str, str]:
    """Normalized name -> PEP 508 requirement from pyproject's [project].dependencies."""
    deps = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    out = {}
    for dep in deps:
        name = re.match(r"[A-Za-z0-9][A-Za-z0-9._-]*", dep).group(0)
        out[_norm(name)] = dep.replace(" ", "")
    return out


def unpinned_requirements() -> list[str]:
    """Runtime requirements without Airflow and without exact pins: the platform's constraints (or
    its preinstalled set) choose the versions; pyproject's lower bounds still apply."""
    bounds = lower_bounds()
    return [bounds.get(_norm(n), n) for n, _ in pinned_requirements() if _norm(n) != "apache-airflow"]


def pools() -> dict[str, dict]:
    """The pools file of `airflow pools import`, from scripts/create_pools.py (the one source)."""
    path = REPO / "scripts" / "create_pools.py"
    spec = importlib.util.spec_from_file_location("plg_create_pools", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.pools_file({})


# -- building blocks -----------------------------------------------------------------------------


def copy_dags(dst: Path) -> None:
    shutil.copytree(REPO / "dags", dst, ignore=COPY_IGNORE, dirs_exist_ok=True)


def copy_plugins(dst: Path) -> None:
    """plugins/ as is: plg_bridge/ and plugins/.airflowignore (which keeps Airflow's plugin manager
    from executing every module of the package as a top-level plugin file)."""
    shutil.copytree(REPO / "plugins", dst, ignore=COPY_IGNORE, dirs_exist_ok=True)
    ignore = (dst / ".airflowignore").read_text().split()
    if "plg_bridge/" not in ignore:
        raise SystemExit("package: plugins/.airflowignore must list plg_bridge/ (docs/deployment.md)")


def copy_include(dst: Path) -> None:
    shutil.copytree(REPO / "include", dst, ignore=COPY_IGNORE, dirs_exist_ok=True)


def write_airflowignore(dags: Path, entries: list[str]) -> None:
    """dags/.airflowignore: the repository's own lines (if any) plus folders that hold no DAG."""
    path = dags / ".airflowignore"
    lines = path.read_text().splitlines() if path.exists() else []
    lines += ["# not DAG files: the plg_bridge package and its data (deploy/package.py)"]
    lines += [e for e in entries if e not in lines]
    path.write_text("\n".join(lines) + "\n")


def write_pools(out: Path) -> None:
    (out / "pools.json").write_text(json.dumps(pools(), indent=2, sort_keys=True) + "\n")


def zip_tree(src: Path, zip_path: Path) -> None:
    """Every file under src at the zip's root (MWAA unpacks plugins.zip into plugins/)."""
    with zipfile.ZipFile(zip_path, "w", zipfile.ZIP_DEFLATED) as zf:
        for path in sorted(src.rglob("*")):
            if path.is_file():
                info = zipfile.ZipInfo(path.relative_to(src).as_posix(), date_time=(2020, 1, 1, 0, 0, 0))
                info.external_attr = 0o644 << 16
                info.compress_type = zipfile.ZIP_DEFLATED
                zf.writestr(info, path.read_bytes())


def template(platform: str, name: str) -> Path:
    return DEPLOY / platform / name


def check_mentions(path: Path, value: str) -> None:
    if value not in path.read_text():
        raise SystemExit(f"package: {path} must set {value} (it is where the config is laid out)")


# -- platforms -----------------------------------------------------------------------------------


def astronomer(out: Path, args: argparse.Namespace) -> list[str]:
    import yaml

    for name in ("Dockerfile", "packages.txt", ".dockerignore"):
        shutil.copy2(template("astronomer", name), out / name)
    shutil.copy2(template("astronomer", "env.example"), out / ".env")
    shutil.copytree(template("astronomer", "tests"), out / "tests", ignore=COPY_IGNORE)
    copy_dags(out / "dags")
    copy_plugins(out / "plugins")
    copy_include(out / "include")  # found by the package at $AIRFLOW_HOME/include: no PLG_BRIDGE_CONFIG

    pins = [f"{n}=={v}" for n, v in pinned_requirements() if _norm(n) != "apache-airflow"]
    (out / "requirements.txt").write_text(
        "# plg-bridge runtime requirements for Astro (deploy/package.py): the repository's exact pins,\n"
        "# without apache-airflow, which the Runtime image provides (see the Dockerfile).\n"
        + "\n".join(pins)
        + "\n"
    )
    settings = {
        "airflow": {
            "connections": [
                {
                    "conn_id": c.conn_id,
                    "conn_type": c.conn_type,
                    "conn_host": c.host or None,
                    "conn_schema": None,
                    "conn_login": None,
                    "conn_password": None,
                    "conn_port": None,
                    "conn_extra": json.loads(c.extra) if c.extra else None,
                }
                for c in CONNECTIONS
            ],
            "pools": [
                {"pool_name": name, "pool_slot": p["slots"], "pool_description": p["description"]}
                for name, p in sorted(pools().items())
            ],
            "variables": [],
        }
    }
    header = (
        "# Local `astro dev start` only (never deployed): connections and pools plg-bridge needs.\n"
        "# Fill in the credentials here, or create the connections on the Deployment (Environment\n"
        "# Manager, or AIRFLOW_CONN_* variables) and the pools with `airflow pools import pools.json`.\n"
        + "".join(f"#   {c.conn_id}: {c.holds}\n" for c in CONNECTIONS)
        + "# plg-bridge uses no Airflow Variables: settings are PLG_BRIDGE__* environment variables (.env).\n"
    )
    (out / "airflow_settings.yaml").write_text(header + yaml.safe_dump(settings, sort_keys=False))
    write_pools(out)
    return [
        f"cd {out} && astro dev start        # local: api-server on http://localhost:8080",
        "astro dev pytest                     # tests/dags/test_dag_integrity.py in the Runtime image",
        "astro deploy                         # image deploy (dags, include, plugins, requirements)",
    ]


def mwaa(out: Path, args: argparse.Namespace) -> list[str]:
    dags = out / "dags"
    copy_dags(dags)
    copy_include(dags / INCLUDE_IN_DAGS)
    ignore = [f"{INCLUDE_IN_DAGS}/"]
    if args.plugins_zip:
        staging = out / ".plugins"
        copy_plugins(staging)
        zip_tree(staging, out / "plugins.zip")
        shutil.rmtree(staging)
    else:
        shutil.copytree(REPO / "plugins" / "plg_bridge", dags / "plg_bridge", ignore=COPY_IGNORE)
        ignore.insert(0, "plg_bridge/")
    write_airflowignore(dags, ignore)

    if args.constraints_file:
        shutil.copy2(args.constraints_file, dags / "constraints.txt")
        constraint = f"{MWAA_HOME}/dags/constraints.txt"
        source_note = "your constraints file (dags/constraints.txt)"
    else:
        constraint = (
            "https://raw.githubusercontent.com/apache/airflow/"
            f"constraints-{args.airflow_version}/constraints-{args.python}.txt"
        )
        source_note = f"Airflow {args.airflow_version}'s constraints for Python {args.python}"
    (out / "requirements.txt").write_text(
        f'--constraint "{constraint}"\n'
        "# plg-bridge runtime requirements for Amazon MWAA (deploy/package.py). Versions come from\n"
        f"# {source_note}; apache-airflow is the environment's own. The repository's exact pins\n"
        "# (constraints.txt) were resolved on Python 3.11: see docs/deployment.md to make a 3.12 set.\n"
        + "\n".join(unpinned_requirements())
        + "\n"
    )
    startup = template("mwaa", "startup.sh")
    check_mentions(startup, f"{MWAA_HOME}/dags/{INCLUDE_IN_DAGS}/{CONFIG_IN_INCLUDE}")
    shutil.copy2(startup, out / "startup.sh")
    write_pools(out)
    steps = [
        f"aws s3 sync {dags} s3://BUCKET/dags --delete",
        f"aws s3 cp {out / 'requirements.txt'} s3://BUCKET/requirements.txt",
        f"aws s3 cp {out / 'startup.sh'} s3://BUCKET/startup.sh",
    ]
    if args.plugins_zip:
        steps.append(f"aws s3 cp {out / 'plugins.zip'} s3://BUCKET/plugins.zip")
    steps.append(
        "aws mwaa update-environment --name ENV --requirements-s3-path requirements.txt "
        "--startup-script-s3-path startup.sh" + (" --plugins-s3-path plugins.zip" if args.plugins_zip else "")
    )
    return steps


def composer(out: Path, args: argparse.Namespace) -> list[str]:
    dags = out / "dags"
    copy_dags(dags)
    copy_include(dags / INCLUDE_IN_DAGS)
    write_airflowignore(dags, [f"{INCLUDE_IN_DAGS}/"])
    copy_plugins(out / "plugins")
    # gcloud reads one PEP 508 requirement a line: no options, no comments, no apache-airflow.
    (out / "requirements.txt").write_text("\n".join(unpinned_requirements()) + "\n")
    env_file = template("composer", "env_variables.env")
    check_mentions(env_file, f"{COMPOSER_HOME}/dags/{INCLUDE_IN_DAGS}/{CONFIG_IN_INCLUDE}")
    shutil.copy2(env_file, out / "env_variables.env")
    write_pools(out)
    return [
        f"gcloud storage rsync --recursive --delete-unmatched-destination-objects {dags} gs://BUCKET/dags",
        f"gcloud storage rsync --recursive --delete-unmatched-destination-objects {out / 'plugins'} "
        "gs://BUCKET/plugins",
        f"gcloud composer environments update ENV --location LOCATION --update-pypi-packages-from-file "
        f"{out / 'requirements.txt'}",
        "gcloud composer environments update ENV --location LOCATION "
        f"--update-env-variables=\"$(grep -v '^#' {out / 'env_variables.env'} | paste -sd, -)\"",
    ]


BUILDERS = {"astronomer": astronomer, "mwaa": mwaa, "composer": composer}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("platform", choices=PLATFORMS)
    parser.add_argument("out", type=Path, help="folder to write (must be empty or missing)")
    parser.add_argument("--force", action="store_true", help="delete OUT first if it is not empty")
    mw = parser.add_argument_group("mwaa")
    mw.add_argument("--plugins-zip", action="store_true", help="plg_bridge/ in plugins.zip, not dags/")
    mw.add_argument("--airflow-version", help="the environment's Airflow (default: requirements.txt's pin)")
    mw.add_argument("--python", default="3.12", help="the environment's Python (MWAA on Airflow 3: 3.12)")
    mw.add_argument("--constraints-file", type=Path, help="ship this constraints file instead of Airflow's")
    args = parser.parse_args(argv)

    if args.platform != "mwaa" and (args.plugins_zip or args.constraints_file or args.airflow_version):
        parser.error("--plugins-zip, --constraints-file and --airflow-version are for mwaa")
    if args.constraints_file and not args.constraints_file.is_file():
        parser.error(f"--constraints-file {args.constraints_file} does not exist")
    args.airflow_version = args.airflow_version or airflow_pin()
    out: Path = args.out.resolve()
    if out.exists() and any(out.iterdir()):
        if not args.force:
            parser.error(f"{out} is not empty (pass --force to replace it)")
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)

    steps = BUILDERS[args.platform](out, args)
    files = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    print(f"{args.platform}: {len(files)} files in {out}")
    for name in sorted({f.split("/")[0] for f in files}):
        print(f"  {name}")
    print("next (see docs/deployment.md):")
    for step in steps:
        print(f"  {step}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
