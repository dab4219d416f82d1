"""Load benchmark of `hubctl serve`: N concurrent clients send M generate requests; prints p50/p95 latency,
images/s and how many batches the queue made. Not a test: figures depend on the machine.

    python3 bench/bench_serve.py                      # builds the offline demo hub, starts a server on 127.0.0.1
    python3 bench/bench_serve.py --url http://127.0.0.1:8000 [--token-env HUBCTL_SERVE_TOKEN]
    python3 bench/bench_serve.py --screenshot bench/serve-gallery.png   # also a gallery screenshot (chromium)

Traffic goes to the given URL only (by default a server this script starts on 127.0.0.1); every loop is bounded.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _start_demo_server(work: Path):  # type: ignore[no-untyped-def]
    from hubctl.demo.hub import build_demo_hub
    from tests.fixtures.serve import SERVED_ARGS, make_serve_home, start_server

    os.environ.setdefault("OMP_NUM_THREADS", "1")
    hub = build_demo_hub(work / "hub")
    home = make_serve_home(hub, work / "home")
    return start_server(home, work / "server", args=SERVED_ARGS + ("--max-queue", "64"))


def _screenshot(url: str, path: str, token: str | None) -> None:
    from playwright.sync_api import expect, sync_playwright

    args = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync"]
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path="/usr/bin/chromium", args=args)
        page = b.new_page(viewport={"width": 1100, "height": 640})
        if token:
            page.add_init_script(f"sessionStorage.setItem('hubctl-token', {token!r})")
        page.goto(url + "/")
        page.fill("#prompt", "a photo of <demo-token>")
        page.fill("#seed", "7")
        page.fill("#steps", "4")
        page.fill("#images", "2")
        page.click("#generate")
        expect(page.locator("#status")).to_contain_text("image(s) in", timeout=120_000)
        page.locator(".thumb").first.click()
        page.wait_for_timeout(300)
        page.screenshot(path=path)
        b.close()
    print(f"wrote {path}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--url", help="an already running hubctl serve (default: start one on the demo hub)")
    ap.add_argument("--token-env", default="HUBCTL_SERVE_TOKEN", help="environment variable holding the bearer token")
    ap.add_argument("--clients", type=int, default=16)
    ap.add_argument("--requests", type=int, default=64)
    ap.add_argument("--steps", type=int, default=2)
    ap.add_argument("--size", type=int, default=None, help="width and height (default: the base's)")
    ap.add_argument("--screenshot", help="also write a screenshot of the gallery here")
    a = ap.parse_args()
    import httpx

    server = None
    with tempfile.TemporaryDirectory(prefix="bench-serve-") as tmp:
        if a.url:
            url, token = a.url.rstrip("/"), os.environ.get(a.token_env) or None
        else:
            print("building the demo hub and starting hubctl serve ...", flush=True)
            server = _start_demo_server(Path(tmp))
            url, token = server.url, None
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        try:
            h0 = httpx.get(url + "/v1/health", headers=headers, timeout=30).json()
            latencies: list[float] = []
            images = 0
            rejected = 0
            lock = threading.Lock()
            todo = list(range(a.requests))

            def client() -> None:
                nonlocal images, rejected
                with httpx.Client(base_url=url, headers=headers, timeout=600) as c:
                    while True:
                        with lock:
                            if not todo:
                                return
                            i = todo.pop()
                        body = {"prompt": f"bench {i}", "seed": i, "steps": a.steps}
                        if a.size:
                            body.update(width=a.size, height=a.size)
                        t = time.perf_counter()
                        for _ in range(100):
                            r = c.post("/v1/generate", json=body)
                            if r.status_code != 429:
                                break
                            with lock:
                                rejected += 1
                            time.sleep(float(r.headers.get("Retry-After", "1")) / 10)
                        r.raise_for_status()
                        with lock:
                            latencies.append(time.perf_counter() - t)
                            images += len(r.json()["images"])

            t0 = time.perf_counter()
            threads = [threading.Thread(target=client) for _ in range(a.clients)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            wall = time.perf_counter() - t0
            h1 = httpx.get(url + "/v1/health", headers=headers, timeout=30).json()
            q = sorted(latencies)
            p50 = statistics.median(q)
            p95 = q[min(len(q) - 1, int(round(0.95 * (len(q) - 1))))]
            batches = h1["queue"]["batches"] - h0["queue"]["batches"]
            print(f"{a.requests} requests, {a.clients} clients, {a.steps} steps, device {h1.get('device')}: "
                  f"p50 {p50:.2f} s, p95 {p95:.2f} s, {images / wall:.2f} images/s, {batches} batches "
                  f"(mean {images / max(1, batches):.1f} images), {rejected} answered 429 first, wall {wall:.1f} s")
            if a.screenshot:
                _screenshot(url, a.screenshot, token)
        finally:
            if server is not None:
                server.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
