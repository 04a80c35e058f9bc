"""evaluator.procpool: bounded, fork-free process pools whose children never outlive the caller."""

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from evaluator.procpool import call_bounded, pid_alive, run_bounded, terminate_all
import procpool_helpers as h
from repo_paths import REPO, SUPPORT

def _wait_gone(pids, bound_s=60.0) -> list[int]:
    """Wait (polling state, bounded) until every pid is gone; return the survivors."""
    end = time.monotonic() + bound_s
    while time.monotonic() < end:
        alive = [p for p in pids if pid_alive(p)]
        if not alive:
            return []
        time.sleep(0.05)
    return [p for p in pids if pid_alive(p)]


def test_every_item_gets_its_outcome():
    with run_bounded(h.square, range(20), workers=2) as outcomes:
        got = {o.index: o.value for o in outcomes if o.ok}
    assert got == {i: i * i for i in range(20)}


def test_exception_costs_only_its_item():
    outs = sorted(run_bounded(h.fail_on_three, range(6), workers=2), key=lambda o: o.index)
    assert [o.ok for o in outs] == [True, True, True, False, True, True]
    assert outs[3].error == "ValueError: three is refused"


def test_timeout_kills_only_the_stuck_item():
    outs = sorted(run_bounded(h.sleep_forever_on, [1, -1, 2, 3], workers=2, timeout_s=5),
                  key=lambda o: o.index)
    assert [o.ok for o in outs] == [True, False, True, True]
    assert outs[1].timed_out and outs[1].error == "timed out after 5 s"


def test_dead_child_costs_only_its_item():
    outs = sorted(run_bounded(h.die_on, [1, -1, 2], workers=1), key=lambda o: o.index)
    assert [o.ok for o in outs] == [True, False, True]
    assert "worker process died (exit code 3)" == outs[1].error


def test_memory_cap_gives_a_memory_error():
    out = call_bounded(h.allocate_gib, 8, timeout_s=120, max_memory_bytes=2 * 2**30)
    assert not out.ok and out.error.startswith("MemoryError")


def test_initializer_failure_fails_every_item_with_the_reason():
    outs = list(run_bounded(h.square, range(3), workers=2, initializer=h.bad_initializer))
    assert len(outs) == 3 and not any(o.ok for o in outs)
    assert all("model weights missing" in o.error for o in outs)


def test_fork_is_refused():
    with pytest.raises(ValueError, match="fork"):
        run_bounded(h.square, [1], start_method="fork")


def test_leaving_early_kills_the_children_at_once():
    run = run_bounded(h.sleep_forever_on, [1, 2, -1, -2], workers=2)
    with run as outcomes:
        for _ in outcomes:
            pids = [c.proc.pid for c in run.children]
            break
    assert pids and _wait_gone(pids, 10) == []


def test_terminate_all_stops_live_pools():
    run = run_bounded(h.sleep_forever_on, [1, -1, -2], workers=2)
    next(run)
    pids = [c.proc.pid for c in run.children]
    terminate_all()
    assert _wait_gone(pids, 10) == []
    with pytest.raises(StopIteration):
        next(run)


@pytest.mark.parametrize("start_method", ["forkserver", "spawn"])
def test_children_die_when_the_caller_is_killed(tmp_path, start_method):
    pidfiles = [tmp_path / "a", tmp_path / "b"]
    script = textwrap.dedent(f"""
        import sys, threading
        sys.path[:0] = [{str(REPO)!r}, {str(SUPPORT)!r}]
        from evaluator.procpool import run_bounded
        import procpool_helpers as h
        threading.Thread(target=lambda: None).start()  # a threaded caller, like the worker
        for o in run_bounded(h.record_pid_then_sleep, {[str(p) for p in pidfiles]!r}, workers=2,
                             start_method={start_method!r}):
            pass
    """)
    caller = subprocess.Popen([sys.executable, "-c", script])
    try:
        end = time.monotonic() + 120
        while not all(p.exists() and p.read_text() for p in pidfiles):
            assert caller.poll() is None, "the caller exited before its pool started"
            assert time.monotonic() < end, "the pool did not start"
            time.sleep(0.05)
        pids = [int(p.read_text()) for p in pidfiles]
        assert all(pid_alive(p) for p in pids)
        caller.send_signal(signal.SIGKILL)
        caller.wait()
        assert _wait_gone(pids, 30) == [], "children outlived the killed caller"
    finally:
        if caller.poll() is None:
            caller.kill()


def _preload_lists():
    from evaluator.identity import fingerprint
    from evaluator.ingest import units
    from evaluator.families.validity import core
    return {"ingest": units.PRELOAD, "fingerprint": fingerprint.PRELOAD, "validity": core.PRELOAD}


@pytest.mark.parametrize("name", ["ingest", "fingerprint", "validity"])
def test_fork_server_preloads_start_no_threads(name):
    """A fork server must stay single-threaded, or it forks the deadlock it exists to avoid:
    importing a pool's preload modules (as its fork server does) starts no thread."""
    modules = _preload_lists()[name]
    code = ("import os, sys\n"
            f"for m in {list(modules)!r}: __import__(m)\n"
            "print(len(os.listdir('/proc/self/task')), 'pandas' in sys.modules, 'torch' in sys.modules)")
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                         cwd=REPO, timeout=300, check=True).stdout.split()
    assert out == ["1", "False", "False"], f"{name} preload {modules}: threads, pandas, torch = {out}"
