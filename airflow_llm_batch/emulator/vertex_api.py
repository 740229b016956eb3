"""HTTP routes of the emulated Vertex AI batch prediction API.

Both official clients talk to it unchanged:

* google-genai with ``vertexai=True``: ``genai.Client(vertexai=True, project=P, location=L,
  credentials=google.oauth2.credentials.Credentials(token="fake"),
  http_options=HttpOptions(base_url=emulator.url))`` -> ``/v1beta1/projects/P/locations/L/...``
  (``api_version="v1"`` -> ``/v1/...``);
* google-cloud-aiplatform: ``vertexai.init(project=P, location=L, api_endpoint=emulator.url,
  api_transport="rest", credentials=...)`` -> ``/v1/...?$alt=json;enum-encoding=int`` (states are
  then answered as enum numbers, as the service does).

Routes, under ``/v1`` and ``/v1beta1`` + ``/projects/{project}/locations/{location}``:
``POST batchPredictionJobs`` (create), ``GET batchPredictionJobs`` (list: ``filter``,
``pageSize``, ``pageToken``), ``GET batchPredictionJobs/{id}``, ``POST
batchPredictionJobs/{id}:cancel``, ``DELETE batchPredictionJobs/{id}`` (ended jobs only). Any
bearer token is accepted (unless the emulator's ``api_key`` is set). Errors are Google-shaped:
``{"error": {"code": 404, "message": "...", "status": "NOT_FOUND"}}``.

Control routes (no token): ``POST /_emulator/vertex/storage`` with ``{"gcs_endpoint": URL,
"bigquery_endpoint": URL}`` points the jobs at the Cloud Storage and BigQuery emulators (see
:mod:`.vertex_storage`; ``null`` falls back to the environment), ``GET`` shows them;
:func:`set_vertex_storage` does the same from synchronous code.
"""

from __future__ import annotations

import json
import re
import urllib.request
from typing import Any

from aiohttp import web

from .faults import RETRY_AFTER_HEADERS
from .query_params import clamped, int_param
from .state import EmulatorState
from .vertex_jobs import VertexJobs
from .vertex_requests import VertexError, canonical_for_http
from .vertex_storage import VertexStorage
from .wire import json_answer

VERTEX_JOBS_KEY = web.AppKey("vertex_jobs", VertexJobs)
API_VERSIONS = ("v1", "v1beta1")
PATH_PREFIXES = tuple(f"/{version}/projects/" for version in API_VERSIONS)
CREATE_PATH = re.compile(r"^/(v1|v1beta1)/projects/[^/]+/locations/[^/]+/batchPredictionJobs$")
"""``POST`` here creates a batch prediction job: the fault plan's lost creates."""
STORAGE_ROUTE = "/_emulator/vertex/storage"
MAX_PAGE_SIZE = 1000


def error_body(status: int, message: str) -> dict[str, Any]:
    """Google-shaped error body for errors raised outside the handlers (auth, faults, unknown route)."""
    return {"error": {"code": status, "message": message, "status": canonical_for_http(status)}}


def transient_error(status: int) -> web.Response:
    """A transient error as Google APIs send it (fault plan)."""
    messages = {429: "Quota exceeded. Please try again later.", 503: "The service is currently unavailable."}
    body = error_body(status, messages.get(status, "Internal error encountered."))
    return json_answer(body, status=status, headers=dict(RETRY_AFTER_HEADERS))


def _enum_numbers(request: web.Request) -> bool:
    """aiplatform's REST transport asks for ``$alt=json;enum-encoding=int``."""
    return "enum-encoding=int" in request.query.get("$alt", "")


def _parent(request: web.Request) -> str:
    return f"projects/{request.match_info['project']}/locations/{request.match_info['location']}"


class VertexRoutes:
    """aiohttp handlers bound to one :class:`VertexJobs` store."""

    def __init__(self, store: VertexJobs) -> None:
        self.store = store

    async def create(self, request: web.Request) -> web.Response:
        try:
            payload = await request.json()
        except ValueError as exc:
            raise VertexError(400, "The request body is not valid JSON.") from exc
        job = self.store.create(_parent(request), payload)
        return json_answer(job.to_json(enum_numbers=_enum_numbers(request)))

    async def get(self, request: web.Request) -> web.Response:
        job = await self.store.get(_parent(request), request.match_info["job_id"])
        return json_answer(job.to_json(enum_numbers=_enum_numbers(request)))

    async def list_jobs(self, request: web.Request) -> web.Response:
        page_size = int_param(
            request.query.get("pageSize") or None, 100, lambda: VertexError(400, "pageSize must be an integer.")
        )
        page_size = clamped(page_size, 1, MAX_PAGE_SIZE)
        jobs, token = await self.store.list_jobs(_parent(request), request.query.get("filter", ""), page_size,
                                            request.query.get("pageToken"))
        body: dict[str, Any] = {"batchPredictionJobs": [j.to_json(enum_numbers=_enum_numbers(request)) for j in jobs]}
        if token:
            body["nextPageToken"] = token
        return json_answer(body)

    async def cancel(self, request: web.Request) -> web.Response:
        await self.store.cancel(_parent(request), request.match_info["job_id"])
        return json_answer({})

    async def delete(self, request: web.Request) -> web.Response:
        job = await self.store.delete(_parent(request), request.match_info["job_id"])
        version = request.path.split("/")[1]
        return json_answer({
            "name": f"{job.parent}/operations/{job.id}",
            "metadata": {"@type": f"type.googleapis.com/google.cloud.aiplatform.{version}.DeleteOperationMetadata",
                         "genericMetadata": {}},
            "done": True,
            "response": {"@type": "type.googleapis.com/google.protobuf.Empty"},
        })

    async def set_storage(self, request: web.Request) -> web.Response:
        try:
            payload = await request.json()
            self.store.storage = VertexStorage(payload.get("gcs_endpoint"), payload.get("bigquery_endpoint"))
        except (ValueError, AttributeError, TypeError) as exc:
            return json_answer({"error": {"message": f"Invalid storage settings: {exc}"}}, status=400)
        return await self.show_storage(request)

    async def show_storage(self, request: web.Request) -> web.Response:
        resolved = self.store.storage.resolved()
        return json_answer({"gcs_endpoint": resolved.gcs_endpoint,
                                  "bigquery_endpoint": resolved.bigquery_endpoint})

    def register(self, app: web.Application) -> None:
        for version in API_VERSIONS:
            jobs = f"/{version}/projects/{{project}}/locations/{{location}}/batchPredictionJobs"
            app.router.add_post(jobs, self.create)
            app.router.add_get(jobs, self.list_jobs)
            app.router.add_get(f"{jobs}/{{job_id:[^/:]+}}", self.get)
            app.router.add_delete(f"{jobs}/{{job_id:[^/:]+}}", self.delete)
            app.router.add_post(f"{jobs}/{{job_id:[^/:]+}}:cancel", self.cancel)
        app.router.add_post(STORAGE_ROUTE, self.set_storage)
        app.router.add_get(STORAGE_ROUTE, self.show_storage)


def add_routes(app: web.Application, state: EmulatorState) -> VertexJobs:
    """Mount the Vertex AI batch prediction routes on ``app``."""
    store = VertexJobs(state)
    app[VERTEX_JOBS_KEY] = store
    VertexRoutes(store).register(app)
    return store


def set_vertex_storage(emulator_url: str, *, gcs_endpoint: str | None = None,
                       bigquery_endpoint: str | None = None, timeout: float = 10.0) -> dict[str, Any]:
    """Point a running emulator's Vertex jobs at Cloud Storage / BigQuery emulators (blocking call).

    Example: ``set_vertex_storage(emu.url, gcs_endpoint=gcs.endpoint, bigquery_endpoint=bq.endpoint)``
    """
    body = json.dumps({"gcs_endpoint": gcs_endpoint, "bigquery_endpoint": bigquery_endpoint}).encode()
    request = urllib.request.Request(f"{emulator_url.rstrip('/')}{STORAGE_ROUTE}", data=body, method="POST",
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        result: dict[str, Any] = json.loads(response.read())
    return result
