"""Module-level functions for the procpool tests (children import them by name)."""

import os
import time


def square(x: int) -> int:
    return x * x


def fail_on_three(x: int) -> int:
    if x == 3:
        raise ValueError("three is refused")
    return x


def sleep_forever_on(x: int) -> int:
    if x < 0:
        while True:
            time.sleep(1)
    return x


def die_on(x: int) -> int:
    if x < 0:
        os._exit(3)
    return x


def child_pid(x: int) -> int:
    return os.getpid()


def allocate_gib(n: int) -> int:
    return len(bytearray(n * 2**30))


def bad_initializer() -> None:
    raise RuntimeError("model weights missing")


def record_pid_then_sleep(path: str) -> None:
    with open(path, "w") as fh:
        fh.write(str(os.getpid()))
    while True:
        time.sleep(1)


def wait_to_be_killed_once(path: str) -> str:
    """First run: record this process's pid in ``path`` and wait (the test kills it).
    A later run (the retry, in another worker process) returns at once."""
    if os.path.exists(path):
        return f"retried in {os.getpid()}"
    with open(path + ".tmp", "w") as fh:
        fh.write(str(os.getpid()))
    os.replace(path + ".tmp", path)
    while True:
        time.sleep(0.05)


def kill_own_worker(x: int) -> int:
    """Every run SIGKILLs its own worker process (what memory pressure or an operator's
    signal does to every worker, whatever it runs)."""
    os.kill(os.getpid(), 9)
    return x


def exit_at_start() -> None:
    """An initializer whose process dies before it is ready (a worker that cannot start)."""
    os._exit(1)


def overlap_probe(task: tuple[str, str, int]) -> tuple[int, list[str]]:
    """For the "retried alone" test. ``(folder, kind, i)``: a "good" item marks itself running
    for a moment and reports whether a retry was running when it started; the "crash" item
    dies on its first run and, retried, reports which other items ran beside it."""
    folder, kind, i = task
    if kind == "crash":
        first = os.path.join(folder, "crashed-once")
        if not os.path.exists(first):
            open(first, "w").close()
            os._exit(3)
        solo = os.path.join(folder, "retry-running")
        open(solo, "w").close()
        seen = set(os.listdir(folder))
        time.sleep(1.0)  # a workload long enough for another worker to start an item, were one allowed
        seen |= set(os.listdir(folder))
        os.remove(solo)
        return i, sorted(n for n in seen if n.startswith("running-"))
    mark = os.path.join(folder, f"running-{i}")
    open(mark, "w").close()
    beside = ["retry-running"] if os.path.exists(os.path.join(folder, "retry-running")) else []
    time.sleep(0.05)
    os.remove(mark)
    return i, beside
