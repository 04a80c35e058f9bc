"""The stability family end to end: columns, metrics, resume after an interruption,
calibration against DFT on real MP-20 crystals, refusals, pool and batched modes."""

from __future__ import annotations

import json
import os

import numpy as np
import pandas as pd
import pytest

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

from mlip_helpers import SMALL_MP20, build_tiny_mace, mp_sample_cifs


@pytest.fixture(scope="module")
def data():
    import torch

    torch.set_num_threads(1)
    from evaluator.data import DataDir

    return DataDir()


def _items(data, ids, broken=True):
    from pymatgen.core import Structure

    from evaluator.ingest.types import Item

    items = [Item(source=p.name, structure=Structure.from_file(p)) for p in mp_sample_cifs(data, ids)]
    if broken:
        items.append(Item(source="broken.cif", error="could not parse"))
    return items


def _config(**kw):
    from evaluator.config import EvalConfig

    options = {"relax_workers": 1, **kw.pop("options", {})}
    kw.setdefault("mlip", "chgnet")  # a model, not the default one: CHGNet is ~3.5x cheaper than SevenNet-l3i5 on CPU
    return EvalConfig(families=["stability"], relax_steps=kw.pop("relax_steps", 80),
                      options={"stability": options}, **kw)


def test_family_fills_columns_and_metrics(data, tmp_path):
    from evaluator.pipeline import evaluate_items

    ev = evaluate_items(_items(data, SMALL_MP20[:3]), _config(), data, work_dir=tmp_path)
    t, s = ev.table, ev.summary
    ok = t[t["stability_status"] == "ok"]
    assert len(ok) == 3 and t.loc[3, "stability_status"] == "skipped"
    for col in ("stability_e_above_hull", "stability_unrelaxed_e_above_hull", "stability_formation_energy_per_atom",
                "stability_unrelaxed_formation_energy_per_atom", "stability_energy_per_atom", "stability_rmsd",
                "stability_fmax_final"):
        assert np.all(np.isfinite(ok[col].astype(float))), col
    assert ok["stability_n_ref_entries"].min() >= 1
    assert ok["stability_converged"].all() and (ok["stability_fmax_final"] < 0.02).all()
    from pymatgen.core import Structure

    relaxed = Structure.from_str(ok["stability_relaxed_structure"].iat[0], fmt="json")
    assert len(relaxed) == ok["nsites"].iat[0]
    m = s["metrics"]["stability"]
    assert s["n_evaluated"] == m["evaluated_count"] == 3
    assert m["evaluated_frac_submitted"] == pytest.approx(0.75) and m["evaluated_frac_valid"] == pytest.approx(1.0)
    e = ok["stability_e_above_hull"].astype(float)
    assert m["stable_count"] == int((e <= 0).sum()) and m["metastable_count"] == int((e <= 0.1).sum())
    assert m["median_e_above_hull"] == pytest.approx(float(e.median()))
    assert "stable_count" in s["metrics"]["stability_unrelaxed"]
    # small converged cells: the full step cap, nothing flagged by the budget (issue 21)
    assert (ok["stability_stopped_by"] == "converged").all() and ok["stability_stop_note"].isna().all()
    assert (ok["stability_step_limit"] == 80).all()
    assert m["budget_stopped_count"] == 0 and m["wall_time_stopped_count"] == 0
    prov = s["provenance"]["family"]["stability"]
    assert prov["relaxation"]["budget"]["atom_steps"] == 12_000 and prov["relaxation"]["predicted_s"] > 0
    assert prov["mlip"]["checkpoint_sha256"] and prov["energy_route"] == "direct"
    assert prov["hull"]["energy_scale"] == "dft-mp2020"
    # the table is parquet-friendly (users download it)
    t.to_parquet(tmp_path / "t.parquet")


def test_interrupted_run_resumes_without_recomputing(data, tmp_path):
    from pymatgen.core import Structure

    from evaluator.mlip import load_mlip
    from evaluator.families.stability.runner import RelaxSettings, relax_all

    structures = {i: Structure.from_file(p) for i, p in enumerate(mp_sample_cifs(data, SMALL_MP20[:3]))}
    settings = RelaxSettings(steps=80, mode="serial")
    mlip = load_mlip("chgnet", device="cpu")

    class Killed(Exception):
        pass

    def kill_after_first(stage, done, total):
        if done >= 1:
            raise Killed

    with pytest.raises(Killed):
        relax_all(structures, settings, tmp_path, progress=kill_after_first, mlip=mlip)
    [ck] = list(tmp_path.glob("relax-*.jsonl"))
    assert len(ck.read_text().splitlines()) == 1
    with open(ck, "a") as fh:  # a line cut short by the kill must be ignored
        fh.write('{"key": "abc", "resu')

    calls = []

    class Counting:
        def __getattr__(self, name):
            return getattr(mlip, name)

        def calculator(self):
            calls.append(1)
            return mlip.calculator()

    results, info = relax_all(structures, settings, tmp_path, mlip=Counting())
    assert info["n_from_checkpoint"] == 1 and info["n_relaxed_now"] == 2 and len(calls) == 2
    assert all(r.status == "ok" for r in results.values())
    results2, info2 = relax_all(structures, settings, tmp_path, mlip=Counting())
    assert info2["n_relaxed_now"] == 0 and len(calls) == 2
    assert results2 == results  # the same records, read back from the checkpoint


def test_calibration_small_mp20_set_matches_dft_hull(data):
    """CHGNet E_hull of real MP-20 materials vs their DFT E_hull: MAE below 0.1 eV/atom."""
    from pymatgen.core import Structure

    from evaluator.mlip import load_mlip
    from evaluator.families.stability.family import score_energy
    from evaluator.reference.hull import load_mp20_hull
    from evaluator.families.stability.runner import RelaxSettings, relax_all

    ids = SMALL_MP20
    structures = {i: Structure.from_file(p) for i, p in enumerate(mp_sample_cifs(data, ids))}
    results, _ = relax_all(structures, RelaxSettings(steps=150, mode="serial"), None,
                           mlip=load_mlip("chgnet", device="cpu"))
    hull = load_mp20_hull(data).get("dft")
    dft = pd.read_parquet(data.path("reference/mp20/mp20_hull.parquet")).set_index("material_id")
    err = []
    for i, mid in enumerate(ids):
        r = results[i]
        err.append(score_energy(hull, "direct", r.relaxed_structure(), r.energy).e_above_hull
                   - dft.at[mid, "dft_e_above_union_hull"])
    assert np.all(np.isfinite(err))
    assert np.mean(np.abs(err)) < 0.1


def test_incompatible_hull_is_refused_before_relaxing(data, tmp_path):
    from evaluator.pipeline import evaluate_items

    with pytest.raises(ValueError, match="refusing to score chgnet"):
        evaluate_items(_items(data, SMALL_MP20[:1]), _config(options={"hull": "mace"}), data, work_dir=tmp_path)
    assert not list((tmp_path / "checkpoints").rglob("*.jsonl"))


def test_process_pool_mode(data, tmp_path):
    from pymatgen.core import Structure

    from evaluator.families.stability.runner import RelaxSettings, relax_all

    structures = {i: Structure.from_file(p) for i, p in enumerate(mp_sample_cifs(data, SMALL_MP20[:2]))}
    results, info = relax_all(structures, RelaxSettings(steps=60, mode="pool", workers=2, device="cpu"), tmp_path)
    assert info["mode"] == "pool" and info["workers"] == 2
    assert all(r.status == "ok" for r in results.values())


def test_mace_batched_mode_with_mp2020_corrections(data, tmp_path):
    from evaluator.pipeline import evaluate_items

    model = build_tiny_mace(tmp_path / "tiny.model")
    cfg = _config(mlip="mace", mlip_model=str(model), dtype="float64", relax_steps=20,
                  options={"relax_mode": "batched"})
    ev = evaluate_items(_items(data, ["mp-1487", "mp-22898"], broken=False), cfg, data, work_dir=tmp_path)
    t = ev.table
    assert (t["stability_status"] == "ok").all()
    prov = ev.summary["provenance"]["family"]["stability"]
    assert prov["energy_route"] == "mp2020" and prov["relaxation"]["mode"] == "batched"
    assert prov["mlip"]["energy_scale"] == "raw-pbe"
    # KI: MP2020 applies the iodide anion correction, so corrected != raw; AlNi has none
    ki = t[t["source"].str.contains("22898")].iloc[0]
    alni = t[t["source"].str.contains("1487")].iloc[0]
    assert ki["stability_corrected_energy_per_atom"] != pytest.approx(ki["stability_energy_per_atom"])
    assert alni["stability_corrected_energy_per_atom"] == pytest.approx(alni["stability_energy_per_atom"])


def test_unspanned_element_gets_nan_with_reason_and_empty_submission(data, tmp_path):
    from pymatgen.core import Lattice, Structure

    from evaluator.ingest.types import Item
    from evaluator.pipeline import evaluate_items

    # Po has no MP elemental reference: E_hull is NaN with a reason, the row keeps its energy
    po = Structure(Lattice.cubic(3.35), ["Po"], [[0, 0, 0]])
    from evaluator.context import EvalContext
    from evaluator.families.stability.family import FAMILY
    from evaluator.pipeline import build_table, reference_loader

    cfg = _config(relax_steps=5)
    table, structures = build_table([Item("po.cif", po)])
    # no validity: parsed rows are evaluated
    ctx = EvalContext(table, structures, cfg, data, tmp_path, reference_loader=reference_loader(cfg, data))
    res = FAMILY.run(ctx, FAMILY.options_from(cfg.family_options("stability")))
    row = res.columns.iloc[0]
    assert row["stability_status"] == "failed" and "Po" in row["stability_reason"]
    assert np.isfinite(row["stability_energy_per_atom"]) and np.isnan(row["stability_e_above_hull"])
    assert res.metrics["evaluated_count"] == 1 and res.metrics["hull_scored_count"] == 0
    assert res.metrics["mean_e_above_hull"] is None and "mean_e_above_hull" in res.missing
    # nothing valid: zero counts, absent means, no crash
    ev = evaluate_items([Item("bad.cif", error="unparseable")], cfg, data, work_dir=tmp_path)
    m = ev.summary["metrics"]["stability"]
    assert m["evaluated_count"] == 0 and m["stable_count"] == 0 and m["mean_e_above_hull"] is None


def test_failed_relaxation_still_scores_the_submitted_geometry(data, tmp_path, monkeypatch):
    """The unrelaxed (LeMat-GenBench compatible) E_hull needs only the energy at the
    submitted geometry: a relaxation that fails after it keeps that energy and its score."""
    from ase.calculators.calculator import Calculator, all_changes
    from pymatgen.core import Lattice, Structure

    from evaluator.context import EvalContext
    from evaluator.ingest.types import Item
    from evaluator.mlip.relax import relax_one
    from evaluator.pipeline import build_table, reference_loader
    from evaluator.families.stability import family as stability_family
    from evaluator.families.stability import runner
    from evaluator.families.stability.family import FAMILY

    class EnergyOnly(Calculator):  # energy works, forces blow up (as an MLIP failing mid-relaxation)
        implemented_properties = ["energy", "forces", "stress"]

        def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
            super().calculate(atoms, properties, system_changes)
            if "forces" in properties or "stress" in properties:
                raise RuntimeError("no neighbour within cutoff")
            self.results = {"energy": -6.8}

    class FakeMLIP:
        def calculator(self):
            return EnergyOnly()

    nacl = Structure(Lattice.cubic(5.64), ["Na", "Na", "Na", "Na", "Cl", "Cl", "Cl", "Cl"],
                     [[0, 0, 0], [0, .5, .5], [.5, 0, .5], [.5, .5, 0],
                      [.5, .5, .5], [.5, 0, 0], [0, .5, 0], [0, 0, .5]])
    res = relax_one(FakeMLIP(), runner._to_atoms(nacl), steps=5)
    assert res.status == "failed" and "no neighbour" in res.reason
    assert res.energy_unrelaxed == pytest.approx(-6.8)

    monkeypatch.setattr(stability_family, "relax_all", lambda structures, *a, **k: (
        {row: res for row in structures}, {"mlip": {}, "mode": "serial", "workers": 1,
                                           "n_relaxed_now": 1, "n_from_checkpoint": 0,
                                           "execution": {"executor": "local"}}))
    table, structures = build_table([Item("nacl.cif", nacl)])
    cfg = _config()
    ctx = EvalContext(table, structures, cfg, data, tmp_path, reference_loader=reference_loader(cfg, data))
    out = FAMILY.run(ctx, FAMILY.options_from(cfg.family_options("stability")))
    row = out.columns.iloc[0]
    assert row["stability_status"] == "failed" and "no neighbour" in row["stability_reason"]
    assert np.isnan(row["stability_e_above_hull"])
    assert row["stability_unrelaxed_energy_per_atom"] == pytest.approx(-6.8 / 8)
    assert np.isfinite(row["stability_unrelaxed_e_above_hull"]) and row["stability_unrelaxed_e_above_hull"] > 0
    assert out.groups["stability_unrelaxed"]["hull_scored_count"] == 1
    assert out.metrics["hull_scored_count"] == 0


@pytest.mark.timeout(1200)  # hang detection only: the CLI subprocess relaxes with SevenNet on CPU
def test_sevenn_end_to_end_in_the_cli(data, tmp_path):
    """The CPU default is SevenNet-l3i5 (no ``--mlip``): ASE path on CPU, MP2020-corrected
    energies on the MP-20 DFT hull, provenance names engine, model, checkpoint sha256 and
    device, and the summary's protocol block names it (device beside it, not in it)."""
    import shutil
    import subprocess
    import sys

    upload = tmp_path / "upload"
    upload.mkdir()
    for p in mp_sample_cifs(data, ["mp-1487", "mp-22898"]):  # AlNi (no correction), KI (iodide correction)
        shutil.copy(p, upload)
    out = tmp_path / "out"
    env = {**os.environ, "GENBENCH_DATA_DIR": str(data.root)}
    proc = subprocess.run([sys.executable, "-m", "evaluator", "score", str(upload), "--out", str(out),
                           "--families", "stability", "--relax-steps", "40", "--device", "cpu"],
                          capture_output=True, text=True, timeout=600, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["provenance"]["config"]["mlip"] == "sevenn"
    protocol = summary["protocol"]
    assert protocol["label"] == "SevenNet-l3i5 · MP-20 hull · FIRE fmax 0.02, 40 steps"
    assert protocol["record"]["mlip"]["model"] == "7net-l3i5" and len(protocol["id"]) == 12
    assert protocol["record"]["mlip"]["checkpoint_sha256"] == summary["provenance"]["family"]["stability"]["mlip"][
        "checkpoint_sha256"]
    assert "device" not in json.dumps(protocol["record"]) and summary["execution"]["device"] == "cpu"
    assert f"protocol {protocol['id']}: SevenNet-l3i5" in proc.stdout
    prov = summary["provenance"]["family"]["stability"]
    assert prov["mlip"]["name"] == "sevenn" and prov["mlip"]["model_id"] == "7net-l3i5"
    assert len(prov["mlip"]["checkpoint_sha256"]) == 64 and prov["mlip"]["device"] == "cpu"
    assert prov["energy_route"] == "mp2020" and prov["mlip"]["energy_scale"] == "raw-pbe"
    assert prov["relaxation"]["mode"] in ("engine", "pool", "serial") and prov["relaxation"]["engine"]
    t = pd.read_parquet(out / "structures.parquet")
    assert (t["stability_status"] == "ok").all()
    ki = t[t["source"].str.contains("22898")].iloc[0]
    assert ki["stability_corrected_energy_per_atom"] != pytest.approx(ki["stability_energy_per_atom"])
    assert np.isfinite(t["stability_e_above_hull"].astype(float)).all()


def test_sevenn_family_engine_mode_matches_serial_mode(data, tmp_path):
    from evaluator.pipeline import evaluate_items

    from evaluator.protocol import ENGINE_AGREEMENT_EV_PER_ATOM as TOL

    items = _items(data, ["mp-1487", "mp-22898"], broken=False)
    tables, protocols = {}, {}
    for mode in ("engine", "serial"):
        cfg = _config(mlip="sevenn", relax_steps=40, options={"relax_mode": mode})
        ev = evaluate_items(items, cfg, data, work_dir=tmp_path / mode)
        prov = ev.summary["provenance"]["family"]["stability"]
        assert prov["relaxation"]["mode"] == mode and prov["mlip"]["model_id"] == "7net-l3i5"
        tables[mode], protocols[mode] = ev.table, ev.summary["protocol"]["id"]
        assert ev.summary["execution"]["relax_mode"] == mode  # recorded beside the protocol
    # the engine is not part of the protocol: the two paths agree within the stated tolerance
    assert protocols["engine"] == protocols["serial"]
    for col in ("stability_unrelaxed_e_above_hull", "stability_e_above_hull"):
        np.testing.assert_allclose(tables["engine"][col].astype(float), tables["serial"][col].astype(float),
                                   atol=TOL["relaxed"] if "unrelaxed" not in col else TOL["unrelaxed"])


def test_misspelled_or_invalid_stability_option_is_an_error(data, tmp_path):
    from evaluator.families.stability.family import FAMILY, StabilityOptions
    from evaluator.pipeline import evaluate_items

    assert FAMILY.options_from({"relax_mode": "serial", "relax_workers": 2}) == StabilityOptions(
        relax_mode="serial", relax_workers=2)
    with pytest.raises(ValueError, match="relax_mod"):
        FAMILY.options_from({"relax_mod": "serial"})
    for bad in ({"relax_mode": "fast"}, {"relax_workers": 0}, {"relax_workers": True}, {"relax_max_atoms": "4k"},
                {"hull_declared_compatible": "yes"}, {"hull": ""}):
        with pytest.raises(ValueError, match="stability\\."):
            FAMILY.options_from(bad)
    with pytest.raises(ValueError, match="relax_mod"):  # the pipeline refuses it before any work
        evaluate_items(_items(data, SMALL_MP20[:1]), _config(options={"relax_mod": "serial"}), data,
                       work_dir=tmp_path)
    assert not list(tmp_path.rglob("*.jsonl"))


def test_checkpoint_written_by_older_runs_loads_into_typed_results(data, tmp_path):
    """Checkpoint lines in the plain-dict format of older runs load as RelaxResult records and
    are reused as they are; lines that are not results are ignored (relaxed again)."""
    from pymatgen.core import Structure

    from evaluator.families.stability.checkpoint import settings_key, structure_key
    from evaluator.families.stability.runner import RelaxSettings, relax_all
    from evaluator.mlip import describe_mlip
    from evaluator.mlip.relax_result import RelaxResult

    s0, s1 = (Structure.from_file(p) for p in mp_sample_cifs(data, SMALL_MP20[:2]))
    old_ok = {"energy_unrelaxed": -7.1, "energy": -7.3, "steps": 12, "converged": True, "fmax_final": 0.011,
              "rmsd": 0.05, "volume_ratio": 1.02, "structure_relaxed": s0.to_json(), "status": "ok",
              "reason": None, "wall_s": 0.53}
    old_failed = {"status": "failed", "reason": "relaxation error: RuntimeError: boom", "energy_unrelaxed": -3.5,
                  "wall_s": 0.1}
    settings = RelaxSettings(steps=80, mode="serial")
    path = tmp_path / f"relax-{settings_key(settings.checkpoint_settings(describe_mlip('chgnet')))}.jsonl"
    lines = [{"key": structure_key(s0), "result": old_ok}, {"key": structure_key(s1), "result": old_failed},
             {"key": "not-a-result", "result": {"status": "ok"}}]  # an ok result without its values
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))

    class NoModel:
        def calculator(self):
            raise AssertionError("a checkpointed structure was relaxed again")

    results, info = relax_all({0: s0, 1: s1}, settings, tmp_path, mlip=NoModel())
    assert info["n_from_checkpoint"] == 2 and info["n_relaxed_now"] == 0
    ok, failed = results[0], results[1]
    assert isinstance(ok, RelaxResult) and ok.ok and ok.energy == -7.3 and ok.steps == 12 and ok.converged
    assert ok.relaxed_structure() == s0 and ok.wall_s == 0.53
    assert failed.status == "failed" and failed.reason == old_failed["reason"] and failed.energy_unrelaxed == -3.5
    assert ok.to_dict() == old_ok and failed.to_dict() == {**old_failed, "reason": old_failed["reason"]}
    with pytest.raises(ValueError, match="lacks"):
        RelaxResult.from_dict({"status": "ok"})
    with pytest.raises(ValueError, match="unknown"):
        RelaxResult.from_dict({**old_ok, "energy_typo": 1.0})
