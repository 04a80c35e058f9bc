"""Ingestion of every accepted format: real MP structures, converted in tmp_path."""

from __future__ import annotations

import csv
import gzip
import io
import json
import tarfile
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pytest

from evaluator.config import IngestLimits
from evaluator.ingest import IngestError, inspect_upload, read_inputs

IDS = ["mp-8", "mp-10078", "mp-2"]  # Re2, Tb2Ti2Ge2, Pd


@pytest.fixture(scope="module")
def cif_paths(mp_sample) -> list[Path]:
    return [mp_sample / f"mp_{i}.cif" for i in IDS]


@pytest.fixture(scope="module")
def structures(cif_paths):
    from pymatgen.core import Structure

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return [Structure.from_file(p) for p in cif_paths]


def same(a, b) -> bool:
    """Same composition, cell and Cartesian positions (site order kept)."""
    return (a.composition == b.composition and len(a) == len(b)
            and np.allclose(a.lattice.matrix, b.lattice.matrix, atol=1e-5)
            and np.allclose(a.cart_coords, b.cart_coords, atol=1e-4))


def check(items, structures, sources=None):
    assert [it.error for it in items] == [None] * len(structures)
    for it, s in zip(items, structures, strict=True):
        assert same(it.structure, s), it.source
    if sources is not None:
        assert [it.source for it in items] == sources


def test_cif_files_in_given_order(cif_paths, structures):
    items = read_inputs(cif_paths[::-1], IngestLimits())
    check(items, structures[::-1], [p.name for p in cif_paths[::-1]])


def test_multi_block_cif(tmp_path, cif_paths, structures):
    f = tmp_path / "multi.cif"
    f.write_text("\n".join(p.read_text() for p in cif_paths))
    check(read_inputs([f]), structures, [f"multi.cif:block {i}" for i in (1, 2, 3)])


def test_multi_block_cif_with_duplicate_names_and_a_bad_block(tmp_path, cif_paths, structures):
    text = cif_paths[0].read_text()
    f = tmp_path / "dup.cif"
    f.write_text(text + "\ndata_broken\n_cell_length_a 3\n" + text)
    items = read_inputs([f])
    assert [it.source for it in items] == ["dup.cif:block 1", "dup.cif:block 2", "dup.cif:block 3"]
    assert same(items[0].structure, structures[0]) and same(items[2].structure, structures[0])
    assert items[1].structure is None and items[1].error.startswith("unreadable CIF")


def test_poscar_names(tmp_path, structures):
    from pymatgen.io.vasp import Poscar

    names = ["POSCAR", "CONTCAR_relaxed", "b.vasp", "c.poscar"]
    for name, s in zip(names, [*structures, structures[0]]):
        Poscar(s).write_file(tmp_path / name)
    items = read_inputs([tmp_path / n for n in names])
    check(items, [*structures, structures[0]], names)


def test_extxyz_multi_frame_and_xyz(tmp_path, structures):
    import ase.io
    from pymatgen.io.ase import AseAtomsAdaptor

    atoms = [AseAtomsAdaptor.get_atoms(s) for s in structures]
    ase.io.write(tmp_path / "frames.extxyz", atoms, format="extxyz")
    ase.io.write(tmp_path / "one.xyz", atoms[1], format="extxyz")
    items = read_inputs([tmp_path / "frames.extxyz", tmp_path / "one.xyz"])
    check(items, [*structures, structures[1]],
          ["frames.extxyz:frame 1", "frames.extxyz:frame 2", "frames.extxyz:frame 3", "one.xyz"])


@pytest.mark.parametrize("column", ["structure", "cif", "cif_string", "LeMatStructs"])
def test_csv_columns(tmp_path, structures, column):
    f = tmp_path / "table.csv"
    with open(f, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["id", column, "energy"])
        # JSON in one row, CIF text in the next: detected per cell
        w.writerow(["a", structures[0].to_json(), 1.0])
        w.writerow(["b", structures[1].to(fmt="cif"), 2.0])
        w.writerow(["c", "", 3.0])
    items = read_inputs([f])
    assert [it.source for it in items] == ["table.csv:row 1", "table.csv:row 2", "table.csv:row 3"]
    check(items[:2], structures[:2])
    assert items[2].error == "empty cell"


def test_json_shapes_and_jsonl(tmp_path, structures):
    dicts = [s.as_dict() for s in structures]
    (tmp_path / "list.json").write_text(json.dumps(dicts))
    (tmp_path / "one.json").write_text(json.dumps(dicts[1]))
    (tmp_path / "wrapped.json").write_text(json.dumps({"structures": dicts[:2]}))
    (tmp_path / "lines.jsonl").write_text("\n".join(json.dumps(d) for d in dicts) + "\n\n")
    names = ["list.json", "one.json", "wrapped.json", "lines.jsonl"]
    items = read_inputs([tmp_path / n for n in names])
    check(items, [*structures, structures[1], *structures[:2], *structures],
          ["list.json:item 1", "list.json:item 2", "list.json:item 3", "one.json",
           "wrapped.json:item 1", "wrapped.json:item 2",
           "lines.jsonl:line 1", "lines.jsonl:line 2", "lines.jsonl:line 3"])


def _csv_text(header: list[str], *rows: list) -> str:
    buf = io.StringIO()
    csv.writer(buf).writerows([header, *rows])
    return buf.getvalue()


def _archive_members(cif_paths, structures) -> dict[str, bytes]:
    from pymatgen.io.vasp import Poscar

    return {
        "sub/deeper/a.cif": cif_paths[0].read_bytes(),
        "__MACOSX/sub/._a.cif": b"\x00junk",
        "sub/.DS_Store": b"\x00junk",
        "sub/POSCAR": Poscar(structures[1]).get_str().encode(),
        "metadata.csv": b"material_id,formula\nmp-8,Re\n",
        "README.md": b"# my model\n",
        "z/table.csv": _csv_text(["cif"], [structures[2].to(fmt="cif")]).encode(),
        "notes.res": b"TITL something\n",
    }


def _expect_archive(items, name, structures):
    assert [it.source for it in items] == [f"{name}:sub/deeper/a.cif", f"{name}:sub/POSCAR",
                                           f"{name}:z/table.csv:row 1", f"{name}:notes.res"]
    check(items[:3], structures)
    assert items[3].error.startswith("unsupported format '.res'")


def test_zip_with_nested_folders_and_junk(tmp_path, cif_paths, structures):
    f = tmp_path / "sub.zip"
    with zipfile.ZipFile(f, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in _archive_members(cif_paths, structures).items():
            zf.writestr(name, data)
    _expect_archive(read_inputs([f]), "sub.zip", structures)


@pytest.mark.parametrize("suffix,mode", [(".tar", "w"), (".tar.gz", "w:gz"), (".tgz", "w:gz"),
                                         (".tar.xz", "w:xz")])
def test_tar_variants(tmp_path, cif_paths, structures, suffix, mode):
    f = tmp_path / f"sub{suffix}"
    with tarfile.open(f, mode) as tf:
        for name, data in _archive_members(cif_paths, structures).items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    _expect_archive(read_inputs([f]), f"sub{suffix}", structures)


def test_single_gzip_file(tmp_path, cif_paths, structures):
    f = tmp_path / "a.cif.gz"
    f.write_bytes(gzip.compress(cif_paths[1].read_bytes()))
    check(read_inputs([f]), structures[1:2], ["a.cif.gz"])


def test_folder_sorted_recursive_skips_metadata_and_hidden(tmp_path, cif_paths, structures):
    root = tmp_path / "gen"
    (root / "b").mkdir(parents=True)
    (root / ".hidden").mkdir()
    (root / "b" / "z.cif").write_bytes(cif_paths[0].read_bytes())
    (root / "a.cif").write_bytes(cif_paths[1].read_bytes())
    (root / ".hidden" / "x.cif").write_bytes(cif_paths[2].read_bytes())
    (root / "metadata.csv").write_text("material_id,formula\nmp-8,Re\n")
    (root / "statistics.json").write_text(json.dumps({"seed": 1, "rows": [{"a": 1}]}))
    items = read_inputs([root])
    check(items, [structures[1], structures[0]], ["gen/a.cif", "gen/b/z.cif"])
    with pytest.raises(IngestError, match="no structure column"):
        read_inputs([root / "metadata.csv"])
    with pytest.raises(IngestError, match="no structures found"):
        read_inputs([root / "statistics.json"])


def test_inspect_upload_counts_and_first_failures(tmp_path, cif_paths):
    (tmp_path / "bad.cif").write_text("nonsense\n")
    (tmp_path / "empty.cif").write_text("")
    check_ = inspect_upload([*cif_paths, tmp_path / "bad.cif", tmp_path / "empty.cif"], max_errors=1)
    assert (check_.n_items, check_.n_parsed, check_.n_failed) == (5, 3, 2)
    assert check_.failures == [("bad.cif", "not a CIF: no 'data_' block found")]
    assert "and 1 more" in check_.text() and check_.as_dict()["n_failed"] == 2
    # the check drops the structures it read but keeps their sizes (the time estimate is per cell)
    assert check_.atoms == [len(it.structure) for it in read_inputs(cif_paths)]


def test_mp_sample_folder_all_parsed(mp_sample):
    calls = []
    items = read_inputs([mp_sample], IngestLimits(), progress=lambda *a: calls.append(a))
    assert len(items) == 2473
    assert [it.source for it in items if it.error] == []
    assert all(it.source.startswith("mp_sample/mp_") for it in items)
    assert calls[0] == ("ingest", 0, 2473) and calls[-1] == ("ingest", 2473, 2473)  # structures read
    done = [c[1] for c in calls]
    assert done == sorted(done) and {c[2] for c in calls} == {2473}


# ------------------------------------------------------------ content fingerprint (issue 26)
def test_structure_digest_ignores_site_order_and_periodic_images(structures):
    from evaluator.ingest.fingerprint import structure_digest, upload_digest

    s = structures[1]
    moved = s.copy()
    moved.translate_sites([0], [1.0, -1.0, 0.0], frac_coords=True, to_unit_cell=False)  # same site, next cell
    shuffled = type(s).from_sites(list(reversed(s.sites)))
    assert structure_digest(s) == structure_digest(moved) == structure_digest(shuffled)
    other = s.copy()
    other.translate_sites([0], [0.01, 0.0, 0.0], frac_coords=True)
    assert structure_digest(other) != structure_digest(s)
    assert len({structure_digest(x) for x in structures}) == len(structures)
    a, b = (structure_digest(x) for x in structures[:2])
    assert upload_digest([a, b]) == upload_digest([b, a]) != upload_digest([a, b, b])
    assert upload_digest([a]) != upload_digest([a], n_failed=1)


def test_upload_check_recognises_the_same_structures_in_a_rebuilt_archive(tmp_path, cif_paths, structures):
    first = tmp_path / "gen.zip"
    with zipfile.ZipFile(first, "w") as zf:
        for p in cif_paths:
            zf.write(p, f"cifs/{p.name}")
    rebuilt = tmp_path / "again.zip"  # other names, other order, other compression: other bytes
    with zipfile.ZipFile(rebuilt, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for i, p in enumerate(reversed(cif_paths)):
            zf.writestr(f"s{i}.cif", p.read_text())
    assert first.read_bytes() != rebuilt.read_bytes()
    poscars = []
    for i, s in enumerate(structures):
        poscars.append(tmp_path / f"POSCAR_{i}")
        s.to(filename=str(poscars[-1]), fmt="poscar")
    a, b, c = (inspect_upload(x) for x in ([first], [rebuilt], poscars))
    assert a.n_parsed == 3 and a.structures_sha256
    assert a.structures_sha256 == b.structures_sha256 == c.structures_sha256  # same structures, any format
    fewer = inspect_upload(cif_paths[:2])
    assert fewer.structures_sha256 != a.structures_sha256
