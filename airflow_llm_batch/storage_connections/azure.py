"""``abfs://conn_id@container/...`` (``abfss://``, ``az://``) without apache-airflow-providers-microsoft-azure:
adlfs options from the official ``wasb`` or ``adls`` connection, mapped as that provider's filesystem maps them.

* extra ``connection_string``: used alone (it names the account and its credential);
* otherwise the account name is the host's first label (``acct.blob.core.windows.net`` -> ``acct``), else
  the login (a ``wasb`` connection whose host has no dot: the login);
* extra ``tenant_id`` set: a service principal, login = client id, password = client secret (extras
  ``client_id`` / ``client_secret`` also read); else the password is the account key;
* extras ``account_name``, ``account_key``, ``sas_token``, ``tenant_id``, ``anon``, ``account_host``
  override the above, as in the provider.

Refused by name: managed / workload identity ids and ``client_secret_auth_config`` (they need
azure.identity credentials the provider builds), and any extra this module does not know.

Example: ``azure_options("lake", "wasb", None, "acct", "key==", {})`` ->
``{"account_name": "acct", "account_key": "key=="}``
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from airflow_llm_batch.storage_connections.fields import expect_type, field, flag, refuse

CONN_TYPES = ("wasb", "adls")
OVERRIDES = ("account_name", "account_key", "sas_token", "tenant_id", "anon", "account_host")
HONOURED = (*OVERRIDES, "connection_string", "client_id", "client_secret")
UNSUPPORTED = {
    "managed_identity_client_id": "a user-assigned managed identity",
    "workload_identity_client_id": "a workload identity", "workload_identity_tenant_id": "a workload identity",
    "client_secret_auth_config": "options of a service principal's credential",
    "shared_access_key": "a key the provider's Blob hook reads",
}


def azure_options(conn_id: str, conn_type: str | None, host: str | None, login: str | None,
                  password: str | None, extras: Mapping[str, Any]) -> dict[str, Any]:
    """adlfs keyword arguments for connection ``conn_id``."""
    expect_type(conn_id, "abfs", conn_type, CONN_TYPES)
    refuse(conn_id, "abfs", extras, conn_type, UNSUPPORTED, HONOURED, "microsoft-azure")
    connection_string = field(extras, "connection_string", conn_type)
    if connection_string:
        return {"connection_string": connection_string}
    options: dict[str, Any] = {}
    account = _account_name(conn_type, host, login)
    if account:
        options["account_name"] = account
    tenant_id = field(extras, "tenant_id", conn_type)
    if tenant_id:
        client_id = field(extras, "client_id", conn_type) or login
        client_secret = field(extras, "client_secret", conn_type) or password
        options.update({k: v for k, v in (("client_id", client_id), ("client_secret", client_secret)) if v})
    elif password:
        options["account_key"] = password
    for name in OVERRIDES:
        value = field(extras, name, conn_type)
        if value is not None:
            options[name] = flag(value) if name == "anon" else value
    return options


def _account_name(conn_type: str | None, host: str | None, login: str | None) -> str | None:
    """The storage account: the host's first label, else the login (as the provider's filesystem reads it)."""
    hostname = urlsplit(host if "://" in host else f"//{host}").hostname if host else None
    from_host = hostname.split(".", 1)[0] if hostname else None
    if conn_type == "adls":
        return from_host or login
    if from_host and "." in (host or ""):
        return from_host
    return login or from_host
