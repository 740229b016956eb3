"""A calibrated token estimate of the prompts of a run: exact on a sample, ``bytes * ratio`` on the rest.

An exact BPE count costs ~3 us per prompt, more than the rest of preparing a row. The token figure of a
line only sizes the cost preflight when no enqueued-token budget is set, so there the prompts of a run are
counted exactly on the first :data:`EXACT_ROWS` rows and then on one row in :data:`EVERY`; the others
are estimated as ``size * ratio``, the ratio being the sampled tokens per byte (of the run so far, or of
the last :data:`WINDOW` samples when higher) times :data:`MARGIN`, so that the estimate stays an
over-estimate within a few percent.

A BPE token is at least one byte, so a prompt of ``size`` UTF-8 bytes (or fewer) never has more than
``size`` tokens: an estimate is never above that bound. When a budget is set, the caller asks for exact
counts (``exact=True``): chunks are planned against the budget and a row over it is refused with its exact
count, so nothing is estimated there.

Example::

    sampled = SampledCount(count_text_tokens)
    tokens = sampled.tokens(prompt, size=len(prompt.encode()))   # exact on a sample, estimated otherwise
"""

from __future__ import annotations

from collections.abc import Callable

#: the first rows of a run are all counted exactly (the ratio is learned on them) ...
EXACT_ROWS = 256
#: ... then one row in this many
EVERY = 32
#: the learned tokens-per-byte ratio is raised by this factor: estimates stay above the exact sum
MARGIN = 1.05
#: samples per window: the ratio used is the larger of the run's and the last window's, so that text
#: that changes kind mid-run (English first, then CJK) raises the estimate within a few samples
WINDOW = 12


class SampledCount:
    """Token counts of the prompts of one run: exact on a sample, calibrated estimates in between."""

    def __init__(self, count: Callable[[str], int], exact_rows: int = EXACT_ROWS, every: int = EVERY,
                 margin: float = MARGIN) -> None:
        self.count, self.exact_rows, self.every, self.margin = count, exact_rows, every, margin
        self.seen = 0
        self.sampled_tokens = 0
        self.sampled_bytes = 0
        self.window = [0, 0, 0]  # samples, tokens, bytes of the window being filled
        self.window_ratio = 0.0  # tokens per byte of the last full window
        self.ratio = 1.0  # tokens per byte: the bound, until a sample says otherwise

    def tokens(self, text: str, size: int, exact: bool = False) -> int:
        """The tokens of ``text``, exact or estimated; ``size``: its UTF-8 bytes or an upper bound of them.

        The estimate is never above ``size`` (a token is at least one byte), nor below 1 for a text."""
        seen = self.seen
        self.seen = seen + 1
        if exact or seen < self.exact_rows or not seen % self.every:
            return self._sample(text, size)
        estimate = int(size * self.ratio) + 1
        return estimate if estimate < size else size

    def _sample(self, text: str, size: int) -> int:
        counted = self.count(text)
        if size <= 0:
            return counted
        self.sampled_tokens += counted
        self.sampled_bytes += size
        window = self.window
        window[0], window[1], window[2] = window[0] + 1, window[1] + counted, window[2] + size
        if window[0] >= WINDOW:
            self.window_ratio, self.window = window[1] / window[2], [0, 0, 0]
        run_ratio = self.sampled_tokens / self.sampled_bytes
        self.ratio = min(1.0, max(run_ratio, self.window_ratio) * self.margin)
        return counted
