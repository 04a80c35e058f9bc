"""Checks of a worker's configuration before it claims anything: the evaluator's families
and options (``check_config``), the protocol it produces against the one the service pins
(``check_protocol``) and whether several concurrent jobs can share what it runs on
(``check_concurrency``). Each raises ValueError with a message for the operator."""

from __future__ import annotations

import os
from pathlib import Path

from evaluator.config import PRESETS, EvalConfig, build_config
from evaluator.data import DataDir
from evaluator.pipeline import check_config as check_pipeline_config
from evaluator.protocol import Protocol, ProtocolError, protocol_of

def check_config(config: EvalConfig) -> None:
    """Raise ValueError if ``config`` names an unknown family or option."""
    check_pipeline_config(config)


def check_protocol(config: EvalConfig, expected: str | None, data_dir: str | Path | None = None) -> Protocol:
    """The protocol this worker produces; ValueError (naming both) when it cannot produce it
    (missing weights or data) or when it is not ``expected`` (the pinned id, or a named protocol)."""
    data = DataDir(data_dir)
    pinned_id, pinned = _pinned(expected, data)
    try:
        own = protocol_of(config, data)
    except ProtocolError as exc:
        raise ValueError(f"this worker cannot produce {pinned or 'its protocol'}: {exc}") from None
    if pinned_id is not None and own.id != pinned_id:
        raise ValueError(f"the service pins {pinned}, but this worker's configuration produces protocol "
                         f"{own.describe()} (mlip {config.mlip}, model {config.mlip_model or 'default'}, "
                         f"dtype {config.dtype}, {config.relax_steps} relaxation steps); start it with the "
                         "pinned protocol's settings")
    return own


def _pinned(expected: str | None, data: DataDir) -> tuple[str | None, str]:
    """(id, description) of the pinned protocol ``expected`` (an id or a named protocol)."""
    if not expected:
        return None, ""
    for name in PRESETS:  # a named protocol, or the name of a pinned id
        try:
            p = protocol_of(build_config(env={}, protocol=name), data)
        except ProtocolError as exc:
            if expected == name:
                raise ValueError(f"this worker cannot produce the pinned protocol {name!r}: {exc}") from None
            continue
        if expected in (name, p.id):
            return p.id, f"protocol {p.describe()} (named {name!r})"
    return expected, f"protocol {expected}"


def ray_address() -> str | None:
    """The Ray cluster the Ray executor joins when given no address: ``$RAY_ADDRESS`` (Ray's own
    variable, read where the executor runs; not a ``GENBENCH_*`` setting)."""
    return os.environ.get("RAY_ADDRESS") or None


def check_concurrency(slots: int, config: EvalConfig) -> None:
    """ValueError unless ``slots`` concurrent jobs can share what ``config`` runs on: one job
    always; several only on a Ray cluster they join (an address, not a cluster per job) with each
    job's share of it given (``ray_actors``), since a job otherwise asks for the whole machine
    or cluster and the jobs would starve or oversubscribe each other."""
    if slots < 1:
        raise ValueError(f"--concurrent-jobs must be >= 1, got {slots}")
    if slots == 1:
        return
    execution = config.execution
    if execution.executor != "ray":
        raise ValueError(f"--concurrent-jobs {slots} needs --executor ray: with the local executor each job sizes "
                         "its pools to the whole machine; start one worker per GPU instead (README, Scaling out)")
    if not (execution.ray_address or ray_address()):
        raise ValueError(f"--concurrent-jobs {slots} needs a cluster the jobs share: --ray-address HOST:PORT or "
                         "$RAY_ADDRESS (without one each job would start its own local cluster of the whole machine)")
    if not execution.ray_actors:
        raise ValueError(f"--concurrent-jobs {slots} needs --ray-actors N (or $GENBENCH_RAY_ACTORS), the actors of "
                         f"each job: e.g. the cluster's GPUs divided by {slots}")


