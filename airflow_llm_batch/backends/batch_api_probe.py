"""Does the server behind a backend have a batch API? Found out without paying and without creating anything.

Every provider backend with a known batch API says so in its ``has_batch_api`` class attribute. An
OpenAI-compatible server (vLLM, Ollama, TGI, LM Studio, DeepSeek, Together, Groq...) may or may not
have one: the connection extra ``batch_api`` (true/false) decides, else one cheap probe,
``GET {base_url}/batches?limit=1`` with no SDK retries, cached on the backend instance:

* 404 or 405 -> no batch API (vLLM, Ollama, TGI and LM Studio answer 404);
* 2xx -> a batch API (nothing was created: it is a list call);
* anything else -> an error saying what failed and how to skip the probe: 401/403 a
  :class:`~airflow_llm_batch.exceptions.BadConnectionError` (not retried), 5xx or no connection a
  :class:`~airflow_llm_batch.exceptions.ProviderError`.

Example: ``await batch_api_available(backend)``
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import openai
from openai import AsyncOpenAI

from airflow_llm_batch.exceptions import BadConnectionError, ProviderError

#: statuses of the probe that mean "this server has no batch routes"
NO_BATCH_API_STATUSES = frozenset({404, 405})
PROBE_PATH = "/batches"


async def batch_api_available(backend: Any) -> bool:
    """Whether ``backend``'s server takes batches: its probe when it has one (``openai_compatible``:
    the connection extra, else one cached GET), else its ``has_batch_api`` class attribute."""
    probe = getattr(backend, "check_batch_api", None)
    if probe is None:
        return bool(getattr(backend, "has_batch_api", True))
    return bool(await probe())


def probe_url(client: AsyncOpenAI | openai.OpenAI) -> str:
    """The URL the probe asks (for messages): ``{base_url}/batches``."""
    return f"{str(client.base_url).rstrip('/')}{PROBE_PATH}"


def verdict(status: int, url: str, message: str) -> bool:
    """The probe's answer from an HTTP error status: False for 404/405, an error otherwise (a refused key
    is a BadConnectionError whose text leaves out the server's message: it may echo part of the key)."""
    if status in NO_BATCH_API_STATUSES:
        return False
    skip = 'or set the connection extra {"batch_api": false} (or true) so that no probe is made'
    if status in (401, 403):
        raise BadConnectionError(f"the batch-API probe GET {url}?limit=1 was refused ({status}): check the "
                                 f"connection's password (the server's key), {skip}")
    raise ProviderError(f"the batch-API probe GET {url}?limit=1 answered {status} ({message[:200]}); check the "
                        f"connection's host (the server's base URL, with /v1), {skip}", status_code=status)


async def probe_batch_routes(client: AsyncOpenAI) -> tuple[bool, str]:
    """One ``GET /batches?limit=1`` (no retries): (True, ...) on 2xx, (False, "404 on /v1/batches") on
    404/405, ProviderError otherwise. The text says what the server answered."""
    url = probe_url(client)
    path = urlsplit(url).path
    try:
        await client.with_options(max_retries=0).get(PROBE_PATH, cast_to=object, options={"params": {"limit": 1}})
    except openai.APIStatusError as exc:
        return verdict(exc.status_code, url, exc.message), f"{exc.status_code} on {path}"
    except openai.APIConnectionError as exc:
        raise ProviderError(f"cannot reach the server at {client.base_url} for the batch-API probe "
                            f"({type(exc).__name__}); check the connection's host (the base URL, with /v1)") from exc
    return True, f"{path} answered"


def no_batch_api_message(base_url: object, why: str) -> str:
    """The error of batch mode on a server without batch routes (raised before anything is sent);
    ``why`` is what said so (``404 on /v1/batches``, or the connection extra)."""
    return (f"server at {base_url} has no batch API ({why}); use mode='realtime' or 'auto' "
            f'(or set the connection extra {{"batch_api": true}} if it does have one)')
