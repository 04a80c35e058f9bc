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
