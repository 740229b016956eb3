"""Whether a connection's server has a batch API: the one call site ``mode="auto"`` (and ``mode="batch"``)
asks. Today the backend's class says it (``has_batch_api``); a server-specific probe may replace the
body, keeping the signature.

Example: ``if not await batch_api_available(run.backend): ...``
"""

from __future__ import annotations

from typing import Any


async def batch_api_available(backend: Any) -> bool:
    """True when ``backend`` can create batches (a backend that does not say is assumed to)."""
    return bool(getattr(backend, "has_batch_api", True))
