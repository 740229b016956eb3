"""The official Google provider's connection fields (issue 14, item 2), read without that provider: a
``google_cloud_platform`` connection's ``keyfile_dict`` / ``key_path`` / ``credential_config_file`` /
``scope`` / ``impersonation_chain`` / ``is_anonymous`` and ``project`` (plain or prefixed) reach the
Vertex client; the fields only the provider can honour are refused by name; key material never appears
in an error or a log. The Gemini connection refuses extras it does not read.

The service-account key is generated for the test run (never committed); a local token endpoint checks
that the credentials really sign with it.
"""

from __future__ import annotations

import json
import logging
import sys
import threading
import urllib.parse
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest
from airflow.sdk.definitions.connection import Connection

from airflow_llm_batch.exceptions import BadConnectionError
from airflow_llm_batch.hooks.gemini import GeminiBatchHook
from airflow_llm_batch.hooks.vertex import VertexBatchHook, VertexOptions

pytestmark = pytest.mark.skipif("airflow.providers.google" in sys.modules,
                                reason="with apache-airflow-providers-google installed its hook reads the fields")

ACCOUNT = "batch-runner@key-project.iam.gserviceaccount.com"
CLOUD_PLATFORM = "https://www.googleapis.com/auth/cloud-platform"
#: a marker inside the broken keys of the leak tests: it must never reach an error or a log
SECRET = "SECRETKEYMATERIAL0123456789"


class TokenEndpoint(BaseHTTPRequestHandler):
    """OAuth token endpoint: verifies the JWT assertion with the public key, records its claims."""

    public_pem: ClassVar[bytes] = b""
    claims: ClassVar[list[dict[str, Any]]] = []

    def do_POST(self) -> None:
        from google.auth import jwt

        form = urllib.parse.parse_qs(self.rfile.read(int(self.headers["Content-Length"])).decode())
        claims = jwt.decode(form["assertion"][0], certs=self.public_pem, verify=True)  # raises if not signed by the key
        type(self).claims.append(dict(claims))
        body = json.dumps({"access_token": "token-from-endpoint", "expires_in": 3600}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def token_url() -> Iterator[str]:
    server = HTTPServer(("127.0.0.1", 0), TokenEndpoint)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/token"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.fixture(scope="module")
def key_info(token_url: str) -> dict[str, str]:
    """A throwaway service-account key, generated now; its public half goes to the token endpoint."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    TokenEndpoint.public_pem = private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    pem = private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()).decode()
    return {"type": "service_account", "project_id": "key-project", "private_key_id": "k1", "private_key": pem,
            "client_email": ACCOUNT, "client_id": "1", "token_uri": token_url}


def options(**extra: Any) -> VertexOptions:
    extra.setdefault("vertex_staging_uri", "gs://bucket/stage")
    return VertexOptions.from_connection(Connection(conn_id="gcp_fields", conn_type="google_cloud_platform",
                                                    extra=json.dumps(extra)))


def vertex_client_kwargs(**extra: Any) -> dict[str, Any]:
    return VertexBatchHook.client_kwargs(options(**extra))


def refreshed_claims(credentials: Any) -> dict[str, Any]:
    """Refresh ``credentials`` at the local token endpoint; the claims it verified."""
    import google.auth.transport.requests

    TokenEndpoint.claims.clear()
    credentials.refresh(google.auth.transport.requests.Request())
    assert credentials.token == "token-from-endpoint"
    return TokenEndpoint.claims[-1]


@pytest.mark.parametrize("form", ["object", "json text", "json text with escaped newlines"])
def test_keyfile_dict_builds_credentials_that_sign_with_the_key(form: str, key_info: dict[str, str],
                                                                caplog: pytest.LogCaptureFixture) -> None:
    value: Any = key_info if form == "object" else json.dumps(key_info)
    if form == "json text with escaped newlines":  # as some secret stores keep it
        value = json.dumps({**key_info, "private_key": key_info["private_key"].replace("\n", "\\n")})
    caplog.set_level(logging.DEBUG)
    kwargs = vertex_client_kwargs(keyfile_dict=value)
    credentials = kwargs["credentials"]
    assert credentials.service_account_email == ACCOUNT and kwargs["project"] == "key-project"
    claims = refreshed_claims(credentials)
    assert claims["iss"] == ACCOUNT and claims["scope"] == CLOUD_PLATFORM
    assert "'keyfile_dict'" in caplog.text
    assert "PRIVATE KEY" not in caplog.text and key_info["private_key"][40:80] not in caplog.text


def test_key_path_is_read_with_the_connections_scopes(key_info: dict[str, str], tmp_path: Path) -> None:
    key_file = tmp_path / "sa.json"
    key_file.write_text(json.dumps(key_info))
    kwargs = vertex_client_kwargs(extra__google_cloud_platform__key_path=str(key_file),
                                  scope="https://www.googleapis.com/auth/cloud-platform, https://x.test/s")
    assert kwargs["credentials"].service_account_email == ACCOUNT
    assert refreshed_claims(kwargs["credentials"])["scope"] == f"{CLOUD_PLATFORM} https://x.test/s"


@pytest.mark.parametrize(("extra", "project"), [
    ({"project": "plain-project"}, "plain-project"),
    ({"extra__google_cloud_platform__project": "prefixed-project"}, "prefixed-project"),
    ({"project": "", "extra__google_cloud_platform__project": "prefixed-project"}, "prefixed-project"),
    ({}, "key-project"),
    ({"impersonation_chain": "target@other-project.iam.gserviceaccount.com"}, "other-project"),
])
def test_the_project_from_each_form(extra: dict[str, Any], project: str, key_info: dict[str, str]) -> None:
    assert vertex_client_kwargs(keyfile_dict=key_info, **extra)["project"] == project


def test_an_impersonation_chain_impersonates_its_last_account(key_info: dict[str, str]) -> None:
    from google.auth import impersonated_credentials

    chain = "hop@key-project.iam.gserviceaccount.com, target@p2.iam.gserviceaccount.com"
    credentials = vertex_client_kwargs(keyfile_dict=key_info, impersonation_chain=chain)["credentials"]
    assert isinstance(credentials, impersonated_credentials.Credentials)
    assert credentials.service_account_email == "target@p2.iam.gserviceaccount.com"
    assert credentials._delegates == ["hop@key-project.iam.gserviceaccount.com"]
    assert credentials._source_credentials.service_account_email == ACCOUNT


@pytest.mark.parametrize("form", ["path", "json text", "object"])
def test_a_workload_identity_credential_config_file(form: str, tmp_path: Path) -> None:
    from google.auth import identity_pool

    config = {"type": "external_account", "subject_token_type": "urn:ietf:params:oauth:token-type:jwt",
              "audience": "//iam.googleapis.com/projects/123/locations/global/workloadIdentityPools/p/providers/q",
              "token_url": "https://sts.googleapis.com/v1/token",
              "credential_source": {"file": str(tmp_path / "oidc-token")}}
    path = tmp_path / "wif.json"
    path.write_text(json.dumps(config))
    value: Any = {"path": str(path), "json text": json.dumps(config), "object": config}[form]
    kwargs = vertex_client_kwargs(credential_config_file=value, project="wif-project")
    assert isinstance(kwargs["credentials"], identity_pool.Credentials) and kwargs["project"] == "wif-project"


def test_anonymous_credentials_on_request() -> None:
    from google.auth.credentials import AnonymousCredentials

    kwargs = vertex_client_kwargs(is_anonymous=True, project="p")
    assert isinstance(kwargs["credentials"], AnonymousCredentials)


@pytest.mark.parametrize("field", ["key_secret_name", "extra__google_cloud_platform__key_secret_name",
                                   "key_secret_project_id", "idp_issuer_url", "client_id", "idp_extra_params"])
def test_fields_only_the_google_provider_can_honour_are_refused_by_name(field: str) -> None:
    with pytest.raises(BadConnectionError) as caught:
        vertex_client_kwargs(**{field: "value-1", "project": "p"})
    message = str(caught.value)
    assert "connection 'gcp_fields'" in message and "needs apache-airflow-providers-google" in message
    assert f"'{field.removeprefix('extra__google_cloud_platform__')}'" in message and "value-1" not in message


@pytest.mark.parametrize(("extra", "expected"), [
    ({"key_path": "/nowhere/sa.json"}, "cannot read '/nowhere/sa.json'"),
    ({"key_path": "/keys/legacy.p12"}, "legacy P12"),
    ({"keyfile_dict": "{}", "key_path": "/k.json"}, "['key_path', 'keyfile_dict'] are each a way"),
    ({"impersonation_chain": {"a": 1}, "is_anonymous": "true"}, "'impersonation_chain' must be"),
    ({"credential_config_file": {"type": "nonsense"}}, "'credential_config_file' is not a credential configuration"),
])
def test_unusable_fields_are_named(extra: dict[str, Any], expected: str) -> None:
    with pytest.raises(BadConnectionError, match="connection 'gcp_fields'") as caught:
        vertex_client_kwargs(project="p", **extra)
    assert expected in str(caught.value)


def broken_keys(key_info: dict[str, str]) -> list[tuple[Any, str]]:
    """Keys that cannot work, each carrying SECRET where a careless error would echo it."""
    garbled = "-----BEGIN PRIVATE KEY-----\n" + SECRET + "\n-----END PRIVATE KEY-----\n"
    return [
        ({**key_info, "private_key": garbled}, "its private_key could not be read"),
        (json.dumps({**key_info, "private_key": garbled}), "its private_key could not be read"),
        (json.dumps(key_info)[:-40] + SECRET, "is not valid JSON (line 1, column"),
        ({**key_info, "client_email": "", "note": SECRET}, "missing ['client_email']"),
        ({"type": "authorized_user", "refresh_token": SECRET}, "holds a 'authorized_user' credential"),
        (["private_key", SECRET], "must hold a JSON object"),
    ]


def test_no_key_material_in_errors_or_logs(key_info: dict[str, str], caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    for value, expected in broken_keys(key_info):
        extra = {"keyfile_dict": value if not isinstance(value, list) else json.dumps(value)}
        with pytest.raises(BadConnectionError) as caught:
            vertex_client_kwargs(project="p", **extra)
        assert expected in str(caught.value), str(caught.value)
        error = caught.value  # no library error chained to it (a traceback would print that one too)
        assert error.__cause__ is None and (error.__context__ is None or error.__suppress_context__)
        assert SECRET not in str(caught.value) and key_info["private_key"][40:80] not in str(caught.value)
    assert SECRET not in caplog.text and "PRIVATE KEY" not in caplog.text


def gemini_conn(**extra: Any) -> Connection:
    return Connection(conn_id="gem", conn_type="llm_batch_gemini", host="http://127.0.0.1:9", password="k",
                      extra=json.dumps(extra))


@pytest.mark.parametrize(("extra", "named", "vertex_hint"), [
    ({"temperature": 0.2}, "['temperature']", False),
    ({"timeout": 5, "base_url": "http://x", "model": "m"}, "['base_url', 'model']", False),
    ({"project": "p"}, "['project']", True),
    ({"extra__google_cloud_platform__keyfile_dict": "{}"}, "['extra__google_cloud_platform__keyfile_dict']", True),
])
def test_gemini_refuses_extras_it_does_not_read(extra: dict[str, Any], named: str, vertex_hint: bool) -> None:
    with pytest.raises(BadConnectionError, match="connection 'gem'") as caught:
        GeminiBatchHook.client_kwargs(gemini_conn(**extra))
    message = str(caught.value)
    assert f"extra {named} is not read" in message and "inline_max_bytes" in message
    assert ("google_cloud_platform connection" in message) is vertex_hint


def test_gemini_accepts_its_own_extras_and_empty_form_fields() -> None:
    kwargs = GeminiBatchHook.client_kwargs(gemini_conn(api_version="v1", timeout=2, headers={"x-a": "b"},
                                                       inline_max_bytes=0, project="", scope=None))
    assert kwargs["http_options"].api_version == "v1" and kwargs["http_options"].timeout == 2000
