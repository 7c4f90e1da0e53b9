"""A distributed Airflow 3 for end-to-end tests: api-server, scheduler, dag-processor, triggerer and a
Celery worker as separate OS processes, PostgreSQL as the metadata DB and Redis as the Celery broker.

`Stack` owns everything it creates (a fresh Postgres database, a Redis database, the processes and
their logs under one temporary folder) and `close()` removes all of it, even after a failure.
`Stack.env` is the exact environment every Airflow process gets: it is the configuration that
makes the distributed topology work (see `airflow_env`).
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.support.ports import free_port

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
AIRFLOW = str(BIN / "airflow")
SETPRIV = shutil.which("setpriv")  # util-linux

PG = {"host": "127.0.0.1", "port": 5432, "user": "postgres"}
REDIS = {"host": "127.0.0.1", "port": 6379}

# Variables of the test process that must not leak into the stack's processes.
_INHERITED_PREFIXES = ("AIRFLOW", "PLG_BRIDGE", "AWS_", "_AIRFLOW", "PYTEST", "COV_")


class StackError(RuntimeError):
    """The stack did not come up or a command failed; the message carries the logs' tails."""


def services_available() -> str | None:
    """None when Postgres and Redis answer on loopback, else why not (to skip with)."""
    import psycopg2
    import redis

    try:
        psycopg2.connect(dbname="postgres", connect_timeout=3, **PG).close()
    except psycopg2.Error as exc:
        return f"PostgreSQL on {PG['host']}:{PG['port']} is not reachable ({str(exc).strip()})"
    try:
        redis.Redis(socket_connect_timeout=3, **REDIS).ping()
    except redis.RedisError as exc:
        return f"Redis on {REDIS['host']}:{REDIS['port']} is not reachable ({exc})"
    return None


# -- the metadata database and the broker -------------------------------------------------------


def create_database() -> str:
    """A fresh, empty Postgres database for one test session; returns its name."""
    import psycopg2

    name = f"plg_e2e_{secrets.token_hex(4)}"
    conn = psycopg2.connect(dbname="postgres", **PG)
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute(f'CREATE DATABASE "{name}"')
    finally:
        conn.close()
    return name


def drop_database(name: str) -> None:
    import psycopg2

    conn = psycopg2.connect(dbname="postgres", **PG)
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        conn.close()


CLAIM_KEY = "plg_e2e:claimed_by"


def claim_redis_db() -> tuple[int, str]:
    """An empty Redis database (1-15; 0 is left to others), marked as ours; returns (number, claim)."""
    import random

    import redis

    claim = secrets.token_hex(8)
    numbers = list(range(1, 16))
    random.shuffle(numbers)
    for n in numbers:
        db = redis.Redis(db=n, **REDIS)
        # Empty, and nobody claimed it between our look and our mark (SET NX is atomic).
        if db.dbsize() == 0 and db.set(CLAIM_KEY, claim, nx=True):
            return n, claim
    raise StackError("no empty Redis database among 1-15")


def release_redis_db(n: int, claim: str) -> None:
    """Flush the database, if it is still the one we claimed."""
    import redis

    db = redis.Redis(db=n, **REDIS)
    if db.get(CLAIM_KEY) == claim.encode():
        db.flushdb()


# -- the environment ------------------------------------------------------------------------------


def airflow_env(
    home: Path, database: str, redis_db: int, *, api_port: int, log_port: int, queue: str
) -> dict[str, str]:
    """The Airflow configuration of every process of the stack (no airflow.cfg is written)."""
    db = f"postgresql+psycopg2://{PG['user']}@{PG['host']}:{PG['port']}/{database}"
    api = f"http://127.0.0.1:{api_port}"
    return {
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
        "AIRFLOW__CORE__PARALLELISM": "4",
        # Metadata DB. Airflow derives its async engine (asyncpg) from the same URL.
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": db,
        # Celery: broker Redis, results in the metadata DB (celery_taskmeta), a queue of this stack's own.
        "AIRFLOW__CELERY__BROKER_URL": f"redis://{REDIS['host']}:{REDIS['port']}/{redis_db}",
        # SQLAlchemy 2.1 maps a bare postgresql:// to psycopg 3 (not installed): name the driver.
        "AIRFLOW__CELERY__RESULT_BACKEND": f"db+{db}",
        # Redelivery of unacknowledged tasks: above the DAG's longest execution_timeout (1 h).
        "AIRFLOW__CELERY_BROKER_TRANSPORT_OPTIONS__VISIBILITY_TIMEOUT": "7200",
        "AIRFLOW__CELERY__WORKER_CONCURRENCY": "2",
        "AIRFLOW__OPERATORS__DEFAULT_QUEUE": queue,
        # Workers run tasks through the Execution API of the api-server; links point at it too.
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{api}/execution/",
        "AIRFLOW__API__BASE_URL": api,
        "AIRFLOW__API__HOST": "127.0.0.1",
        "AIRFLOW__API__PORT": str(api_port),
        "AIRFLOW__API__WORKERS": "1",
        "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_urlsafe(64),
        # REST API users (simple auth manager): one admin whose password the test knows.
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "e2e:admin",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(home / "passwords.json"),
        # The worker serves its task logs to the api-server on this port.
        "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(log_port),
        # Quick to notice the DAG file; the test triggers its runs itself (no cron runs).
        "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
        "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "30",
        "AIRFLOW__DAG_PROCESSOR__PARSING_PROCESSES": "1",
        "AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": "False",
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True",
        "PYTHONPATH": os.pathsep.join(filter(None, [os.environ.get("PLG_E2E_PYTHONPATH"), str(REPO)])),
    }


# -- processes -------------------------------------------------------------------------------------


@dataclass
class Stack:
    root: Path
    env: dict[str, str]
    api_url: str
    database: str
    redis_db: int
    redis_claim: str
    procs: dict[str, subprocess.Popen] = field(default_factory=dict)
    _token: str | None = None

    @classmethod
    def create(cls, root: Path, extra_env: Mapping[str, str]) -> Stack:
        """Claim a database and a broker DB and compute the environment; starts nothing yet."""
        home = root / "airflow"
        (root / "logs").mkdir(parents=True, exist_ok=True)
        home.mkdir(parents=True, exist_ok=True)
        database = create_database()
        try:
            redis_db, redis_claim = claim_redis_db()
        except BaseException:
            drop_database(database)
            raise
        api_port = free_port()
        queue = f"plg_e2e_{secrets.token_hex(3)}"
        base = {k: v for k, v in os.environ.items() if not k.startswith(_INHERITED_PREFIXES)}
        env = {
            **base,
            **airflow_env(home, database, redis_db, api_port=api_port, log_port=free_port(), queue=queue),
            **extra_env,
        }
        (home / "passwords.json").write_text(json.dumps({"e2e": secrets.token_urlsafe(16)}))
        return cls(root, env, f"http://127.0.0.1:{api_port}", database, redis_db, redis_claim)

    # -- running things --------------------------------------------------------------------------

    def log(self, name: str) -> Path:
        return self.root / "logs" / f"{name}.log"

    def start(self, name: str, args: list[str]) -> subprocess.Popen:
        """Start a long-running process in its own process group, logging to logs/<name>.log.

        Under `setpriv --pdeathsig TERM` when available: if the test process dies without its
        teardown (killed by a CI timeout), every component still gets SIGTERM instead of running on.
        """
        if SETPRIV:
            args = [SETPRIV, "--pdeathsig", "TERM", "--", *args]
        with self.log(name).open("ab") as out:
            proc = subprocess.Popen(
                args,
                cwd=REPO,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.procs[name] = proc
        return proc

    def start_airflow(self, setup: Callable[[], object] | None = None, attempts: int = 3) -> None:
        """api-server and dag-processor first, `setup()` (e.g. pools) while they boot, then, once the
        api-server is healthy, scheduler and Celery worker. An api-server whose port was taken in
        the meantime is restarted on another port (with the dag-processor, which has its URL)."""
        self.start("dag-processor", [AIRFLOW, "dag-processor"])
        for attempt in range(1, attempts + 1):
            name = "api-server" if attempt == 1 else f"api-server-{attempt}"
            port = self.env["AIRFLOW__API__PORT"]
            api = self.start(name, [AIRFLOW, "api-server", "--host", "127.0.0.1", "--port", port])
            if setup is not None and attempt == 1:
                setup()
            try:
                self.wait_for("the api-server's health", self.healthy, timeout=90)
                break
            except StackError:
                taken = api.poll() is not None and "address already in use" in self.log(name).read_text()
                if not taken or attempt == attempts:
                    raise
            del self.procs[name]
            self._move_api(free_port())
            self.stop_one("dag-processor")
            self.start("dag-processor", [AIRFLOW, "dag-processor"])
        self.start("scheduler", [AIRFLOW, "scheduler"])
        self.start("triggerer", [AIRFLOW, "triggerer"])  # deferrable tasks and asset watchers
        self.start(
            "celery-worker",
            [AIRFLOW, "celery", "worker", "--queues", self.env["AIRFLOW__OPERATORS__DEFAULT_QUEUE"]],
        )

    def stop_one(self, name: str, grace: float = 20.0) -> None:
        proc = self.procs.pop(name)
        _signal_group(proc, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=grace)
        _signal_group(proc, signal.SIGKILL)
        proc.wait(timeout=10)

    def _move_api(self, port: int) -> None:
        api = f"http://127.0.0.1:{port}"
        self.env.update(
            AIRFLOW__API__PORT=str(port),
            AIRFLOW__API__BASE_URL=api,
            AIRFLOW__CORE__EXECUTION_API_SERVER_URL=f"{api}/execution/",
        )
        self.api_url = api

    def run(self, name: str, args: list[str], timeout: float = 180) -> subprocess.CompletedProcess:
        """Run a command to completion (logged to logs/<name>.log); raises StackError if it fails."""
        started = time.monotonic()
        done = subprocess.run(
            args, cwd=REPO, env=self.env, capture_output=True, text=True, timeout=timeout, check=False
        )
        with self.log(name).open("a") as out:
            out.write(f"$ {' '.join(args)}  # exit {done.returncode} in {time.monotonic() - started:.1f}s\n")
            out.write(done.stdout + done.stderr)
        if done.returncode:
            raise StackError(
                f"{' '.join(args[:4])} failed (exit {done.returncode}):\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
            )
        return done

    def check_alive(self) -> None:
        dead = {name: p.returncode for name, p in self.procs.items() if p.poll() is not None}
        if dead:
            raise StackError(f"processes exited early: {dead}\n{self.tails()}")

    def wait_for(self, what: str, check: Callable[[], Any], timeout: float, every: float = 1.0) -> Any:
        """Poll `check` until it returns something truthy; fail (with the logs) after `timeout`."""
        deadline = time.monotonic() + timeout
        last_error: Exception | None = None
        while time.monotonic() < deadline:
            self.check_alive()
            try:
                value = check()
                if value:
                    return value
            except (OSError, ValueError, StackError) as exc:
                last_error = exc
            time.sleep(every)
        raise StackError(
            f"timed out after {timeout:.0f}s waiting for {what} (last error: {last_error})\n{self.tails()}"
        )

    def tails(self, lines: int = 40) -> str:
        parts = []
        for path in sorted((self.root / "logs").glob("*.log")):
            text = path.read_text(errors="replace").splitlines()
            parts.append(f"----- {path.name} (last {lines} of {len(text)} lines) -----")
            parts.extend(text[-lines:])
        return "\n".join(parts)

    def task_log_tails(self, lines: int = 30) -> str:
        """The task logs written by the worker that hold an error, as readable lines."""
        parts = []
        for path in sorted((Path(self.env["AIRFLOW_HOME"]) / "logs").rglob("attempt=*.log")):
            events = [_task_log_line(line) for line in path.read_text(errors="replace").splitlines()]
            if not any(level in ("error", "critical") for level, _ in events):
                continue
            parts.append(f"----- {path.relative_to(self.env['AIRFLOW_HOME'])} -----")
            parts.extend(text for _, text in events[-lines:])
        return "\n".join(parts) or "(no task log holds an error)"

    # -- the REST API ----------------------------------------------------------------------------

    def http(self, method: str, path: str, body: Any = None, token: str | None = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.api_url + path, data=data, method=method)
        request.add_header("Content-Type", "application/json")
        if token:
            request.add_header("Authorization", f"Bearer {token}")
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                raw = response.read()
        except urllib.error.HTTPError as exc:
            raise StackError(f"{method} {path}: HTTP {exc.code}: {exc.read()[:2000]!r}") from None
        return json.loads(raw) if raw else None

    def token(self) -> str:
        """A JWT for the REST API (POST /auth/token with the simple auth manager's user)."""
        if self._token is None:
            password = json.loads(
                Path(self.env["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE"]).read_text()
            )
            body = {"username": "e2e", "password": password["e2e"]}
            self._token = self.http("POST", "/auth/token", body)["access_token"]
        return self._token

    def api(self, method: str, path: str, body: Any = None) -> Any:
        return self.http(method, "/api/v2" + path, body, token=self.token())

    def healthy(self) -> bool:
        health = self.http("GET", "/api/v2/monitor/health")
        return health.get("metadatabase", {}).get("status") == "healthy"

    # -- teardown --------------------------------------------------------------------------------

    def stop(self, grace: float = 20.0) -> None:
        """SIGTERM every process group, SIGKILL what is left after `grace` seconds."""
        started = time.monotonic()
        for proc in self.procs.values():
            if proc.poll() is None:
                _signal_group(proc, signal.SIGTERM)
        deadline = started + grace
        for proc in self.procs.values():
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        killed = [name for name, proc in self.procs.items() if proc.poll() is None]
        for proc in self.procs.values():
            # The leader may be gone while children of its group (task processes) still run.
            _signal_group(proc, signal.SIGKILL)
            if proc.poll() is None:
                proc.wait(timeout=10)
        with self.log("teardown").open("a") as out:
            codes = {name: proc.returncode for name, proc in self.procs.items()}
            out.write(
                f"stopped in {time.monotonic() - started:.1f}s; exit codes {codes}; SIGKILLed {killed}\n"
            )

    def close(self) -> None:
        try:
            self.stop()
        finally:
            try:
                release_redis_db(self.redis_db, self.redis_claim)
            finally:
                drop_database(self.database)


def _signal_group(proc: subprocess.Popen, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, sig)  # start_new_session=True: the group id is the leader's pid


def _task_log_line(line: str) -> tuple[str, str]:
    """(level, text) of one line of a task log (JSON lines in Airflow 3)."""
    try:
        record = json.loads(line)
    except ValueError:
        return "", line
    if not isinstance(record, dict):
        return "", line
    level = str(record.get("level", ""))
    text = f"{record.get('timestamp', '')} {level:7} {record.get('event', '')}"
    for error in record.get("error_detail") or []:
        text += f"\n    {error.get('exc_type')}: {error.get('exc_value')}"
    return level, text
