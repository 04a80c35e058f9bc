"""max_atoms_per_structure is enforced before a structure is built.

A symmetry "bomb" CIF (many general positions in Fm-3m, 192 operations) must become a
"too many atoms" row without pymatgen expanding it (minutes); a legitimate
high-symmetry CIF close to the limit must still parse. POSCAR, extxyz and Structure
dicts are counted before they are built.
"""

from __future__ import annotations

import csv
import json
import re
import warnings

import numpy as np
import pytest

from evaluator.config import IngestLimits
from evaluator.ingest import read_inputs
from evaluator.ingest import atomguard

HEADER = """data_{name}
_cell_length_a {a}
_cell_length_b {b}
_cell_length_c {c}
_cell_angle_alpha 90
_cell_angle_beta 90
_cell_angle_gamma {gamma}
"""
SITES = """loop_
_atom_site_label
_atom_site_type_symbol
_atom_site_fract_x
_atom_site_fract_y
_atom_site_fract_z
_atom_site_occupancy
"""
# Fm-3m, one row per Wyckoff type: 192l 96k 96j 48h 48i 8c 4a 4b = 496 atoms
NEAR_LIMIT_ROWS = [(0.07, 0.16, 0.29), (0.11, 0.11, 0.37), (0, 0.13, 0.41), (0, 0.19, 0.19),
                   (0.5, 0.23, 0.23), (0.25, 0.25, 0.25), (0, 0, 0), (0.5, 0.5, 0.5)]


def make_cif(rows, symmetry="ops", sg="F m -3 m", a=20.0, hexagonal=False, name="x", digits=5) -> str:
    """A CIF with ``rows`` (fractional) of carbon; symmetry as an xyz loop, H-M symbol or IT number."""
    from pymatgen.symmetry.groups import SpaceGroup

    group = SpaceGroup(sg) if isinstance(sg, str) else SpaceGroup.from_int_number(sg)
    text = HEADER.format(name=name, a=a, b=a, c=a * 1.1 if hexagonal else a, gamma=120 if hexagonal else 90)
    if symmetry == "ops":
        text += "loop_\n_symmetry_equiv_pos_as_xyz\n"
        text += "".join(f"'{op.as_xyz_str()}'\n" for op in group.symmetry_ops)
    elif symmetry == "symbol":
        text += f"_symmetry_space_group_name_H-M '{group.symbol}'\n"
    else:
        text += f"_symmetry_Int_Tables_number {group.int_number}\n"
    fmt = f"{{:.{digits}f}}"
    text += SITES + "".join(f"C{i} C {' '.join(fmt.format(v) for v in xyz)} 1\n" for i, xyz in enumerate(rows))
    return text


def general_sites(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(0.02, 0.23, size=(n, 3))


def pymatgen_count(text: str) -> int:
    from pymatgen.io.cif import CifParser

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return len(CifParser.from_str(text).parse_structures(primitive=False, on_error="raise")[0])


@pytest.mark.timeout(30)
@pytest.mark.parametrize("symmetry", ["ops", "symbol", "number"])
def test_symmetry_bomb_is_a_row_without_expanding(tmp_path, symmetry):
    """200 general sites x 192 operations = 38,400 atoms: pymatgen alone takes minutes."""
    f = tmp_path / "bomb.cif"
    f.write_text(make_cif(general_sites(200), symmetry))
    (item,) = read_inputs([f])
    assert item.structure is None
    assert re.fullmatch(r"too many atoms: (at least )?38\d{3} after applying 192 symmetry operations to "
                        r"200 sites > max_atoms_per_structure=500", item.error), item.error


@pytest.mark.timeout(30)
def test_bomb_block_among_good_ones_and_in_a_csv_cell(tmp_path, mp_sample):
    good = (mp_sample / "mp_mp-8.cif").read_text()
    bomb = make_cif(general_sites(150, seed=1), name="bomb")
    f = tmp_path / "multi.cif"
    f.write_text(good + bomb + good)
    items = read_inputs([f])
    assert [it.error is None for it in items] == [True, False, True]
    assert re.match(r"too many atoms: (at least )?28\d{3} after applying 192", items[1].error)
    c = tmp_path / "gen.csv"
    with c.open("w", newline="") as fh:
        csv.writer(fh).writerows([["structure"], [bomb]])
    (row,) = read_inputs([c])
    assert row.source == "gen.csv:row 1" and row.error.startswith("too many atoms:")


def test_high_symmetry_near_the_limit_still_parses(tmp_path):
    text = make_cif(NEAR_LIMIT_ROWS)
    assert len(NEAR_LIMIT_ROWS) * 192 > 500  # the guard's upper bound fires: the expansion is checked
    f = tmp_path / "fm3m.cif"
    f.write_text(text)
    (item,) = read_inputs([f])
    assert item.error is None and len(item.structure) == 496 == pymatgen_count(text)
    (item,) = read_inputs([f], IngestLimits(max_atoms_per_structure=496))
    assert item.error is None
    (item,) = read_inputs([f], IngestLimits(max_atoms_per_structure=495))
    assert item.error == ("too many atoms: 496 after applying 192 symmetry operations to 8 sites "
                          "> max_atoms_per_structure=495")


@pytest.mark.parametrize("seed", range(4))
def test_lower_bound_never_exceeds_pymatgen(seed):
    """Random space groups, special positions, 4-digit 1/3 and 2/3: the guard's count is
    a lower bound of pymatgen's (here it is exact), so nothing legal is refused."""
    from pymatgen.io.cif import CifParser

    rng = np.random.default_rng(seed)
    specials = [0, 0.5, 0.25, 0.75, 1 / 3, 2 / 3, 0.125, 1 / 6]
    for _ in range(15):
        number = int(rng.integers(1, 231))
        rows = []
        for _ in range(int(rng.integers(1, 5))):
            xyz = [rng.choice(specials) if rng.random() < 0.5 else rng.uniform() for _ in range(3)]
            if rng.random() < 0.3:
                xyz[1] = xyz[0]
            rows.append(xyz)
        text = make_cif(rows, symmetry="ops" if rng.random() < 0.5 else "number", sg=number,
                        hexagonal=143 <= number <= 194, digits=int(rng.choice([4, 8])))
        try:
            expected = pymatgen_count(text)
        except ValueError:
            continue  # e.g. two rows on one site (occupancy > 1)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            parser = CifParser.from_str(text)
            data = parser.as_dict()["x"]
            rot, trans = atomguard._symops(parser, data, "x")
        lower, exact, _ = atomguard.expanded_lower_bound(atomguard._dedup(atomguard._rows(data)), rot, trans)
        assert lower <= expected, (number, rows)
        assert lower == expected or not exact


def test_p1_with_too_many_rows_gives_the_exact_count(tmp_path):
    rows = np.random.default_rng(3).uniform(0, 1, size=(600, 3))
    f = tmp_path / "p1.cif"
    f.write_text(make_cif(rows, sg="P 1", a=40.0, digits=6))
    (item,) = read_inputs([f])
    assert item.error == "too many atoms: 600 > max_atoms_per_structure=500"


def test_too_many_operations_to_expand(tmp_path, monkeypatch):
    monkeypatch.setattr(atomguard, "MAX_IMAGES", 1000)
    f = tmp_path / "ops.cif"
    f.write_text(make_cif(general_sites(10)))
    (item,) = read_inputs([f], IngestLimits(max_read_seconds=None))  # in this process: sees the patch
    assert item.error == ("too many atoms: 10 sites x 192 symmetry operations (more than 1,000 positions "
                          "to expand) > max_atoms_per_structure=500")


def test_unreadable_rows_are_left_to_pymatgen(tmp_path):
    text = make_cif(general_sites(100)).replace("C0 C 0.", "C0 C zz")
    f = tmp_path / "bad.cif"
    f.write_text(text)
    (item,) = read_inputs([f])
    assert item.error.startswith("unreadable CIF")


def test_zero_occupancy_rows_are_a_reason_not_dropped(tmp_path):
    """pymatgen drops a row of occupancy 0 without a word (issue 25: nothing dropped silently)."""
    text = make_cif(NEAR_LIMIT_ROWS)
    extra = "".join(f"C9{i} C {x:.5f} {y:.5f} {z:.5f} 0\n" for i, (x, y, z) in enumerate(general_sites(5)))
    f = tmp_path / "occ0.cif"
    f.write_text(text + extra)
    (item,) = read_inputs([f])
    assert item.error == "invalid occupancy 0 on site C90: occupancies must be greater than 0 (and at most 1)"


@pytest.mark.timeout(30)
def test_listed_formats_are_counted_before_building(tmp_path):
    n = 100_000
    pos = np.random.default_rng(0).uniform(0, 1, size=(n, 3))
    body = "\n".join(f"{a:.4f} {b:.4f} {c:.4f}" for a, b, c in pos) + "\n"
    (tmp_path / "POSCAR").write_text(f"big\n1.0\n40 0 0\n0 40 0\n0 0 40\nC\n{n}\nDirect\n{body}")
    (tmp_path / "big.extxyz").write_text(
        f'{n}\nLattice="40 0 0 0 40 0 0 0 40" Properties=species:S:1:pos:R:3 pbc="T T T"\n'
        + "".join(f"C {line}\n" for line in body.splitlines()))
    lattice = {"matrix": [[40, 0, 0], [0, 40, 0], [0, 0, 40]]}
    sites = [{"species": [{"element": "C", "occu": 1}], "abc": list(p)} for p in pos[:5000]]
    (tmp_path / "big.json").write_text(json.dumps([{"lattice": lattice, "sites": sites}]))
    items = read_inputs([tmp_path / "POSCAR", tmp_path / "big.extxyz", tmp_path / "big.json"])
    assert [it.error for it in items] == [f"too many atoms: {n} > max_atoms_per_structure=500"] * 2 + [
        "too many atoms: 5000 > max_atoms_per_structure=500"]


def test_poscar_header_count():
    from evaluator.ingest.formats import poscar_atom_count

    head = "x\n1.0\n1 0 0\n0 1 0\n0 0 1\n"
    assert poscar_atom_count(head + "Si O\n1 2\nDirect\n") == 3  # VASP 5
    assert poscar_atom_count(head + "4 2\nDirect\n") == 6  # VASP 4: counts right after the lattice
    assert poscar_atom_count("nonsense\n") is None
