"""``python -m leaderboard.serve``: the app plus an evaluation worker (what ``make run`` runs).

Starts ``python -m leaderboard.worker --store URI`` as a subprocess (restarted
if it dies, but not when it refused its configuration, e.g. a misspelled
``--worker-arg --option``: it exits with status 2 and says why), then serves the
Gradio app on the same store. The worker stops (hands its job back to the queue,
kills its evaluation) when this process ends, however it ends: SIGTERM/Ctrl-C are
passed on, and the worker watches this process's pid (``GENBENCH_WORKER_PARENT_PID``)
in case it is killed. Everything runs on the embedded default protocol (SevenNet-l3i5
with MP2020 corrections + MP-20 reference, on CPU as on GPU; ``GENBENCH_PROTOCOL=chgnet``
pins CHGNet instead), local stores ``./state/requests`` and ``./state/results``, and needs no
network. The app pins the protocol of the service's configuration (``GENBENCH_*``) and the
worker is started with ``--expect-protocol`` set to it, so a worker that cannot produce it
refuses to start. Port: ``--port``, else
``GRADIO_SERVER_PORT``, else 7860; host: ``--host``, else ``GRADIO_SERVER_NAME``,
else 127.0.0.1.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import threading

from leaderboard import settings
from leaderboard.store import resolve_uris

RESTART_DELAY_S = 5.0


class WorkerSupervisor:
    """Runs the worker subprocess and restarts it (after a pause) when it exits."""

    def __init__(self, store: str | None, extra: list[str] | None = None, protocol: str | None = None,
                 results_store: str | None = None):
        pin = ["--expect-protocol", protocol] if protocol else []
        stores = ([] if store is None else ["--store", store]) + (
            [] if results_store is None else ["--results-store", results_store])
        self.cmd = [sys.executable, "-m", "leaderboard.worker", *stores, *pin, *(extra or [])]
        self.proc: subprocess.Popen[bytes] | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="worker-supervisor", daemon=True)
        self.restarts = 0

    def start(self) -> WorkerSupervisor:
        self._spawn()
        self._thread.start()
        return self

    def _spawn(self) -> None:
        env = {**os.environ, settings.WORKER_PARENT_PID.name: str(os.getpid())}
        self.proc = subprocess.Popen(self.cmd, env=env)
        print(f"[serve] worker started (pid {self.proc.pid}): {' '.join(self.cmd)}", flush=True)

    def _run(self) -> None:
        from leaderboard.worker import CONFIG_ERROR

        while not self._stop.is_set():
            if self.proc is not None and self.proc.poll() is not None:
                code = self.proc.returncode
                if code == CONFIG_ERROR:  # restarting would refuse the same configuration again
                    print(f"[serve] the worker refused its configuration (exit code {code}, reason above); "
                          "not restarting it", flush=True)
                    return
                if self._stop.wait(RESTART_DELAY_S):
                    return
                print(f"[serve] worker exited with code {code}; restarting", flush=True)
                self.restarts += 1
                self._spawn()
            self._stop.wait(1.0)

    def stop(self, timeout: float = 20.0) -> None:
        """Ask the worker to stop (SIGTERM: it hands its job back to the queue), then wait."""
        self._stop.set()
        p = self.proc
        if p is None or p.poll() is not None:
            return
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="python -m leaderboard.serve", description=__doc__.split("\n\n")[0])
    ap.add_argument("--port", type=int, default=None, help="port (default $GRADIO_SERVER_PORT or 7860)")
    ap.add_argument("--host", default=None, help="interface (default $GRADIO_SERVER_NAME or 127.0.0.1)")
    ap.add_argument("--store", default=None, help="requests store URI (default $GENBENCH_STORE or "
                                                  "./state/requests)")
    ap.add_argument("--results-store", default=None, help="public results store URI (default "
                                                          "$GENBENCH_RESULTS_STORE or ./state/results)")
    ap.add_argument("--no-worker", action="store_true", help="serve the app only")
    ap.add_argument("--worker-arg", action="append", default=[],
                    help="extra argument for the worker (repeatable)")
    return ap.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

    store, results = resolve_uris(args.store, args.results_store)
    os.environ[settings.STORE.name] = store  # the worker and the app use the same stores
    if results is not None:
        os.environ[settings.RESULTS_STORE.name] = results
    port = args.port or int(os.environ.get("GRADIO_SERVER_PORT") or 7860)
    host = args.host or os.environ.get("GRADIO_SERVER_NAME") or "127.0.0.1"

    from leaderboard.ui import build_app, launch_kwargs

    # SIGTERM (process managers, `timeout`, Space shutdown) must also stop the worker:
    # turn it into SystemExit so the finally block below runs.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(0))
    from leaderboard.ui.shared_state import make_context

    ctx = make_context(store)
    pinned = ctx.protocol  # the service's protocol: the app shows it, the worker must produce it
    worker = None if args.no_worker else WorkerSupervisor(store, args.worker_arg,
                                                          pinned.id if pinned else None, results).start()
    try:
        demo = build_app(ctx)
        demo.queue(default_concurrency_limit=4)
        print(f"[serve] app on http://{host}:{port} (requests store {store}, results store "
              f"{results or store})", flush=True)
        demo.launch(server_name=host, server_port=port, **launch_kwargs())
    finally:
        if worker is not None:
            worker.stop()


if __name__ == "__main__":
    main()
