"""Bad inputs: refused with an IngestError or recorded as a failure row, never a crash.

Tiny cases live in tests/bad_inputs/ (see its README); big ones (bombs, many
members/structures) are generated in tmp_path against small limits.
"""

from __future__ import annotations

import io
import json
import struct
import tarfile
import warnings
import zipfile

import pytest

from evaluator.config import IngestLimits
from evaluator.ingest import IngestError, read_inputs
from repo_paths import BAD_INPUTS

BAD = BAD_INPUTS

ROWS = {  # file -> start of the failure reason
    "garbage.cif": "not a CIF: no 'data_' block found",
    "empty.cif": "empty file",
    "no_atoms.cif": "unreadable CIF: missing field _atom_site_label",
    "unknown_element.cif": "unknown element: Xx",
    "partial_occupancy.cif": "disordered: partial occupancies not supported (site 2: W:0.5, Os:0.5",
    "vacancy.cif": "disordered: partial occupancies not supported (site 1: Re:0.75, vacancy)",
    "nan_coords.cif": "non-finite number (NaN or inf)",
    "nan_lattice.cif": "non-finite lattice (NaN or inf)",
    "zero_volume.cif": "degenerate cell",
    "molecule.xyz": "no periodic cell",
}
REFUSED = {  # file -> pattern of the IngestError
    "structures.pkl": r"pickle files are refused: loading a pickle can execute arbitrary code.*CIF",
    "readme.unknown": r"unsupported file format; accepted: \.cif",
    "metadata_only.csv": r"no structure column; expected one of structure, cif, cif_string, LeMatStructs",
    "path_traversal.zip": r"member '\.\./escape\.cif' has an unsafe path",
    "absolute_path.tar": r"member '/etc/absolute\.cif' has an unsafe path",
}


def test_corpus_is_fully_covered():
    assert {p.name for p in BAD.iterdir()} - {"README.md"} == set(ROWS) | set(REFUSED)


@pytest.mark.parametrize("name", sorted(ROWS))
def test_failure_rows(name):
    (item,) = read_inputs([BAD / name])
    assert item.structure is None and item.source == name
    assert item.error.startswith(ROWS[name]), item.error
    assert len(item.error) <= 200 and "\n" not in item.error


@pytest.mark.parametrize("name", sorted(REFUSED))
def test_refused(name):
    with pytest.raises(IngestError, match=REFUSED[name]):
        read_inputs([BAD / name])


def test_failure_rows_keep_their_place_among_good_ones(mp_sample):
    good = mp_sample / "mp_mp-8.cif"
    items = read_inputs([good, BAD / "garbage.cif", good, BAD / "empty.cif"])
    assert [it.error is None for it in items] == [True, False, True, False]


def test_bad_corpus_inside_a_zip_gives_one_row_each(tmp_path):
    f = tmp_path / "bad.zip"
    with zipfile.ZipFile(f, "w") as zf:
        for name in sorted(ROWS):
            zf.write(BAD / name, f"bad/{name}")
        zf.writestr("bad/inner.zip", b"PK\x05\x06" + b"\x00" * 18)
    items = read_inputs([f])
    assert [it.source for it in items] == [f"bad.zip:bad/{n}" for n in sorted(ROWS)] + ["bad.zip:bad/inner.zip"]
    for it, name in zip(items, sorted(ROWS)):
        assert it.error.startswith(ROWS[name])
    assert items[-1].error.startswith("nested archive")


def test_pickle_detected_by_magic_bytes_and_inside_archives(tmp_path):
    import pickle

    disguised = tmp_path / "structures.cif"
    disguised.write_bytes(pickle.dumps([1, 2], protocol=5))
    with pytest.raises(IngestError, match="pickle files are refused"):
        read_inputs([disguised])
    f = tmp_path / "model.zip"
    with zipfile.ZipFile(f, "w") as zf:
        zf.writestr("archive/data.pkl", pickle.dumps([1]))
    with pytest.raises(IngestError, match="model.zip:archive/data.pkl: pickle files are refused"):
        read_inputs([f])


def test_zip_bomb_high_ratio_refused(tmp_path):
    f = tmp_path / "bomb.zip"
    with zipfile.ZipFile(f, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("bomb.cif", b"\0" * (4 << 20))  # 4 MiB of zeros -> ~4 KiB
    with pytest.raises(IngestError, match=r"suspicious compression ratio in bomb.zip:bomb.cif: \d+x > 200x"):
        read_inputs([f], IngestLimits(max_compression_ratio=200))


def test_zip_bomb_with_lying_header_is_caught_while_reading(tmp_path):
    """Central directory claims a tiny member; the bytes read still count."""
    f = tmp_path / "liar.zip"
    with zipfile.ZipFile(f, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("a.cif", b"\0" * (4 << 20))
    data = bytearray(f.read_bytes())
    cd = data.rfind(b"PK\x01\x02")  # central directory entry: uncompressed size at +24
    struct.pack_into("<I", data, cd + 24, 1000)
    f.write_bytes(bytes(data))
    items = read_inputs([f], IngestLimits(max_compression_ratio=200))
    # zipfile stops at the declared size and the CRC check fails: a row, never 4 MiB
    assert items[0].error.startswith("corrupt zip member")


def test_tar_gz_bomb_refused_on_stream_ratio(tmp_path):
    f = tmp_path / "bomb.tar.gz"
    with tarfile.open(f, "w:gz") as tf:
        info = tarfile.TarInfo("big.cif")
        info.size = 4 << 20
        tf.addfile(info, io.BytesIO(b"\0" * info.size))
    with pytest.raises(IngestError, match="suspicious compression ratio in bomb.tar.gz"):
        read_inputs([f], IngestLimits(max_compression_ratio=200))


def test_total_decompressed_size_limit(tmp_path, mp_sample):
    f = tmp_path / "many.zip"
    text = (mp_sample / "mp_mp-8.cif").read_bytes()
    with zipfile.ZipFile(f, "w", zipfile.ZIP_DEFLATED) as zf:
        for i in range(10):
            zf.writestr(f"{i}.cif", text)
    with pytest.raises(IngestError, match=r"many.zip declares [\d,]+ decompressed bytes > 5,000 "
                                          r"\(max_decompressed_bytes\)"):
        read_inputs([f], IngestLimits(max_decompressed_bytes=5000))


def test_too_many_members(tmp_path, mp_sample):
    text = (mp_sample / "mp_mp-8.cif").read_bytes()
    f = tmp_path / "many.zip"
    with zipfile.ZipFile(f, "w") as zf:
        for i in range(6):
            zf.writestr(f"{i}.cif", text)
    with pytest.raises(IngestError, match=r"too many archive members in many.zip: 6 > 5 \(max_archive_members\)"):
        read_inputs([f], IngestLimits(max_archive_members=5))
    t = tmp_path / "many.tar"
    with tarfile.open(t, "w") as tf:
        for i in range(6):
            info = tarfile.TarInfo(f"{i}.cif")
            info.size = len(text)
            tf.addfile(info, io.BytesIO(text))
    with pytest.raises(IngestError, match=r"too many archive members in many.tar: more than 5"):
        read_inputs([t], IngestLimits(max_archive_members=5))


def test_upload_too_large(mp_sample):
    with pytest.raises(IngestError, match=r"upload too large: [\d,]+ bytes > 100 \(max_upload_bytes\)"):
        read_inputs([mp_sample / "mp_mp-8.cif"], IngestLimits(max_upload_bytes=100))


def test_too_many_structures(tmp_path, mp_sample):
    f = tmp_path / "multi.cif"
    f.write_text((mp_sample / "mp_mp-8.cif").read_text() * 4)
    assert len(read_inputs([f], IngestLimits(max_structures=4))) == 4
    with pytest.raises(IngestError, match=r"too many structures: more than 3 \(max_structures\)"):
        read_inputs([f], IngestLimits(max_structures=3))


def test_too_many_atoms_is_a_row(mp_sample):
    (item,) = read_inputs([mp_sample / "mp_mp-10078.cif"], IngestLimits(max_atoms_per_structure=4))
    assert item.error == "too many atoms: 6 > max_atoms_per_structure=4"  # P1: exact, caught before parsing


def test_nonfinite_and_degenerate_in_other_formats(tmp_path, mp_sample):
    from pymatgen.core import Structure

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        d = Structure.from_str((mp_sample / "mp_mp-8.cif").read_text(), fmt="cif").as_dict()
    nan_xyz = json.loads(json.dumps(d))
    nan_xyz["sites"][0]["xyz"] = [float("nan"), 0.0, 0.0]
    nan_xyz["sites"][0]["abc"] = [float("nan"), 0.0, 0.0]
    flat = json.loads(json.dumps(d))
    flat["lattice"]["matrix"][2] = [0.0, 0.0, 0.0]
    unknown = json.loads(json.dumps(d))
    unknown["sites"][0]["species"][0]["element"] = "Xx"
    molecule = {"@class": "Molecule", "sites": []}
    f = tmp_path / "bad.json"
    f.write_text(json.dumps([nan_xyz, flat, unknown, molecule, 42]))
    errors = [it.error for it in read_inputs([f])]
    assert errors[0].startswith("non-finite")
    assert errors[1].startswith("degenerate cell")
    assert errors[2].startswith("unknown element")
    assert errors[3].startswith("no periodic cell")
    assert errors[4] == "not a structure: a JSON number"


def test_garbage_everywhere_never_crashes(tmp_path):
    files = {
        "bin.cif": bytes(range(256)) * 4,
        "junk.extxyz": b"garbage\nfoo",
        "POSCAR": b"nonsense\n",
        "broken.json": b"{not json",
        "lines.jsonl": b'{"lattice": 1, "sites": []}\n{oops\n',
        "t.csv": b'structure\n"{bad json"\nhello\n',
        "x.zip": b"not a zip at all",
        "y.tar.gz": b"not gzip",
    }
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    ok = [n for n in files if not n.endswith((".zip", ".gz"))]
    items = read_inputs([tmp_path / n for n in ok])
    assert all(it.structure is None and it.error for it in items)
    assert [it.source for it in items] == ["bin.cif", "junk.extxyz", "POSCAR", "broken.json",
                                           "lines.jsonl:line 1", "lines.jsonl:line 2",
                                           "t.csv:row 1", "t.csv:row 2"]
    with pytest.raises(IngestError, match="x.zip is not a readable zip archive"):
        read_inputs([tmp_path / "x.zip"])
    with pytest.raises(IngestError, match="y.tar.gz: corrupt gz data"):
        read_inputs([tmp_path / "y.tar.gz"])


def test_missing_path_and_empty_upload(tmp_path):
    with pytest.raises(IngestError, match="no such file or folder"):
        read_inputs([tmp_path / "nope.cif"])
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "metadata.csv").write_text("id\n1\n")
    with pytest.raises(IngestError, match="no structures found"):
        read_inputs([tmp_path / "d"])


def test_json_text_after_the_value_and_a_named_record_of_garbage_are_rows(tmp_path, mp_sample):
    """Issue 25: nothing after a JSON value is ignored without a word, and a record that names its
    structure column keeps its row even when the cell is not a structure."""
    from pymatgen.core import Structure

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        d = Structure.from_str((mp_sample / "mp_mp-8.cif").read_text(), fmt="cif").as_dict()
    (tmp_path / "tail.json").write_text(json.dumps({"structures": [d, d]}) + ' {"more": 1}')
    (tmp_path / "rec.json").write_text(json.dumps({"structure": "garbage", "id": 1}))
    rows = [(it.source, it.error) for it in read_inputs([tmp_path / "tail.json", tmp_path / "rec.json"])]
    assert rows[:2] == [("tail.json:item 1", None), ("tail.json:item 2", None)]
    assert rows[2][0] == "tail.json" and rows[2][1].startswith("invalid JSON: extra data after the value")
    assert rows[3] == ("rec.json:structure", "neither CIF text nor pymatgen Structure JSON")
