"""Every registered MLIP backend passes the library's conformance check
(``evaluator.mlip.conformance``), and the check fails a backend that breaks the contract.

Each backend is loaded through the production path (``load_mlip``) from weights available
offline: CHGNet 0.3.0 and SevenNet (l3i5, 0) ship inside their wheels; MACE foundation
models download from the internet, so MACE is checked with a small random-weight MACE
saved to a file (the same code path as any local checkpoint), and with the foundation
model too when mace-torch's cache already holds it.
"""

from __future__ import annotations

import os
import sys
import textwrap

import pytest

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

from mlip_helpers import build_tiny_mace

from evaluator.cli import main
from evaluator.mlip import base, describe_mlip, load_mlip, registered_backends
from evaluator.mlip.conformance import CHECKS, check_backend, check_mlip, conformance_cells

TINY_MACE = "<tiny random MACE>"
# backend -> (model, dtype) cases; every registered backend needs at least one
CASES = {
    "chgnet": [(None, "float32")],
    "mace": [(TINY_MACE, "float64"), (None, "float32")],  # None: the default foundation model
    "sevenn": [(None, "float32"), ("7net-0", "float32")],
}


def _params():
    return [pytest.param(name, model, dtype, id=f"{name}-{model or 'default'}-{dtype}")
            for name, cases in CASES.items() for model, dtype in cases]


@pytest.fixture(scope="module")
def cells(data):
    import torch

    torch.set_num_threads(1)
    return conformance_cells(data)


@pytest.fixture(scope="module")
def tiny_mace_path(tmp_path_factory):
    return build_tiny_mace(tmp_path_factory.mktemp("mace") / "tiny.model")


def test_every_registered_backend_has_a_conformance_case():
    assert set(registered_backends()) == set(CASES)


@pytest.mark.parametrize(("name", "model", "dtype"), _params())
def test_backend_conforms(name, model, dtype, cells, tiny_mace_path):
    if model == TINY_MACE:
        model = str(tiny_mace_path)
    spec = describe_mlip(name, model)
    if spec.checkpoint_path is None:
        pytest.skip(f"{name} model '{spec.model_id}' is not cached locally and downloading it needs the "
                    "internet (mace-torch fetches foundation models at run time)")
    report = check_mlip(load_mlip(name, model, device="cpu", dtype=dtype), spec, cells)
    assert report.passed, report.text()
    assert tuple(c.name for c in report.checks) == CHECKS


def test_a_backend_that_breaks_the_contract_fails_the_check(cells, tiny_mace_path):
    """Forces with the wrong sign: the checks that compare them with the energy's gradient,
    the ASE calculator and the torch-sim model fail; those that cannot see it pass."""
    mlip = load_mlip("mace", str(tiny_mace_path), device="cpu", dtype="float64")
    honest = mlip.predict
    mlip.predict = lambda atoms_list: [{**p, "forces": -p["forces"]} for p in honest(atoms_list)]
    report = check_mlip(mlip, describe_mlip("mace", str(tiny_mace_path)), cells)
    assert not report.passed
    failed = {c.name: c.detail for c in report.failed()}
    assert set(failed) == {"forces = -dE/dx", "ASE calculator", "torch-sim model"}, report.text()
    assert "forces and -dE/dx differ by up to" in failed["forces = -dE/dx"]
    assert "does not conform: 3 of 12" in report.text()


def test_a_model_that_cannot_load_is_a_failed_load(tmp_path, cells):
    report = check_backend("mace", str(tmp_path / "missing.model"), cells=cells)
    assert not report.passed
    assert [(c.name, c.status) for c in report.checks] == [("load", "failed")]
    assert "unknown MACE model" in report.checks[0].detail
    with pytest.raises(ValueError, match="unknown MLIP 'nope'"):
        check_backend("nope", cells=cells)


PLUGIN = '''
import dataclasses

from evaluator.mlip.base import register_backend
from evaluator.mlip.mace_backend import MACEMLIP


@register_backend
class CopiedMACE(MACEMLIP):
    name = "mace-copy"

    @classmethod
    def spec(cls, model):
        return dataclasses.replace(super().spec(model), name=cls.name)


@register_backend
class FlippedMACE(CopiedMACE):
    name = "mace-flipped"

    def predict(self, atoms_list):
        return [{**p, "forces": -p["forces"]} for p in super().predict(atoms_list)]
'''


def test_a_new_backend_checks_itself_from_the_command_line(tmp_path, monkeypatch, capsys, data,
                                                            tiny_mace_path, cells):
    """``--module`` registers an out-of-tree backend: one that conforms exits 0, one that
    breaks the contract exits 1 naming the failed check, an unknown name exits 2."""
    (tmp_path / "conformance_plugin.py").write_text(textwrap.dedent(PLUGIN))
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(base, "_REGISTRY", dict(base._REGISTRY))  # the plugin's backends go with the test
    common = ["--module", "conformance_plugin", "--model", str(tiny_mace_path), "--dtype", "float64",
              "--data-dir", str(data.root)]
    try:
        assert main(["mlip-check", "--backend", "mace-copy", *common]) == 0
        out = capsys.readouterr().out
        assert "MLIP conformance: mace-copy file:tiny.model (cpu, float64)" in out and out.rstrip().endswith("conforms")
        assert main(["mlip-check", "--backend", "mace-flipped", *common]) == 1
        out = capsys.readouterr().out
        assert "failed   forces = -dE/dx: forces and -dE/dx differ" in out and "does not conform" in out
    finally:
        sys.modules.pop("conformance_plugin", None)
    assert main(["mlip-check", "--backend", "nope"]) == 2
    assert "unknown MLIP 'nope'" in capsys.readouterr().err


def test_importing_the_registry_loads_no_ml_library():
    """The leaderboard process imports evaluator.mlip (through evaluator.config): keep it cheap.
    The conformance check and the CLI load none either until a check runs."""
    import subprocess

    code = ("import sys, evaluator.config, evaluator.mlip as m, evaluator.mlip.conformance, evaluator.cli; "
            "assert m.BACKENDS; print(sorted({k.split('.')[0] for k in sys.modules} & "
            "{'torch', 'ase', 'chgnet', 'mace', 'sevenn', 'e3nn', 'torch_sim', 'pymatgen'}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_unknown_backend_and_missing_capabilities_are_refused():
    from evaluator.mlip import UnsupportedCapability, register_backend
    from evaluator.mlip.sevenn_backend import SevenNetMLIP

    with pytest.raises(ValueError, match="unknown MLIP 'nope': choose from chgnet, mace, sevenn"):
        describe_mlip("nope")
    with pytest.raises(ValueError, match="unknown MLIP"):
        load_mlip("nope", device="cpu")
    assert issubclass(UnsupportedCapability, NotImplementedError)  # callers that catch it keep working
    with pytest.raises(ValueError, match="already registered"):
        register_backend(type("Impostor", (SevenNetMLIP,), {}))
