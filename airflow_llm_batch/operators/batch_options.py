"""``batch_options``: what the provider's batch create call takes besides the requests (OpenAI and Azure
OpenAI: ``metadata`` and ``output_expires_after``). They travel to the backend with the task's
provider options (key ``batch_options``), so the trigger and the split form's handle carry them too.

Example: ``check_batch_options("t", "openai", {"metadata": {"team": "data"}})``
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

#: providers whose batch create call takes these options
PROVIDERS = frozenset({"openai", "azure_openai"})
#: the metadata keys this package sets on every batch (run_tags + the chunk's own): they win, a clash is refused
OUR_TAG_KEYS = frozenset({"dag_id", "task_id", "run_id", "map_index", "chunk", "llm_batch_tag"})
#: OpenAI takes 16 metadata pairs; ours use at most len(OUR_TAG_KEYS)
MAX_USER_METADATA = 16 - len(OUR_TAG_KEYS)
KNOWN = ("metadata", "output_expires_after")


def check_batch_options(task_id: str, provider: str, options: Mapping[str, Any] | None) -> dict[str, Any]:
    """A checked copy of ``options``; ValueError naming the task and the option otherwise."""
    if not options:
        return {}
    if provider not in PROVIDERS:
        raise ValueError(f"task {task_id!r}: batch_options are supported for {sorted(PROVIDERS)} only, "
                         f"not {provider!r}; remove them")
    unknown = sorted(set(options) - set(KNOWN))
    if unknown:
        raise ValueError(f"task {task_id!r}: batch_options {unknown} unknown; supported: {list(KNOWN)}")
    checked: dict[str, Any] = {}
    if options.get("metadata"):
        checked["metadata"] = _metadata(task_id, options["metadata"])
    if options.get("output_expires_after") is not None:
        checked["output_expires_after"] = _expiry(task_id, options["output_expires_after"])
    return checked


def _metadata(task_id: str, metadata: Any) -> dict[str, str]:
    if not isinstance(metadata, Mapping) or not all(isinstance(v, str) for v in metadata.values()):
        raise ValueError(f"task {task_id!r}: batch_options.metadata must map names to strings")
    clash = sorted(set(metadata) & OUR_TAG_KEYS)
    if clash:
        raise ValueError(f"task {task_id!r}: batch_options.metadata sets {clash}, which this package sets on "
                         f"every batch to find it again; rename them")
    if len(metadata) > MAX_USER_METADATA:
        raise ValueError(f"task {task_id!r}: batch_options.metadata has {len(metadata)} pairs; at most "
                         f"{MAX_USER_METADATA} fit beside this package's tags (OpenAI takes 16)")
    return {str(k): v for k, v in metadata.items()}


def _expiry(task_id: str, value: Any) -> dict[str, Any]:
    seconds = value.get("seconds") if isinstance(value, Mapping) else value
    anchor = value.get("anchor", "created_at") if isinstance(value, Mapping) else "created_at"
    if isinstance(seconds, bool) or not isinstance(seconds, int) or seconds <= 0 or anchor != "created_at":
        raise ValueError(f"task {task_id!r}: batch_options.output_expires_after must be seconds (int) or "
                         f"{{'anchor': 'created_at', 'seconds': N}}, got {value!r}")
    return {"anchor": anchor, "seconds": seconds}
