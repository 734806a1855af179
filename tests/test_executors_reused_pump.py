"""Reused workers' replies are read by whoever waits, polls or launches: no reader thread.

Each test leaves a reply (or a worker's end) unread in the worker's pipe on purpose and
checks which call finds it: ``finished()``/``wait()`` (the controller's thread), a
``launch`` that has no idle worker, the watchdog at a deadline, the feeder while steps
are queued, or nobody but the EOF.
"""

from __future__ import annotations

import os
import select
import signal
import threading
import time

from chute.dsl import component
from chute.executors.base import FAILED, SUCCEEDED
from chute.executors.python import PythonExecutor
from tests.test_executors_python import step
from tests.test_executors_reused import nap, out, pid, run


@component
def touch(path: str) -> None:
    with open(path, "w"):
        pass


def worker(ex: PythonExecutor):
    """The pool's one live worker."""
    (w,) = [w for ws in ex.pool._workers.values() for w in ws if not w.gone]
    return w


def live(ex: PythonExecutor) -> set[int]:
    """Pids of the pool's live workers."""
    return {p for ps in ex.pool.worker_pids().values() for p in ps}


def reply_unread(w, timeout: float = 20.0) -> None:
    """Wait until ``w`` has written a line nobody has read yet."""
    ready, _, _ = select.select([w.out], [], [], timeout)
    assert ready, "no reply from the worker"


def ends(ex: PythonExecutor, step_dir, timeout: float = 20.0) -> float:
    """Seconds until ``finished()`` reports ``step_dir``, calling only wait and finished."""
    t0 = time.monotonic()
    seen: set = set()
    while step_dir not in seen and time.monotonic() - t0 < timeout:
        ex.wait(timeout)
        seen |= ex.finished()
    assert step_dir in seen
    return time.monotonic() - t0


def test_no_thread_reads_replies_finished_and_wait_do(tmp_path):
    before = threading.active_count()
    with PythonExecutor(reuse=True, pool_size=1) as ex:
        first = out(run(ex, step(tmp_path, pid, name="warm")))
        assert threading.active_count() == before  # a worker brings no thread with it
        w = worker(ex)
        # a reply left in the pipe is found by the next finished(), nobody waiting
        s = step(tmp_path, pid, name="unread")
        h = ex.launch(s)
        reply_unread(w)
        assert s.step_dir in ex.finished()
        r = ex.poll(h)
        assert r.outcome == SUCCEEDED and out(r) == first == str(w.pid)
        # a waiting controller wakes on the reply itself, long before its timeout
        s = step(tmp_path, nap, name="nap", inputs={"seconds": 0.2})
        h = ex.launch(s)
        assert ends(ex, s.step_dir, timeout=60) < 30
        assert ex.poll(h).outcome == SUCCEEDED
        ex.pool.close()  # (closed again on leaving the block: nothing happens then)
        assert not any(live(ex))


def test_a_worker_killed_mid_step_wakes_a_waiting_controller(tmp_path):
    with PythonExecutor(reuse=True, pool_size=1) as ex:
        run(ex, step(tmp_path, nap, name="warm", inputs={"seconds": 0}))  # nap's worker
        w = worker(ex)
        s = step(tmp_path, nap, name="long", inputs={"seconds": 120})
        h = ex.launch(s)
        threading.Timer(0.3, os.kill, (w.pid, signal.SIGKILL)).start()
        assert ends(ex, s.step_dir) < 15  # its end (EOF) woke the wait, not the timeout
        r = ex.poll(h)
        assert (r.outcome, r.exit_code, r.signal) == (FAILED, 137, signal.SIGKILL)
        assert run(ex, step(tmp_path, pid, name="after")).outcome == SUCCEEDED


def test_an_idle_workers_death_is_noticed_by_a_wait(tmp_path):
    with PythonExecutor(reuse=True, pool_size=1) as ex:
        dead = int(out(run(ex, step(tmp_path, pid, name="warm"))))
        os.kill(dead, signal.SIGKILL)
        end = time.monotonic() + 10
        while dead in live(ex) and time.monotonic() < end:
            ex.wait(0.2)  # an idle controller's loop: the EOF wakes it, no launch, no poll
            ex.finished()
        assert dead not in live(ex)
        after = run(ex, step(tmp_path, pid, name="after"))
        assert after.outcome == SUCCEEDED and int(out(after)) != dead


def test_a_reply_in_time_but_unread_at_the_deadline_is_not_a_timeout(tmp_path):
    with PythonExecutor(reuse=True, pool_size=1) as ex:
        run(ex, step(tmp_path, pid, name="warm"))
        w = worker(ex)
        deadline = time.time() + 3.0
        h = ex.launch(step(tmp_path, pid, name="s", deadline=deadline))
        reply_unread(w)
        assert time.time() < deadline  # (a warm worker answers in milliseconds)
        time.sleep(deadline - time.time() + 0.5)  # the watchdog has been and gone
        r = ex.poll(h)
        assert r.outcome == SUCCEEDED and out(r) == str(w.pid)
        assert w.pid in live(ex)  # not stopped


def test_a_launch_reads_the_reply_that_frees_its_worker(tmp_path):
    with PythonExecutor(reuse=True, pool_size=1) as ex:
        run(ex, step(tmp_path, pid, name="warm"))
        w = worker(ex)
        a, b = (step(tmp_path, pid, name=n) for n in "ab")
        ha = ex.launch(a)
        reply_unread(w)  # a's reply: the worker is free, the pool does not know yet
        hb = ex.launch(b)  # reads it, and b goes to the worker at once: never queued
        reply_unread(w)  # b's reply, with nobody waiting or polling
        assert ex.pool._feeder is None  # (a queued step would have started the feeder)
        assert {a.step_dir, b.step_dir} <= ex.finished()
        assert [ex.poll(h).outcome for h in (ha, hb)] == [SUCCEEDED] * 2


def test_queued_steps_go_on_with_nobody_waiting_or_polling(tmp_path):
    with PythonExecutor(reuse=True, pool_size=1) as ex:
        marks = [tmp_path / f"m{i}" for i in range(3)]
        specs = [step(tmp_path, touch, name=f"q{i}", inputs={"path": str(m)})
                 for i, m in enumerate(marks)]
        run(ex, step(tmp_path, touch, name="warm", inputs={"path": str(tmp_path / "w")}))
        handles = [ex.launch(s) for s in specs]  # one worker: two of them queued
        end = time.monotonic() + 30
        while not marks[-1].exists() and time.monotonic() < end:
            time.sleep(0.01)  # nothing called: the feeder hands each on as one replies
        assert marks[-1].exists()
        seen = ex.finished()  # the first two (the feeder read them), maybe the last
        assert {s.step_dir for s in specs[:2]} <= seen
        assert specs[-1].step_dir in seen or ends(ex, specs[-1].step_dir) < 20
        assert [ex.poll(h).outcome for h in handles] == [SUCCEEDED] * 3
