"""HHI family against values computed by hand from pymatgen's HHI table."""

import json

import numpy as np
import pytest
from pymatgen.analysis.hhi import HHI_CSV_PATH
from pymatgen.core import Lattice, Structure

from family_helpers import make_ctx, read_cifs
from evaluator.families.base import NoOptions
from evaluator.families.hhi import family as hhi


def table_values() -> dict[str, tuple[float, float]]:
    """Read pymatgen's CSV independently of the code under test."""
    out = {}
    for line in open(HHI_CSV_PATH, encoding="utf-8"):
        if line.strip() and not line.startswith("#"):
            sym, p, r = line.strip().split(",")
            out[sym] = (float(p), float(r))
    return out


def fe2o3():
    # corundum-like cell content Fe4O6 (the HHI depends on composition only)
    lat = Lattice.hexagonal(5.03, 13.75)
    return Structure(lat, ["Fe"] * 4 + ["O"] * 6,
                     [[0, 0, 0.355], [0, 0, 0.645], [0, 0, 0.145], [0, 0, 0.855],
                      [0.306, 0, 0.25], [0, 0.306, 0.25], [0.694, 0.694, 0.25],
                      [0.694, 0, 0.75], [0, 0.694, 0.75], [0.306, 0.306, 0.75]])


def nah():
    lat = Lattice([[0, 2.44, 2.44], [2.44, 0, 2.44], [2.44, 2.44, 0]])  # rocksalt NaH, primitive
    return Structure(lat, ["Na", "H"], [[0, 0, 0], [0.5, 0.5, 0.5]])


def test_fe2o3_and_a_hydride_match_hand_computed_values():
    t = table_values()
    res = hhi.run(make_ctx([fe2o3(), nah()]), NoOptions())
    c = res.columns
    # Fe2O3: x_Fe = 0.4, x_O = 0.6
    p = (0.4 * t["Fe"][0] + 0.6 * t["O"][0]) / 1000
    r = (0.4 * t["Fe"][1] + 0.6 * t["O"][1]) / 1000
    assert c.loc[0, "hhi_production"] == pytest.approx(p)
    assert c.loc[0, "hhi_reserve"] == pytest.approx(r)
    assert c.loc[0, "hhi_combined"] == pytest.approx(0.25 * p + 0.75 * r)
    assert json.loads(c.loc[0, "hhi_missing_elements"]) == []
    # NaH: H has no data -> maximum 10 and flagged
    assert "H" not in t
    p2, r2 = (0.5 * t["Na"][0] / 1000 + 0.5 * 10), (0.5 * t["Na"][1] / 1000 + 0.5 * 10)
    assert c.loc[1, "hhi_production"] == pytest.approx(p2)
    assert c.loc[1, "hhi_reserve"] == pytest.approx(r2)
    assert json.loads(c.loc[1, "hhi_missing_elements"]) == ["H"]
    m = res.metrics
    assert m["production_mean"] == pytest.approx((p + p2) / 2)
    assert m["reserve_mean"] == pytest.approx((r + r2) / 2)
    assert m["combined_mean"] == pytest.approx((0.25 * p + 0.75 * r + 0.25 * p2 + 0.75 * r2) / 2)
    assert m["missing_data_count"] == 1 and m["missing_data_frac_submitted"] == 0.5


def test_atomic_not_mass_fractions():
    """pymatgen's HHIModel.get_hhi weights by mass; ours by atoms (LeMat-GenBench)."""
    from pymatgen.analysis.hhi import HHIModel

    ours = hhi.run(make_ctx([fe2o3()]), NoOptions()).columns.loc[0, "hhi_production"]
    by_mass = HHIModel().get_hhi("Fe2O3")[0] / 1000
    assert ours != pytest.approx(by_mass, rel=1e-3)


def test_oxidation_states_do_not_hide_elements_and_real_values_are_bounded(mp_sample):
    s = fe2o3()
    s.add_oxidation_state_by_element({"Fe": 3, "O": -2})
    assert hhi.run(make_ctx([s]), NoOptions()).columns.loc[0, "hhi_production"] == pytest.approx(
        hhi.run(make_ctx([fe2o3()]), NoOptions()).columns.loc[0, "hhi_production"])
    res = hhi.run(make_ctx(list(read_cifs(str(mp_sample), 150))), NoOptions())
    v = res.columns[["hhi_production", "hhi_reserve", "hhi_combined"]].to_numpy()
    assert np.isfinite(v).all() and (v > 0).all() and (v <= 10).all()
    assert (res.columns["hhi_status"] == "ok").all()
