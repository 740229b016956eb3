"""An S3 server (moto) on loopback that checks signatures, with one IAM user allowed s3:*; and the GCS
emulator fixtures of tests/gcp."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from tests.gcp.fixtures import gcs_connection, gcs_emulator  # noqa: F401


@dataclass(frozen=True)
class LocalS3:
    endpoint: str
    key_id: str
    secret: str

    def client(self, secret: str | None = None) -> object:
        import boto3

        return boto3.client("s3", endpoint_url=self.endpoint, region_name="us-east-1",
                            aws_access_key_id=self.key_id, aws_secret_access_key=secret or self.secret)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_until_up(endpoint: str, proc: subprocess.Popen[bytes]) -> None:
    for _ in range(300):
        if proc.poll() is not None:
            raise RuntimeError(f"moto server exited with {proc.returncode}")
        try:
            urllib.request.urlopen(f"{endpoint}/moto-api/", timeout=2).close()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError("moto server did not start")


@pytest.fixture(scope="session")
def s3_server() -> Iterator[LocalS3]:
    """moto's server in its own process group; after 3 unauthenticated set-up calls (an IAM user, its key,
    its policy) every request must be signed with that user's key."""
    import boto3

    endpoint = f"http://127.0.0.1:{_free_port()}"
    proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", endpoint.rsplit(":", 1)[1]],
                            env={**os.environ, "INITIAL_NO_AUTH_ACTION_COUNT": "3"}, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        _wait_until_up(endpoint, proc)
        iam = boto3.client("iam", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="setup",
                           aws_secret_access_key="setup")
        iam.create_user(UserName="llmb")
        key = iam.create_access_key(UserName="llmb")["AccessKey"]
        iam.put_user_policy(UserName="llmb", PolicyName="s3", PolicyDocument=json.dumps(
            {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}))
        yield LocalS3(endpoint, key["AccessKeyId"], key["SecretAccessKey"])
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)


@pytest.fixture(autouse=True)
def _fresh_connection_filesystems() -> Iterator[None]:
    from airflow_llm_batch.storage_connections import forget_connections

    yield
    forget_connections()
