"""Hostile uploads (issue 12): no file can hang or crash reading, whatever it holds.

One generated case per class (built in tmp_path at test time, nothing large committed).
Each test asserts the refusal message or the per-row reason AND a generous bound on
time (and, where the old failure was a memory blow-up, on memory), so that a
regression to "hangs" or "eats the machine" fails here instead of in production.
The bounds are 10-100x what the guarded code needs on a loaded 2-core machine, and
far below what the unguarded code took (noted per case).
"""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import tarfile
import threading
import time
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pytest

from evaluator.config import IngestLimits
from evaluator.ingest import IngestError, inspect_upload, read_inputs
from evaluator.procpool import call_bounded
from hostile_helpers import (deep_structure_json, fm3m_cif, general_sites, measured_read, nacl_dict,
                             nested_json, plain_tar, poscar, sparse_tar)

pytestmark = pytest.mark.timeout(300)  # hang detection for the whole test, on top of each bound

GiB = 1024**3
DEEP = "JSON nested too deeply: more than 64 levels (max_json_depth)"
CHILD_CAP = 8 * GiB  # address-space cap of the measuring child: a blow-up fails, never swaps


def in_child(paths: list[Path], limits: IngestLimits | None = None, timeout_s: float = 240) -> dict:
    """read_inputs in a child process: rows or refusal, seconds, peak memory growth (MiB)."""
    out = call_bounded(measured_read, ([str(p) for p in paths], limits or IngestLimits()),
                       timeout_s=timeout_s, max_memory_bytes=CHILD_CAP)
    assert out.ok, f"reading did not finish within {timeout_s} s / {CHILD_CAP / GiB:g} GiB: {out.error}"
    return out.value


def timed(fn, *args, **kwargs):
    t0 = time.perf_counter()
    result = fn(*args, **kwargs)
    return result, time.perf_counter() - t0


# ------------------------------------------------------------ decompressed bytes

@pytest.mark.parametrize("member", ["big.cif", "big.bin"])
def test_sparse_tar_member_is_charged_its_expanded_size(tmp_path, member):
    """1.2 GiB sparse member in a 10 KB tar. Before: read in full (with .cif: > 150 s, 5.7 GB;
    other suffix: past the 1 GiB limit)."""
    f = sparse_tar(tmp_path / "sparse.tar", member, 1200 * 2**20)
    assert f.stat().st_size < 20_000
    got = in_child([f])
    assert got["refused"] == (f"decompressed size limit exceeded while reading sparse.tar:{member} (sparse member): "
                              "more than 1,073,741,824 bytes (max_decompressed_bytes)")
    assert got["seconds"] < 30 and got["grew_mib"] < 300, got


def test_sparse_member_under_the_size_limit_still_counts_for_the_ratio(tmp_path):
    f = sparse_tar(tmp_path / "s.tar", "a.cif", 50 * 2**20)
    got = in_child([f])
    assert got["refused"].startswith("suspicious compression ratio in s.tar:a.cif (sparse member): ")
    assert got["seconds"] < 30 and got["grew_mib"] < 300, got


@pytest.mark.skipif(shutil.which("tar") is None, reason="GNU tar not installed")
@pytest.mark.parametrize("fmt", ["gnu", "posix"])
def test_gnu_tar_sparse_formats(tmp_path, fmt):
    """Real GNU tar output: old GNU sparse headers and PAX sparse 1.0."""
    big = tmp_path / "big.cif"
    with open(big, "wb") as fh:
        fh.truncate(1200 * 2**20)  # a hole: no disk space used
    out = tmp_path / f"{fmt}.tar"
    subprocess.run(["tar", "--sparse", f"--format={fmt}", "-cf", str(out), "-C", str(tmp_path), "big.cif"],
                   check=True, timeout=120)
    big.unlink()
    got = in_child([out])
    assert "(sparse member): more than 1,073,741,824 bytes (max_decompressed_bytes)" in got["refused"]
    assert got["seconds"] < 30 and got["grew_mib"] < 300, got


@pytest.mark.parametrize("mode,suffix", [("w", "tar"), ("w:gz", "tar.gz"), ("w:bz2", "tar.bz2"),
                                         ("w:xz", "tar.xz")])
def test_tar_members_are_counted_in_every_container(tmp_path, mode, suffix):
    rng = np.random.default_rng(0)
    members = {f"{i}.cif": rng.integers(65, 90, 4000, dtype=np.uint8).tobytes() for i in range(4)}
    f = plain_tar(tmp_path / f"m.{suffix}", members, mode)
    with pytest.raises(IngestError, match=rf"decompressed size limit exceeded while reading m\.{suffix}: "
                                          r"more than 10,000 bytes \(max_decompressed_bytes\)"):
        timed(read_inputs, [f], IngestLimits(max_decompressed_bytes=10_000))


@pytest.mark.parametrize("mode,suffix", [("w:gz", "tar.gz"), ("w:bz2", "tar.bz2"), ("w:xz", "tar.xz")])
def test_compressed_tar_bombs_refused_on_the_ratio(tmp_path, mode, suffix):
    f = plain_tar(tmp_path / f"bomb.{suffix}", {"zeros.cif": b"\0" * (64 << 20)}, mode)
    got = in_child([f])
    assert got["refused"].startswith(f"suspicious compression ratio in bomb.{suffix}: ")
    assert got["seconds"] < 30 and got["grew_mib"] < 300, got


def test_tar_header_bomb_is_counted_too(tmp_path):
    """A 64 MiB PAX header record (not member data) in a small tar.gz: every byte out of
    the decompressor counts, headers included."""
    f = tmp_path / "pax.tar.gz"
    with tarfile.open(f, "w:gz", format=tarfile.PAX_FORMAT) as tf:
        info = tarfile.TarInfo("a.cif")
        info.pax_headers = {"comment": "x" * (64 << 20)}
        tf.addfile(info, io.BytesIO(b""))
    got = in_child([f])
    assert got["refused"].startswith("suspicious compression ratio in pax.tar.gz: ")
    assert got["seconds"] < 30 and got["grew_mib"] < 300, got


# ------------------------------------------------------------ atom guard

def test_symmetry_bomb_with_a_non_finite_row_is_refused_before_expanding(tmp_path):
    """300 general sites in Fm-3m plus one NaN row. Before: the guard was skipped, > 10 min."""
    f = tmp_path / "nan_bomb.cif"
    f.write_text(fm3m_cif(general_sites(300), ("Cnan C nan 0.1 0.1 1\n",)))
    (item,), secs = timed(read_inputs, [f])
    assert item.error == "non-finite number (NaN or inf) in the cell or coordinates"
    assert secs < 60


def test_poscar_counts_line_with_a_comment_is_counted_before_building(tmp_path):
    """10^6 atoms, counts line '1000000 # comment'. Before: built (2.1 GB), then refused."""
    f = tmp_path / "POSCAR"
    head = poscar(np.eye(3) * 100, ["Si"], "1000000  # one million atoms", [])
    f.write_text(head + "0.1 0.2 0.3\n" * 1_000_000)
    got = in_child([f])
    assert got["rows"] == [("POSCAR", "too many atoms: 1000000 > max_atoms_per_structure=500")]
    assert got["seconds"] < 60 and got["grew_mib"] < 600, got


def test_extxyz_frame_is_counted_before_ase_reads_it(tmp_path):
    f = tmp_path / "big.extxyz"
    n = 200_000
    f.write_text(f'{n}\nLattice="100 0 0 0 100 0 0 0 100" Properties=species:S:1:pos:R:3 pbc="T T T"\n'
                 + "Si 0.1 0.2 0.3\n" * n)
    got = in_child([f])
    assert got["rows"] == [("big.extxyz", f"too many atoms: {n} > max_atoms_per_structure=500")]
    assert got["seconds"] < 60 and got["grew_mib"] < 600, got


# ------------------------------------------------------------ time limit per structure

@pytest.mark.slow
def test_a_structure_past_the_time_limit_becomes_a_row(tmp_path, mp_sample):
    """A structure no guard stops (the atom limit raised to 100,000): 38,400 atoms that
    pymatgen takes minutes to expand. The good file beside it keeps its structure."""
    slow = tmp_path / "slow.cif"
    slow.write_text(fm3m_cif(general_sites(200)))
    shutil.copy(mp_sample / "mp_mp-8.cif", tmp_path / "good.cif")
    limits = IngestLimits(max_atoms_per_structure=100_000, max_read_seconds=3)
    items, secs = timed(read_inputs, [tmp_path / "good.cif", slow], limits)
    assert items[0].error is None and items[0].structure is not None
    assert items[1].source == "slow.cif"
    assert items[1].error == "took longer than 3 s to read (max_read_seconds)"
    assert secs < 120


@pytest.mark.slow
def test_the_upload_check_is_bounded_off_the_main_thread(tmp_path):
    """The app's check runs in a Gradio worker thread (no SIGALRM there)."""
    paths = []
    for i in range(3):
        paths.append(tmp_path / f"slow{i}.cif")
        paths[-1].write_text(fm3m_cif(general_sites(200, seed=i)))
    limits = IngestLimits(max_atoms_per_structure=100_000, max_read_seconds=5, max_check_seconds=4,
                          read_workers=1)
    result: dict = {}

    def check():
        try:
            result["check"] = inspect_upload(paths, limits)
        except IngestError as exc:
            result["refused"] = str(exc)

    t0 = time.perf_counter()
    worker = threading.Thread(target=check, name="gradio-like-worker")
    worker.start()
    worker.join(120)
    assert not worker.is_alive(), "the upload check is still running after 120 s"
    assert result["refused"] == ("reading the upload took longer than 4 s (max_check_seconds); "
                                 "submit fewer or smaller structures")
    assert time.perf_counter() - t0 < 60


# ------------------------------------------------------------ deeply nested JSON

def _deep_files(tmp_path: Path) -> dict[str, str]:
    cell = '{"lattice": ' + nested_json(50_000) + "}"
    files = {
        "deep.json": nested_json(100_000),
        "deep.jsonl": json.dumps(nacl_dict()) + "\n" + nested_json(100_000) + "\n",
        "deep.csv": 'structure\n"' + cell.replace('"', '""') + '"\n',
        "props.json": deep_structure_json(200),  # parses, but nests past the limit
    }
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    return {"deep.json": "deep.json:item 1", "deep.jsonl": "deep.jsonl:line 2", "deep.csv": "deep.csv:row 1",
            "props.json": "props.json"}


def test_deeply_nested_json_is_a_failure_row_in_every_json_container(tmp_path):
    """Before: RecursionError out of read_inputs (CLI, /check_upload, /submit)."""
    sources = _deep_files(tmp_path)
    for name, source in sources.items():
        items, secs = timed(read_inputs, [tmp_path / name])
        failed = {it.source: it.error for it in items if it.error}
        assert failed == {source: DEEP}, (name, failed)
        assert secs < 30
    check = inspect_upload([tmp_path / n for n in sources])  # what /check_upload runs
    assert check.n_failed == 4 and check.n_parsed == 1
    assert {why for _, why in check.failures} == {DEEP}


# ------------------------------------------------------------ placeholder and unknown symbols

def _symbol_files(tmp_path: Path, sym: str) -> dict[str, str]:
    cif_typed = (f"data_x\n_cell_length_a 5.64\n_cell_length_b 5.64\n_cell_length_c 5.64\n"
                 f"_cell_angle_alpha 90\n_cell_angle_beta 90\n_cell_angle_gamma 90\n"
                 f"_symmetry_space_group_name_H-M 'P 1'\nloop_\n_atom_site_label\n_atom_site_type_symbol\n"
                 f"_atom_site_fract_x\n_atom_site_fract_y\n_atom_site_fract_z\n_atom_site_occupancy\n"
                 f"{sym}1 {sym} 0 0 0 1\nCl1 Cl 0.5 0.5 0.5 1\n")
    cif_label = cif_typed.replace("_atom_site_type_symbol\n", "").replace(f"{sym}1 {sym} ", f"{sym}1 ") \
        .replace("Cl1 Cl ", "Cl1 ")
    files = {
        "typed.cif": cif_typed,
        "label.cif": cif_label,
        "POSCAR": poscar(np.eye(3) * 5.64, [sym, "Cl"], "1 1", [[0, 0, 0], [0.5, 0.5, 0.5]]),
        "s.extxyz": (f'2\nLattice="5.64 0 0 0 5.64 0 0 0 5.64" Properties=species:S:1:pos:R:3 pbc="T T T"\n'
                     f"{sym} 0 0 0\nCl 2.82 2.82 2.82\n"),
        "s.json": json.dumps(nacl_dict(sym)),
    }
    rows = [{"structure": json.dumps(nacl_dict(sym))}, {"structure": cif_typed}]
    import pandas as pd

    pd.DataFrame(rows).to_csv(tmp_path / "s.csv", index=False)
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    return files


@pytest.mark.parametrize("sym", ["Uue", "Xx"])
def test_placeholder_and_unknown_symbols_get_one_message_in_every_format(tmp_path, sym):
    """Before: a CIF read Uue as uranium, JSON refused it, POSCAR/extxyz gave other texts."""
    names = sorted(_symbol_files(tmp_path, sym)) + ["s.csv"]
    if sym == "Xx":
        names.remove("label.cif")  # a label is free text; Xx1 gives a dummy species, refused below too
    items, secs = timed(read_inputs, [tmp_path / n for n in names])
    assert len(items) == len(names) + 1  # the CSV has two rows
    assert {it.error for it in items} == {f"unknown element: {sym} (not a chemical element)"}, \
        [(it.source, it.error) for it in items]
    assert secs < 60


# ------------------------------------------------------------ cell handedness

def _left_handed_files(tmp_path: Path) -> tuple[dict[str, str], np.ndarray]:
    """A low-symmetry NaCl2-like cell written left-handed (a and b swapped) in every format;
    returns the files and the Cartesian positions they all describe."""
    from pymatgen.core import Lattice, Structure

    right = Lattice.from_parameters(4.1, 5.3, 6.2, 80, 95, 105)
    frac = np.array([[0.1, 0.2, 0.3], [0.6, 0.55, 0.8], [0.3, 0.85, 0.65]])
    species = ["Na", "Cl", "Cl"]
    cart = frac @ right.matrix
    left = right.matrix[[1, 0, 2]]  # det < 0, same lattice points
    lfrac = frac[:, [1, 0, 2]]
    assert np.linalg.det(left) < 0
    lh = Structure(Lattice(left), species, lfrac)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        files = {
            "POSCAR": poscar(left, ["Na", "Cl"], "1 2", lfrac.tolist()),
            "lh.json": json.dumps(lh.as_dict()),
            "lh.extxyz": (f'3\nLattice="{" ".join(f"{v:.10f}" for v in left.ravel())}" '
                          'Properties=species:S:1:pos:R:3 pbc="T T T"\n'
                          + "".join(f"{s} {x:.10f} {y:.10f} {z:.10f}\n" for s, (x, y, z) in zip(species, cart))),
        }
    # CIF: a negative cell length is the only way to write a left-handed cell
    a, b, c = right.abc
    al, be, ga = right.angles
    files["neg.cif"] = (f"data_neg\n_cell_length_a {-a}\n_cell_length_b {b}\n_cell_length_c {c}\n"
                        f"_cell_angle_alpha {al}\n_cell_angle_beta {be}\n_cell_angle_gamma {ga}\n"
                        "_symmetry_space_group_name_H-M 'P 1'\nloop_\n_atom_site_label\n_atom_site_type_symbol\n"
                        "_atom_site_fract_x\n_atom_site_fract_y\n_atom_site_fract_z\n"
                        + "".join(f"{s}{i} {s} {x} {y} {z}\n" for i, (s, (x, y, z)) in enumerate(zip(species, frac))))
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    return files, cart


def _same_points(cart_a: np.ndarray, cart_b: np.ndarray, lattice) -> bool:
    """Every position of a lies on a position of b, modulo lattice translations."""
    fa, fb = lattice.get_fractional_coords(cart_a), lattice.get_fractional_coords(cart_b)
    d = fa[:, None, :] - fb[None, :, :]
    d -= np.round(d)
    return bool((np.abs(d).max(axis=2).min(axis=1) < 1e-6).all())


def test_left_handed_cells_are_normalised_the_same_in_every_format(tmp_path):
    """Before: a negative CIF length gave a left-handed cell (counted valid); a left-handed
    POSCAR failed relaxation. Now a left-handed cell matrix (POSCAR, JSON, extxyz) becomes
    the same crystal on a right-handed cell; a CIF, which can only write one with a
    negative length (pymatgen then also flips two angles: another crystal), is refused."""
    from pymatgen.analysis.structure_matcher import StructureMatcher

    files, cart = _left_handed_files(tmp_path)
    items, secs = timed(read_inputs, [tmp_path / n for n in sorted(files)])
    assert secs < 60
    errors = {it.source: it.error for it in items if it.error}
    assert errors == {"neg.cif": "invalid cell: _cell_length_a = -4.1 (cell lengths must be positive)"}
    structures = {it.source: it.structure for it in items if it.structure is not None}
    assert len(structures) == 3
    for name, s in structures.items():
        assert np.linalg.det(s.lattice.matrix) > 0, name
        assert _same_points(s.cart_coords, cart, s.lattice), name  # the positions as written
    ref = structures["POSCAR"]
    for name, s in structures.items():
        assert StructureMatcher().fit(ref, s), name
        assert np.allclose(sorted(s.lattice.abc), sorted(ref.lattice.abc), atol=1e-6), name


@pytest.mark.slow
def test_left_handed_poscar_relaxes_normally(tmp_path):
    import torch
    from pymatgen.io.ase import AseAtomsAdaptor

    from evaluator.mlip import load_mlip
    from evaluator.mlip.relax import relax_serial

    torch.set_num_threads(1)
    rock = np.array([[0, 2.82, 2.82], [2.82, 0, 2.82], [2.82, 2.82, 0]])[[1, 0, 2]]  # left-handed fcc cell
    f = tmp_path / "POSCAR"
    f.write_text(poscar(rock, ["Na", "Cl"], "1 1", [[0, 0, 0], [0.52, 0.5, 0.49]]))
    (item,) = read_inputs([f])
    assert item.error is None and np.linalg.det(item.structure.lattice.matrix) > 0
    res = relax_serial(load_mlip("chgnet", device="cpu"), [("lh", AseAtomsAdaptor.get_atoms(item.structure))],
                       fmax=0.05, steps=100)["lh"]
    assert res.status == "ok", res
    assert res.energy is not None and res.energy_unrelaxed is not None and res.volume_ratio is not None
    assert res.energy < res.energy_unrelaxed  # a left-handed cell relaxed to +16.7 eV (from -7.3)
    assert 0.7 < res.volume_ratio < 1.5  # ... and collapsed to 8 % of its volume


# ------------------------------------------------------------ echoed values, metadata type

def test_refusals_never_echo_a_huge_value(tmp_path):
    huge = "x" * (10 << 20)
    zf = tmp_path / "names.zip"
    with zipfile.ZipFile(zf, "w") as z:
        z.writestr("../" + "y" * 60_000 + ".cif", "data_x\n")
    with pytest.raises(IngestError) as exc:
        read_inputs([zf])
    assert "unsafe path" in str(exc.value) and len(str(exc.value)) < 400
    table = tmp_path / "wide.csv"
    table.write_text(huge + "\n1\n")
    with pytest.raises(IngestError) as exc:
        read_inputs([table])
    assert "no structure column" in str(exc.value) and len(str(exc.value)) < 600

    from leaderboard.intake.submissions import validate_meta

    errors, secs = timed(validate_meta, {"model_name": huge, "model_version": "1", "task": huge}, complete=False)
    assert errors and all(len(e) <= 200 for e in errors) and secs < 30


@pytest.mark.parametrize("meta,kind", [(["model_name", "x"], "list"), ("model_name=x", "string"),
                                       (7, "number"), (None, "null")])
def test_metadata_of_the_wrong_json_type_is_a_clear_refusal(tmp_path, mp_sample, meta, kind):
    from leaderboard.store import open_store
    from leaderboard.intake.submissions import SubmissionError, submit

    with pytest.raises(SubmissionError, match=rf"^metadata must be a JSON object of fields .*, not a {kind}$"):
        submit(open_store(str(tmp_path / "store")), meta, [mp_sample / "mp_mp-8.cif"], "tester")


def test_deeply_nested_metadata_is_refused(tmp_path, mp_sample):
    from leaderboard.store import open_store
    from leaderboard.intake.submissions import SubmissionError, submit, validate_meta

    meta = {"model_name": "m", "model_version": "1", "notes": json.loads(nested_json(900))}
    assert validate_meta(meta) == ["metadata is nested too deeply (more than 8 levels); its fields are plain values"]
    with pytest.raises(SubmissionError, match="nested too deeply"):
        submit(open_store(str(tmp_path / "store")), meta, [mp_sample / "mp_mp-8.cif"], "tester")


# ------------------------------------------------------------ exports and the app

def test_csv_downloads_neutralise_formula_cells(tmp_path):
    import pandas as pd

    from leaderboard.ui.downloads import whole_table

    df = pd.DataFrame({"model_name": ["=cmd|' /C calc'!A0", "+1+1", "@SUM(A1)", "\tx", "\rx", "-2+3", "plain"],
                       "e_hull": [-0.25, -1.0, 0.0, 1.5, 2.0, -3e-5, 4.0],
                       "note": ["-0.5", "a=b", None, "x", "y", "z", "w"]})
    path = whole_table(df, "csv", folder=tmp_path)
    back = pd.read_csv(path, keep_default_na=False)
    assert list(back["model_name"]) == ["'=cmd|' /C calc'!A0", "'+1+1", "'@SUM(A1)", "'\tx", "'\rx", "'-2+3",
                                        "plain"]  # the CR cell is quoted: it cannot start a row
    assert list(back["e_hull"]) == [-0.25, -1.0, 0.0, 1.5, 2.0, -3e-5, 4.0]  # numbers stay numbers
    assert list(back["note"])[:2] == ["-0.5", "a=b"]  # a number as text is not a formula


def test_refused_uploads_are_deleted_and_gradio_limit_matches_ingestion(tmp_path, monkeypatch):
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path / "gradio"))
    from leaderboard.ui import launch_kwargs
    from leaderboard.ui.submit_tab import check_files

    assert launch_kwargs()["max_file_size"] == IngestLimits().max_upload_bytes
    cache = tmp_path / "gradio" / "abc123"
    cache.mkdir(parents=True)
    refused = cache / "deep.json"
    refused.write_text(nested_json(100_000))
    outside = tmp_path / "notes.docx"  # not in the upload cache: never deleted
    outside.write_text("hello")
    good = cache / "ok.json"
    good.write_text(json.dumps(nacl_dict()))
    msg, secs = timed(check_files, [str(refused)])
    assert msg.startswith("**Refused:** none of the 1 structures could be read.") and "nested too deeply" in msg
    assert not refused.exists() and secs < 60
    assert check_files([str(outside)]).startswith("**Refused:**") and outside.exists()
    assert check_files([str(good)]).startswith("**OK:**") and good.exists()


@pytest.mark.slow
def test_app_endpoints_answer_hostile_uploads_and_metadata(app_server, tmp_path):
    """/check_upload and /submit over HTTP: a clear answer, never an AppError."""
    from gradio_client import Client, handle_file

    client = Client(app_server.url, verbose=False)
    deep = tmp_path / "deep.json"
    deep.write_text(nested_json(100_000))
    check, secs = timed(client.predict, [handle_file(str(deep))], api_name="/check_upload")
    assert "Refused" in check and "nested too deeply" in check and secs < 120
    meta = {"model_name": "Hostile", "model_version": "1", "training_set": "MP-20", "task": "unconditional",
            "relaxed_before_submission": False}
    out = client.predict([handle_file(str(deep))], meta, api_name="/submit")
    assert out["ok"] is False and "nested too deeply" in out["message"]
    good = tmp_path / "ok.json"
    good.write_text(json.dumps(nacl_dict()))
    for bad_meta, kind in ((["model_name", "x"], "list"), ("just a string", "string")):
        out = client.predict([handle_file(str(good))], bad_meta, api_name="/submit")
        assert out["ok"] is False and "metadata must be a JSON object" in out["message"] and kind in out["message"]
    status = client.predict("x" * 2**20, api_name="/status")  # issue 25: a 1 MB id is not echoed in full
    assert status["status"] is None and status["id"] == "x" * 40 + "… (1,048,576 characters)"


# ------------------------------------------------------------ every structure accounted for (issue 25)
#
# Each case is an upload with a known number of structures; the rows must be exactly that many
# (a lost or an invented structure fails here), with the rows that should read, read.

def _nacl_cif(name: str = "NaCl", extra: str = "", occupancy: str = "1") -> str:
    return (f"data_{name}\n{extra}_cell_length_a 5.64\n_cell_length_b 5.64\n_cell_length_c 5.64\n"
            "_cell_angle_alpha 90\n_cell_angle_beta 90\n_cell_angle_gamma 90\n"
            "_symmetry_space_group_name_H-M 'P 1'\nloop_\n_atom_site_label\n_atom_site_type_symbol\n"
            "_atom_site_fract_x\n_atom_site_fract_y\n_atom_site_fract_z\n_atom_site_occupancy\n"
            f"Na1 Na 0 0 0 {occupancy}\nCl1 Cl 0.5 0.5 0.5 1\n")


VASP4 = "NaCl, no species line\n1.0\n5.64 0 0\n0 5.64 0\n0 0 5.64\n1 1\nDirect\n0 0 0\n0.5 0.5 0.5\n"


def _csv_of(cifs: list[str], column: str = "structure") -> str:
    import csv

    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["id", column])
    w.writerows([i, c] for i, c in enumerate(cifs))
    return buf.getvalue()


def _accounting_cases(tmp_path: Path) -> dict[str, tuple[list[Path], int, int]]:
    """name -> (files, structures in them, structures that should read)."""
    nacl = json.dumps(nacl_dict())
    text_field = "_publ_section_abstract\n;\nA field that quotes a CIF:\ndata_not_a_block\n_cell_length_a 3\n;\n"
    files: dict[str, tuple[dict[str, str | bytes], int, int]] = {
        "block names": ({"b.cif": _nacl_cif("powder_pattern_1") + _nacl_cif("NaCl") + _nacl_cif("NaCl")}, 3, 3),
        "data_ in a text field": ({"t.cif": _nacl_cif("a", text_field) + _nacl_cif("b")}, 2, 2),
        "publication block": ({"p.cif": "data_global\n_journal_name_full 'X'\n" + _nacl_cif("a") + _nacl_cif("b")},
                              2, 2),
        "repeated JSON keys": ({"d.json": f'{{"a": {nacl}, "a": {nacl}, "b": {nacl}}}'}, 3, 3),
        "repeated key in a structure": ({"k.json": "[" + nacl[:-1] + ', "lattice": {}}, ' + nacl + "]"}, 2, 1),
        "JSON under any key": ({"m.json": json.dumps({"model": "x", "crystals": [nacl_dict(), nacl_dict()],
                                                     "by_id": {"a": nacl_dict(), "b": nacl_dict()}})}, 4, 4),
        "JSON records": ({"r.json": json.dumps([{"id": 1, "cif": _nacl_cif()}, {"id": 2, "poscar_free": nacl}]),
                          "r.jsonl": json.dumps({"id": 3, "my_cif": _nacl_cif()}) + "\n\n\n"}, 3, 3),
        "CSV column by content": ({"c.csv": _csv_of([_nacl_cif()] * 3, "generated_cif")}, 3, 3),
        "occupancy and species": ({"neg.cif": _nacl_cif(occupancy="-1"), "nan.cif": _nacl_cif(occupancy="nan"),
                                   "POSCAR": VASP4,
                                   "CONTCAR": poscar(np.eye(3) * 5.64, ["Na", "Cl", "O"], "1 1",
                                                     [[0, 0, 0], [0.5, 0.5, 0.5]])}, 4, 0),
    }
    archive = tmp_path / "docs_like.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("README.cif", _nacl_cif())
        zf.writestr("docs/LICENSE.vasp", poscar(np.eye(3) * 5.64, ["Na", "Cl"], "1 1", [[0, 0, 0], [0.5, 0.5, 0.5]]))
        zf.writestr("POSCAR.txt", poscar(np.eye(3) * 5.64, ["Na", "Cl"], "1 1", [[0, 0, 0], [0.5, 0.5, 0.5]]))
        zf.writestr("tables/gen.csv", _csv_of([_nacl_cif()] * 2, "cif_text"))
        zf.writestr("tables/gen.json", json.dumps({"generated": [nacl_dict(), nacl_dict()]}))
        zf.writestr("README.md", "# not a structure\n")
        zf.writestr("metadata.csv", "id,energy\n1,-3.2\n")
    cases: dict[str, tuple[list[Path], int, int]] = {"archive members and columns": ([archive], 7, 7)}
    for case, (members, n, n_ok) in files.items():
        folder = tmp_path / case.replace(" ", "_")
        folder.mkdir()
        for name, text in members.items():
            (folder / name).write_text(text) if isinstance(text, str) else (folder / name).write_bytes(text)
        cases[case] = (sorted(folder.iterdir()), n, n_ok)
    return cases


def test_every_structure_gets_exactly_one_row(tmp_path):
    """Before: 16 structures lost in 4 inputs (a block name, a repeated key, an unknown column or key in
    an archive member, documentation-like member names) and NaCl read as Cl or H1He1."""
    t0 = time.perf_counter()
    for case, (paths, n, n_ok) in _accounting_cases(tmp_path).items():
        items = read_inputs(paths)
        rows = [(it.source, it.error) for it in items]
        assert len(items) == n, (case, rows)
        assert sum(it.error is None for it in items) == n_ok, (case, rows)
        for it in items:
            assert it.error or it.structure.composition.reduced_formula == "NaCl", (case, it.source)
    assert time.perf_counter() - t0 < 120


def test_the_same_problem_gets_the_same_reason_in_every_format(tmp_path):
    neg = nacl_dict()
    neg["sites"][0]["species"][0]["occu"] = -1
    (tmp_path / "neg.cif").write_text(_nacl_cif(occupancy="-1"))
    (tmp_path / "neg.json").write_text(json.dumps(neg))
    (tmp_path / "POSCAR_v4").write_text(VASP4)
    (tmp_path / "s.extxyz").write_text('2\nLattice="5.64 0 0 0 5.64 0 0 0 5.64" Properties=pos:R:3 pbc="T T T"\n'
                                       "0 0 0\n2.82 2.82 2.82\n")
    (tmp_path / "POSCAR_short").write_text(poscar(np.eye(3) * 5.64, ["Na", "Cl"], "4 4", [[0, 0, 0], [0.5, 0.5, 0.5]]))
    (tmp_path / "short.extxyz").write_text('8\nLattice="5.64 0 0 0 5.64 0 0 0 5.64" Properties=species:S:1:pos:R:3 '
                                           'pbc="T T T"\nNa 0 0 0\nCl 2.82 2.82 2.82\n')
    names = ["neg.cif", "neg.json", "POSCAR_v4", "s.extxyz", "POSCAR_short", "short.extxyz"]
    errors = {it.source: it.error for it in read_inputs([tmp_path / n for n in names])}
    assert len(errors) == len(names)
    assert errors["neg.cif"] == "invalid occupancy -1 on site Na1: occupancies must be greater than 0 (and at most 1)"
    assert errors["neg.json"] == errors["neg.cif"].replace("Na1", "Na")  # the dict's site label
    assert errors["POSCAR_v4"].startswith("missing species: the POSCAR has no element symbols")
    assert errors["s.extxyz"].startswith("missing species: atom 1 has no element")
    assert errors["POSCAR_short"] == ("atom count mismatch: the POSCAR counts line declares 8 atoms but 2 "
                                      "positions follow")
    assert errors["short.extxyz"] == ("atom count mismatch: the frame's count line declares 8 atoms but 2 "
                                      "positions follow")


@pytest.mark.parametrize("change,expected", [
    (("_cell_length_a 5.64", "_cell_length_a 1e-300"), "degenerate cell: volume 3.18e-299 Å³ is zero or near zero"),
    (("_cell_angle_alpha 90", "_cell_angle_alpha 0"),
     "degenerate cell: _cell_angle_alpha = 0 degrees (angles must be strictly between 0 and 180)"),
    (("_cell_angle_alpha 90\n_cell_angle_beta 90\n_cell_angle_gamma 90",
      "_cell_angle_alpha 130\n_cell_angle_beta 130\n_cell_angle_gamma 130"),
     "degenerate cell: the angles alpha=130, beta=130, gamma=130 degrees close no cell (zero volume)"),
    (("_cell_angle_gamma 90", "_cell_angle_gamma 179.9"),
     "degenerate cell: 0.00984 Å thick along one axis (too flat to be a crystal)"),
    (("Na1 Na 0 0 0 1\nCl1 Cl 0.5 0.5 0.5 1\n", ""),
     "unreadable CIF: a loop_ lists column names but no values, or a number of values that does not fill its "
     "columns (an empty atom-site loop?)"),
])
def test_cif_cell_and_loop_messages_in_the_users_terms(tmp_path, change, expected):
    """Before: 'non-finite (NaN or inf)' for a tiny cell or a zero angle, 'integer modulo by zero' for an
    empty atom loop."""
    f = tmp_path / "x.cif"
    f.write_text(_nacl_cif().replace(*change))
    (item,) = read_inputs([f])
    assert item.error == expected


def test_a_stray_quote_in_a_csv_never_invents_rows(tmp_path):
    """Before: one stray quote in a CSV of 10 structures gave 142 rows."""
    text = _csv_of([_nacl_cif(f"s{i}") for i in range(10)])
    f = tmp_path / "ten.csv"
    f.write_text(text.replace("_cell_angle_beta 90", '_cell_angle_beta 90"', 1))
    with pytest.raises(IngestError, match=r"ten\.csv: malformed CSV.*no row of this file was read"):
        read_inputs([f])
    f.write_text(text)
    assert len(read_inputs([f])) == 10


def test_long_ids_are_cut_in_status_messages():
    from leaderboard.ui.jobs import shown_id

    assert shown_id("20250101-120000-1a2b3c4d") == "20250101-120000-1a2b3c4d"
    assert shown_id("x" * 2**20) == "x" * 40 + "… (1,048,576 characters)"
