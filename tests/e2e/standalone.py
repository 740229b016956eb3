"""Run a real `airflow standalone` (scheduler, dag-processor, api-server, triggerer; LocalExecutor on
SQLite) for end-to-end tests: a fresh AIRFLOW_HOME, loopback only, a free port, its own process group.

Everything it starts is stopped by :meth:`AirflowStandalone.stop`, by process id and process group
(never by name), including processes that left the group and processes started next to standalone
(e.g. a replacement triggerer).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, TypeVar

import psutil

T = TypeVar("T")

#: where `airflow` and the interpreter of this environment live (standalone spawns `airflow ...` by name)
VENV_BIN = Path(sys.prefix) / "bin"
#: OpenAI batch statuses that do not change any more
TERMINAL_BATCH = frozenset({"completed", "failed", "expired", "cancelled"})
#: task instance states in which a task does not run any more (without a clear)
TERMINAL_TI = frozenset({"success", "failed", "upstream_failed", "skipped", "removed"})


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(what: str, probe: Callable[[], T | None], timeout: float, interval: float = 0.5,
             on_timeout: Callable[[], str] | None = None) -> T:
    """Call ``probe`` until it returns something truthy (returned at once) or ``timeout`` passes."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() >= deadline:
            detail = f": {on_timeout()}" if on_timeout else ""
            raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}{detail}")
        time.sleep(interval)


def tail(path: Path, lines: int = 80) -> str:
    if not path.exists():
        return f"<{path} does not exist>"
    text = path.read_text(errors="replace").splitlines()
    return "\n".join(text[-lines:])


def log(msg: str, t0: float) -> None:
    """One progress line of an end-to-end test, stamped with the seconds since ``t0``."""
    print(f"[e2e +{time.monotonic() - t0:6.1f}s] {msg}", flush=True)


def write_rows(path: Path, count: int) -> Path:
    """``count`` JSONL rows ``{"id": "r0000", "text": ...}``."""
    with path.open("w") as fh:
        for i in range(count):
            fh.write(json.dumps({"id": f"r{i:04d}", "text": f"row number {i}"}) + "\n")
    return path


def emulator_batch(emu: Any, batch_id: str) -> dict[str, Any]:
    """The emulator's view of one OpenAI batch (GET /batches/{id})."""
    req = urllib.request.Request(f"{emu.openai_base_url}/batches/{batch_id}",
                                 headers={"Authorization": "Bearer test-key"})
    with urllib.request.urlopen(req, timeout=5) as resp:
        return dict(json.loads(resp.read()))


def _snapshot_tree(proc: psutil.Process) -> list[psutil.Process]:
    try:
        return [proc, *proc.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def _alive(proc: psutil.Process) -> bool:
    """Running and not a zombie (a killed child of standalone stays a zombie: standalone never reaps it)."""
    try:
        return bool(proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return False


def wait_gone(procs: Iterable[psutil.Process], timeout: float) -> list[psutil.Process]:
    """Wait until none of ``procs`` is alive; return those still alive after ``timeout``."""
    deadline = time.monotonic() + timeout
    alive = [p for p in procs if _alive(p)]
    while alive and time.monotonic() < deadline:
        time.sleep(0.1)
        alive = [p for p in alive if _alive(p)]
    return alive


def kill_tree(pid: int, sig: int = signal.SIGKILL) -> list[psutil.Process]:
    """Send ``sig`` to ``pid`` and every process below it (listed before any is signalled)."""
    try:
        procs = _snapshot_tree(psutil.Process(pid))
    except psutil.NoSuchProcess:
        return []
    for proc in procs:
        try:
            proc.send_signal(sig)  # psutil checks the process is still the one listed (no pid reuse)
        except psutil.NoSuchProcess:
            pass
    still = wait_gone(procs, timeout=10)
    if still:
        raise RuntimeError(f"processes survived SIGKILL: {still}")
    return procs


class AirflowStandalone:
    """One `airflow standalone` in ``home`` serving ``dags``; see :meth:`start`."""

    def __init__(self, home: Path, dag_files: Iterable[Path],
                 extra_env: dict[str, str] | None = None) -> None:
        self.home = home
        self.dags = home / "dags"
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.log_ports = (free_port(), free_port())
        self.log_path = home / "standalone.log"
        self.extra_env = dict(extra_env or {})
        self.process: subprocess.Popen[bytes] | None = None
        self.others: list[tuple[subprocess.Popen[bytes], Path]] = []
        self._known: dict[int, psutil.Process] = {}
        self.dags.mkdir(parents=True, exist_ok=True)
        for dag_file in dag_files:
            shutil.copy(dag_file, self.dags / dag_file.name)

    # -- environment -------------------------------------------------------------------------------
    def env(self) -> dict[str, str]:
        """This process's environment without any AIRFLOW_* setting (the test session has its own),
        plus the settings of this instance."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
        env["PATH"] = f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}"
        env.update(
            AIRFLOW_HOME=str(self.home),
            AIRFLOW__CORE__DAGS_FOLDER=str(self.dags),
            AIRFLOW__CORE__LOAD_EXAMPLES="False",
            AIRFLOW__CORE__EXECUTOR="LocalExecutor",
            AIRFLOW__CORE__PARALLELISM="4",
            AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION="False",
            AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS="True",
            AIRFLOW__CORE__AUTH_MANAGER="airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager",
            AIRFLOW__CORE__EXECUTION_API_SERVER_URL=f"{self.base_url}/execution/",
            AIRFLOW__API__HOST="127.0.0.1",
            AIRFLOW__API__PORT=str(self.port),
            AIRFLOW__API__BASE_URL=self.base_url,
            AIRFLOW__API__WORKERS="1",
            AIRFLOW__API_AUTH__JWT_SECRET="e2e-" + "s" * 64,
            AIRFLOW__LOGGING__LOGGING_LEVEL="INFO",
            # the scheduler's and the triggerer's log servers bind every interface (no host option in
            # 3.3) on fixed ports 8793/8794 by default: free ports avoid clashes with other instances
            AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT=str(self.log_ports[0]),
            AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT=str(self.log_ports[1]),
        )
        env.update(self.extra_env)
        return env

    # -- processes ---------------------------------------------------------------------------------
    def start(self) -> None:
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                [str(VENV_BIN / "airflow"), "standalone"], cwd=self.home, env=self.env(),
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
            )

    def start_component(self, *args: str) -> subprocess.Popen[bytes]:
        """Start ``airflow <args>`` next to standalone (same env, its own process group)."""
        log_path = self.home / f"{'-'.join(args)}-{len(self.others) + 1}.log"
        with log_path.open("wb") as log:
            proc = subprocess.Popen(
                [str(VENV_BIN / "airflow"), *args], cwd=self.home, env=self.env(),
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
            )
        self.others.append((proc, log_path))
        return proc

    def component(self, name: str) -> psutil.Process | None:
        """The `airflow <name>` child that standalone started (None if it is not running)."""
        assert self.process is not None
        for child in psutil.Process(self.process.pid).children():
            try:
                if _alive(child) and name in " ".join(child.cmdline()).split():
                    return child
            except psutil.NoSuchProcess:
                continue
        return None

    def remember_processes(self) -> None:
        """Note every process below what we started, so that stop() also reaches those that get
        re-parented (a killed parent) or leave the process group."""
        roots = [p for p in [self.process, *(o for o, _ in self.others)] if p is not None]
        for root in roots:
            try:
                for proc in _snapshot_tree(psutil.Process(root.pid)):
                    self._known.setdefault(proc.pid, proc)
            except psutil.NoSuchProcess:
                pass

    def stop(self) -> None:
        """Stop everything: SIGTERM to each process group we started, then SIGKILL, one by one, every
        process still running that was below them (including ones re-parented or outside the group)."""
        self.remember_processes()
        roots = [p for p in [self.process, *(o for o, _ in self.others)] if p is not None]
        _signal_groups(roots, signal.SIGTERM)
        alive = wait_gone(self._known.values(), timeout=15)
        for proc in alive:
            try:
                proc.kill()
            except psutil.NoSuchProcess:
                pass
        _signal_groups(roots, signal.SIGKILL)
        wait_gone(alive, timeout=5)
        for root in roots:
            try:
                root.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass

    # -- REST ------------------------------------------------------------------------------------
    def request(self, method: str, path: str, body: Any = None, timeout: float = 10) -> tuple[int, Any]:
        data = None if body is None else json.dumps(body).encode()
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        req = urllib.request.Request(f"{self.base_url}{path}", data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                return resp.status, json.loads(resp.read() or b"null")
        except urllib.error.HTTPError as exc:
            text = exc.read().decode(errors="replace")
            try:
                return exc.code, json.loads(text)
            except ValueError:
                return exc.code, text

    def get(self, path: str, attempts: int = 3) -> Any:
        """GET, asked again when the API server is too busy to answer in time (a read changes nothing)."""
        for attempt in range(1, attempts + 1):
            try:
                status, body = self.request("GET", path, timeout=20)
                break
            except TimeoutError:
                if attempt == attempts:
                    raise
        if status != 200:
            raise RuntimeError(f"GET {path}: HTTP {status}: {body}")
        return body

    def health(self) -> dict[str, Any] | None:
        try:
            status, body = self.request("GET", "/api/v2/monitor/health", timeout=3)
        except (OSError, ValueError):
            return None
        return body if status == 200 else None

    def wait_healthy(self, timeout: float = 180) -> dict[str, Any]:
        def healthy() -> dict[str, Any] | None:
            self.check_alive()
            body = self.health()
            parts = ("metadatabase", "scheduler", "triggerer", "dag_processor")
            if body and all((body.get(p) or {}).get("status") == "healthy" for p in parts):
                return body
            return None

        return wait_for("airflow standalone to be healthy", healthy, timeout, interval=1.0,
                        on_timeout=lambda: str(self.health()))

    def wait_dag(self, dag_id: str, timeout: float = 120) -> dict[str, Any]:
        def parsed() -> dict[str, Any] | None:
            self.check_alive()
            errors = self.get("/api/v2/importErrors")
            if errors.get("total_entries"):
                raise AssertionError(f"DAG import errors: {errors}")
            status, body = self.request("GET", f"/api/v2/dags/{dag_id}")
            return body if status == 200 else None

        return wait_for(f"DAG {dag_id} to be parsed", parsed, timeout)

    def trigger(self, dag_id: str, run_id: str, conf: dict[str, Any]) -> dict[str, Any]:
        status, body = self.request("POST", f"/api/v2/dags/{dag_id}/dagRuns",
                                    {"dag_run_id": run_id, "logical_date": None, "conf": conf})
        if status not in (200, 201):
            raise RuntimeError(f"triggering {dag_id}: HTTP {status}: {body}")
        return dict(body)

    def run_when_ready(self, dag_id: str, run_id: str, tmp_path: Path, rows: int, t0: float) -> Path:
        """Write the rows, wait for a healthy standalone and the parsed DAG, trigger the run; return
        where the results will land."""
        rows_file = write_rows(tmp_path / "rows.jsonl", rows)
        dest = tmp_path / "out" / "results.jsonl"
        conf = {"rows": f"file://{rows_file}", "destination": f"file://{dest}",
                "workspace": f"file://{tmp_path}/ws"}
        self.wait_healthy(timeout=240)
        log("standalone healthy", t0)
        self.wait_dag(dag_id, timeout=120)
        log("DAG parsed", t0)
        self.trigger(dag_id, run_id, conf)
        log("run triggered", t0)
        return dest

    def dag_run(self, dag_id: str, run_id: str) -> dict[str, Any]:
        return dict(self.get(f"/api/v2/dags/{dag_id}/dagRuns/{run_id}"))

    def task_instance(self, dag_id: str, run_id: str, task_id: str) -> dict[str, Any]:
        return dict(self.get(f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}"))

    def clear_task_instances(self, dag_id: str, run_id: str, task_ids: list[str],
                             **options: Any) -> dict[str, Any]:
        """Clear the task instances (the UI's "Clear" / `airflow tasks clear`): POST
        /api/v2/dags/{dag_id}/clearTaskInstances, not a dry run, whatever state they are in."""
        body = {"dry_run": False, "dag_run_id": run_id, "task_ids": task_ids, "only_failed": False,
                "only_running": False, "reset_dag_runs": True, "include_upstream": False,
                "include_downstream": False, **options}
        status, answer = self.request("POST", f"/api/v2/dags/{dag_id}/clearTaskInstances", body)
        if status != 200:
            raise RuntimeError(f"clearing {task_ids} of {dag_id}/{run_id}: HTTP {status}: {answer}")
        return dict(answer)

    def task_logs(self, dag_id: str, run_id: str, task_id: str, attempt: int | None = None) -> list[Path]:
        """The log files of a task (worker and trigger logs) of one attempt, or of every attempt."""
        folder = self.home / "logs" / f"dag_id={dag_id}" / f"run_id={run_id}" / f"task_id={task_id}"
        pattern = f"attempt={attempt}.log*" if attempt is not None else "attempt=*.log*"
        return sorted(folder.glob(pattern))

    def check_alive(self) -> None:
        if self.process is not None and self.process.poll() is not None:
            raise RuntimeError(f"airflow standalone exited with code {self.process.returncode}")

    # -- diagnostics -----------------------------------------------------------------------------
    def diagnostics(self, lines: int = 80) -> str:
        parts = [f"===== last {lines} lines of {self.log_path} =====", tail(self.log_path, lines)]
        for _, log_path in self.others:
            parts += [f"===== last {lines} lines of {log_path} =====", tail(log_path, lines)]
        for task_log in sorted((self.home / "logs").glob("dag_id=*/**/*.log")):
            parts += [f"===== last {lines} lines of {task_log} =====", tail(task_log, lines)]
        return "\n".join(parts)


def _signal_groups(roots: list[subprocess.Popen[Any]], sig: signal.Signals) -> None:
    """Signal the process group of each root not yet reaped (while unreaped, its group id is still ours)."""
    for root in roots:
        if root.poll() is None:
            try:
                os.killpg(root.pid, sig)
            except ProcessLookupError:
                pass
