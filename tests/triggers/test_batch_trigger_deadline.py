"""LLMBatchTrigger's ``switch_at``: the trigger ends with a ``deadline`` event when the deadline's real-time
fallback is due, even between two long polls (run directly against the bundled emulator)."""

from __future__ import annotations

import json
import os
import time

from openai import OpenAI

from airflow_llm_batch.emulator import Emulator, EmulatorConfig
from airflow_llm_batch.triggers.batch import LLMBatchTrigger
from airflow_llm_batch.triggers.events import WaitOutcome
from tests.triggers.test_batch_trigger import first_event, make_batch


def test_switch_at_is_serialized() -> None:
    trigger = LLMBatchTrigger(provider="openai", conn_id="c", batch_ids=["b"], switch_at=1_700_000_000.5)
    path, kwargs = trigger.serialize()
    assert kwargs["switch_at"] == 1_700_000_000.5
    assert LLMBatchTrigger(**kwargs).serialize() == (path, kwargs)


async def test_the_trigger_ends_with_a_deadline_event_when_the_switch_is_due() -> None:
    with Emulator(EmulatorConfig(port=0, validating_seconds=0.1, requests_per_second=1.0)) as slow:
        os.environ["AIRFLOW_CONN_DEADLINE_EMULATOR"] = json.dumps(
            {"conn_type": "openai", "password": "k", "host": slow.openai_base_url})
        try:
            with OpenAI(base_url=slow.openai_base_url, api_key="k") as client:
                batch_id = make_batch(client, rows=500)
            # a poll every 10 minutes: the wait before the next poll is cut short at the switch
            trigger = LLMBatchTrigger(provider="openai", conn_id="deadline_emulator", batch_ids=[batch_id],
                                      poll_interval=600.0, timeout_at=time.time() + 3600,
                                      switch_at=time.time() + 0.5)
            event = await first_event(trigger)
        finally:
            os.environ.pop("AIRFLOW_CONN_DEADLINE_EMULATOR", None)
    assert event.outcome == WaitOutcome.DEADLINE and event.message and "real-time" in event.message
    assert [b.batch_id for b in event.batches] == [batch_id] and not event.batches[0].state.is_terminal
