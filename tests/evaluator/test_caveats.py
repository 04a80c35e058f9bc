"""Caveats declared next to the metrics they qualify (``Metric.caveat``): SUN/MSUN and the
stable counts are upper bounds (why, and the README section that explains it); novelty names
the reference the protocol used, never a hard-coded one."""

from __future__ import annotations

import re

from repo_paths import REPO

from evaluator.catalogue import CATALOGUE, metric_for
from evaluator.protocol import reference_label


def _readme_anchors() -> set[str]:
    heads = re.findall(r"^#+ (.+)$", (REPO / "README.md").read_text(), flags=re.M)
    return {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-") for h in heads}


def test_sun_msun_and_stable_counts_are_upper_bounds_with_a_reason():
    for block, key in (("sun", "sun_plus_msun_frac_submitted"), ("sun", "sun_count"), ("sun", "msun_frac_valid"),
                       ("sun_unrelaxed", "sun_plus_msun_frac_submitted"), ("stability", "stable_frac_valid"),
                       ("stability", "metastable_count")):
        m = metric_for(block, key)
        assert m is not None and m.caveat is not None, (block, key)
        short, why = m.caveat.text("MP-20 (≤ 20 atoms)")
        assert short == "upper bound"
        assert "soften" in why and "sparse" in why and why.count(".") == 1  # one short sentence
    assert metric_for("stability", "mean_e_above_hull").caveat is None


def test_novelty_caveat_names_the_protocols_reference():
    m = metric_for("novelty", "novel_frac_submitted")
    assert m is not None and m.caveat is not None
    mp20 = reference_label({"reference": {"id": "mp20", "content_hash": "x"}})
    lemat = reference_label({"reference": {"id": "lemat-bulk", "content_hash": "x"}})
    assert mp20 == "MP-20 (≤ 20 atoms)" and lemat == "LeMat-Bulk"
    assert m.caveat.text(mp20)[0] == "w.r.t. MP-20 (≤ 20 atoms)"
    assert m.caveat.text(lemat)[0] == "w.r.t. LeMat-Bulk"
    assert reference_label({"reference": {"id": "/refs/my-cifs"}}) == "my-cifs"
    assert reference_label({}) is None and reference_label(None) is None
    assert m.caveat.text(None)[0] == "w.r.t. the reference"


def test_caveats_are_data_naming_no_reference_and_an_existing_readme_section():
    anchors = _readme_anchors()
    found = 0
    for s in CATALOGUE:
        for m in s.metrics:
            if m.caveat is None:
                continue
            found += 1
            assert "MP-20" not in m.caveat.short + m.caveat.why, m.name  # from the protocol, not hard-coded
            assert m.caveat.readme in anchors, (m.name, m.caveat.readme)
    assert found >= 7
