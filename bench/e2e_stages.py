"""Where one ``airflow dags test`` of an ``LLMBatchOperator`` spends its wall time, from its own log.

Every log line of ``airflow dags test`` starts with an ISO timestamp. A few lines mark the end of a
stage (the task's "Prepared N rows", each "Submitted chunk", the trigger's "Trigger completed", each
"Collected batch", "Landed"...); each stretch of time between two marker lines is counted against
the stage its END marker closes, so a task that defers more than once adds up its stretches per stage.
The measuring wrapper's own start and end (epoch seconds) close the first and last stretches.

Stages, in order (the names of the e2e table):

- ``airflow start``: from the process start to the task's first run (CLI import, DAG parse, DAG run);
- ``task start``: the task's start-up, up to its first own line (mostly the in-process execution API);
- ``prepare``: read, render and write every row, the estimate and the mode decision;
- ``submit``: upload + create of every chunk (and the defer: trigger serialized, task paused);
- ``batch wait``: from the trigger starting (after the last create) to its event;
- ``resume``: the task's second start-up after the event;
- ``collect``: download, join and store each ended chunk;
- ``land``: write the results to the destination, the summary, the report and metrics;
- ``task end``: Airflow's post-execute (XCom, state) and the process exit.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path

STAGES = ("airflow start", "task start", "prepare", "submit", "batch wait", "resume", "collect", "land", "task end")

#: (substring of a log line, the stage that line ends); the first match wins
_MARKS: tuple[tuple[str, str], ...] = (
    ("[DAG TEST] running task", "airflow start"),  # the later ones end "resume" (see stage_split)
    ("[DAG TEST] running trigger in line", "submit"),
    ("[DAG TEST] Trigger completed", "batch wait"),
    ("[DAG TEST] end task", "task end"),
    ("Prepared ", "prepare"),
    ("Run state: ", "prepare"),
    ("Mode: mode=", "prepare"),
    ("Submitted chunk ", "submit"),
    ("Pausing task as DEFERRED", "submit"),
    ("Collected batch ", "collect"),
    ("Landed ", "land"),
    ("Run report: ", "land"),
)
_STAMP = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+)Z? ")


def _marks(lines: Iterable[str]) -> list[tuple[float, str]]:
    """(epoch seconds, marker) for each marker line, with the task-start markers told apart."""
    found: list[tuple[float, str]] = []
    runs = 0
    for line in lines:
        stamp = _STAMP.match(line)
        if stamp is None:
            continue
        at = datetime.fromisoformat(stamp.group(1) + "+00:00").timestamp()
        if "::endgroup::" in line and found and found[-1][1] == "run":
            found.append((at, "task start" if runs == 1 else "resume"))  # the task's own lines begin
            continue
        stage = next((s for text, s in _MARKS if text in line), None)
        if stage == "airflow start":
            runs += 1
            found.append((at, "airflow start" if runs == 1 else "resume"))
            found.append((at, "run"))
        elif stage is not None:
            found.append((at, stage))
    return [m for m in found if m[1] != "run"]


def stretches(out: str, start: float, end: float) -> list[tuple[float, float, str]]:
    """(from, to, stage) for each stretch between two marker lines, from ``start`` to ``end`` (epoch s)."""
    found: list[tuple[float, float, str]] = []
    last = start
    for at, stage in [*_marks(out.splitlines()), (end, "task end")]:
        found.append((last, max(last, at), stage))
        last = max(last, at)
    return found


def stage_split(out: str, start: float, end: float) -> dict[str, float]:
    """Seconds per stage of one task run, from its stdout and the wrapper's start/end (epoch s)."""
    split = dict.fromkeys(STAGES, 0.0)
    for begin, until, stage in stretches(out, start, end):
        split[stage] += until - begin
    return split


def stage_peaks(out: str, start: float, end: float, samples: list[tuple[float, int]]) -> dict[str, float]:
    """The largest RSS sample (MiB) taken during each stage; ``samples``: (epoch s, RSS KiB)."""
    peaks = dict.fromkeys(STAGES, 0.0)
    spans = stretches(out, start, end)
    for at, kib in samples:
        stage = next((s for begin, until, s in spans if begin <= at <= until), "task end")
        peaks[stage] = max(peaks[stage], kib / 1024)
    return peaks


class RssSampler:
    """Samples the largest VmRSS among a process and its descendants (``/proc``; Linux only)."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.samples: list[tuple[float, int]] = []

    def sample(self) -> None:
        largest = max((_rss_kib(p) for p in _tree(self.pid)), default=0)
        if largest:
            self.samples.append((time.time(), largest))


def _tree(pid: int) -> list[int]:
    pids, todo = [], [pid]
    while todo:
        current = todo.pop()
        pids.append(current)
        try:
            for task in Path(f"/proc/{current}/task").iterdir():
                todo.extend(int(c) for c in (task / "children").read_text().split())
        except OSError:
            continue
    return pids


def _rss_kib(pid: int) -> int:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0
    line = next((x for x in status.splitlines() if x.startswith("VmRSS:")), "VmRSS: 0 kB")
    return int(line.split()[1])


def split_cells(split: dict[str, float] | None, fmt: str = "{:.1f}") -> str:
    """The stages as Markdown cells (empty cells when there is no split)."""
    if not split:
        return " |" * len(STAGES)
    return "".join(f" {fmt.format(split[s])} |" for s in STAGES)
