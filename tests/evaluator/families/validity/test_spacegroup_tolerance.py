"""The reported space group (``validity_spacegroup_loose``) is found at a tolerance suited
to relaxed structures (0.1 Å, 5° by default, a protocol option), on real DFT-relaxed CIFs
that spglib's 0.01 Å calls P1; the plausibility check's ``validity_spacegroup`` keeps 0.01 Å."""

from __future__ import annotations

import dataclasses
import warnings
import zipfile

import pytest
from pymatgen.core import Structure

from evaluator.config import EvalConfig, IngestLimits, build_config
from evaluator.families.validity.family import FAMILY as VALIDITY
from evaluator.ingest.types import Item
from evaluator.pipeline import evaluate_items
from evaluator.protocol import build_record, derive_protocol, protocol_id, protocol_of

# DFT-relaxed CIFs released with the MatterGen paper (data/structures/mattergen_paper/cifs.zip):
# P1 at symprec 0.01 Å, and the group spglib finds at 0.1 Å, 5° (checked with pymatgen's
# SpacegroupAnalyzer on this machine).
RELAXED_P1 = {
    "cifs/mattergen/chemical_system/Sr2(CuAs)3.cif": 119,
    "cifs/mattergen/chemical_system/KEu3Si(OF)4.cif": 5,
    "cifs/mattergen/chemical_system/Rb3Dy2(CuCl6)2.cif": 21,
    "cifs/mattergen/dft_mag_density/Fe13Co3H2.cif": 8,
}


@pytest.fixture(scope="module")
def relaxed(data) -> list[Item]:
    items = []
    with zipfile.ZipFile(data.path("structures/mattergen_paper/cifs.zip")) as zf:
        for name in RELAXED_P1:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                s = Structure.from_str(zf.read(name).decode(), fmt="cif")
            items.append(Item(name, s))
    # a high-symmetry MP structure keeps its group at either tolerance
    items.append(Item("mp-1001835.cif", Structure.from_file(data.path("structures/mp_sample/mp_mp-1001835.cif"))))
    return items


def test_relaxed_structures_get_their_space_group_at_the_reporting_tolerance(relaxed):
    ev = evaluate_items(relaxed, EvalConfig(families=["validity"], options={"validity": {"workers": 1}}))
    t = ev.table
    strict, loose = t["validity_spacegroup"].tolist(), t["validity_spacegroup_loose"].tolist()
    assert strict == [1, 1, 1, 1, 194], strict
    assert loose == [*RELAXED_P1.values(), 194], loose
    assert ev.summary["provenance"]["family"]["validity"]["reported_spacegroup"] == {
        "column": "validity_spacegroup_loose", "symprec_A": 0.1, "angle_tolerance_deg": 5.0}


def test_the_tolerance_is_an_option(relaxed):
    ev = evaluate_items(relaxed[:2], EvalConfig(families=["validity"], options={
        "validity": {"workers": 1, "spacegroup_symprec": 0.01}}))
    assert ev.table["validity_spacegroup_loose"].tolist() == [1, 1]
    with pytest.raises(ValueError, match="spacegroup_symprec"):
        VALIDITY.options_from({"spacegroup_symprec": 0.0})
    with pytest.raises(ValueError, match="spacegroup_angle_tolerance"):
        VALIDITY.options_from({"spacegroup_angle_tolerance": -1})


def test_the_tolerance_is_part_of_the_protocol():
    """The default protocol records the tolerance; a record without it (as before the option
    existed) or with another value has another id; old summaries without a protocol block
    derive the 0.01 Å protocol, never the new default."""
    default = protocol_of(build_config(env={}))
    assert default.record["options"]["validity"]["spacegroup_symprec"] == 0.1
    assert default.record["options"]["validity"]["spacegroup_angle_tolerance"] == 5
    before = {**default.record, "options": {**default.record["options"], "validity": {}}}
    assert protocol_id(before) != default.id
    base = dict(mlip={"backend": "sevenn", "model": "7net-l3i5", "checkpoint_sha256": "a" * 64,
                      "energy_scale": "raw-pbe"},
                reference={"id": "mp20", "content_hash": "b" * 64}, dtype="float32", fmax=0.02, steps=300,
                stable=0.0, metastable=0.1, limits=dataclasses.asdict(IngestLimits()))
    ids = {protocol_id(build_record(**base, options={"validity": v}))
           for v in ({}, {"spacegroup_symprec": 0.01}, {"spacegroup_angle_tolerance": 3.0})}
    assert len(ids) == 3

    cfg = build_config(env={})
    old_validity = {"workers": None, "start_method": "forkserver"}  # what an older run recorded
    provenance = {"config": cfg.to_dict(), "options": {"validity": old_validity},
                  "reference": {"id": "mp20", "content_hash": default.record["reference"]["content_hash"]},
                  "family": {"stability": {"mlip": {"name": "sevenn", "model_id": "7net-l3i5", "device": "cpu",
                                                    "checkpoint_sha256": default.record["mlip"]["checkpoint_sha256"]}}}}
    derived = derive_protocol(provenance)
    assert derived is not None and derived.id != default.id
    assert derived.record["options"]["validity"]["spacegroup_symprec"] == 0.01
    assert derived.id == protocol_of(build_config(env={}, options={"validity": {"spacegroup_symprec": 0.01}})).id
