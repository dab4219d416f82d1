"""The work queue of ``hubctl serve``: one batch at a time on the device, compatible requests batched.

Owns the waiting requests (FIFO), picking the next batch (the oldest request and every later one with the
same key, up to ``max_batch`` images; an ``exclusive`` job, e.g. a replay, runs alone), handing it to the one
worker thread that owns the device, refusing new work when ``max_queue`` requests wait (:class:`QueueFull`
with a Retry-After estimate), and dropping the job of a client that left before its batch started (nothing of
it is run or recorded). Knows nothing of HTTP or of diffusion: the runner is a plain callable.
"""

from __future__ import annotations

import asyncio
import math
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Callable, Hashable

__all__ = ["Job", "QueueFull", "WorkQueue"]


class QueueFull(Exception):
    """Too many requests wait; ``retry_after`` is a whole number of seconds to wait before trying again."""

    def __init__(self, retry_after: int) -> None:
        super().__init__(f"the queue is full; retry after {retry_after} s")
        self.retry_after = retry_after


@dataclass(eq=False)
class Job:
    key: Hashable  # jobs with equal keys can share one batch
    size: int  # images
    payload: Any = None  # what the runner needs (items, settings, ...)
    exclusive: bool = False
    state: str = "queued"  # queued | running | done | cancelled
    enqueued: float = field(default_factory=time.monotonic)
    started: float = 0.0
    future: "asyncio.Future[Any] | None" = None


class WorkQueue:
    """``runner(jobs) -> [result per job]`` runs on one worker thread, one batch at a time."""

    def __init__(self, runner: Callable[[list[Job]], list[Any]], *, max_queue: int, max_batch: int, window: float = 0.0) -> None:
        self.runner = runner
        self.max_queue = max_queue
        self.max_batch = max_batch
        self.window = window
        self.pending: list[Job] = []
        self.running: list[Job] = []
        self.stats = {"batches": 0, "jobs_done": 0, "images_done": 0, "cancelled": 0, "rejected": 0, "failed": 0}
        self._avg_batch_s = 1.0
        self._wake: asyncio.Event | None = None
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="hubctl-device")

    # ------------------------------------------------------------------ called from request handlers
    def submit(self, job: Job) -> "asyncio.Future[Any]":
        """Queue a job; QueueFull when ``max_queue`` jobs already wait."""
        if len(self.pending) >= self.max_queue:
            self.stats["rejected"] += 1
            raise QueueFull(self.retry_after())
        loop = asyncio.get_running_loop()
        job.future = loop.create_future()
        self.pending.append(job)
        self._wakeup().set()
        return job.future

    def cancel(self, job: Job) -> bool:
        """Drop a job that has not started (True); a job already running finishes (False)."""
        if job.state == "queued" and job in self.pending:
            self.pending.remove(job)
            job.state = "cancelled"
            self.stats["cancelled"] += 1
            if job.future is not None and not job.future.done():
                job.future.cancel()
            return True
        return False

    def retry_after(self) -> int:
        """Seconds until a slot is likely free: the mean batch time times the batches ahead."""
        ahead = math.ceil((len(self.pending) + 1) / max(1, self.max_batch)) + (1 if self.running else 0)
        return max(1, math.ceil(self._avg_batch_s * ahead))

    def snapshot(self) -> dict[str, Any]:
        return {"queued": len(self.pending), "running": sum(j.size for j in self.running), **self.stats,
                "max_queue": self.max_queue, "max_batch": self.max_batch}

    # ------------------------------------------------------------------ the worker
    def _wakeup(self) -> asyncio.Event:
        if self._wake is None:
            self._wake = asyncio.Event()
        return self._wake

    def _take(self) -> list[Job]:
        first = self.pending[0]
        batch, size = [first], first.size
        if not first.exclusive:
            for j in self.pending[1:]:
                if not j.exclusive and j.key == first.key and size + j.size <= self.max_batch:
                    batch.append(j)
                    size += j.size
        for j in batch:
            self.pending.remove(j)
            j.state = "running"
            j.started = time.monotonic()
        return batch

    async def run(self) -> None:
        """The worker loop (one task per server): wait for work, take a batch, run it on the device thread."""
        loop = asyncio.get_running_loop()
        wake = self._wakeup()
        while True:
            if not self.pending:
                wake.clear()
                await wake.wait()
                continue
            if self.window and sum(j.size for j in self.pending if j.key == self.pending[0].key) < self.max_batch:
                await asyncio.sleep(self.window)  # let compatible requests arriving together share the batch
                if not self.pending:
                    continue
            batch = self._take()
            self.running = batch
            t0 = time.monotonic()
            try:
                results = await loop.run_in_executor(self._executor, self.runner, batch)
            except Exception as e:  # the runner failed: every job of the batch gets the error
                self.stats["failed"] += len(batch)
                for j in batch:
                    j.state = "done"
                    if j.future is not None and not j.future.done():
                        j.future.set_exception(e)
            else:
                self.stats["batches"] += 1
                for j, r in zip(batch, results):
                    j.state = "done"
                    self.stats["jobs_done"] += 1
                    self.stats["images_done"] += j.size
                    if j.future is not None and not j.future.done():
                        j.future.set_result(r)
            finally:
                self.running = []
                self._avg_batch_s = 0.7 * self._avg_batch_s + 0.3 * (time.monotonic() - t0)

    def close(self) -> None:
        """Drop every waiting job (nothing of them runs) and stop accepting work on the device thread."""
        for j in list(self.pending):
            self.cancel(j)
        self._executor.shutdown(wait=False, cancel_futures=True)
