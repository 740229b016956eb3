"""The pure classification of one chunk's answers (join.classify_chunk): which rows are final, which
go to the next attempt, which answers go into the request cache. The engine's collect calls the same
function (collector.py), so these pin production behaviour."""

from __future__ import annotations

from airflow_llm_batch.pipeline.join import JoinContext, RetryRule, classify_chunk
from airflow_llm_batch.pipeline.key_index import KeyEntry
from airflow_llm_batch.pipeline.parsing import OutputParser
from airflow_llm_batch.pipeline.policy import RetryPolicy
from airflow_llm_batch.pipeline.types import RawResult, RowStatus, Usage

POLICY = RetryPolicy(max_attempts=3)
ENTRIES = [KeyEntry(f"c{i}", f"k{i}", i, fingerprint=f"fp{i}") for i in range(5)]


def answers(*items: RawResult) -> dict[str, RawResult]:
    return {a.custom_id: a for a in items}


MIXED = answers(
    RawResult("c0", ok=True, text="fine", usage=Usage(3, 4)),  # succeeded
    RawResult("c1", ok=False, error_code="rate_limit_exceeded", error_message="slow down"),  # retryable
    RawResult("c2", ok=False, error_code="invalid_request_error", error_message="bad"),  # final failure
    # c3: no answer at all (missing)
    RawResult("c4", ok=True, text="also fine"),
    RawResult("stray", ok=True, text="not ours"),
)


def test_succeeded_retryable_final_and_missing_rows_each_get_their_fate() -> None:
    context = JoinContext("b1", attempt=1, retry=RetryRule(POLICY), cache_answers=True)
    outcome = classify_chunk(ENTRIES, MIXED, OutputParser(), context)
    rows = list(outcome.final_rows())
    assert [(r.key, r.status) for r in rows] == [("k0", RowStatus.SUCCEEDED), ("k2", RowStatus.FAILED),
                                                ("k4", RowStatus.SUCCEEDED)]
    assert rows[1].error == {"code": "invalid_request_error", "message": "bad"}
    assert all(r.attempts == 1 and r.batch_id == "b1" for r in rows)
    assert [(position, entry.key) for position, entry in outcome.retry] == [(1, "k1"), (3, "k3")]
    assert [(fp, a.custom_id) for fp, a in outcome.to_cache] == [("fp0", "c0"), ("fp4", "c4")]
    assert outcome.unmatched == 1


def test_the_last_attempt_keeps_every_row_final_with_its_reason() -> None:
    context = JoinContext("b1", attempt=3, retry=RetryRule(POLICY))
    outcome = classify_chunk(ENTRIES, MIXED, OutputParser(), context)
    rows = list(outcome.final_rows())
    assert [r.key for r in rows] == ["k0", "k1", "k2", "k3", "k4"] and outcome.retry == []
    assert rows[1].error == {"code": "rate_limit_exceeded", "message": "slow down"}
    assert rows[3].error == {"code": "missing_result", "message": "the provider returned no answer for this row"}
    assert outcome.to_cache == []  # the cache writes only when asked to


def test_a_tripped_breaker_retries_nothing_and_no_answer_reason_names_the_batch_state() -> None:
    rule = RetryRule(POLICY, breaker=True)
    context = JoinContext("b1", retry=rule, no_answer=("batch_expired", "the batch expired"))
    outcome = classify_chunk(ENTRIES, MIXED, OutputParser(), context)
    rows = list(outcome.final_rows())
    assert len(rows) == 5 and outcome.retry == []
    assert rows[3].error == {"code": "batch_expired", "message": "the batch expired"}


def test_rows_of_a_batch_we_cancelled_are_retried_whatever_the_codes_say() -> None:
    no_answer = ("batch_cancelled", "cancelled")
    for ours, expected in ((False, []), (True, ["k1", "k2"])):
        context = JoinContext("b1", retry=RetryRule(POLICY, cancelled_by_us=ours), no_answer=no_answer)
        outcome = classify_chunk(ENTRIES[:3], answers(MIXED["c0"]), OutputParser(), context)
        assert [r.key for r in outcome.final_rows()] == ["k0", *([] if ours else ["k1", "k2"])]
        assert [e.key for _, e in outcome.retry] == expected


def test_adopted_rows_join_on_their_id_in_the_adopted_batch_and_unanswered_ones_are_retried() -> None:
    entries = [KeyEntry(f"own{i}", f"k{i}", i, fingerprint=f"fp{i}", adopted_id=f"theirs{i}") for i in range(3)]
    theirs = answers(RawResult("theirs0", ok=True, text="from the dead run"),
                     RawResult("own1", ok=True, text="an answer under our own id is not this batch's"),
                     RawResult("theirs9", ok=True, text="another row of the adopted batch"))
    context = JoinContext("dead-batch", retry=RetryRule(POLICY), adopted=True, cache_answers=True)
    outcome = classify_chunk(entries, theirs, OutputParser(), context)
    rows = list(outcome.final_rows())
    assert [(r.key, r.custom_id, r.output) for r in rows] == [("k0", "own0", "from the dead run")]
    assert [e.key for _, e in outcome.retry] == ["k1", "k2"]
    assert [(fp, a.custom_id) for fp, a in outcome.to_cache] == [("fp0", "theirs0")]
    assert outcome.unmatched == 2


def test_a_requeued_adopted_chunk_joins_on_the_rows_own_ids() -> None:
    """Sent again by this run (the adopted batch vanished), the rows carry their own custom_ids."""
    entries = [KeyEntry("own0", "k0", 0, adopted_id="theirs0")]
    outcome = classify_chunk(entries, answers(RawResult("own0", ok=True, text="resent")), OutputParser(),
                             JoinContext("new-batch", attempt=1, retry=RetryRule(POLICY), adopted=False))
    assert [r.output for r in outcome.final_rows()] == ["resent"] and outcome.retry == []


def test_a_succeeded_row_without_fingerprint_gives_no_cache_entry() -> None:
    entries = [KeyEntry("c0", "k0", 0)]
    outcome = classify_chunk(entries, answers(RawResult("c0", ok=True, text="x")), OutputParser(),
                             JoinContext("b", cache_answers=True))
    assert len(list(outcome.final_rows())) == 1 and outcome.to_cache == []
