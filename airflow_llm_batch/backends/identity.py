"""Which service a backend talks to, as one string: the request cache reuses an answer, or adopts
a batch still in flight, only for the same endpoint identity (see pipeline/fingerprint.py).

Read from the SDK client the backend already holds, so it cannot disagree with where the requests
really go: OpenAI/Azure/Anthropic clients expose ``base_url`` (plus OpenAI's organisation and
project); google-genai keeps base URL, API version, project and location on its API client.
"""

from __future__ import annotations

from typing import Any


def client_endpoint(client: Any) -> str:
    """The endpoint identity of an SDK client (never its key).

    Example::

        >>> from openai import AsyncOpenAI
        >>> client_endpoint(AsyncOpenAI(api_key="k", base_url="http://127.0.0.1:8787/v1"))
        'http://127.0.0.1:8787/v1/|org=|project='
    """
    api = getattr(client, "_api_client", None)
    if api is not None:  # google-genai (Gemini Developer API or Vertex AI)
        options = getattr(api, "_http_options", None)
        parts = (getattr(options, "base_url", None), getattr(options, "api_version", None),
                 getattr(api, "project", None), getattr(api, "location", None))
        return "|".join(str(p or "") for p in parts)
    identity = str(getattr(client, "base_url", "") or "")
    if hasattr(client, "organization"):  # OpenAI and Azure OpenAI
        identity += f"|org={client.organization or ''}|project={getattr(client, 'project', None) or ''}"
    return identity


class ClientEndpoint:
    """A backend class attribute giving ``backend.endpoint_identity`` from ``backend.client``.

    Example: ``class MyBackend: endpoint_identity = ClientEndpoint()``
    """

    def __get__(self, backend: Any, owner: type | None = None) -> str:
        return "" if backend is None else client_endpoint(backend.client)
