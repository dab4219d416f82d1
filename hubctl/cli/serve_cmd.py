"""`hubctl serve`: the locked, verified set behind a JSON API with a gallery page. Parses options; the work
is hubctl.serve.server (FastAPI and uvicorn are imported only when the command runs)."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

__all__ = ["register"]


def serve(
    lock: Annotated[Optional[str], typer.Option("--lock", help="Lock file (default: ./hubctl.lock or $HUBCTL_LOCK).")] = None,
    script: Annotated[Optional[str], typer.Option("--script", metavar="S.py", help="Serve a script's lock (S.py.lock); refused when they disagree.")] = None,
    host: Annotated[str, typer.Option("--host", help="Address to listen on. Anything but loopback needs HUBCTL_SERVE_TOKEN.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="Port (0: any free port; the address is printed).")] = 8000,
    out: Annotated[str, typer.Option("--out", "-o", help="Folder for the PNGs.")] = "hubctl-out",
    device: Annotated[str, typer.Option("--device", help="auto, cpu, cuda or mps.")] = "auto",
    dtype: Annotated[str, typer.Option("--dtype", help="auto, fp16, bf16 or fp32.")] = "auto",
    attention: Annotated[str, typer.Option("--attention", help="auto, sdpa or xformers.")] = "auto",
    max_steps: Annotated[int, typer.Option("--max-steps", help="Most denoising steps a request may ask.")] = 50,
    max_size: Annotated[int, typer.Option("--max-size", help="Largest width or height in pixels.")] = 1024,
    max_images: Annotated[int, typer.Option("--max-images", help="Most images one request may ask.")] = 4,
    max_batch: Annotated[int, typer.Option("--max-batch", help="Most images in one pipeline call.")] = 8,
    max_queue: Annotated[int, typer.Option("--max-queue", help="Requests that may wait; more get 429 with Retry-After.")] = 32,
    batch_window_ms: Annotated[float, typer.Option("--batch-window-ms", help="How long an idle worker waits for requests to batch together.")] = 20,
    access_log: Annotated[bool, typer.Option("--access-log", help="Log every request (method, path, status; never a token).")] = False,
) -> None:
    """Serve the lock's verified set over HTTP: a JSON API (POST /v1/generate, /v1/runs, /v1/lock, /v1/health,
    /openapi.json) and a gallery page at /. Verifies the lock once, loads the pipeline once."""
    from hubctl.cli.generate_cmd import check_backend_options
    from hubctl.serve.config import Limits
    from hubctl.serve.server import serve as run_server

    check_backend_options(device, dtype, attention)
    limits = Limits(max_steps=max_steps, max_size=max_size, max_images=max_images, max_batch=max_batch,
                    max_queue=max_queue, batch_window=batch_window_ms / 1000.0)
    run_server(lock=lock, script=script, host=host, port=port, out_dir=out, device=device, dtype=dtype,
               attention=attention, limits=limits, access_log=access_log)


def register(app: typer.Typer) -> None:
    app.command("serve")(serve)
