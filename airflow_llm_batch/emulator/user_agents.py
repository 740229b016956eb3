"""Which client sent a request: the family of its ``User-Agent``, counted per provider in the stats
(``requests_by_agent``) so a test can tell, on the emulator's side, the SDK's traffic from a raw client's.

The family is the first product token without its version: ``OpenAI/Python 1.2.3`` -> ``OpenAI/Python``
(the Stainless SDKs write the language where a version would be), ``google-genai-sdk/1.20.0 gl-python/3.11``
-> ``google-genai-sdk``, ``airflow-llm-batch`` (the lean client, backends/lean_http.py) as it is; a leading
bare ``Python/3.11`` (aiohttp's default: ``Python/3.11 aiohttp/3.12``) gives way to the token after it. No
header: ``(none)``.

Example::

    >>> agent_family("AsyncAnthropic/Python 0.50.0")
    'AsyncAnthropic/Python'
"""

from __future__ import annotations

NO_AGENT = "(none)"
#: families are cut to this many characters (a header is the client's to fill)
MAX_FAMILY = 64
#: distinct User-Agent strings remembered; beyond it the memo starts over (a fuzzing client cannot grow it)
MEMO_SIZE = 256
_RUNTIMES = frozenset({"python"})
_memo: dict[str, str] = {}


def agent_family(user_agent: str | None) -> str:
    """The family of a ``User-Agent`` header value (see the module docstring); one dict lookup when seen before."""
    if not user_agent:
        return NO_AGENT
    family = _memo.get(user_agent)
    if family is None:
        if len(_memo) >= MEMO_SIZE:
            _memo.clear()
        family = _memo[user_agent] = _family(user_agent)
    return family


def _family(user_agent: str) -> str:
    tokens = user_agent.split()
    if not tokens:
        return NO_AGENT
    family = _product(tokens[0])
    if family.lower() in _RUNTIMES and len(tokens) > 1:
        family = _product(tokens[1])
    return family[:MAX_FAMILY]


def _product(token: str) -> str:
    """``name/version`` -> ``name``, unless the part after the slash is not a version (``OpenAI/Python``)."""
    name, _, version = token.partition("/")
    return f"{name}/{version}" if version and not version[0].isdigit() else name
