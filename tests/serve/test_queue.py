"""The work queue on its own (hubctl.serve.queue): batching by key up to max_batch, exclusive jobs alone, FIFO
order, 429 when full, and a cancelled job never reaching the runner. A real asyncio loop; the runner is a plain
function that records what it was given (the queue knows nothing of diffusion)."""

from __future__ import annotations

import asyncio
import threading

import pytest

from hubctl.serve.queue import Job, QueueFull, WorkQueue


def _run(coro):  # type: ignore[no-untyped-def]
    return asyncio.run(coro)


def test_compatible_jobs_waiting_together_run_as_one_batch_up_to_max_batch():
    calls: list[list[str]] = []
    gate = threading.Event()

    def runner(jobs):  # type: ignore[no-untyped-def]
        gate.wait(5)
        calls.append([j.payload for j in jobs])
        return [j.payload for j in jobs]

    async def main():  # type: ignore[no-untyped-def]
        q = WorkQueue(runner, max_queue=10, max_batch=4)
        worker = asyncio.ensure_future(q.run())
        first = q.submit(Job(key="a", size=1, payload="first"))
        await asyncio.sleep(0.05)  # "first" is running, blocked on the gate
        futs = [q.submit(Job(key=k, size=s, payload=p)) for k, s, p in
                [("a", 2, "a1"), ("b", 1, "b1"), ("a", 2, "a2"), ("a", 1, "a3"), ("x", 1, "ex")]]
        q.pending[-1].exclusive = True
        gate.set()
        out = await asyncio.gather(first, *futs)
        worker.cancel()
        return out

    out = _run(main())
    assert out == ["first", "a1", "b1", "a2", "a3", "ex"]
    assert calls == [["first"], ["a1", "a2"], ["b1"], ["a3"], ["ex"]]  # a1+a2 fill 4 images; a3 waits; b1 is next oldest


def test_a_full_queue_raises_queue_full_with_a_retry_after():
    async def main():  # type: ignore[no-untyped-def]
        q = WorkQueue(lambda jobs: [None] * len(jobs), max_queue=2, max_batch=1)
        q.submit(Job(key=1, size=1))
        q.submit(Job(key=1, size=1))
        with pytest.raises(QueueFull) as e:
            q.submit(Job(key=1, size=1))
        assert e.value.retry_after >= 1 and q.stats["rejected"] == 1

    _run(main())


def test_a_cancelled_job_never_reaches_the_runner():
    seen: list[str] = []

    async def main():  # type: ignore[no-untyped-def]
        q = WorkQueue(lambda jobs: [seen.extend(j.payload for j in jobs)] * len(jobs), max_queue=5, max_batch=8)
        gone = Job(key=1, size=1, payload="gone")
        q.submit(gone)
        kept = q.submit(Job(key=1, size=1, payload="kept"))
        assert q.cancel(gone) is True and gone.state == "cancelled"
        worker = asyncio.ensure_future(q.run())
        await kept
        worker.cancel()
        assert q.cancel(gone) is False

    _run(main())
    assert seen == ["kept"]


def test_a_failing_batch_fails_each_of_its_jobs_and_the_worker_goes_on():
    async def main():  # type: ignore[no-untyped-def]
        def runner(jobs):  # type: ignore[no-untyped-def]
            if jobs[0].payload == "bad":
                raise RuntimeError("boom")
            return ["ok"] * len(jobs)

        q = WorkQueue(runner, max_queue=5, max_batch=8)
        worker = asyncio.ensure_future(q.run())
        bad = q.submit(Job(key="bad", size=1, payload="bad"))
        with pytest.raises(RuntimeError):
            await bad
        assert await q.submit(Job(key="good", size=1, payload="good")) == "ok"
        worker.cancel()

    _run(main())


@pytest.mark.parametrize("host,loopback", [("127.0.0.1", True), ("127.8.9.1", True), ("localhost", True), ("::1", True),
                                           ("[::1]", True), ("0.0.0.0", False), ("::", False), ("10.0.0.1", False),
                                           ("example.org", False), ("127.0.0.1.example.org", False)])
def test_loopback_is_decided_by_address_not_by_prefix(host, loopback):
    from hubctl.serve.config import is_loopback

    assert is_loopback(host) is loopback
