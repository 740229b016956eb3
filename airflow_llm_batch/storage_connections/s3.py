"""``s3://conn_id@bucket/...`` without apache-airflow-providers-amazon: s3fs options from the official
``aws`` connection.

Honoured, as the Amazon provider reads them: login / password (else extras ``aws_access_key_id`` /
``aws_secret_access_key``) = the access key; extras ``aws_session_token``, ``region_name``,
``endpoint_url`` (``service_config.s3.endpoint_url`` wins), ``verify``, ``profile_name``, ``config_kwargs``
(botocore Config; ``signature_version: unsigned`` = anonymous). Refused by name: assumed roles
(``role_arn``...), the deprecated ``session_kwargs``, other ``service_config`` entries, and any extra
this module does not know. No key at all: s3fs's default chain (env, profile, instance role).

Example: ``s3_options("lake", "aws", "AKIA...", "secret", {"endpoint_url": "http://127.0.0.1:9000"})``
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from airflow_llm_batch.exceptions import BadConnectionError
from airflow_llm_batch.storage_connections.fields import FIX, expect_type, refuse

HONOURED = ("aws_access_key_id", "aws_secret_access_key", "aws_session_token", "region_name", "endpoint_url",
            "service_config", "verify", "profile_name", "config_kwargs")
#: official fields that need the Amazon provider's session: field -> what it does
UNSUPPORTED = {
    "role_arn": "an IAM role to assume", "assume_role_method": "how to assume a role",
    "assume_role_kwargs": "arguments of the role assumption", "external_id": "an assumed role's external id",
    "session_kwargs": "deprecated boto3 session arguments", "aws_iam_role": "a role for a federated session",
    "aws_account_id": "the account of a federated session", "host": "a deprecated endpoint field",
}


def s3_options(conn_id: str, conn_type: str | None, login: str | None, password: str | None,
               extras: Mapping[str, Any]) -> dict[str, Any]:
    """s3fs keyword arguments for connection ``conn_id``."""
    expect_type(conn_id, "s3", conn_type, ("aws",))
    refuse(conn_id, "s3", extras, conn_type, UNSUPPORTED, HONOURED, "amazon")
    key, secret = (login, password) if login or password else (
        extras.get("aws_access_key_id"), extras.get("aws_secret_access_key"))
    options: dict[str, Any] = {}
    if key and secret:
        options.update(key=key, secret=secret)
    elif key or secret:
        raise BadConnectionError(f"connection {conn_id!r}: an access key id needs its secret access key and the "
                                 f"other way round (login and password, or both extras); {FIX}")
    if extras.get("aws_session_token"):
        options["token"] = extras["aws_session_token"]
    if extras.get("profile_name"):
        options["profile"] = extras["profile_name"]
    endpoint = _s3_endpoint(conn_id, extras)
    if endpoint:
        options["endpoint_url"] = endpoint
    client_kwargs = {name: extras[name] for name in ("region_name", "verify") if extras.get(name) is not None}
    if client_kwargs:
        options["client_kwargs"] = client_kwargs
    config = dict(extras.get("config_kwargs") or {})
    if str(config.get("signature_version", "")).lower() == "unsigned":
        del config["signature_version"]
        options["anon"] = True
    if config:
        options["config_kwargs"] = config
    return options


def _s3_endpoint(conn_id: str, extras: Mapping[str, Any]) -> str | None:
    """``service_config.s3.endpoint_url``, else ``endpoint_url``; other service_config entries refused."""
    service_config = extras.get("service_config") or {}
    s3_config = dict(service_config.get("s3") or {}) if isinstance(service_config, Mapping) else None
    if s3_config is None:
        raise BadConnectionError(f"connection {conn_id!r}: extra 'service_config' must be an object; {FIX}")
    endpoint = s3_config.pop("endpoint_url", None) or extras.get("endpoint_url")
    if s3_config:
        raise BadConnectionError(
            f"connection {conn_id!r}: extra 'service_config.s3' fields {sorted(s3_config)} are not honoured "
            f"without apache-airflow-providers-amazon (only 'endpoint_url' is); {FIX}")
    return str(endpoint) if endpoint else None
