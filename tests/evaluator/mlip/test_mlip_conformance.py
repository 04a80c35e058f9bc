"""Every registered MLIP backend passes the same conformance check (``mlip_helpers.validate_mlip``).

Each backend is loaded through the production path (``load_mlip``) from weights available
offline: CHGNet 0.3.0 and SevenNet (l3i5, 0) ship inside their wheels; MACE foundation
models download from the internet, so MACE is checked with a small random-weight MACE
saved to a file (the same code path as any local checkpoint), and with the foundation
model too when mace-torch's cache already holds it.
"""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

from mlip_helpers import build_tiny_mace, conformance_cells, validate_mlip

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
    from evaluator.mlip import registered_backends

    assert set(registered_backends()) == set(CASES)


@pytest.mark.parametrize(("name", "model", "dtype"), _params())
def test_backend_conforms(name, model, dtype, cells, tiny_mace_path):
    from evaluator.mlip import describe_mlip, load_mlip

    if model == TINY_MACE:
        model = str(tiny_mace_path)
    spec = describe_mlip(name, model)
    if spec.checkpoint_path is None:
        pytest.skip(f"{name} model '{spec.model_id}' is not cached locally and downloading it needs the "
                    "internet (mace-torch fetches foundation models at run time)")
    validate_mlip(load_mlip(name, model, device="cpu", dtype=dtype), spec, cells)


def test_importing_the_registry_loads_no_ml_library():
    """The leaderboard process imports evaluator.mlip (through evaluator.config): keep it cheap."""
    import subprocess
    import sys

    code = ("import sys, evaluator.config, evaluator.mlip as m; assert m.BACKENDS; "
            "print(sorted({k.split('.')[0] for k in sys.modules} & "
            "{'torch', 'ase', 'chgnet', 'mace', 'sevenn', 'e3nn', 'torch_sim', 'pymatgen'}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_unknown_backend_and_missing_capabilities_are_refused():
    from evaluator.mlip import UnsupportedCapability, describe_mlip, load_mlip, register_backend
    from evaluator.mlip.sevenn_backend import SevenNetMLIP

    with pytest.raises(ValueError, match="unknown MLIP 'nope': choose from chgnet, mace, sevenn"):
        describe_mlip("nope")
    with pytest.raises(ValueError, match="unknown MLIP"):
        load_mlip("nope", device="cpu")
    assert issubclass(UnsupportedCapability, NotImplementedError)  # callers that catch it keep working
    with pytest.raises(ValueError, match="already registered"):
        register_backend(type("Impostor", (SevenNetMLIP,), {}))
