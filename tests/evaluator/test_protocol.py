"""Evaluation protocols (evaluator.protocol): the record, its stable id and label, the
execution-only options, derivation for old summaries. No model is loaded: the protocol
hashes checkpoints and reference files only."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
import typing
from pathlib import Path

import pytest
from repo_paths import REPO

from evaluator.config import EvalConfig, IngestLimits, build_config
from evaluator.data import DataDir
from evaluator.family_registry import FAMILIES
from evaluator.protocol import (CONFIG_EXECUTION_ONLY, CONFIG_IN_RECORD, EXECUTION_ONLY, EXECUTION_ONLY_LIMITS,
                                ProtocolError, build_record, canonical_json, derive_protocol, from_block,
                                make_protocol, protocol_id, protocol_of, summary_protocol)

# The explicit list of execution-only options: changing one of them never changes a number.
EXPECTED_EXECUTION_ONLY = {
    "validity": {"workers", "start_method"},
    "novelty": {"identity_processes"},
    "stability": {"relax_mode", "relax_workers", "relax_max_atoms"},
    "distribution": {"fd_build_reference"},
}


@pytest.fixture(scope="module")
def default():
    return protocol_of(build_config(env={}))


def test_default_and_chgnet_protocols_and_their_labels(default):
    assert default.label == "SevenNet-l3i5 · MP-20 hull · FIRE fmax 0.02, 300 steps"
    rec = default.record
    assert rec["mlip"]["backend"] == "sevenn" and rec["mlip"]["model"] == "7net-l3i5"
    assert len(rec["mlip"]["checkpoint_sha256"]) == 64 and rec["mlip"]["energy_scale"] == "raw-pbe"
    assert rec["reference"]["id"] == "mp20" and len(rec["reference"]["content_hash"]) == 64
    assert rec["relaxation"] == {"optimizer": "FIRE", "cell_filter": "FrechetCellFilter", "fmax_eV_per_A": 0.02,
                                 "max_steps": 300}
    assert len(default.id) == 12 and int(default.id, 16) >= 0
    chgnet = protocol_of(build_config(env={}, protocol="chgnet"))
    assert chgnet.label == "CHGNet 0.3.0 · MP-20 hull · FIRE fmax 0.02, 300 steps" and chgnet.id != default.id
    # device and families are beside the protocol, not in it
    for device in ("cpu", "cuda"):
        assert protocol_of(build_config(env={}, device=device, families="validity")).id == default.id
    assert "device" not in canonical_json(rec)


def test_id_is_stable_across_processes_and_key_order(default):
    code = ("from evaluator.config import build_config; from evaluator.protocol import protocol_of; "
            "print(protocol_of(build_config(env={})).id)")
    other = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=300)
    assert other.returncode == 0, other.stderr[-2000:]
    assert other.stdout.strip() == default.id

    def reversed_keys(v):
        return {k: reversed_keys(v[k]) for k in reversed(list(v))} if isinstance(v, dict) else v

    shuffled = reversed_keys(default.record)
    assert list(shuffled) != list(default.record)
    assert protocol_id(shuffled) == default.id and make_protocol(shuffled) == default
    # one spelling per number: 300.0 steps and 300 steps are the same protocol
    assert protocol_id({**default.record, "relaxation": {**default.record["relaxation"], "max_steps": 300.0}}) == \
        default.id


def _alternatives(hint, default_value):
    """Other valid-looking values for an option of type ``hint`` (tried in order)."""
    out: list = []
    args = typing.get_args(hint)
    if hint is bool or bool in args:
        out.append(not default_value)
    for literal in [a for a in (args or (hint,)) if typing.get_origin(a) is typing.Literal] + (
            [hint] if typing.get_origin(hint) is typing.Literal else []):
        out += [v for v in typing.get_args(literal) if v != default_value]
    if hint in (int, float) or int in args or float in args:
        base = default_value if isinstance(default_value, (int, float)) and not isinstance(default_value, bool) else 1
        out += [base + 1, base * 2 + 3, base / 2]
    if hint is str or str in args:
        out.append(f"{default_value}-other" if isinstance(default_value, str) else "other")
    if type(None) in args and default_value is not None:
        out.append(None)
    return out


def test_every_option_is_in_the_protocol_unless_declared_execution_only(default, tmp_path):
    """Each family option either changes the id (it may change a value) or is on the explicit
    execution-only list (then it never does); a new option is in the protocol by default."""
    assert {k: set(v) for k, v in EXECUTION_ONLY.items()} == EXPECTED_EXECUTION_ONLY
    hull_file = tmp_path / "hull.parquet"
    hull_file.write_bytes(b"not read, only hashed")
    by_name = {f.name: f for f in FAMILIES}
    for family, names in EXECUTION_ONLY.items():  # no stale names
        assert names <= {f.name for f in dataclasses.fields(by_name[family].options)}, family
    checked = 0
    for family in FAMILIES:
        hints = typing.get_type_hints(family.options)
        for f in dataclasses.fields(family.options):
            default_value = getattr(family.options(), f.name)
            candidates = [str(hull_file)] if f.name == "hull_file" else _alternatives(hints[f.name], default_value)
            for value in candidates:
                try:
                    family.options_from({f.name: value})
                except (ValueError, TypeError):
                    continue
                changed = protocol_of(EvalConfig(options={family.name: {f.name: value}})).id != default.id
                assert changed is (f.name not in EXECUTION_ONLY.get(family.name, ())), (family.name, f.name, value)
                checked += 1
                break
            else:
                pytest.fail(f"no alternative value found for {family.name}.{f.name}: extend _alternatives")
    assert checked >= 12


def test_the_listed_settings_change_the_id(default):
    """Every setting named by the issue: model, checkpoint, dtype, reference hash, hull, fmax,
    step cap, thresholds, a value-changing ingest limit; execution-only limits do not."""
    base = dict(mlip={"backend": "sevenn", "model": "7net-l3i5", "checkpoint_sha256": "a" * 64,
                      "energy_scale": "raw-pbe"},
                reference={"id": "mp20", "content_hash": "b" * 64}, dtype="float32", fmax=0.02, steps=300,
                stable=0.0, metastable=0.1, limits=dataclasses.asdict(IngestLimits()), options={})
    ref = protocol_id(build_record(**base))
    variants = [
        {"mlip": {**base["mlip"], "backend": "chgnet"}}, {"mlip": {**base["mlip"], "model": "7net-0"}},
        {"mlip": {**base["mlip"], "checkpoint_sha256": "c" * 64}}, {"dtype": "float64"},
        {"mlip": {**base["mlip"], "energy_scale": "raw-pbe-omat"}},
        {"reference": {"id": "mp20", "content_hash": "d" * 64}},
        {"reference": {"id": "other", "content_hash": "b" * 64}},
        {"fmax": 0.05}, {"steps": 500}, {"stable": 0.01}, {"metastable": 0.2},
        {"options": {"stability": {"hull": "mace"}}},
        {"limits": {**base["limits"], "max_atoms_per_structure": 200}},
    ]
    ids = {protocol_id(build_record(**{**base, **v})) for v in variants}
    assert ref not in ids and len(ids) == len(variants)
    for limit in EXECUTION_ONLY_LIMITS:
        value = base["limits"][limit]
        other = {**base["limits"], limit: (value or 1) * 2}
        assert protocol_id(build_record(**{**base, "limits": other})) == ref, limit
    # every EvalConfig field is either in the record or declared execution-only
    assert {f.name for f in dataclasses.fields(EvalConfig)} == CONFIG_IN_RECORD | CONFIG_EXECUTION_ONLY
    assert protocol_of(build_config(env={}, relax_steps=40)).id != default.id
    assert protocol_of(build_config(env={}, dtype="float64")).id != default.id


def test_a_protocol_that_cannot_be_produced_is_refused(tmp_path):
    with pytest.raises(ProtocolError, match="not available here"):
        protocol_of(build_config(env={}, mlip="chgnet", mlip_model=str(tmp_path / "missing.pth.tar")))
    with pytest.raises(ProtocolError, match="reference"):
        protocol_of(build_config(env={}), DataDir(tmp_path))
    with pytest.raises(ValueError, match="cheap_frist"):
        protocol_of(EvalConfig(options={"novelty": {"cheap_frist": False}}))


def test_blocks_and_old_summaries(default):
    """A summary's block is trusted only when its id matches its record; an older summary gets
    the protocol derived from its provenance (the same id as if it had recorded one), or none."""
    assert from_block(default.block()) == default
    tampered = {**default.block(), "record": {**default.record, "relaxation": {"max_steps": 1}}}
    assert from_block(tampered) is None
    assert summary_protocol({"protocol": default.block()}) == (default, "summary")
    assert summary_protocol({"protocol": tampered}) == (None, "unknown")

    cfg = build_config(env={})
    effective = {f.name: dataclasses.asdict(f.options_from(None)) for f in FAMILIES}
    provenance = {"config": cfg.to_dict(), "options": effective,
                  "reference": {"id": "mp20", "content_hash": default.record["reference"]["content_hash"]},
                  "family": {"stability": {"mlip": {"name": "sevenn", "model_id": "7net-l3i5", "device": "cpu",
                                                    "checkpoint_sha256": default.record["mlip"]["checkpoint_sha256"]}}}}
    assert derive_protocol(provenance) == default
    assert summary_protocol({"provenance": provenance}) == (default, "derived")
    # a part not recorded (stability did not run; no reference hash): unknown, never guessed
    assert derive_protocol({**provenance, "family": {}}) is None
    assert derive_protocol({**provenance, "reference": {"id": "mp20"}}) is None
    assert summary_protocol({"provenance": {"config": {"mlip": "chgnet"}}}) == (None, "unknown")


def test_the_score_command_records_the_protocol(tmp_path, data):
    """Through the CLI on a small structure set: the protocol block (the default, SevenNet-l3i5,
    without any MLIP flag) and the execution block beside it; validity only, so nothing relaxes."""
    cif = sorted(Path(data.root, "structures/mp_sample").glob("*.cif"))[0]
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, "-m", "evaluator", "score", str(cif), "--out", str(out), "--families",
                           "validity", "--device", "cpu"], capture_output=True, text=True, cwd=REPO, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["schema_version"] == 2
    assert summary["protocol"]["label"] == "SevenNet-l3i5 · MP-20 hull · FIRE fmax 0.02, 300 steps"
    assert from_block(summary["protocol"]) is not None
    assert summary["execution"]["device"] == "cpu" and summary["execution"]["families"] == ["validity"]
    assert f"protocol {summary['protocol']['id']}: SevenNet-l3i5" in proc.stdout
    chgnet = subprocess.run([sys.executable, "-m", "evaluator", "score", str(cif), "--out", str(tmp_path / "c"),
                             "--families", "validity", "--protocol", "chgnet"], capture_output=True, text=True,
                            cwd=REPO, timeout=600)
    assert chgnet.returncode == 0, chgnet.stderr[-2000:]
    assert json.loads((tmp_path / "c" / "summary.json").read_text())["protocol"]["label"].startswith("CHGNet 0.3.0")
