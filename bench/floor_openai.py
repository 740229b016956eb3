#!/usr/bin/env python
"""The floor: what a hand-written script with the official OpenAI SDK does, with no Airflow.

Build every request line, upload and create one batch per 50,000 rows, poll every second until all
end, download each output file, parse the answers and join them to the rows by custom_id, write one
result line per row. Serial, as a script written in an afternoon would be.

Usage::

    .venv/bin/python bench/floor_openai.py --rows rows.jsonl --base-url http://127.0.0.1:8787/v1 --out out.jsonl
"""

from __future__ import annotations

import argparse
import io
import json
import sys
import time
from pathlib import Path

from openai import OpenAI

CHUNK = 50_000
DONE = {"completed", "failed", "expired", "cancelled"}


def build_chunks(rows_file: Path, model: str) -> list[bytes]:
    chunks: list[bytes] = []
    lines: list[str] = []
    with rows_file.open() as fh:
        for raw in fh:
            row = json.loads(raw)
            lines.append(json.dumps({"custom_id": row["id"], "method": "POST", "url": "/v1/chat/completions",
                                     "body": {"model": model,
                                              "messages": [{"role": "user", "content": row["text"]}]}}))
            if len(lines) == CHUNK:
                chunks.append(("\n".join(lines) + "\n").encode())
                lines = []
    if lines:
        chunks.append(("\n".join(lines) + "\n").encode())
    return chunks


def run(rows_file: Path, base_url: str, out: Path, model: str, poll: float) -> int:
    client = OpenAI(base_url=base_url, api_key="bench-key")
    batch_ids = []
    for i, body in enumerate(build_chunks(rows_file, model)):
        upload = client.files.create(file=(f"chunk{i}.jsonl", body), purpose="batch")
        batch_ids.append(client.batches.create(input_file_id=upload.id, endpoint="/v1/chat/completions",
                                               completion_window="24h").id)
    batches = {}
    while len(batches) < len(batch_ids):
        time.sleep(poll)
        for batch_id in batch_ids:
            batch = client.batches.retrieve(batch_id)
            if batch.status in DONE:
                batches[batch_id] = batch
    answers: dict[str, str] = {}
    for batch in batches.values():
        if batch.output_file_id:
            text = client.files.content(batch.output_file_id).text
            for line in io.StringIO(text):
                if line.strip():
                    item = json.loads(line)
                    answers[item["custom_id"]] = item["response"]["body"]["choices"][0]["message"]["content"]
    ok = 0
    with rows_file.open() as fh, out.open("w") as dest:
        for raw in fh:
            row = json.loads(raw)
            answer = answers.get(row["id"])
            ok += answer is not None
            dest.write(json.dumps({"id": row["id"], "status": "succeeded" if answer is not None else "failed",
                                   "output": answer}) + "\n")
    client.close()
    print(f"floor: {ok} succeeded in {len(batch_ids)} batch(es)")
    return ok


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=Path, required=True, help="JSONL file of {id, text} rows")
    ap.add_argument("--base-url", required=True)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--model", default="gpt-4o-mini")
    ap.add_argument("--poll", type=float, default=1.0)
    args = ap.parse_args(argv)
    run(args.rows, args.base_url, args.out, args.model, args.poll)
    return 0


if __name__ == "__main__":
    sys.exit(main())
