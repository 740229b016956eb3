"""The emulator's control routes, under ``/_emulator``: never behind the API key, never hit by faults.

``GET /_emulator/stats``, ``POST /_emulator/reset`` (zero the statistics in place),
``POST /_emulator/faults`` (body: :class:`~.faults.Fault` fields), ``DELETE /_emulator/faults``,
``POST /_emulator/fault-plan`` (body: :class:`~.faults.FaultPlan` fields; puts the plan in force and
restarts its counters), ``GET /_emulator/fault-plan`` (``{"fault_plan": {...} | null}``),
``DELETE /_emulator/fault-plan``, ``GET /_emulator/health``.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from .faults import Fault, FaultPlan
from .gateway import CONTROL_PREFIX, STATE_KEY
from .state import EmulatorState
from .wire import json_answer


async def _stats(request: web.Request) -> web.Response:
    return json_answer(request.app[STATE_KEY].stats_snapshot())


async def _reset(request: web.Request) -> web.Response:
    request.app[STATE_KEY].reset_stats()
    return json_answer({"reset": True})


async def _health(request: web.Request) -> web.Response:
    return json_answer({"status": "ok"})


async def _add_fault(request: web.Request) -> web.Response:
    try:
        payload = await request.json()
        fault = Fault(**payload)
    except (ValueError, TypeError) as exc:
        return json_answer({"error": {"message": f"Invalid fault: {exc}"}}, status=400)
    request.app[STATE_KEY].faults.append(fault)
    return json_answer({"added": True})


async def _clear_faults(request: web.Request) -> web.Response:
    request.app[STATE_KEY].faults.clear()
    return json_answer({"cleared": True})


def _plan_json(state: EmulatorState) -> dict[str, Any]:
    plan = state.fault_plan.plan
    return {"fault_plan": None if plan is None else plan.to_json()}


async def _set_fault_plan(request: web.Request) -> web.Response:
    try:
        plan = FaultPlan.from_json(await request.json())
    except (ValueError, TypeError) as exc:
        return json_answer({"error": {"message": f"Invalid fault plan: {exc}"}}, status=400)
    state = request.app[STATE_KEY]
    state.fault_plan.set(plan)
    return json_answer(_plan_json(state))


async def _get_fault_plan(request: web.Request) -> web.Response:
    return json_answer(_plan_json(request.app[STATE_KEY]))


async def _clear_fault_plan(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    state.fault_plan.set(None)
    return json_answer(_plan_json(state))


def add_control_routes(app: web.Application) -> None:
    """Mount the control routes on ``app`` (its ``STATE_KEY`` holds the state they act on)."""
    app.router.add_get(f"{CONTROL_PREFIX}/stats", _stats)
    app.router.add_post(f"{CONTROL_PREFIX}/reset", _reset)
    app.router.add_get(f"{CONTROL_PREFIX}/health", _health)
    app.router.add_post(f"{CONTROL_PREFIX}/faults", _add_fault)
    app.router.add_delete(f"{CONTROL_PREFIX}/faults", _clear_faults)
    app.router.add_post(f"{CONTROL_PREFIX}/fault-plan", _set_fault_plan)
    app.router.add_get(f"{CONTROL_PREFIX}/fault-plan", _get_fault_plan)
    app.router.add_delete(f"{CONTROL_PREFIX}/fault-plan", _clear_fault_plan)
