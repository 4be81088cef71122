# Copyright 2026 The trustrl Authors. Licensed under the Apache License, Version 2.0.
"""The reward's worker pool: hard kill of stuck inputs, batches that do not wait for them, and process hygiene.

The only timing asserts here are the guarantees the pool makes (a stuck input is stopped at its deadline and
never serializes the batch), each with a margin of several seconds for a loaded CI machine.
"""

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest
from trustrl.reward import _pool
from trustrl.reward.math_reward import compute_scores, shutdown, warmup

HANG = r"\boxed{\dfrac{5^{\left(5^{\left(5^{\left(5^5\right)}\right)} - 4\right)} - 5}{16}}"  # Math-Verify #65
TOWER = r"\boxed{9^{9^{9}} - 4}"  # sympy computes 9^387420489 exactly when comparing it with the gold
BIG_FACTORIAL = r"\boxed{(10^{8})!}"  # not flagged as risky by the answer check: found as a CPU hog at run time
NORMAL = [(f"\\boxed{{\\frac{{{i}}}{{{i + 1}}}}}", f"{i}/{i + 1}") for i in range(1, 25)]
# pools started only to test process handling skip the zygote's warm-up (about 2 s of CPU each)
COLD_ENV = {**os.environ, "TRUSTRL_REWARD_WARMUP": "0"}


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"  # a zombie has exited
    except FileNotFoundError:
        return False


def out_pid(out) -> int:
    return json.loads(out.stdout.strip().splitlines()[-1])["me"]


def _wait_dead(pids, timeout=20.0) -> list[int]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and any(_alive(p) for p in pids):
        time.sleep(0.1)
    return [p for p in pids if _alive(p)]


@pytest.fixture
def no_soft_timeout(monkeypatch):
    # the in-worker CPU alarm usually interrupts #65 first; switching it off leaves only the hard kill
    monkeypatch.setattr(_pool, "_soft_s", lambda timeout_s: 3600.0)


@pytest.mark.parametrize(
    "stuck, path",
    [
        (HANG, "isolated"),  # flagged risky up front: started on a process of its own
        (TOWER, "isolated"),
        (BIG_FACTORIAL, "hogs"),  # looks harmless: found by its CPU time, then moved aside
    ],
)
def test_stuck_input_is_killed_and_the_batch_goes_on(no_soft_timeout, stuck, path):
    timeout_s = 2.0
    warmup()
    pool = _pool.get_pool()
    killed_before, path_before = pool.stats["killed"], pool.stats[path]
    solutions = [s for s, _ in NORMAL[:12]] + [stuck] + [s for s, _ in NORMAL[12:]]
    golds = [g for _, g in NORMAL[:12]] + ["7"] + [g for _, g in NORMAL[12:]]
    start = time.monotonic()
    results = compute_scores(solutions, golds, timeout_s=timeout_s)
    elapsed = time.monotonic() - start
    assert results[12]["status"] == "timeout" and results[12]["timed_out"] and results[12]["score"] == 0.0
    assert [r["score"] for i, r in enumerate(results) if i != 12] == [1.0] * len(NORMAL)
    assert pool.stats["killed"] == killed_before + 1  # a hard kill, not an in-worker interrupt
    assert pool.stats[path] == path_before + 1
    assert elapsed < timeout_s + 10.0  # stopped at its deadline (the rest takes well under a second)


def test_many_stuck_inputs_do_not_serialize(no_soft_timeout):
    # 6 stuck inputs at 2 s each would take 12 s one after another on 2 workers' slots; they run side by side
    timeout_s = 2.0
    warmup()
    stuck = [HANG.replace("- 4", f"- {j}") for j in range(4, 7)] + [TOWER.replace("- 4", f"- {j}") for j in (5, 6, 7)]
    solutions = [s for s, _ in NORMAL] + stuck
    golds = [g for _, g in NORMAL] + ["7"] * len(stuck)
    start = time.monotonic()
    results = compute_scores(solutions, golds, timeout_s=timeout_s)
    elapsed = time.monotonic() - start
    assert [r["status"] for r in results[len(NORMAL) :]] == ["timeout"] * len(stuck)
    assert [r["score"] for r in results[: len(NORMAL)]] == [1.0] * len(NORMAL)
    assert elapsed < 2 * timeout_s + 6.0 < len(stuck) * timeout_s


def test_no_main_guard_and_no_orphans_at_exit(tmp_path):
    # a script without `if __name__ == "__main__":` would re-run itself under spawn/forkserver start methods
    script = tmp_path / "score_without_guard.py"
    script.write_text(
        textwrap.dedent(
            """
            import json, os
            from trustrl.reward import _pool
            from trustrl.reward.math_reward import compute_scores

            with open("body_runs.txt", "a") as f:  # any process that re-runs this module adds a line
                f.write(f"{os.getpid()}\\n")
            results = compute_scores(["\\\\boxed{\\\\frac12}", "\\\\boxed{3}"], ["0.5", "4"])
            pids = _pool.get_pool().pids()
            print(json.dumps({"scores": [r["score"] for r in results], "pids": pids, "me": os.getpid()}), flush=True)
            """
        )
    )
    out = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=300, cwd=tmp_path, env=COLD_ENV
    )
    assert out.returncode == 0, out.stderr
    assert (tmp_path / "body_runs.txt").read_text().split() == [str(out_pid(out))]  # no child re-ran __main__
    assert "bootstrapping phase" not in out.stderr
    report = json.loads(out.stdout.strip().splitlines()[-1])
    assert report["scores"] == [1.0, 0.0]
    pids = [report["pids"]["zygote"], *report["pids"]["workers"]]
    assert len(pids) >= 2
    assert _wait_dead(pids) == []  # atexit closed the pool


def test_no_orphans_when_the_parent_is_killed(tmp_path):
    # SIGKILL skips atexit: PR_SET_PDEATHSIG (and socket EOF) must take the zygote and workers down
    script = tmp_path / "killed_parent.py"
    script.write_text(
        textwrap.dedent(
            """
            import json, os, signal, sys
            from trustrl.reward import _pool
            from trustrl.reward.math_reward import compute_scores

            compute_scores(["\\\\boxed{1}"] * 4, ["1"] * 4)
            pids = _pool.get_pool().pids()
            print(json.dumps([pids["zygote"], *pids["workers"]]), flush=True)
            os.kill(os.getpid(), signal.SIGKILL)
            """
        )
    )
    out = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=300, cwd=tmp_path, env=COLD_ENV
    )
    assert out.returncode == -signal.SIGKILL
    pids = json.loads(out.stdout.strip().splitlines()[-1])
    assert len(pids) >= 2
    assert _wait_dead(pids) == []


def test_a_dead_worker_is_replaced():
    warmup()
    pool = _pool.get_pool()
    victim = pool.pids()["workers"][0]
    os.kill(victim, signal.SIGKILL)
    assert _wait_dead([victim]) == []
    results = compute_scores([s for s, _ in NORMAL], [g for _, g in NORMAL], timeout_s=5.0)
    assert [r["score"] for r in results] == [1.0] * len(NORMAL)
    assert victim not in pool.pids()["workers"]


def test_shutdown_kills_everything_and_the_next_call_restarts(monkeypatch):
    warmup()
    monkeypatch.setenv("TRUSTRL_REWARD_WARMUP", "0")
    pids = _pool.get_pool().pids()
    shutdown()
    assert _wait_dead([pids["zygote"], *pids["workers"]]) == []
    assert compute_scores([r"\boxed{2}"], ["2"])[0]["score"] == 1.0
    assert _pool.get_pool().pids()["zygote"] != pids["zygote"]


def test_a_forked_child_gets_its_own_pool():
    warmup()
    parent_zygote = _pool.get_pool().pids()["zygote"]
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: the inherited pool has no dispatcher thread here and must not be used
        code = 1
        try:
            os.environ["TRUSTRL_REWARD_WARMUP"] = "0"
            ok = compute_scores([r"\boxed{5}"], ["5"])[0]["score"] == 1.0
            code = 0 if ok and _pool.get_pool().pids()["zygote"] != parent_zygote else 2
        finally:
            os.write(write_fd, bytes([code]))
            os._exit(code)
    os.close(write_fd)
    _, status = os.waitpid(pid, 0)
    assert os.read(read_fd, 1) == b"\x00" and os.waitstatus_to_exitcode(status) == 0
    assert compute_scores([r"\boxed{6}"], ["6"])[0]["score"] == 1.0  # the parent's pool still works


# A legitimate answer that needs about 0.4 s of CPU on an idle core (the ellipse of Math-Verify's relation tests).
SLOW_LEGIT = (r"\boxed{x^2/16 + y^2/12 = 1/4}", "$x^2/4 + y^2/3 = 1$")
_BURN = (
    "import os, sys, time\nos.sched_setaffinity(0, {int(sys.argv[1])})\n"
    "end = time.time() + 60\nwhile time.time() < end: pass"
)


def test_the_budget_is_cpu_time_so_a_busy_core_does_not_change_the_score():
    # Pin the pool and 4 CPU burners to one core: the worker gets about a fifth of it, so the answer's ~0.4 s of CPU
    # take ~2 s of wall time, past timeout_s = 1. A wall-clock deadline scored it 0 (timeout); a CPU budget does not.
    cpu = sorted(os.sched_getaffinity(0))[0]
    shutdown()
    warmup(1)
    pool = _pool.get_pool(1)
    for pid in [pool.pids()["zygote"], *pool.pids()["workers"]]:
        os.sched_setaffinity(pid, {cpu})  # the zygote's later forks inherit it
    burners = [subprocess.Popen([sys.executable, "-c", _BURN, str(cpu)]) for _ in range(4)]
    try:
        time.sleep(0.3)
        start = time.monotonic()
        (result,) = compute_scores([SLOW_LEGIT[0]], [SLOW_LEGIT[1]], timeout_s=1.0, num_workers=1)
        elapsed = time.monotonic() - start
    finally:
        for b in burners:
            b.kill()
            b.wait()
        shutdown()
    assert (result["status"], result["score"]) == ("ok", 1.0)
    assert elapsed > 1.0  # it really ran past timeout_s of wall time (else the load did not bite: nothing tested)


def test_a_stuck_input_still_ends_at_its_cpu_budget(no_soft_timeout):
    # the CPU budget keeps the hang guarantee: a harmless-looking hog is killed after timeout_s of its own CPU
    timeout_s = 1.5
    warmup()
    start = time.monotonic()
    (result,) = compute_scores([BIG_FACTORIAL], ["7"], timeout_s=timeout_s)
    elapsed = time.monotonic() - start
    assert result["status"] == "timeout"
    assert elapsed < timeout_s + 8.0  # on an idle core about timeout_s; the margin is for a loaded CI machine


def test_budget_rules():
    # CPU budget for every task; statically risky tasks also end at timeout_s of unparked wall time; wall caps
    task = _pool._Task(payload=(), timeout_s=2.0, future=None)
    risky = _pool._Task(payload=(), timeout_s=2.0, future=None, risky=True)
    w = _pool._Worker(pid=-1, sock=None)
    w.inflight.append(task)
    w.start_head(100.0, 0.0)
    w.cpu_used = 1.9
    assert not w.over_budget(100.0 + 50.0)  # 50 s of wall time but 1.9 s of CPU: still running
    w.cpu_used = 2.0
    assert w.over_budget(100.5)
    w.cpu_used = 0.0
    assert w.over_budget(100.0 + _pool._cap_s(_pool._RUN_WALL_CAP, 2.0))  # no CPU at all: the wall cap ends it
    w.paused_s = 500.0
    assert not w.over_budget(100.0 + 300.0)  # parked time is not running time
    assert w.over_budget(100.0 + _pool._cap_s(_pool._TOTAL_WALL_CAP, 2.0))  # ... but the total cap still holds
    w.inflight[0] = risky
    w.paused_s = 0.0
    assert not w.over_budget(101.9) and w.over_budget(102.0)
