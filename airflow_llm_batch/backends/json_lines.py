"""Reading the JSON Lines files providers return: one object per line, a broken line never stops a file.

Example: ``[json_object(line) for line in fh if line.strip()]`` holds None where a line is unreadable.
"""

from __future__ import annotations

from typing import Any

from airflow_llm_batch.pipeline import fast_json


def json_object(line: bytes | str) -> dict[str, Any] | None:
    """The JSON object on ``line``; None when the line is not JSON or not an object (its row gets no
    answer and ends as ``missing_result``, which the retry policy sends again)."""
    try:
        document = fast_json.loads(line)
    except ValueError:
        return None
    return document if isinstance(document, dict) else None
