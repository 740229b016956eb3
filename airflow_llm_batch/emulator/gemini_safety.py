"""Safety-filter answers of the emulated Gemini model, the same on the Developer API and on Vertex AI
(both return a ``GenerateContentResponse``).

Prompt markers (in the last user turn):

* ``[[emulator:blocked]]``: the prompt is blocked before any answer is generated: no
  ``candidates``, ``promptFeedback.blockReason = "SAFETY"`` with the rating that blocked it; only
  the prompt's tokens are counted.
* ``[[emulator:filtered]]``: the answer is withheld: one candidate without ``content``,
  ``finishReason = "SAFETY"`` and a rating marked ``blocked``; prompt tokens are counted.
"""

from __future__ import annotations

from typing import Any

BLOCKED_MARKER = "[[emulator:blocked]]"
FILTERED_MARKER = "[[emulator:filtered]]"
_RATING = {"category": "HARM_CATEGORY_DANGEROUS_CONTENT", "probability": "HIGH", "blocked": True}


def filtered_response(prompt: str, prompt_tokens: int) -> dict[str, Any] | None:
    """The response a safety marker in ``prompt`` asks for (without ``modelVersion``), else None."""
    usage = {"promptTokenCount": prompt_tokens, "totalTokenCount": prompt_tokens}
    if BLOCKED_MARKER in prompt:
        return {"promptFeedback": {"blockReason": "SAFETY", "safetyRatings": [dict(_RATING)]}, "usageMetadata": usage}
    if FILTERED_MARKER in prompt:
        return {"candidates": [{"finishReason": "SAFETY", "index": 0, "safetyRatings": [dict(_RATING)]}],
                "usageMetadata": usage}
    return None
