"""evaluator.procpool: bounded, fork-free process pools whose children never outlive the caller."""

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time

import pytest

from evaluator.procpool import PoolFailure, call_bounded, pid_alive, run_bounded, terminate_all
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


def test_an_item_that_kills_its_worker_alone_twice_fails_alone():
    """Only an item that reproducibly kills its worker, the last time alone, gets a failure
    (with the reason); the others run."""
    outs = sorted(run_bounded(h.die_on, [1, -1, 2, 3], workers=2), key=lambda o: o.index)
    assert [o.ok for o in outs] == [True, False, True, True]
    assert outs[1].error == "worker process died (exit code 3); 2 times, the last alone in its worker"


def test_the_retry_of_an_item_whose_worker_died_runs_alone(tmp_path):
    """Nothing else runs in the pool while the item whose worker died runs again (so a
    second death is its own, not memory pressure from its neighbours)."""
    tasks = [(str(tmp_path), "good", i) for i in range(12)]
    tasks.insert(3, (str(tmp_path), "crash", 99))
    outs = list(run_bounded(h.overlap_probe, tasks, workers=2, timeout_s=120))
    assert len(outs) == 13 and all(o.ok for o in outs), [o.error for o in outs if not o.ok]
    beside = {o.value[0]: o.value[1] for o in outs}
    assert beside[99] == []  # no good item ran during the retry
    assert all(beside[i] == [] for i in range(12))  # no good item started during it


def test_a_worker_killed_mid_item_costs_the_item_nothing(tmp_path):
    """A worker killed from outside (a signal, the OOM killer) while it runs an item: the
    item runs again in another worker process and succeeds; no failure is recorded."""
    marker = tmp_path / "first-run-pid"
    killed: list[int] = []

    def kill_first_run() -> None:  # waits on the state "the first run has started", bounded
        end = time.monotonic() + 120
        while not marker.exists() and time.monotonic() < end:
            time.sleep(0.05)
        if marker.exists():
            killed.append(int(marker.read_text()))
            os.kill(killed[0], signal.SIGKILL)

    killer = threading.Thread(target=kill_first_run, daemon=True)
    killer.start()
    outs = list(run_bounded(h.wait_to_be_killed_once, [str(marker)], workers=1, timeout_s=120))
    killer.join(10)
    assert killed, "the item did not start"
    assert len(outs) == 1 and outs[0].ok, outs
    assert outs[0].value.startswith("retried in ") and outs[0].value != f"retried in {killed[0]}"


def test_workers_that_keep_dying_fail_the_run_not_the_items():
    """Every worker killed whatever it runs: the run fails as infrastructure (PoolFailure),
    after a bounded number of losses, instead of giving every item a failure."""
    with pytest.raises(PoolFailure, match="worker processes keep failing .* not of the items"):
        list(run_bounded(h.kill_own_worker, range(40), workers=2, timeout_s=120))


def test_workers_that_cannot_start_fail_the_run():
    run = run_bounded(h.square, range(5), workers=2, initializer=h.exit_at_start)
    with pytest.raises(PoolFailure, match="could not start: worker process died \\(exit code 1\\)"):
        list(run)
    # bounded: the limit, plus at most the other worker lost in the same poll (a busy machine)
    assert run.max_lost_workers == 2 * 2 + 4 and run.max_lost_workers <= run.lost_in_a_row < run.max_lost_workers + 2


def test_memory_cap_gives_a_memory_error():
    out = call_bounded(h.allocate_gib, 8, timeout_s=120, max_memory_bytes=2 * 2**30)
    assert not out.ok and out.error.startswith("MemoryError")


def test_initializer_failure_fails_the_run_with_the_reason():
    with pytest.raises(PoolFailure, match="could not start: RuntimeError: model weights missing"):
        list(run_bounded(h.square, range(3), workers=2, initializer=h.bad_initializer))


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


def _drive(how: str, tmp_path, body: str) -> subprocess.CompletedProcess:
    """Run ``body`` (after the imports) as a script file, from standard input or with -c."""
    script = textwrap.dedent(f"""
        import sys
        sys.path[:0] = [{str(REPO)!r}, {str(SUPPORT)!r}]
        from evaluator.procpool import run_bounded
        import procpool_helpers as h
    """) + textwrap.dedent(body)
    path = tmp_path / "drive.py"
    path.write_text(script)
    args = {"file": [sys.executable, str(path)], "stdin": [sys.executable, "-"],
            "-c": [sys.executable, "-c", script]}[how]
    return subprocess.run(args, input=script if how == "stdin" else None, capture_output=True,
                          text=True, timeout=300, cwd=tmp_path)


@pytest.mark.parametrize("how", ["file", "stdin", "-c"])
def test_pools_work_whatever_drives_the_caller(tmp_path, how):
    """Children do not re-run the caller's __main__: a script read from standard input
    (whose __file__ is "<stdin>") and an unguarded script file start their workers."""
    done = _drive(how, tmp_path, """
        print(sorted(o.value for o in run_bounded(h.square, range(4), workers=2)))
    """)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split("\n")[-2] == "[0, 1, 4, 9]"


@pytest.mark.parametrize("how", ["stdin", "-c"])
def test_a_function_in_an_unimportable_main_is_refused_clearly(tmp_path, how):
    done = _drive(how, tmp_path, """
        def cube(x):
            return x ** 3
        try:
            list(run_bounded(cube, range(2), workers=2))
        except ValueError as exc:
            print("refused:", exc)
    """)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "refused: cube is defined in __main__, which worker processes cannot import" in done.stdout
