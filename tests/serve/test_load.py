"""A bounded load test of `hubctl serve`: 16 concurrent clients send 64 requests (two kinds of request, so the
queue batches within each kind) to the shared server; every request gets its own images, none is lost or
duplicated, and the runs the server lists are exactly those. Latency is printed by bench/bench_serve.py, not
asserted here."""

from __future__ import annotations

import threading
import time
from collections import Counter

import pytest

pytestmark = pytest.mark.slow

CLIENTS, REQUESTS = 16, 64


def test_sixteen_clients_sixty_four_requests_nothing_lost_or_duplicated(served):
    before = served.health()["queue"]
    results: dict[int, dict] = {}
    rejected = Counter()
    lock = threading.Lock()
    todo = list(range(REQUESTS))

    def client() -> None:
        c = served.client()
        while True:
            with lock:
                if not todo:
                    return
                i = todo.pop()
            for _attempt in range(50):  # bounded: a 429 is retried after Retry-After
                r = c.post("/v1/generate", json={"prompt": f"load {i}", "seed": i, "steps": 1 + i % 2,
                                                      "width": 32, "height": 32})
                if r.status_code != 429:
                    break
                rejected[i] += 1
                time.sleep(float(r.headers["Retry-After"]) / 10)
            assert r.status_code == 200, r.text
            with lock:
                results[i] = r.json()

    threads = [threading.Thread(target=client) for _ in range(CLIENTS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(600)
    assert sorted(results) == list(range(REQUESTS)), "every request answered"
    pairs = [(r["run_id"], im["index"]) for r in results.values() for im in r["images"]]
    assert len(pairs) == REQUESTS and len(set(pairs)) == REQUESTS, "no image handed to two requests"
    runs = served.get("/v1/runs", params={"limit": 500}).json()["runs"]
    listed = {(r["id"], im["index"]): im for r in runs for im in r["images"] if im["prompt"].startswith("load ")}
    assert set(listed) == set(pairs), "the recorded runs hold exactly the answered images"
    for i, r in results.items():
        im = listed[(r["run_id"], r["images"][0]["index"])]
        assert (im["prompt"], im["seed"]) == (f"load {i}", i)
    after = served.health()["queue"]
    batches = after["batches"] - before["batches"]
    assert batches < REQUESTS, "concurrent compatible requests were batched"
    print(f"\n{REQUESTS} requests from {CLIENTS} clients in {batches} batches; {sum(rejected.values())} answered 429 first")
