"""Driving a BatchRun to its end in a test, as the operator's tries do: poll, collect, finalize and
send what is due, until every chunk is done."""

from __future__ import annotations

import asyncio

from airflow_llm_batch.pipeline.manifest import Manifest
from airflow_llm_batch.pipeline.parsing import OutputParser
from airflow_llm_batch.pipeline.run import BatchRun


async def drive(run: BatchRun, manifest: Manifest, parser: OutputParser | None = None) -> Manifest:
    """Poll, collect and finalize ``manifest`` (and submit what is due: retry chunks, held chunks)
    every 50 ms until it is done; returns it."""
    parser = parser or OutputParser()
    while not manifest.is_done:
        await run.poll(manifest)
        await run.collect(manifest, parser)
        run.finalize(manifest, parser)
        await run.submit(manifest)
        await asyncio.sleep(0.05)
    return manifest
