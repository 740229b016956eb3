"""Pausing Python's cyclic garbage collector during bulk work on tens of thousands of rows.

Holding a batch's answers (or, in the emulator, parsing or answering a 50,000-row batch) allocates
many long-lived containers; each time their count grows by a quarter the collector walks the whole
heap, the ~200,000 objects Airflow's imports left there included: 3-4 us per row of a chunk's collect.
The work done under the pause makes no reference cycles of its own, and any cycle made meanwhile is
collected once the collector is back (restored on exit, also on error; a pause inside a pause keeps
it off until the outer one ends).

Example::

    with gc_paused():
        answers = {a.custom_id: a for a in decode(lines)}
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()
