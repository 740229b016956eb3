"""Configuration of the batch API emulator.

One frozen dataclass holds every knob: where to bind, how fast batches move through their
statuses, which limits the emulated services enforce, and optional fault knobs (including the
:class:`~.faults.FaultPlan` in force at start). The defaults are the real services' limits and a
pace that finishes a 1,000-request batch in about 1.5 seconds.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from .faults import FaultPlan
from .realtime_state import check_realtime_config

MIB = 1024 * 1024


@dataclass(frozen=True)
class EmulatorConfig:
    """How the emulator binds and how its batches behave.

    Timing: an OpenAI batch stays ``validating`` for ``validating_seconds``, then answers
    ``requests_per_second`` requests per second while ``in_progress``, then stays ``finalizing``
    for ``finalizing_seconds``. Anthropic batches have no validating status: they process at the
    same pace from creation and end ``finalizing_seconds`` after the last request. A cancelled
    batch stays ``cancelling``/``canceling`` for ``cancelling_seconds``.
    """

    host: str = "127.0.0.1"
    """Interface to bind. Loopback by default: the emulator has no real security."""
    port: int = 0
    """TCP port; 0 picks a free one (read it back from ``Emulator.url``)."""
    validating_seconds: float = 0.3
    """Time an OpenAI batch spends in ``validating`` before ``in_progress`` (or ``failed``)."""
    requests_per_second: float = 1000.0
    """Processing pace of a running batch."""
    finalizing_seconds: float = 0.2
    """Time between the last processed request and the batch's terminal status."""
    cancelling_seconds: float = 0.1
    """Time between a cancel call and the ``cancelled``/``ended`` status."""
    api_key: str | None = None
    """When set, every API request must carry it (``Authorization: Bearer``, ``x-api-key`` or
    ``api-key``), else 401."""
    expire_after_seconds: float | None = None
    """When set, a batch still running this long after creation expires (the real services use
    24 hours): answered rows are kept, the rest are reported as expired."""

    # OpenAI limits.
    max_requests_per_batch: int = 50_000
    """OpenAI: more lines than this in an input file fails the batch (``too_many_requests``)."""
    max_batch_file_bytes: int = 200 * MIB
    """OpenAI: an input file larger than this fails the batch (``file_too_large``)."""
    max_embedding_inputs_per_batch: int = 50_000
    """OpenAI: more embedding inputs than this across an /v1/embeddings batch fails it."""
    enqueued_token_limit: int | None = None
    """OpenAI: per-model cap on prompt tokens of unfinished batches. A batch that would go over it
    fails with ``token_limit_exceeded`` (the real limit is per organisation and tier)."""
    errors_in_output_file: bool = False
    """OpenAI: put failed rows (status >= 400) in the output file instead of the error file. The
    real service's choice is unconfirmed; clients must handle both."""

    # Anthropic limits.
    anthropic_max_requests_per_batch: int = 100_000
    """Anthropic: more requests than this in one create call is a 400."""
    anthropic_max_batch_bytes: int = 256 * MIB
    """Anthropic: a create body larger than this is a 413."""

    embedding_dimensions: int = 16
    """Length of emulated embedding vectors when a request does not ask for ``dimensions``."""

    # Real-time endpoints (see :mod:`.realtime_state`).
    realtime_latency_seconds: float = 0.0
    """Time each real-time answer takes (the request counts as in flight meanwhile)."""
    realtime_max_concurrency: int | None = None
    """When set, a real-time request beyond this many in flight is refused: 429 with Retry-After."""
    realtime_429_rate: float = 0.0
    """Share of real-time request bodies refused with a 429 on their first send (a resend succeeds)."""
    realtime_5xx_rate: float = 0.0
    """Share of real-time request bodies refused with a 500 on their first send (a resend succeeds)."""
    realtime_429_count: int = 0
    """The first N real-time request bodies (after start or a stats reset) are refused with a 429 on their
    first send, on top of ``realtime_429_rate``: an exact number of refusals (a resend succeeds)."""
    realtime_retry_delay_seconds: float | None = None
    """When set, a real-time 429 on the Gemini and Vertex routes is Google's quota error: no ``Retry-After``
    header, the delay as ``google.rpc.RetryInfo`` ``retryDelay`` in the error's ``details``."""

    batch_api: bool = True
    """False: the OpenAI ``/v1/files`` and ``/v1/batches`` routes (and Azure's) answer 404, as on vLLM,
    Ollama or TGI; chat completions, responses and embeddings still answer (an OpenAI-compatible server)."""

    fault_plan: FaultPlan | None = None
    """Fault plan in force when the emulator starts (change it at runtime with
    ``set_fault_plan``/``clear_fault_plan``); see :mod:`.faults`."""

    def __post_init__(self) -> None:
        if self.requests_per_second <= 0:
            raise ValueError("requests_per_second must be > 0")
        for name in ("validating_seconds", "finalizing_seconds", "cancelling_seconds"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0")
        if self.expire_after_seconds is not None and self.expire_after_seconds <= 0:
            raise ValueError("expire_after_seconds must be > 0 when set")
        if self.fault_plan is not None and not isinstance(self.fault_plan, FaultPlan):
            raise TypeError("fault_plan must be a FaultPlan")
        check_realtime_config(self)
        if not 0 <= self.port <= 65535:
            raise ValueError("port must be in 0..65535")
        for name in (
            "max_requests_per_batch",
            "max_batch_file_bytes",
            "max_embedding_inputs_per_batch",
            "anthropic_max_requests_per_batch",
            "anthropic_max_batch_bytes",
            "embedding_dimensions",
        ):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1")

    def replace(self, **changes: object) -> EmulatorConfig:
        """Return a copy with some fields changed."""
        return dataclasses.replace(self, **changes)  # type: ignore[arg-type]
