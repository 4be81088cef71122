# Copyright 2026 The trustrl Authors. Licensed under the Apache License, Version 2.0.
"""A process pool that scores math answers with a hard per-task deadline, usable from any thread of any process.

Design (the why: reward/README.md, "How it stays fast and never hangs"):

* No ``multiprocessing``. A *zygote* is started with ``subprocess`` as ``python -c "...; _zygote_main()"``, so nothing
  re-imports the caller's ``__main__`` (the spawn/forkserver trap that breaks scripts without a main guard). The zygote
  imports math-verify once and ``fork()``\\ s workers on request (about 2 ms each, against about 1 s for a fresh
  interpreter), handing each one end of a ``socketpair`` passed over the control socket with ``SCM_RIGHTS``.
* Every worker scores on its own main thread. The parent keeps one *dispatcher thread* that owns all sockets and
  processes; callers only enqueue tasks and wait on ``concurrent.futures.Future`` objects (threads, asyncio and Ray
  actors alike).
* Each task's budget is ``timeout_s`` of **its own CPU time** (user + system, read from ``/proc`` every
  ``_POLL_S``), counted from when the worker starts it: a worker holds at most ``_DEPTH`` tasks in order, and the
  head task's start is the arrival of its predecessor's result. At the budget the worker is SIGKILLed and replaced.
  CPU time does not grow while other processes hold the cores, so a legitimate answer's score does not depend on
  how busy the node is. Inside the worker an ``ITIMER_PROF`` alarm at ``0.8 * timeout_s`` of CPU interrupts
  Python-level slowness first, which saves the kill and the fork (math-verify's own signal timeouts are off: see
  ``_verify``). Wall-clock caps make every call return even when a task gets no CPU at all: ``_RUN_WALL_CAP``
  (unparked wall time) and ``_TOTAL_WALL_CAP`` (since start, parked time included). Without ``/proc`` the budget
  falls back to unparked wall time.
* Stuck inputs never take workers or CPU from the rest of the batch. A task still running after ``_SLOW_WALL_S`` hands
  its worker's queued tasks to others and a fresh worker is forked in its place (*quarantine*). A task that has used
  ``_HOG_CPU_S`` of CPU (read from ``/proc``; a warm worker needs 5 ms on average and up to about 0.2 s for a wrong
  tuple or interval answer) is a *hog*: quarantined and *parked* (SIGSTOP) while any other task waits, resumed
  (SIGCONT) when the queue is empty. Parked time does not count against its timeout, so a legitimately slow answer
  still finishes; all stuck inputs of a batch end about one timeout after the queue drains, side by side. Answers
  flagged by ``_answer.is_risky`` (power towers, huge factorials) start as hogs on a worker of their own, with no
  detection cost; being statically known to explode, they also end at ``timeout_s`` of unparked *wall* time, so a
  batch with many of them (side by side on few cores) still ends about one timeout after the queue drains.
* A quarantined worker whose task ends rejoins the pool as a spare (up to twice the target size) or is killed.
* No orphans: the zygote and every worker set ``PR_SET_PDEATHSIG=SIGKILL`` (Linux) against the thread that created
  them (the dispatcher thread, then the zygote), exit on EOF of their socket, and ``atexit`` closes the pool.
"""

from __future__ import annotations

import atexit
import collections
import json
import logging
import os
import pickle
import selectors
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass, field

logger = logging.getLogger(__name__)

_DEPTH = 2  # tasks in flight per worker: one running, one queued, so a worker never idles on a round trip
# CPU seconds after which a task is a hog (capped at timeout_s / 4); see the module docstring. Well above any
# legitimate answer: at 0.1 s, tuples and intervals became hogs, and 4,096 typical responses ran 4x slower.
_HOG_CPU_S = 1.0
_SLOW_WALL_S = 1.0  # wall seconds after which a task's queued successors go to other workers (capped at timeout_s / 4)
_POLL_S = 0.02  # how often a running task's CPU time is read from /proc (its resolution is 10 ms)
# ... and a hog's: many hogs growing big integers at once make /proc reads slow (they contend for the target's
# memory map), and a hog is past the point where 20 ms matter. Risky tasks are not read at all: their running
# wall time bounds their CPU time.
_HOG_POLL_S = 0.25
# wall-clock caps (factor x timeout_s, floor in s): unparked running time, and time since start including parking
_RUN_WALL_CAP = (10.0, 120.0)
_TOTAL_WALL_CAP = (60.0, 900.0)
_STARTUP_S = 120.0  # zygote import budget (math-verify + sympy take about 1 s on an idle core)
_WORKER_MEMORY_MB = int(os.environ.get("TRUSTRL_REWARD_WORKER_MEMORY_MB", "2048"))  # address space above the zygote's
_FRAME = struct.Struct("!I")
_PID = struct.Struct("!q")
_ENV_FD, _ENV_PPID, _ENV_PATH = "TRUSTRL_REWARD_CTL_FD", "TRUSTRL_REWARD_PPID", "TRUSTRL_REWARD_SYSPATH"
_BOOT = (
    "import json, os, sys\n"
    f"sys.path[:] = json.loads(os.environ.pop({_ENV_PATH!r}))\n"
    "from trustrl.reward._pool import _zygote_main\n"
    "_zygote_main()\n"
)

TIMEOUT = {"status": "timeout"}
ERROR = {"status": "error"}


# ---------------------------------------------------------------------------------------------------------------
# Child side: zygote and worker
# ---------------------------------------------------------------------------------------------------------------


def _set_pdeathsig(expected_parent: int) -> None:
    """Die with the creating thread (Linux prctl); exit now if the parent is already gone."""
    if sys.platform.startswith("linux"):
        try:
            import ctypes

            ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGKILL), 0, 0, 0)  # 1 = PR_SET_PDEATHSIG
        except (OSError, AttributeError):
            pass
    if os.getppid() != expected_parent:
        os._exit(0)


def _recv_exact(sock: socket.socket, n: int) -> bytes | None:
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            return None
        buf += chunk
    return bytes(buf)


def _send_msg(sock: socket.socket, obj) -> None:
    data = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    sock.sendall(_FRAME.pack(len(data)) + data)


def _recv_msg(sock: socket.socket):
    head = _recv_exact(sock, _FRAME.size)
    if head is None:
        return None
    body = _recv_exact(sock, _FRAME.unpack(head)[0])
    return None if body is None else pickle.loads(body)


class _SoftTimeout(BaseException):
    """Raised by SIGPROF inside a worker; a BaseException so math-verify's `except Exception` cannot swallow it."""


def _on_alarm(signum, frame):
    raise _SoftTimeout


def _limit_memory() -> None:
    try:
        import resource

        with open("/proc/self/statm") as f:
            vm_bytes = int(f.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
        limit = vm_bytes + _WORKER_MEMORY_MB * 2**20
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))  # runaway big-int growth becomes MemoryError
    except (OSError, ValueError, ImportError):
        pass


def _worker_main(sock: socket.socket) -> None:
    from trustrl.reward import _verify

    _limit_memory()
    signal.signal(signal.SIGPROF, _on_alarm)
    while True:
        msg = _recv_msg(sock)
        if msg is None:
            return
        task_id, payload, soft_s = msg
        try:
            try:
                signal.setitimer(signal.ITIMER_PROF, soft_s)
                status, acc, joined = _verify.score(*payload)
                result = {"status": status, "acc": acc, "joined": joined}
            finally:
                signal.setitimer(signal.ITIMER_PROF, 0)
        except _SoftTimeout:
            result = TIMEOUT
        except BaseException as exc:  # MemoryError, RecursionError, anything sympy raises: score 0, keep serving
            result = {"status": "error", "error": f"{type(exc).__name__}: {str(exc)[:200]}"}
        _send_msg(sock, (task_id, result, time.process_time()))


def _zygote_main() -> None:
    """Entry point of ``python -c _BOOT``: import once, then fork one worker per request on the control socket."""
    _set_pdeathsig(int(os.environ.pop(_ENV_PPID)))
    ctl = socket.socket(fileno=int(os.environ.pop(_ENV_FD)))
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C belongs to the caller; it closes the pool
    from trustrl.reward import _verify

    if os.environ.get("TRUSTRL_REWARD_WARMUP", "1") != "0":  # 0: start in 1 s, not 3 s; first answers cost more
        _verify.warmup()
    ctl.sendall(b"R")
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # the kernel reaps killed workers: no zombies
    zygote = os.getpid()
    while True:
        try:
            msg, fds, _, _ = socket.recv_fds(ctl, 16, 1)
        except OSError:
            os._exit(0)
        if not msg:
            os._exit(0)  # the parent closed the pool or died
        if not fds:
            continue
        pid = os.fork()
        if pid == 0:
            code = 0
            try:
                ctl.close()
                signal.signal(signal.SIGCHLD, signal.SIG_DFL)
                _set_pdeathsig(zygote)
                _worker_main(socket.socket(fileno=fds[0]))
            except BaseException:
                code = 1
            finally:
                os._exit(code)
        os.close(fds[0])
        ctl.sendall(_PID.pack(pid))


# ---------------------------------------------------------------------------------------------------------------
# Parent side: dispatcher
# ---------------------------------------------------------------------------------------------------------------


@dataclass(eq=False)
class _Task:
    payload: tuple
    timeout_s: float
    future: Future
    id: int = 0
    risky: bool = False


@dataclass(eq=False)
class _Worker:
    pid: int
    sock: socket.socket
    inflight: collections.deque = field(default_factory=collections.deque)
    head_start: float = 0.0  # monotonic time the head task started
    cpu_base: float = 0.0  # the worker's CPU seconds when the head task started (a forked child starts at 0)
    cpu_used: float = 0.0  # CPU seconds the head task has used, as last read from /proc
    paused_s: float = 0.0  # time the head task spent parked (not counted against its timeout)
    parked_at: float | None = None  # set while the worker is SIGSTOPped
    next_poll: float = 0.0
    quarantined: bool = False  # takes no new tasks until its head task ends
    hog: bool = False  # its head task used _HOG_CPU_S of CPU: parked while other tasks wait
    buf: bytearray = field(default_factory=bytearray)

    def run_s(self, now: float) -> float:
        parked = now - self.parked_at if self.parked_at is not None else 0.0
        return now - self.head_start - self.paused_s - parked

    def start_head(self, now: float, cpu: float) -> None:
        self.head_start, self.cpu_base, self.paused_s, self.next_poll = now, cpu, 0.0, now + _POLL_S
        self.cpu_used = 0.0

    def poll_cpu(self, now: float) -> None:
        """Refresh ``cpu_used`` from /proc (unparked wall time where /proc cannot be read)."""
        self.next_poll = now + (_HOG_POLL_S if self.hog else _POLL_S)
        cpu = _cpu_seconds(self.pid)
        self.cpu_used = cpu - self.cpu_base if cpu is not None else self.run_s(now)

    def over_budget(self, now: float) -> bool:
        task = self.inflight[0]
        run = self.run_s(now)
        return (
            self.cpu_used >= task.timeout_s
            or run >= _cap_s(_RUN_WALL_CAP, task.timeout_s)
            or now - self.head_start >= _cap_s(_TOTAL_WALL_CAP, task.timeout_s)
            or (task.risky and run >= task.timeout_s)
        )


class Pool:
    """Hard-deadline worker pool; see the module docstring. Thread-safe; one per process via :func:`get_pool`."""

    def __init__(self, num_workers: int):
        self.num_workers = max(1, int(num_workers))
        self._lock = threading.Lock()
        self._pending: collections.deque[_Task] = collections.deque()
        self._next_id = 0
        self._closing = False
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._sel = selectors.DefaultSelector()
        self._sel.register(self._wake_r, selectors.EVENT_READ, None)
        self._workers: list[_Worker] = []
        self._zygote: subprocess.Popen | None = None
        self._ctl: socket.socket | None = None
        self._failed_until = 0.0
        self.owner_pid = os.getpid()
        self.stats = collections.Counter()  # spawned, killed, quarantined, hogs, parked, rejoined, retired, crashed
        self._thread = threading.Thread(target=self._run, name="trustrl-reward-pool", daemon=True)
        self._thread.start()

    # -- caller API ----------------------------------------------------------------------------------------------

    @property
    def alive(self) -> bool:
        return self._thread.is_alive() and not self._closing

    def submit(self, payloads: list[tuple], timeout_s: float, risky: list[bool] | None = None) -> list[Future]:
        """Queue payloads for ``_verify.score``; each future resolves to a dict with at least ``status``.

        ``risky[i]`` starts payload ``i`` on a process of its own, treated as a hog from the start.
        """
        futures = [Future() for _ in payloads]
        risky = risky or [False] * len(payloads)
        with self._lock:
            accepted = self.alive
            if accepted:
                for payload, fut, flag in zip(payloads, futures, risky):
                    self._next_id += 1
                    self._pending.append(_Task(payload, float(timeout_s), fut, self._next_id, bool(flag)))
        if not accepted:
            for fut in futures:
                fut.set_result(ERROR)
        self._wake()
        return futures

    def resize(self, num_workers: int) -> None:
        self.num_workers = max(1, int(num_workers))
        self._wake()

    def pids(self) -> dict:
        """Process ids for tests and diagnostics: the zygote, the workers taking tasks, and the quarantined ones."""
        with self._lock:
            return {
                "zygote": self._zygote.pid if self._zygote is not None else None,
                "workers": [w.pid for w in self._workers if not w.quarantined],
                "quarantined": [w.pid for w in self._workers if w.quarantined],
            }

    def close(self, timeout: float = 10.0) -> None:
        with self._lock:
            self._closing = True
        self._wake()
        if threading.current_thread() is not self._thread:
            self._thread.join(timeout)

    # -- dispatcher thread ---------------------------------------------------------------------------------------

    def _wake(self) -> None:
        try:
            self._wake_w.send(b"x")
        except OSError:  # buffer full (already woken) or closed
            pass

    def _run(self) -> None:
        try:
            while not self._closing:
                self._enforce(time.monotonic())
                self._fill()
                self._park(time.monotonic())
                for key, _ in self._sel.select(self._next_timeout(time.monotonic())):
                    if key.data is None:
                        self._drain_wake()
                    else:
                        self._read(key.data)
        except BaseException:
            logger.exception("trustrl reward pool: dispatcher failed; pending tasks score 0 with status=error")
        finally:
            self._teardown()

    def _drain_wake(self) -> None:
        try:
            while self._wake_r.recv(4096):
                pass
        except OSError:
            pass

    def _next_timeout(self, now: float) -> float:
        wait = 1.0
        for w in self._workers:
            if not w.inflight:
                continue
            task = w.inflight[0]
            wait = min(wait, w.head_start + _cap_s(_TOTAL_WALL_CAP, task.timeout_s) - now)
            if w.parked_at is None:
                wait = min(wait, _cap_s(_RUN_WALL_CAP, task.timeout_s) - w.run_s(now))
                wait = min(wait, task.timeout_s - w.run_s(now) if task.risky else w.next_poll - now)
            slow_at = w.head_start + _slow_wall_s(task.timeout_s)
            if not w.quarantined and slow_at > now:  # past it and still here: the quarantine cap was reached
                wait = min(wait, slow_at - now)
        return max(wait, 0.0)

    def _enforce(self, now: float) -> None:
        """Kill tasks past their budget; spot hogs (by CPU) and slow tasks (by wall time) and quarantine them."""
        for w in list(self._workers):
            if not w.inflight:
                continue
            timeout_s = w.inflight[0].timeout_s
            if w.parked_at is None and now >= w.next_poll and not w.inflight[0].risky:
                w.poll_cpu(now)
            if w.over_budget(now):
                self.stats["killed"] += 1
                self._drop_worker(w, head_result=TIMEOUT)
                continue
            if not w.hog and w.cpu_used >= min(_HOG_CPU_S, timeout_s / 4) and self._quarantine(w):
                w.hog = True
                self.stats["hogs"] += 1
            if not w.quarantined and now - w.head_start >= _slow_wall_s(timeout_s):
                self._quarantine(w)  # slow but not burning CPU (a busy machine): just free its queued tasks

    def _quarantine(self, w: _Worker) -> bool:
        if w.quarantined:
            return True
        if sum(x.quarantined for x in self._workers) >= _max_quarantined(self.num_workers):
            return False  # too many at once: this one keeps its slot (and competes) until it ends
        w.quarantined = True
        self.stats["quarantined"] += 1
        self._requeue(list(w.inflight)[1:])
        head = w.inflight[0]
        w.inflight.clear()
        w.inflight.append(head)
        return True

    def _park(self, now: float) -> None:
        """Hogs run only while no task waits for a worker; a parked hog's clock stops (``Worker.run_s``)."""
        with self._lock:
            waiting = bool(self._pending)
        for w in self._workers:
            if not (w.hog and w.inflight):
                continue
            if waiting and w.parked_at is None:
                if _signal(w.pid, signal.SIGSTOP):
                    w.parked_at = now
                    self.stats["parked"] += 1
            elif not waiting and w.parked_at is not None:
                _signal(w.pid, signal.SIGCONT)
                w.paused_s += now - w.parked_at
                w.parked_at = None

    def _requeue(self, tasks: list[_Task]) -> None:
        with self._lock:
            self._pending.extendleft(reversed(tasks))

    def _fill(self) -> None:
        """Start workers up to the target and hand out pending tasks, least-loaded worker first."""
        with self._lock:
            has_work = bool(self._pending)
        if not has_work:
            return
        if time.monotonic() < self._failed_until:
            self._fail_pending()
            return
        active = [w for w in self._workers if not w.quarantined]
        while len(active) < self.num_workers:
            worker = self._spawn()
            if worker is None:
                self._fail_pending()
                return
            active.append(worker)
        for w in sorted(active, key=lambda x: len(x.inflight)):
            while len(w.inflight) < _DEPTH:
                with self._lock:
                    if not self._pending:
                        return
                    task = self._pending.popleft()
                if task.future.done():
                    continue
                if task.risky and self._isolate(task):
                    continue
                if not self._send(w, task):
                    break

    def _send(self, w: _Worker, task: _Task) -> bool:
        if not w.inflight:
            w.start_head(time.monotonic(), w.cpu_base)  # an idle worker used no CPU since its last result
        w.inflight.append(task)
        try:
            _send_msg(w.sock, (task.id, task.payload, _soft_s(task.timeout_s)))
            return True
        except OSError:
            self.stats["crashed"] += 1
            self._drop_worker(w, head_result=ERROR)
            return False

    def _isolate(self, task: _Task) -> bool:
        """Start a risky task on a fresh worker that is quarantined as a hog from the start (no detection cost)."""
        if sum(x.quarantined for x in self._workers) >= _max_quarantined(self.num_workers):
            return False
        w = self._spawn()
        if w is None:
            return False
        w.quarantined = w.hog = True
        self.stats["isolated"] += 1
        self._send(w, task)
        return True

    def _fail_pending(self) -> None:
        with self._lock:
            tasks, self._pending = list(self._pending), collections.deque()
        for task in tasks:
            _resolve(task, ERROR)

    def _read(self, w: _Worker) -> None:
        try:
            chunk = w.sock.recv(1 << 16)
        except (TimeoutError, BlockingIOError):
            return
        except OSError:
            chunk = b""
        if not chunk:
            self.stats["crashed"] += 1
            self._drop_worker(w, head_result=ERROR)  # died by itself (e.g. a native crash)
            return
        w.buf += chunk
        while len(w.buf) >= _FRAME.size:
            size = _FRAME.unpack_from(w.buf)[0]
            if len(w.buf) < _FRAME.size + size:
                break
            task_id, result, cpu = pickle.loads(bytes(w.buf[_FRAME.size : _FRAME.size + size]))
            del w.buf[: _FRAME.size + size]
            if w.inflight and w.inflight[0].id == task_id:
                _resolve(w.inflight.popleft(), result)
                w.start_head(time.monotonic(), cpu)  # the next queued task, if any, starts now
            if w.parked_at is not None:  # the result was already on its way when the worker was stopped
                _signal(w.pid, signal.SIGCONT)
                w.parked_at = None
            if w.quarantined and not w.inflight:
                if sum(not x.quarantined for x in self._workers) < 2 * self.num_workers:
                    w.quarantined = w.hog = False  # back to work: a spare saves the next quarantine a fork
                    self.stats["rejoined"] += 1
                else:
                    self.stats["retired"] += 1
                    self._drop_worker(w, head_result=ERROR)
                    return

    def _drop_worker(self, w: _Worker, head_result: dict) -> None:
        """Kill a worker, resolve its running task with ``head_result`` and hand its queued tasks back."""
        _signal(w.pid, signal.SIGKILL)  # also ends a stopped (parked) process
        try:
            self._sel.unregister(w.sock)
        except (KeyError, ValueError):
            pass
        w.sock.close()
        with self._lock:
            self._workers.remove(w)
        if w.inflight:
            _resolve(w.inflight.popleft(), head_result)
            self._requeue(list(w.inflight))
            w.inflight.clear()

    # -- processes -----------------------------------------------------------------------------------------------

    def _spawn(self) -> _Worker | None:
        for attempt in range(2):
            try:
                if self._zygote is None or self._zygote.poll() is not None:
                    self._start_zygote()
                ours, theirs = socket.socketpair()
                try:
                    socket.send_fds(self._ctl, [b"F"], [theirs.fileno()])
                finally:
                    theirs.close()
                reply = _recv_exact(self._ctl, _PID.size)
                if reply is None:
                    raise OSError("zygote closed the control socket")
                worker = _Worker(pid=_PID.unpack(reply)[0], sock=ours)
                # reads happen only when the selector reports data; a send blocks at most this long on a wedged worker
                ours.settimeout(5.0)
                self._sel.register(ours, selectors.EVENT_READ, worker)
                with self._lock:
                    self._workers.append(worker)
                self.stats["spawned"] += 1
                return worker
            except (OSError, RuntimeError) as exc:
                logger.warning("trustrl reward pool: could not start a worker (attempt %d): %s", attempt + 1, exc)
                self._stop_zygote()
        self._failed_until = time.monotonic() + 5.0  # retry later; meanwhile tasks score 0 with status=error
        return None

    def _start_zygote(self) -> None:
        ctl, theirs = socket.socketpair()
        env = dict(os.environ)
        env.update({_ENV_FD: str(theirs.fileno()), _ENV_PPID: str(os.getpid()), _ENV_PATH: json.dumps(sys.path)})
        group = {"process_group": 0} if sys.version_info >= (3, 11) else {"start_new_session": True}
        try:
            # Created from the dispatcher thread on purpose: PR_SET_PDEATHSIG fires when this thread ends.
            self._zygote = subprocess.Popen(
                [sys.executable, "-c", _BOOT],
                pass_fds=(theirs.fileno(),),
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                **group,  # terminal Ctrl-C goes to the caller only
            )
        finally:
            theirs.close()
        self._ctl = ctl
        ctl.settimeout(_STARTUP_S)
        if ctl.recv(1) != b"R":
            raise RuntimeError("zygote exited during start-up (is math-verify importable by sys.executable?)")
        ctl.settimeout(30.0)

    def _stop_zygote(self) -> None:
        if self._ctl is not None:
            self._ctl.close()
            self._ctl = None
        if self._zygote is not None:
            self._zygote.kill()
            try:
                self._zygote.wait(5)
            except subprocess.TimeoutExpired:
                pass
            self._zygote = None

    def _teardown(self) -> None:
        with self._lock:
            self._closing = True
        for w in list(self._workers):
            self._drop_worker(w, head_result=ERROR)
        self._fail_pending()
        self._stop_zygote()
        self._sel.close()
        self._wake_r.close()
        self._wake_w.close()


def _slow_wall_s(timeout_s: float) -> float:
    return min(_SLOW_WALL_S, timeout_s / 4)


def _max_quarantined(num_workers: int) -> int:
    return 32 + 8 * num_workers


def _cap_s(cap: tuple[float, float], timeout_s: float) -> float:
    return max(cap[0] * timeout_s, cap[1])


def _soft_s(timeout_s: float) -> float:
    """In-worker CPU-time budget (ITIMER_PROF): interrupts Python-level slowness before a kill is needed."""
    return max(0.05, 0.8 * timeout_s)


_CLK_TCK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _cpu_seconds(pid: int) -> float | None:
    """User+system CPU seconds of a process from ``/proc/<pid>/stat`` (None where there is no /proc)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            fields = f.read().rsplit(b")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / _CLK_TCK  # utime and stime: fields 14 and 15 of stat(5)
    except (OSError, IndexError, ValueError):
        return None


def _signal(pid: int, sig: int) -> bool:
    try:
        os.kill(pid, sig)
        return True
    except OSError:
        return False


def _resolve(task: _Task, result: dict) -> None:
    if not task.future.done():
        task.future.set_result(result)


# ---------------------------------------------------------------------------------------------------------------
# One pool per process
# ---------------------------------------------------------------------------------------------------------------

_POOL: Pool | None = None
_POOL_LOCK = threading.Lock()


def default_num_workers() -> int:
    env = os.environ.get("TRUSTRL_REWARD_NUM_WORKERS")
    if env:
        return max(1, int(env))
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:
        cores = os.cpu_count() or 1
    return max(1, min(4, cores))


def get_pool(num_workers: int | None = None) -> Pool:
    """The process-wide pool, created on first use and re-created after a fork or a dispatcher failure."""
    global _POOL
    want = num_workers or default_num_workers()
    with _POOL_LOCK:
        if _POOL is None or not _POOL.alive or _POOL.owner_pid != os.getpid():
            _POOL = Pool(want)
        elif _POOL.num_workers != want and num_workers:
            _POOL.resize(want)
        return _POOL


def shutdown() -> None:
    """Kill every worker and the zygote of this process's pool (also run at interpreter exit)."""
    global _POOL
    with _POOL_LOCK:
        pool, _POOL = _POOL, None
    if pool is not None and pool.owner_pid == os.getpid():
        pool.close()


def _forget_after_fork() -> None:
    # A forked child inherits the pool object but not its thread; it must start its own.
    global _POOL, _POOL_LOCK
    _POOL, _POOL_LOCK = None, threading.Lock()


atexit.register(shutdown)
os.register_at_fork(after_in_child=_forget_after_fork)
