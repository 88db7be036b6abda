"""The worker: an APScheduler process that claims work under leases and drives runs.

Jobs: ``dispatch`` (claim ready runs and queued tasks up to the concurrency), ``heartbeat``
(extend the leases of runs in progress, report liveness), ``expire`` (reviews past their SLA),
``release`` (runs whose worker stopped heart-beating become claimable), ``evaluations``
(suites whose schedule is due run on their agent's active version), ``canaries`` (each running
canary's guard; a significant breach rolls it back), ``notify`` (messages about reviews,
circuits and canaries, queued and sent with retries; see ``agent.notify``) and ``traces``
(committed trace segments out to an OTLP collector, when ``STEWARD_OTEL_EXPORT`` is on, in a
child process so that it takes no time from the threads that drive runs). The same class runs
as ``steward worker`` or embedded in the console process.
"""

from __future__ import annotations

import logging
import math
import os
import socket
import subprocess
import sys
import threading
import time
import uuid
from concurrent.futures import Future, ThreadPoolExecutor

from apscheduler.executors.pool import ThreadPoolExecutor as JobExecutor
from apscheduler.schedulers.background import BackgroundScheduler

from agent.platform import Platform
from agent.reviews import expire_overdue
from agent.runtime.claims import (
    claim_next,
    extend_leases,
    has_open_work,
    release_expired_leases,
)
from agent.runtime.runner import RunProcessor
from agent.runtime.state import Claim
from agent.telemetry import config as telemetry
from agent.telemetry.export import TraceExport
from agent.telemetry.logs import run_context
from storage.engine import write_session
from storage.models import Worker as WorkerRow
from storage.types import utcnow

log = logging.getLogger(__name__)

# How often a worker looks for running canaries and checks their guards. While one runs, the
# guard is also checked as each run finishes its turn, so a breach is acted on at the
# observation that makes it significant, not up to a period later.
CANARY_CHECK_S = 1.0


class Worker:
    """Claims and processes runs on ``concurrency`` threads until stopped or drained."""

    def __init__(
        self,
        platform: Platform,
        *,
        concurrency: int = 2,
        lease_s: float = 30.0,
        poll_s: float = 0.25,
        heartbeat_s: float | None = None,
        embedded: bool = False,
        inline_tools: bool = False,
        trace_export: TraceExport | None = None,
        export_interval_s: float = 5.0,
    ) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        for name, value in (("lease_s", lease_s), ("poll_s", poll_s)):
            # A lease or poll of zero (or NaN) would make the worker spin or never hold a run.
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"{name} must be a positive number of seconds, not {value!r}")
        self.platform = platform
        self.engine = platform.engine
        self.concurrency = concurrency
        self.lease_s = lease_s
        self.poll_s = poll_s
        self.heartbeat_s = heartbeat_s or max(lease_s / 3, 0.2)
        self.embedded = embedded
        self.id = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self.processor = RunProcessor(platform, lease_s=lease_s, inline_tools=inline_tools)
        self._active: dict[int, Future[object]] = {}
        self._lock = threading.Lock()
        self._pool: ThreadPoolExecutor | None = None
        self._scheduler: BackgroundScheduler | None = None
        self.processed = 0
        self._canaries_running = False
        self._canary_check = threading.Lock()
        # Given by tests; otherwise the environment decides (see ``start``).
        self.trace_export = trace_export
        self.export_interval_s = export_interval_s
        self._export_child: subprocess.Popen[bytes] | None = None

    # -- lifecycle --------------------------------------------------------------------------

    def start(self) -> None:
        with write_session(self.engine) as session:
            session.add(
                WorkerRow(
                    id=self.id,
                    hostname=socket.gethostname(),
                    pid=os.getpid(),
                    concurrency=self.concurrency,
                    embedded=self.embedded,
                )
            )
        self._pool = ThreadPoolExecutor(self.concurrency, thread_name_prefix="steward-run")
        scheduler = BackgroundScheduler(
            executors={"default": JobExecutor(4)},
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": 30},
            timezone="UTC",
        )
        scheduler.add_job(
            self._guarded(self.dispatch),
            "interval",
            seconds=self.poll_s,
            id="dispatch",
            next_run_time=utcnow(),
        )
        scheduler.add_job(
            self._guarded(self.heartbeat), "interval", seconds=self.heartbeat_s, id="heartbeat"
        )
        scheduler.add_job(
            self._guarded(self.expire_reviews),
            "interval",
            seconds=5,
            id="expire",
            next_run_time=utcnow(),
        )
        scheduler.add_job(
            self._guarded(self.release_leases),
            "interval",
            seconds=max(self.lease_s / 2, 1.0),
            id="release",
        )
        scheduler.add_job(
            self._guarded(self.scheduled_evaluations), "interval", seconds=60, id="evaluations"
        )
        scheduler.add_job(
            self._guarded(self.guard_canaries),
            "interval",
            seconds=CANARY_CHECK_S,
            id="canaries",
            next_run_time=utcnow(),
        )
        scheduler.add_job(self._guarded(self.notify), "interval", seconds=5, id="notify")
        # The trace export: given (tests), a job in a thread; from the environment, a child
        # process of its own (agent.telemetry.child), which this job restarts if it died.
        if self.trace_export is None and telemetry.export_enabled():
            scheduler.add_job(
                self._guarded(self.watch_export),
                "interval",
                seconds=max(self.export_interval_s, 1.0),
                id="traces",
                next_run_time=utcnow(),
            )
        elif self.trace_export is not None:
            scheduler.add_job(
                self._guarded(self.export_traces),
                "interval",
                seconds=self.export_interval_s,
                id="traces",
            )
        scheduler.start()
        self._scheduler = scheduler
        log.info("worker %s started (concurrency %d)", self.id, self.concurrency)

    def stop(self, *, wait: bool = True) -> None:
        if self._scheduler is not None:
            self._scheduler.shutdown(wait=wait)
            self._scheduler = None
        self._stop_export_child()
        if self._pool is not None:
            self._pool.shutdown(wait=wait)
            self._pool = None
        with write_session(self.engine) as session:
            row = session.get(WorkerRow, self.id)
            if row is not None:
                row.stopped_at = utcnow()
                row.runs_processed = self.processed
                session.add(row)
        log.info("worker %s stopped after %d runs", self.id, self.processed)

    def drain(self, *, timeout_s: float | None = None) -> int:
        """Run until nothing is queued, ready or running anywhere; returns runs processed.

        Runs other workers hold are waited for: they finish, or their worker died and their
        lease lapses, and this worker takes them over."""
        self.start()
        deadline = time.monotonic() + timeout_s if timeout_s else None
        try:
            idle_checks = 0
            while deadline is None or time.monotonic() < deadline:
                time.sleep(self.poll_s)
                if self.busy:
                    idle_checks = 0
                    continue
                expire_overdue(self.platform)
                idle_checks = 0 if has_open_work(self.engine, self.id) else idle_checks + 1
                if idle_checks >= 2:
                    break
            # What the drained runs raised is announced before the process exits.
            self._guarded(self.notify)()  # type: ignore[operator]
        finally:
            self.stop()
        return self.processed

    @property
    def export_process(self) -> subprocess.Popen[bytes] | None:
        """The trace export's process, while this worker runs one."""
        return self._export_child

    @property
    def busy(self) -> bool:
        with self._lock:
            return bool(self._active)

    # -- jobs -------------------------------------------------------------------------------

    def dispatch(self) -> None:
        while True:
            with self._lock:
                if len(self._active) >= self.concurrency or self._pool is None:
                    return
            claim = claim_next(self.engine, self.id, lease_s=self.lease_s)
            if claim is None:
                return
            with self._lock:
                if self._pool is None:
                    return
                self._active[claim.run_id] = self._pool.submit(self._process, claim)

    def _process(self, claim: Claim) -> None:
        try:
            with run_context(self.engine, claim.run_id, claim.task_id):
                self.processor.process(claim)
        except Exception:
            log.exception(
                "run %s failed in worker %s; its lease will expire and another "
                "worker will resume it",
                claim.run_id,
                self.id,
            )
        finally:
            with self._lock:
                self._active.pop(claim.run_id, None)
                self.processed += 1
        if self._canaries_running:
            self._guarded(self.guard_canaries)()  # type: ignore[operator]

    def heartbeat(self) -> None:
        with self._lock:
            run_ids = list(self._active)
            processed = self.processed
        extend_leases(self.engine, self.id, run_ids, lease_s=self.lease_s, runs_processed=processed)

    def expire_reviews(self) -> None:
        expire_overdue(self.platform)

    def release_leases(self) -> None:
        release_expired_leases(self.engine)

    def export_traces(self) -> None:
        """Send the trace segments committed since the last turn (never on a run's path)."""
        if self.trace_export is not None:
            self.trace_export.run_once()

    def watch_export(self) -> None:
        """Start the export's child process, or start it again if it stopped."""
        child = self._export_child
        if child is not None and child.poll() is None:
            return
        if child is not None:
            log.warning(
                "the trace export process stopped (%s); starting it again", child.returncode
            )
        url = self.engine.url.render_as_string(hide_password=False)
        self._export_child = subprocess.Popen(  # noqa: S603 - this interpreter, our module
            [
                sys.executable,
                "-m",
                "agent.telemetry.child",
                "--owner",
                self.id,
                "--interval",
                str(self.export_interval_s),
            ],
            env={**os.environ, "STEWARD_DATABASE_URL": url},
        )

    def _stop_export_child(self) -> None:
        child, self._export_child = self._export_child, None
        if child is None or child.poll() is not None:
            return
        child.terminate()
        try:
            child.wait(timeout=30)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()

    def scheduled_evaluations(self) -> None:
        """Run the evaluation suites whose schedule is due (one worker takes each turn)."""
        from agent.evals.schedule import run_scheduled  # evaluations load only when they run

        run_scheduled(self.platform)

    def guard_canaries(self) -> None:
        """Check every running canary's guard; roll back those significantly worse. One check
        at a time per worker: a run finishing while another thread checks does not queue a
        second one."""
        from agent.release.canary import check_canaries  # loads scipy only when it runs

        if not self._canary_check.acquire(blocking=False):
            return
        try:
            self._canaries_running = check_canaries(self.platform).running > 0
        finally:
            self._canary_check.release()

    def notify(self) -> None:
        """Queue and send notifications (``agent.notify``), off every run's path."""
        from agent.notify import notify_once  # apprise loads only where notifications run

        notify_once(self.platform)

    def _guarded(self, job: object) -> object:
        def run() -> None:
            try:
                job()  # type: ignore[operator]
            except Exception:
                log.exception("worker job %s failed", getattr(job, "__name__", job))

        run.__name__ = getattr(job, "__name__", "job")
        return run
