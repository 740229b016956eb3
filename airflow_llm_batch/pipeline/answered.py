"""Results of rows answered without a batch: from the request cache, or by an identical request of
the same run (the "leader", whose final result the repeats share). See routing.py for how rows get
here; this module writes their result rows once every chunk is collected."""

from __future__ import annotations

import json
import os
import sqlite3
import tempfile
from collections import Counter
from collections.abc import Iterable, Iterator
from functools import partial
from typing import Any

import msgspec
import orjson

from airflow_llm_batch.pipeline import fast_json
from airflow_llm_batch.pipeline.join import to_result_row
from airflow_llm_batch.pipeline.key_index import KeyEntry
from airflow_llm_batch.pipeline.parsing import OutputParser
from airflow_llm_batch.pipeline.plain_record import PLAIN_ENCODER, PLAIN_REFUSED, PLAIN_STATUS, PlainRecord
from airflow_llm_batch.pipeline.prices import ModelPrice
from airflow_llm_batch.pipeline.record_cost import COST_KEY, RecordPricer
from airflow_llm_batch.pipeline.routing import CACHED_FILE, FOLLOWERS_FILE, answer_from_dict
from airflow_llm_batch.pipeline.storage import AtomicWriter, StoragePath
from airflow_llm_batch.pipeline.types import ResultRow, RowStatus, Usage, result_record


def cached_rows(folder: StoragePath, parser: OutputParser) -> Iterator[ResultRow]:
    """One result per cache hit: the stored answer parsed anew, nothing paid now."""
    with (folder / CACHED_FILE).open("rb") as fh:
        for line in fh:
            item = fast_json.loads(line)
            entry = KeyEntry.from_json(item["entry"])
            row = to_result_row(entry, answer_from_dict(entry.custom_id, item["answer"]), parser, None,
                                "missing_result", "")
            row.usage, row.cached = Usage(), True
            yield row


def repeat_rows(folder: StoragePath, leaders: Iterable[ResultRow]) -> Iterator[ResultRow]:
    """One result per repeated request: its leader's final result under the repeat's own key.

    Leaders are indexed by fingerprint in an SQLite file, so memory stays flat for any row count.
    """
    with tempfile.TemporaryDirectory(prefix="llm-batch-fanout-") as tmp:
        db = sqlite3.connect(os.path.join(tmp, "leaders.db"))
        try:
            db.execute("CREATE TABLE leaders (fp TEXT PRIMARY KEY, row TEXT)")
            db.executemany("INSERT OR REPLACE INTO leaders VALUES (?, ?)",
                           ((r.extra["fingerprint"], json.dumps(r.to_dict(), default=str))
                            for r in leaders if "fingerprint" in r.extra))
            with (folder / FOLLOWERS_FILE).open("rb") as fh:
                for line in fh:
                    item = json.loads(line)
                    found = db.execute("SELECT row FROM leaders WHERE fp = ?", (item["f"],)).fetchone()
                    yield _repeat_row(KeyEntry.from_json(item["entry"]), json.loads(found[0]) if found else None)
        finally:
            db.close()


def _repeat_row(entry: KeyEntry, leader: dict[str, Any] | None) -> ResultRow:
    """The result of a row whose request repeats ``leader``'s: the same answer, nothing paid."""
    if leader is None:  # only if the workspace was edited by hand: still one result for the row
        return ResultRow(key=entry.key, status=RowStatus.FAILED, custom_id=entry.custom_id,
                         error={"code": "missing_result", "message": "the identical request's result is missing"})
    row = ResultRow.from_dict(leader)
    row.key, row.custom_id, row.cached, row.usage = entry.key, entry.custom_id, True, Usage()
    row.extra = {**row.extra, **(entry.carry or {}), "repeat_of": leader["key"]}
    return row


#: results bytes gathered for one ``write`` (~128 KiB): an fsspec file's write is a Python call per line
WRITE_BYTES = 1 << 17


def write_results(path: StoragePath, rows: Iterable[ResultRow | dict[str, Any] | PlainRecord], *,
                  price: ModelPrice | None = None, answered_by: str | None = None) -> dict[str, int]:
    """Write ``rows`` as the results file ``path``; return their counts: per status, ``error:<code>``
    per failure code, and the token totals (``tokens_input``, ``tokens_output``, ``tokens_cached``).

    Each item comes as ``ChunkOutcome.final_records`` yields it: a ``PlainRecord`` (most rows, written by
    msgspec), a dict laid out as ``ResultRow.to_dict`` writes it (its fields its own), or a row (whose
    carried columns replace a field: its ``to_dict`` is written, its own fields counted).

    With a ``price``, each line is what landing writes for the row (so landing can copy the file): the
    record as ``result_record(record, answered_by)`` gives it, with ``cost_usd``; a record with its
    ``cost_usd`` already was priced so by the join (``JoinContext.pricer``)."""
    statuses: Counter[str] = Counter()
    errors: Counter[str] = Counter()
    tokens_in = tokens_out = tokens_cached = plain = 0
    encode_into, unset = PLAIN_ENCODER.encode_into, msgspec.UNSET
    other_line = partial(_record_line, RecordPricer(price) if price is not None else None, answered_by, statuses,
                         errors)
    with AtomicWriter(path) as fh:
        buffer = bytearray()  # written WRITE_BYTES at a time: a file's write may be a Python call
        for row in rows:
            if type(row) is PlainRecord and (price is None or row.cost_usd is not unset):
                plain += 1
                usage = row.usage
                tokens_in += usage.input_tokens
                tokens_out += usage.output_tokens
                tokens_cached += usage.cached_input_tokens
                end = len(buffer)
                try:
                    encode_into(row, buffer, -1)
                except PLAIN_REFUSED:  # a lone surrogate: the dict, written by fast_json
                    del buffer[end:]
                    buffer += fast_json.dumps(row.to_dict())
                buffer += b"\n"
            else:
                line, (row_in, row_out, row_cached) = other_line(row)
                buffer += line
                tokens_in += row_in
                tokens_out += row_out
                tokens_cached += row_cached
            if len(buffer) >= WRITE_BYTES:
                fh.write(bytes(buffer))
                buffer.clear()
        fh.write(bytes(buffer))
    if plain:
        statuses[PLAIN_STATUS] += plain
    if not statuses:
        return {}
    return {**statuses, **errors, "tokens_input": tokens_in, "tokens_output": tokens_out,
            "tokens_cached": tokens_cached}


def _record_line(pricer: RecordPricer | None, answered_by: str | None, statuses: Counter[str], errors: Counter[str],
                 row: ResultRow | dict[str, Any] | PlainRecord) -> tuple[bytes, tuple[int, int, int]]:
    """(line, (input, output, cached tokens)) of a row that is not a plain record ready to write, its status
    and error code counted: a dict record (its own fields), a ResultRow (a carried column may replace a field
    of its record: the row's own are counted), or a plain record the join did not price when the file is."""
    if type(row) is dict:
        record, status, error, counts = row, row["status"], row["error"], row["usage"]
        tokens = (counts["input_tokens"], counts["output_tokens"], counts["cached_input_tokens"])
    elif isinstance(row, PlainRecord):
        record, status, error, plain = row.to_dict(), row.status, None, row.usage
        tokens = (plain.input_tokens, plain.output_tokens, plain.cached_input_tokens)
    else:
        assert isinstance(row, ResultRow)
        record, status, error, usage = row.to_dict(), row.status.value, row.error, row.usage
        tokens = (usage.input_tokens, usage.output_tokens, usage.cached_input_tokens)
    if pricer is not None and COST_KEY not in record:
        record = pricer(result_record(record, answered_by))
    statuses[status] += 1
    if error:
        errors[f"error:{error['code']}"] += 1
    try:  # orjson itself (fast_json.dumps's fallback, for big ints and lone surrogates)
        return orjson.dumps(record, default=str, option=fast_json.LINE_OPTIONS), tokens
    except TypeError:
        return fast_json.dumps_line(record), tokens
