"""``hubctl serve``: the locked, verified set behind a JSON API, with a gallery page; and the same gallery as
static files (``hubctl runs export``). Inference itself is hubctl.run (a batch is hubctl.run.batch).

    config.py   limits, the bind rule (a non-loopback host needs a token), the token from the environment; no I/O
    auth.py     the bearer-token check (constant time), as a FastAPI dependency
    models.py   request and response models with the configured limits (a 422 names the field)
    queue.py    the work queue: one batch at a time on the device, compatible requests batched, 429 when full,
                work of a client that left before it started dropped
    app.py      the FastAPI app: /v1 routes, the gallery page at /, the OpenAPI document
    gallery.py  the gallery page (plain HTML and a little JS, no build step) and the run summaries it shows
    export.py   the gallery as static files: index.html, the PNGs, runs.json (no server needed)
    server.py   verify the lock, bind, load the pipeline once in the background, run uvicorn

FastAPI and uvicorn are the ``serve`` extra: only app.py, auth.py and server.py import them (inside
functions where the CLI could reach them), so ``hubctl runs export`` works without the extra.
"""
