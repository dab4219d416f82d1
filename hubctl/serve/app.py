"""The FastAPI app of ``hubctl serve``: the /v1 routes, the gallery page at ``/`` and the OpenAPI document.

Owns the HTTP surface: ``POST /v1/generate``, ``GET /v1/runs``, ``GET /v1/runs/{id}``,
``GET /v1/runs/{id}/images/{k}.png``, ``POST /v1/runs/{id}/replay``, ``GET /v1/lock``, ``GET /v1/health``,
``GET /openapi.json`` and ``GET /``; mapping hubctl's errors to status codes (bad input 422, refused 409,
unknown run 404, full queue 429 with Retry-After, not loaded yet 503); the request guards (body size, JSON
content type on POST, the Host header of a loopback server, a foreign Origin); starting the pipeline load and
the queue's worker with the app. Inference is hubctl.run.batch (called on the queue's device thread); what
a request may ask is hubctl.serve.models; the page is hubctl.serve.gallery. Serves only images written under
its own output folder, and only the PNG whose sha256 the run record holds.
"""

# No `from __future__ import annotations`: FastAPI reads the route functions' annotations, which name classes
# local to create_app.

import asyncio
import hashlib
import json
import secrets
import threading
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

from hubctl.errors import BadInput, HubctlError, Refused
from hubctl.serve.config import Limits, is_loopback
from hubctl.serve.queue import Job, QueueFull, WorkQueue

__all__ = ["ServeState", "create_app", "image_url"]


@dataclass
class ServeState:
    """Everything the app serves from: the verified set, where images go, the limits, the token (or None)."""

    vset: Any  # hubctl.run.verify.VerifiedSet, verified before the socket was bound
    out_dir: Path
    limits: Limits = field(default_factory=Limits)
    token: str | None = None
    lock_path: str = ""
    device: str = "auto"
    dtype: str = "auto"
    attention: str = "auto"
    loaded: Any = None  # hubctl.run.batch.LoadedSet once the pipeline is loaded
    load_error: BaseException | None = None
    on_fatal: Callable[[], None] = lambda: None  # stop the server (the pipeline could not load)
    on_ready: Callable[[Any], None] = lambda loaded: None
    queue: WorkQueue | None = None


def image_url(run_id: str, k: int) -> str:
    return f"/v1/runs/{run_id}/images/{k}.png"


# --------------------------------------------------------------------------------------------------------
# request guards (plain ASGI, before routing)


class _Guard:
    """Body size limit (413), ``Content-Type: application/json`` on POST (415), a loopback server answers only
    to loopback Host names (DNS rebinding; 421), and a browser's foreign ``Origin`` is refused (403)."""

    def __init__(self, app: Any, *, max_body: int, check_host: bool) -> None:
        self.app, self.max_body, self.check_host = app, max_body, check_host

    async def _reply(self, send: Any, status: int, detail: str) -> None:
        body = json.dumps({"detail": detail}).encode()
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        host = headers.get("host", "")
        hostname = host.rsplit(":", 1)[0] if not host.endswith("]") else host
        if self.check_host and not is_loopback(hostname):
            return await self._reply(send, 421, "this server answers to 127.0.0.1 / localhost only")
        origin = headers.get("origin")
        if origin is not None and origin.split("://", 1)[-1].rstrip("/") != host:
            return await self._reply(send, 403, "cross-origin requests are not allowed")
        if scope["method"] not in ("POST", "PUT", "PATCH"):
            return await self.app(scope, receive, send)
        ctype = headers.get("content-type", "").split(";")[0].strip().lower()
        if ctype != "application/json":
            return await self._reply(send, 415, "send the body as application/json")
        declared = headers.get("content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_body):
            return await self._reply(send, 413, f"the body is larger than {self.max_body} bytes")
        chunks, size = [], 0
        while True:
            msg = await receive()
            if msg["type"] != "http.request":
                return  # the client left while sending
            chunks.append(msg.get("body", b""))
            size += len(chunks[-1])
            if size > self.max_body:
                return await self._reply(send, 413, f"the body is larger than {self.max_body} bytes")
            if not msg.get("more_body"):
                break
        pending = [{"type": "http.request", "body": b"".join(chunks), "more_body": False}]

        async def replay() -> dict:
            return pending.pop() if pending else await receive()

        return await self.app(scope, replay, send)


# --------------------------------------------------------------------------------------------------------
# the device side (runs on the queue's worker thread)


def _runner(state: ServeState) -> Callable[[list[Job]], list[Any]]:
    from hubctl.run.batch import generate_batch, replay_on

    def run(jobs: list[Job]) -> list[Any]:
        first = jobs[0]
        if first.payload["kind"] == "replay":
            return [replay_on(state.loaded, first.payload["run_id"], first.payload["image"], out_dir=state.out_dir)]
        items = [it for j in jobs for it in j.payload["items"]]
        rec = generate_batch(state.loaded, items, first.payload["settings"], out_dir=state.out_dir)
        out, start = [], 0
        for j in jobs:
            out.append({"record": rec, "indices": list(range(start, start + j.size))})
            start += j.size
        return out

    return run


async def _until_disconnected(request: Any) -> None:
    while not await request.is_disconnected():
        await asyncio.sleep(0.05)


class _ClientGone(Exception):
    pass


async def _wait(queue: WorkQueue, job: Job, request: Any) -> Any:
    """The job's result; a client that leaves before its job starts takes the job with it."""
    fut = queue.submit(job)
    watcher = asyncio.ensure_future(_until_disconnected(request))
    try:
        done, _ = await asyncio.wait({fut, watcher}, return_when=asyncio.FIRST_COMPLETED)
        if fut not in done and queue.cancel(job):
            raise _ClientGone()
        return await asyncio.shield(fut)  # started: it finishes (its images belong to a shared batch)
    except asyncio.CancelledError:
        queue.cancel(job)
        raise
    finally:
        watcher.cancel()


# --------------------------------------------------------------------------------------------------------
# the app


def create_app(state: ServeState) -> Any:
    """The FastAPI app for ``state`` (the pipeline loads in a background thread when the app starts)."""
    from fastapi import Depends, FastAPI, Path as PathParam, Query, Request
    from fastapi.responses import HTMLResponse, JSONResponse, Response

    from hubctl.run import records as runs
    from hubctl.run.batch import BatchItem, BatchSettings, load_set
    from hubctl.run.pipeline import SAMPLERS
    from hubctl.serve.auth import bearer_dependency
    from hubctl.serve.gallery import CSP, render_page, run_summary
    from hubctl.serve.models import GenerateOut, ReplayBody, ReplayOut, RUN_ID_PATTERN, generate_model

    limits = state.limits
    out_root = state.out_dir.resolve()
    lora_names = [a.name for a in state.vset.of_kind("lora")]
    GenerateBody = generate_model(limits, lora_names, list(SAMPLERS))
    queue = state.queue = WorkQueue(_runner(state), max_queue=limits.max_queue, max_batch=limits.max_batch,
                                    window=limits.batch_window)

    def load() -> None:
        try:
            state.loaded = load_set(vset=state.vset, lock_path=state.lock_path or None, device=state.device,
                                    dtype=state.dtype, attention=state.attention)
            state.on_ready(state.loaded)
        except BaseException as e:  # noqa: BLE001 - reported by the CLI once the server stopped
            state.load_error = e
            state.on_fatal()

    @asynccontextmanager
    async def lifespan(_app: Any):  # type: ignore[no-untyped-def]
        worker = asyncio.ensure_future(queue.run())
        if state.loaded is None:
            threading.Thread(target=load, name="hubctl-load", daemon=True).start()
        try:
            yield
        finally:
            queue.close()
            worker.cancel()

    app = FastAPI(title="hubctl serve", version="1", lifespan=lifespan, docs_url=None, redoc_url=None,
                  description="A locked, verified diffusion set behind a JSON API. Every image is a PNG with its A1111 "
                              "parameters and hubctl provenance; every run is recorded as `hubctl generate` records it.")
    auth = [Depends(bearer_dependency(state.token))]

    @app.exception_handler(HubctlError)
    async def _hubctl_error(_request: Request, e: HubctlError) -> JSONResponse:
        status = 422 if isinstance(e, BadInput) else 409 if isinstance(e, Refused) else 500
        return JSONResponse({"detail": str(e)}, status_code=status)

    def ready() -> Any:
        if state.loaded is None:
            raise _NotReady()
        return state.loaded

    class _NotReady(Exception):
        pass

    @app.exception_handler(QueueFull)
    async def _full(_request: Request, e: QueueFull) -> JSONResponse:
        return JSONResponse({"detail": str(e)}, status_code=429, headers={"Retry-After": str(e.retry_after)})

    @app.exception_handler(_ClientGone)
    async def _gone(_request: Request, _e: Exception) -> Response:
        return Response(status_code=499)  # nobody reads it: the client left before its work started

    @app.exception_handler(_NotReady)
    async def _not_ready(_request: Request, _e: Exception) -> JSONResponse:
        return JSONResponse({"detail": "the pipeline is still loading"}, status_code=503, headers={"Retry-After": "2"})

    def find_run(run_id: str) -> Any:
        try:
            rec = runs.get_run(run_id)
        except BadInput:
            rec = None
        if rec is None or rec.id != run_id or not _inside(rec.out_path):
            raise _NoRun(run_id)
        return rec

    class _NoRun(Exception):
        pass

    @app.exception_handler(_NoRun)
    async def _no_run(_request: Request, e: Exception) -> JSONResponse:
        return JSONResponse({"detail": f"no run {e.args[0]!r} on this server"}, status_code=404)

    def _inside(path: str) -> bool:
        try:
            return Path(path).resolve().is_relative_to(out_root)
        except (OSError, ValueError):
            return False

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def page() -> HTMLResponse:
        return HTMLResponse(render_page(mode="live"), headers={"Content-Security-Policy": CSP, "X-Content-Type-Options": "nosniff",
                                                               "Referrer-Policy": "no-referrer", "Cache-Control": "no-store"})

    @app.get("/v1/health")
    async def health() -> JSONResponse:
        """200 once the lock is verified and the pipeline loaded; 503 before (and when loading failed)."""
        if state.loaded is None:
            status = "failed" if state.load_error else "loading"
            return JSONResponse({"status": status, "lock_digest": state.vset.lock_digest}, status_code=503)
        return JSONResponse({"status": "ready", "lock_digest": state.vset.lock_digest, "device": state.loaded.asm.device,
                             "timings": state.loaded.timings, "queue": queue.snapshot()})

    @app.get("/v1/lock", dependencies=auth)
    async def lock() -> dict[str, Any]:
        """The locked set being served: every package and file with its sha256, the LoRAs a request may weight."""
        vset, loaded = state.vset, state.loaded
        pkgs = [{k: p.get(k) for k in ("name", "version", "kind", "family", "variant", "prediction", "layout", "dtype", "tokens")}
                | {"files": [{"path": f["path"], "size": f["size"], "sha256": f["sha256"]} for f in p.get("files", [])]}
                for p in vset.packages_json]
        out = {"lock_digest": vset.lock_digest, "base": vset.base.label, "model_hash": vset.base.model_hash, "packages": pkgs,
               "loras": lora_names, "embeddings": {a.name: list(a.tokens) for a in vset.of_kind("embedding")},
               "samplers": list(SAMPLERS), "limits": asdict(limits), "ready": loaded is not None}
        if loaded is not None:
            out.update(device=loaded.asm.device, dtype=loaded.asm.dtype, attention=loaded.asm.attention.backend,
                       sampler=loaded.asm.sampler, default_size=list(loaded.default_size))
        return out

    @app.post("/v1/generate", dependencies=auth, response_model=GenerateOut,
              responses={429: {"description": "the queue is full (see Retry-After)"}, 503: {"description": "still loading"}})
    async def generate(body: GenerateBody, request: Request) -> Any:  # type: ignore[valid-type]
        """Queue images for one prompt; they run in one batch, with other requests of the same size, steps, guidance,
        sampler and LoRA weights. Answers when the images are written and recorded."""
        loaded = ready()
        b: Any = body
        settings = loaded.resolve(BatchSettings(
            steps=b.steps, guidance=b.guidance, width=b.width, height=b.height, sampler=b.sampler,
            loras=None if b.loras is None else tuple(b.loras.items())))
        seed = b.seed if b.seed is not None else secrets.randbelow(2**32)
        items = [BatchItem(prompt=b.prompt, negative=b.negative, seed=(seed + i) % 2**32) for i in range(b.images)]
        job = Job(key=settings, size=len(items), payload={"kind": "generate", "items": items, "settings": settings})
        res = await _wait(queue, job, request)
        rec = res["record"]
        return {"run_id": rec["id"], "run_url": f"/v1/runs/{rec['id']}", "batch_size": len(rec["images"]),
                "model_hash": rec["model_hash"], "lock_digest": rec["lock_digest"],
                "queue_seconds": round(job.started - job.enqueued, 3), "seconds": rec["seconds"],
                "images": [{"index": k, "seed": rec["images"][k]["seed"], "url": image_url(rec["id"], k),
                            "image_sha256": rec["images"][k]["image_sha256"], "parameters": rec["parameters"][k]}
                           for k in res["indices"]]}

    @app.get("/v1/runs", dependencies=auth)
    async def list_runs(limit: int = Query(50, ge=1, le=500)) -> dict[str, Any]:
        """The runs whose images this server holds, newest first."""
        return {"runs": [run_summary(r, image_url) for r in runs.list_runs(limit, out_under=str(out_root))]}

    run_id_param = PathParam(pattern=RUN_ID_PATTERN, description="A run id, e.g. 20260101-120000-0123abcd.")

    @app.get("/v1/runs/{run_id}", dependencies=auth)
    async def get_run(run_id: str = run_id_param) -> dict[str, Any]:
        """One run: its summary, every parameter, the locked packages and the library versions."""
        rec = find_run(run_id)
        d = run_summary(rec, image_url)
        params = json.loads(rec.params_json or "{}")
        d["params"] = {k: v for k, v in params.items() if k not in ("images", "control_image")}
        d["versions"] = json.loads(rec.versions_json or "{}")
        d["png_sha256"] = [im.get("png_sha256") for im in runs.images_of(rec)]
        return d

    @app.get("/v1/runs/{run_id}/images/{k}.png", dependencies=auth, response_class=Response,
             responses={200: {"content": {"image/png": {}}, "description": "the PNG with its 'parameters' and 'hubctl' chunks"}})
    async def get_image(run_id: str = run_id_param, k: int = PathParam(ge=0, le=9999)) -> Response:
        rec = find_run(run_id)
        images = runs.images_of(rec)
        if k >= len(images):
            return JSONResponse({"detail": f"run {run_id} has {len(images)} image(s)"}, status_code=404)
        path = images[k].get("out_path", "")
        if not _inside(path):
            raise _NoRun(run_id)
        try:
            data = await asyncio.to_thread(Path(path).read_bytes)
        except OSError:
            return JSONResponse({"detail": f"image {k} of run {run_id} is gone from disk"}, status_code=410)
        if hashlib.sha256(data).hexdigest() != images[k].get("png_sha256"):
            return JSONResponse({"detail": f"image {k} of run {run_id} changed on disk since it was recorded"}, status_code=410)
        return Response(data, media_type="image/png", headers={"X-Content-Type-Options": "nosniff", "Cache-Control": "private, max-age=3600"})

    @app.post("/v1/runs/{run_id}/replay", dependencies=auth, response_model=ReplayOut)
    async def replay(body: ReplayBody, request: Request, run_id: str = run_id_param) -> Any:
        """Run a recorded run again (its whole batch, as recorded) and compare image k's pixel hash."""
        ready()
        rec = find_run(run_id)
        n = len(runs.images_of(rec))
        if body.image >= n:
            raise BadInput(f"run {run_id} has {n} image(s): image {body.image} is not one of 0..{n - 1}")
        job = Job(key=("replay", run_id), size=n, exclusive=True, payload={"kind": "replay", "run_id": run_id, "image": body.image})
        res = await _wait(queue, job, request)
        return {**res, "url": image_url(res["replay"], body.image)}

    app.add_middleware(_Guard, max_body=limits.max_body, check_host=state.token is None)
    return app
