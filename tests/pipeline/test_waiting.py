"""The wait decision shared by the trigger's loop and the worker's (pipeline/waiting.py), driven directly."""

from __future__ import annotations

import pytest

from airflow_llm_batch.pipeline.manifest import ChunkRecord, ChunkState
from airflow_llm_batch.pipeline.types import BatchProgress, BatchState
from airflow_llm_batch.pipeline.waiting import (
    TIMEOUT_MESSAGE,
    BatchWait,
    Decision,
    WaitOutcome,
    WaitRules,
    after_error,
    after_poll,
    note_running,
)


class Refused(Exception):
    def __init__(self, status_code: int) -> None:
        super().__init__(f"HTTP {status_code}")
        self.status_code = status_code


def progress(batch_id: str, state: BatchState) -> BatchProgress:
    return BatchProgress(batch_id=batch_id, state=state, provider_status=state.value, total=10)


RULES = WaitRules(batch_ids=("a", "b"), poll_interval=10.0, deadline=1_000.0)


def test_keeps_waiting_one_interval_while_batches_run() -> None:
    assert after_poll(RULES, set(), now=0.0) == Decision(None, 10.0)
    assert after_poll(RULES, {"a"}, now=0.0) == Decision(None, 10.0)


def test_ends_when_every_watched_batch_ended_or_with_any_end_the_first() -> None:
    assert after_poll(RULES, {"a", "b"}, now=0.0).outcome == WaitOutcome.ENDED
    first = WaitRules(batch_ids=("a", "b"), poll_interval=10.0, any_end=True)
    assert after_poll(first, {"b"}, now=0.0).outcome == WaitOutcome.ENDED
    assert after_poll(first, set(), now=0.0).outcome is None
    assert after_poll(WaitRules(batch_ids=(), poll_interval=1.0), set(), now=0.0).outcome == WaitOutcome.ENDED


def test_deadline_gives_timeout_but_batches_that_ended_win() -> None:
    assert after_poll(RULES, {"a"}, now=1_000.0) == Decision(WaitOutcome.TIMEOUT, message=TIMEOUT_MESSAGE)
    assert after_poll(RULES, {"a", "b"}, now=2_000.0).outcome == WaitOutcome.ENDED
    assert after_poll(WaitRules(batch_ids=("a",), poll_interval=1.0), set(), now=1e12).outcome is None


@pytest.mark.parametrize("status", [400, 401, 403, 404])
def test_an_answer_polling_cannot_change_ends_at_once(status: int) -> None:
    decision = after_error(RULES, 1, Refused(status))
    assert decision.outcome == WaitOutcome.ERROR
    assert decision.message == f"polling failed (1 in a row): Refused: HTTP {status}"


def test_transient_failures_back_off_up_to_four_intervals_then_give_up() -> None:
    delays = [after_error(RULES, n, Refused(503)).delay for n in range(1, 6)]
    assert delays == [10.0, 20.0, 40.0, 40.0, 40.0]
    assert all(after_error(RULES, n, ConnectionError("reset")).outcome is None for n in range(1, 6))
    final = after_error(RULES, 6, ConnectionError("reset"))
    assert final.outcome == WaitOutcome.ERROR and final.message == "polling failed (6 in a row): ConnectionError: reset"


def test_a_wait_counts_failures_in_a_row_and_a_good_poll_resets_them() -> None:
    wait = BatchWait(WaitRules(batch_ids=("a",), poll_interval=1.0, max_consecutive_errors=2))
    assert wait.failed(Refused(503)).outcome is None and wait.failed(Refused(503)).outcome is None
    assert wait.polled([progress("a", BatchState.RUNNING)], now=0.0).outcome is None and wait.errors == 0
    assert wait.failed(Refused(503)).outcome is None and wait.failed(Refused(503)).outcome is None
    assert wait.failed(Refused(503)).outcome == WaitOutcome.ERROR


def test_a_wait_remembers_batches_that_ended_in_earlier_polls() -> None:
    """The worker polls only batches still open: one seen ended earlier stays ended."""
    wait = BatchWait(WaitRules(batch_ids=("a", "b"), poll_interval=1.0, deadline=100.0))
    assert wait.polled([progress("a", BatchState.COMPLETED), progress("b", BatchState.RUNNING)], 0.0).outcome is None
    assert wait.still_open == ["b"]
    timeout = wait.polled([progress("b", BatchState.RUNNING)], now=100.0)
    assert timeout.outcome == WaitOutcome.TIMEOUT
    assert [(p.batch_id, p.state) for p in wait.progress] == [("a", BatchState.COMPLETED), ("b", BatchState.RUNNING)]
    assert wait.polled([progress("b", BatchState.EXPIRED)], now=100.0).outcome == WaitOutcome.ENDED
    assert wait.ended == {"a", "b"}


STUCK_RULES = WaitRules(batch_ids=("a", "b"), poll_interval=10.0, warn_after=3600.0,
                        opened_at={"a": 0.0, "b": 3_000.0})


def test_a_batch_open_past_warn_after_is_named_once_and_the_wait_goes_on() -> None:
    wait = BatchWait(STUCK_RULES)
    running = [progress("a", BatchState.RUNNING), progress("b", BatchState.RUNNING)]
    assert wait.polled(running, now=3_599.0) == Decision(None, 10.0)
    assert wait.polled(running, now=3_600.0) == Decision(None, 10.0, stuck=("a",))
    assert wait.polled(running, now=3_700.0) == Decision(None, 10.0)  # "a" was named already
    assert wait.polled(running, now=6_600.0) == Decision(None, 10.0, stuck=("b",))
    assert wait.warned == {"a", "b"}


def test_ended_or_already_warned_batches_are_not_stuck_and_no_warn_after_means_never() -> None:
    rules = WaitRules(batch_ids=("a", "b"), poll_interval=10.0, warn_after=60.0, opened_at={"a": 0.0, "b": 0.0},
                      warned=frozenset({"b"}))
    assert after_poll(rules, {"a"}, now=100.0) == Decision(None, 10.0)
    never = WaitRules(batch_ids=("a",), poll_interval=10.0, opened_at={"a": 0.0})
    assert after_poll(never, set(), now=10**9) == Decision(None, 10.0)


def test_with_stop_on_stuck_the_wait_ends_so_the_worker_can_call_back() -> None:
    rules = WaitRules(batch_ids=("a",), poll_interval=10.0, deadline=10**9, warn_after=0.0, opened_at={"a": 5.0},
                      stop_on_stuck=True)
    decision = after_poll(rules, set(), now=5.0)
    assert decision.outcome == WaitOutcome.STUCK and decision.stuck == ("a",)
    assert decision.message is not None and "a (0.0 h)" in decision.message and "warn_after=0s" in decision.message
    assert after_poll(rules, {"a"}, now=5.0).outcome == WaitOutcome.ENDED  # ended first: not stuck


def test_stuck_rules_read_the_trigger_kwarg() -> None:
    from airflow_llm_batch.pipeline.waiting import stuck_rules

    assert stuck_rules({}) == {}
    assert stuck_rules({"warn_after": 5.0, "opened_at": {"a": 1.0}, "warned": ["b"], "stop": True}) == {
        "warn_after": 5.0, "opened_at": {"a": 1.0}, "warned": frozenset({"b"}), "stop_on_stuck": True}


def test_the_first_poll_that_sees_a_batch_running_sets_its_running_time_once() -> None:
    wait = BatchWait(RULES)
    wait.polled([progress("a", BatchState.PENDING), progress("b", BatchState.PENDING)], now=1.0)
    assert wait.running_at == {} and all(p.running_since is None for p in wait.progress)
    wait.polled([progress("a", BatchState.RUNNING), progress("b", BatchState.PENDING)], now=2.0)
    wait.polled([progress("a", BatchState.RUNNING), progress("b", BatchState.COMPLETED)], now=3.0)
    wait.polled([progress("a", BatchState.COMPLETED)], now=4.0)
    # a: first seen running at 2.0, not moved by later polls; b ended between polls: unknown
    assert wait.running_at == {"a": 2.0}
    assert [(p.batch_id, p.running_since) for p in wait.progress] == [("a", 2.0), ("b", None)]


def test_the_providers_own_start_time_wins_over_the_poll_time() -> None:
    wait = BatchWait(RULES)
    started = BatchProgress(batch_id="a", state=BatchState.COMPLETED, provider_status="completed", running_since=1.5)
    wait.polled([started], now=9.0)
    assert wait.running_at == {"a": 1.5}


def test_an_open_chunk_keeps_the_first_running_time_it_is_given() -> None:
    chunk = ChunkRecord(index=0, count=1, bytes=1, requests="c", keys="k", state=ChunkState.SUBMITTED, batch_id="a")
    assert not note_running(chunk, progress("a", BatchState.PENDING), now=1.0)
    assert not note_running(chunk, progress("a", BatchState.COMPLETED), now=1.5)
    assert chunk.running_at is None
    assert note_running(chunk, progress("a", BatchState.RUNNING), now=2.0)
    assert not note_running(chunk, progress("a", BatchState.RUNNING), now=3.0)
    assert chunk.running_at == 2.0
    carried = ChunkRecord(index=1, count=1, bytes=1, requests="c", keys="k", state=ChunkState.SUBMITTED, batch_id="b")
    ended = BatchProgress(batch_id="b", state=BatchState.COMPLETED, provider_status="completed", running_since=2.5)
    assert note_running(carried, ended, now=9.0) and carried.running_at == 2.5


def test_the_deadline_fallback_ends_the_wait_when_due_and_the_wait_before_it_is_cut_short() -> None:
    rules = WaitRules(batch_ids=("a",), poll_interval=10.0, deadline=1_000.0, switch_at=100.0)
    assert after_poll(rules, set(), now=50.0) == Decision(None, 10.0)
    assert after_poll(rules, set(), now=96.0) == Decision(None, 4.0)  # the next poll comes at the switch
    due = after_poll(rules, set(), now=100.0)
    assert due.outcome == WaitOutcome.DEADLINE and due.message
    assert after_poll(rules, {"a"}, now=100.0).outcome == WaitOutcome.ENDED  # ended batches need no switch
    assert after_poll(WaitRules(("a",), 10.0, deadline=90.0, switch_at=100.0), set(), now=100.0).outcome \
        == WaitOutcome.TIMEOUT
