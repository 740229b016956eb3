"""State shared by every emulated provider: config, clock, ids and statistics.

All state lives in memory and is only touched from the server's event loop, so no locks are
needed. Batch progress is computed from the clock (see :mod:`.lifecycle`), never advanced by
background tasks: whoever looks at a batch first brings it up to date, which keeps the emulator
deterministic and idle when nobody polls.
"""

from __future__ import annotations

import dataclasses
import secrets
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from airflow_llm_batch.pipeline.gc_pause import gc_paused as gc_paused

from .config import EmulatorConfig
from .faults import Fault as Fault
from .faults import FaultPlanState
from .realtime_state import RealtimeCounters

Clock = Callable[[], float]




class ApiError(Exception):
    """An HTTP error answer. Each provider subclasses it with its own JSON error shape."""

    status: int

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message

    def body(self) -> dict[str, Any]:
        """JSON body of the error answer."""
        return {"error": {"message": self.message}}


@dataclass
class ProviderStats:
    """What a provider was asked to do, to prove in tests that nothing was paid twice.

    ``requests_by_custom_id`` counts, per custom_id, the times it appeared in a created batch
    (across all batches, including batches that later fail validation);
    ``accepted_requests_by_custom_id`` only counts batches that passed validation, i.e. requests
    that would be processed and billed. ``succeeded_by_custom_id`` counts the successful
    (billable) answers delivered, counted when a batch ends (completed, expired or cancelled) and
    its results are produced: a client that never pays twice keeps every value at 1 or below.
    A line the fault plan writes broken is not a delivered answer (see ``malformed_lines``).

    ``api_requests`` counts the API requests of this provider that passed the API key check,
    ``refused_requests`` the ones answered 401 by it;
    ``http_errors_injected`` (and ``http_errors_by_status``) the ones answered with an injected
    error (fault plan or :class:`~.faults.Fault`); ``row_errors_injected`` the rows failed by the
    fault plan; ``create_answers_lost`` the creates that worked whose answer the fault plan lost
    (``lost_creates`` / ``hung_creates``: the batch exists and counts in ``batches_created``).
    ``requests_by_agent`` splits ``api_requests`` by the family of their ``User-Agent``
    (:func:`~.user_agents.agent_family`: ``OpenAI/Python``, ``google-genai-sdk``, ``airflow-llm-batch``...).
    """

    batches_created: int = 0
    files_uploaded: int = 0
    batches: list[str] = field(default_factory=list)
    requests_by_custom_id: Counter[str] = field(default_factory=Counter)
    accepted_requests_by_custom_id: Counter[str] = field(default_factory=Counter)
    succeeded_by_custom_id: Counter[str] = field(default_factory=Counter)
    batches_failed_validation: int = 0
    api_requests: int = 0
    refused_requests: int = 0
    http_errors_injected: int = 0
    http_errors_by_status: Counter[str] = field(default_factory=Counter)
    row_errors_injected: int = 0
    malformed_lines: int = 0
    create_answers_lost: int = 0
    requests_by_agent: Counter[str] = field(default_factory=Counter)

    def clear(self) -> None:
        """Zero every counter in place: the provider modules hold this object, not a copy."""
        fresh = ProviderStats()
        for name in (f.name for f in dataclasses.fields(self)):
            setattr(self, name, getattr(fresh, name))

    def snapshot(self) -> dict[str, Any]:
        """A JSON-ready copy."""
        return {
            "batches_created": self.batches_created,
            "files_uploaded": self.files_uploaded,
            "batches": list(self.batches),
            "requests_by_custom_id": dict(self.requests_by_custom_id),
            "accepted_requests_by_custom_id": dict(self.accepted_requests_by_custom_id),
            "succeeded_by_custom_id": dict(self.succeeded_by_custom_id),
            "batches_failed_validation": self.batches_failed_validation,
            "api_requests": self.api_requests,
            "refused_requests": self.refused_requests,
            "http_errors_injected": self.http_errors_injected,
            "http_errors_by_status": dict(self.http_errors_by_status),
            "row_errors_injected": self.row_errors_injected,
            "malformed_lines": self.malformed_lines,
            "create_answers_lost": self.create_answers_lost,
            "requests_by_agent": dict(self.requests_by_agent),
        }


class EmulatorState:
    """Config, clock, id factory, faults and per-provider statistics of one emulator instance."""

    def __init__(self, config: EmulatorConfig, clock: Clock = time.time) -> None:
        self.config = config
        self.clock = clock
        self._stats: dict[str, ProviderStats] = {}
        self._sequence = 0
        self.faults: list[Fault] = []
        self.fault_plan = FaultPlanState(config.fault_plan)
        self.realtime = RealtimeCounters()

    def now(self) -> float:
        """Current time in Unix seconds."""
        return self.clock()

    def next_sequence(self) -> int:
        """A number that grows with every call: orders objects by creation."""
        self._sequence += 1
        return self._sequence

    @staticmethod
    def new_id(prefix: str, length: int = 24) -> str:
        """A fresh random identifier such as ``batch_6f1c...``."""
        return prefix + secrets.token_hex(length // 2)

    def stats_for(self, provider: str) -> ProviderStats:
        """The statistics of ``provider``, created on first use."""
        stats = self._stats.get(provider)
        if stats is None:  # not setdefault: that would build a ProviderStats on every call
            stats = self._stats[provider] = ProviderStats()
        return stats

    def stats_snapshot(self) -> dict[str, Any]:
        """JSON-ready statistics of every registered provider."""
        return {**{name: stats.snapshot() for name, stats in self._stats.items()}, "realtime": self.realtime.snapshot()}

    def take_fault(self, method: str, path: str) -> Fault | None:
        """The first injected fault matching the request, consuming one of its uses."""
        for fault in self.faults:
            if fault.matches(method, path):
                fault.count -= 1
                return fault
        return None

    def reset_stats(self) -> None:
        """Zero every provider's statistics in place (batches and files stay).

        The provider stores keep the :class:`ProviderStats` they got from :meth:`stats_for`, so the
        objects are cleared, never replaced: counting goes on after a reset.
        """
        for stats in self._stats.values():
            stats.clear()
        self.realtime.clear()
