"""Reading the JSON Lines files providers return: one object per line, a broken line never stops a file.

Example: ``[json_object(line) for line in fh if line.strip()]`` holds None where a line is unreadable.
"""

from __future__ import annotations

import json
from typing import Any


def json_object(line: bytes | str) -> dict[str, Any] | None:
    """The JSON object on ``line``; None when the line is not JSON or not an object (its row gets no
    answer and ends as ``missing_result``, which the retry policy sends again)."""
    try:
        document = json.loads(line)
    except ValueError:
        return None
    return document if isinstance(document, dict) else None
