"""Local stand-ins for Cloud Storage and BigQuery, started as subprocesses on loopback.

For tests and demos only. Both come from PyPI (the project's dev dependencies):
``gcp-storage-emulator`` (objects kept as plain files under ``DATA_DIR/.cloudstorage``) and
``bqemulator`` (DuckDB-backed). bqemulator needs DuckDB's spatial extension, which the
``duckdb-extension-spatial`` wheel provides offline once it is imported into the extension
directory of the HOME the server runs with (done here), and it needs numpy at start-up.

Example::

    with start_gcs_emulator(tmp / "gcs") as gcs, start_bigquery_emulator(tmp / "bq", gcs=gcs) as bq:
        bq.client().create_dataset("support")
        gcs.client().create_bucket("results")

Each server runs in its own process group and ``stop()`` ends the whole group.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

log = logging.getLogger(__name__)

LOOPBACK = "127.0.0.1"
DEFAULT_PROJECT = "test-project"


class EmulatorStartError(RuntimeError):
    """An emulator did not become ready; the message carries the end of its log."""


def free_port(host: str = LOOPBACK) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


@dataclass
class _Server:
    """A subprocess in its own process group, with its log file."""

    name: str
    process: subprocess.Popen[bytes]
    log_path: Path
    _stopped: bool = field(default=False, repr=False)

    def log_tail(self, lines: int = 25) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def wait_ready(self, url: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                self._stopped = True
                raise EmulatorStartError(f"{self.name} exited with code {self.process.returncode}:\n"
                                         f"{self.log_tail()}{_hint(self.log_tail())}")
            try:
                with urllib.request.urlopen(url, timeout=2) as response:
                    if response.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.1)
        self.stop()
        raise EmulatorStartError(f"{self.name} not ready at {url} after {timeout:.0f}s:\n{self.log_tail()}")

    def stop(self) -> None:
        """End the whole process group (TERM, then KILL after 10 s); safe to call twice."""
        if self._stopped:
            return
        self._stopped = True
        if self.process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)
        log.info("Stopped %s (pid %d)", self.name, self.process.pid)


def _hint(text: str) -> str:
    if "'numpy' is required" in text or "No module named 'numpy'" in text:
        return ("\nHint: bqemulator needs numpy at start-up (DuckDB Python UDFs); add numpy to the dev "
                "dependencies.")
    if "spatial" in text.lower():
        return "\nHint: the DuckDB spatial extension was not imported for this HOME (duckdb-extension-spatial)."
    return ""


def _spawn(name: str, args: list[str], log_path: Path, env: dict[str, str]) -> _Server:
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("wb") as log_file:
        process = subprocess.Popen(args, stdout=log_file, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                   env=env, start_new_session=True)
    server = _Server(name, process, log_path)
    atexit.register(server.stop)
    return server


class _Context:
    _server: _Server

    def stop(self) -> None:
        self._server.stop()

    def __enter__(self) -> Any:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()


class LocalGcs(_Context):
    """A running gcp-storage-emulator: ``endpoint`` URL and ``data_dir`` (objects under ``.cloudstorage``)."""

    def __init__(self, server: _Server, endpoint: str, data_dir: Path, project: str) -> None:
        self._server, self.endpoint, self.data_dir, self.project = server, endpoint, data_dir, project

    @property
    def objects_root(self) -> Path:
        return self.data_dir / ".cloudstorage"

    def connection_extras(self) -> dict[str, str]:
        return {"storage_endpoint": self.endpoint}

    def client(self) -> Any:
        from google.auth.credentials import AnonymousCredentials
        from google.cloud import storage  # type: ignore[attr-defined]

        anonymous = AnonymousCredentials()  # type: ignore[no-untyped-call]
        return storage.Client(project=self.project, credentials=anonymous,
                              client_options={"api_endpoint": self.endpoint})


class LocalBigQuery(_Context):
    """A running bqemulator: REST ``endpoint`` URL and default ``project``."""

    def __init__(self, server: _Server, endpoint: str, project: str, home: Path) -> None:
        self._server, self.endpoint, self.project, self.home = server, endpoint, project, home

    def connection_extras(self) -> dict[str, str]:
        return {"bigquery_endpoint": self.endpoint, "project": self.project}

    def client(self, project: str | None = None) -> Any:
        from google.api_core.client_options import ClientOptions
        from google.auth.credentials import AnonymousCredentials
        from google.cloud import bigquery

        anonymous = AnonymousCredentials()  # type: ignore[no-untyped-call]
        return bigquery.Client(project=project or self.project, credentials=anonymous,
                               client_options=ClientOptions(api_endpoint=self.endpoint))


def start_gcs_emulator(data_dir: Path, *, port: int | None = None, project: str = DEFAULT_PROJECT,
                       timeout: float = 30.0) -> LocalGcs:
    """Start gcp-storage-emulator storing objects under ``data_dir``; returns once it answers."""
    data_dir.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    args = [sys.executable, "-m", "gcp_storage_emulator", "-d", str(data_dir), "start",
            "--host", LOOPBACK, "--port", str(port), "-q"]
    server = _spawn("gcp-storage-emulator", args, data_dir / "emulator.log", dict(os.environ))
    endpoint = f"http://{LOOPBACK}:{port}"
    server.wait_ready(f"{endpoint}/storage/v1/b", timeout)
    log.info("GCS emulator at %s (data in %s)", endpoint, data_dir)
    return LocalGcs(server, endpoint, data_dir, project)


def install_duckdb_spatial(home: Path) -> None:
    """Import the spatial extension from its wheel into ``home``/.duckdb (offline, once per HOME)."""
    marker = home / ".duckdb" / "spatial-imported"
    if marker.exists():
        return
    home.mkdir(parents=True, exist_ok=True)
    code = "from duckdb_extensions import import_extension; import_extension('spatial')"
    result = subprocess.run([sys.executable, "-c", code], env={**os.environ, "HOME": str(home)},
                            capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    if result.returncode != 0:
        raise EmulatorStartError(f"importing the DuckDB spatial extension failed:\n{result.stderr[-2000:]}")
    marker.write_text("ok\n")


def start_bigquery_emulator(work_dir: Path, *, project: str = DEFAULT_PROJECT, gcs: LocalGcs | None = None,
                            port: int | None = None, timeout: float = 60.0) -> LocalBigQuery:
    """Start bqemulator (in memory) with HOME=``work_dir``/home; load jobs from gs:// read ``gcs``'s files."""
    home = work_dir / "home"
    install_duckdb_spatial(home)
    port = port or free_port()
    grpc_port = free_port()
    env = {**os.environ, "HOME": str(home)}
    if gcs is not None:
        env["BQEMU_GCS_LOCAL_ROOT"] = str(gcs.objects_root)
    args = [sys.executable, "-m", "bqemulator", "start", "--rest-host", LOOPBACK, "--rest-port", str(port),
            "--grpc-host", LOOPBACK, "--grpc-port", str(grpc_port), "--project", project,
            "--log-level", "warning"]
    server = _spawn("bqemulator", args, work_dir / "bqemulator.log", env)
    endpoint = f"http://{LOOPBACK}:{port}"
    server.wait_ready(f"{endpoint}/bigquery/v2/projects/{project}/datasets", timeout)
    log.info("BigQuery emulator at %s (project %s)", endpoint, project)
    return LocalBigQuery(server, endpoint, project, home)


def airflow_connection(gcs: LocalGcs | None, bq: LocalBigQuery | None) -> str:
    """The JSON of a ``google_cloud_platform`` Airflow connection pointing at the emulators."""
    extras: dict[str, str] = {}
    for emulator in (gcs, bq):
        if emulator is not None:
            extras.update(emulator.connection_extras())
    return json.dumps({"conn_type": "google_cloud_platform", "extra": extras})
