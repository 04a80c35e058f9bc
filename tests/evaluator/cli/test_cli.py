"""``python -m evaluator score``: files written, summary schema as documented in
README ('Output: summary.json'), one row per input, clear refusal of bad input."""

import json
import shutil
import subprocess
import sys

import pandas as pd
import pytest
from repo_paths import BAD_INPUTS, REPO, SUPPORT

SUMMARY_KEYS = {"schema_version", "protocol", "execution", "n_submitted", "n_parsed", "n_valid", "n_evaluated",
                "uncertainty", "metrics", "missing", "failures", "provenance", "timings_s"}
PROVENANCE_KEYS = {"evaluator_version", "created_at", "families", "config", "options", "reference",
                   "data_files", "data_dir", "family", "uncertainty", "python", "platform"}


def score(*args):
    return subprocess.run([sys.executable, "-m", "evaluator", "score", *map(str, args)],
                          capture_output=True, text=True, timeout=300)


def test_score_writes_documented_summary_and_full_table(mp_sample, tmp_path):
    upload = tmp_path / "upload"
    upload.mkdir()
    cifs = sorted(mp_sample.glob("*.cif"))[:3]
    for cif in cifs:
        shutil.copy(cif, upload)
    (upload / "broken.cif").write_text("data_x\n_cell_length_a 3\n")
    out = tmp_path / "out"
    proc = score(upload, "--out", out, "--families", "novelty,hhi")
    assert proc.returncode == 0, proc.stderr
    assert "submitted 4" in proc.stdout and "[hhi]" in proc.stdout

    summary = json.loads((out / "summary.json").read_text())
    assert set(summary) == SUMMARY_KEYS
    assert set(summary["provenance"]) == PROVENANCE_KEYS
    assert summary["provenance"]["families"] == ["validity", "novelty", "hhi"]
    assert summary["provenance"]["reference"]["id"] == "mp20"
    assert len(summary["provenance"]["reference"]["content_hash"]) == 64
    assert "reference/mp20/mp20_bawl_fingerprints.txt.gz" in summary["provenance"]["data_files"]
    assert summary["n_submitted"] == 4 and summary["n_parsed"] == 3
    assert summary["n_evaluated"] is None and summary["missing"]["summary"]["n_evaluated"]
    for family in ("validity", "novelty", "hhi"):
        assert family in summary["metrics"] and family in summary["timings_s"]
    v = summary["metrics"]["validity"]
    assert v["valid_frac_submitted"] == v["valid_count"] / 4
    assert sum(summary["failures"]["parse"].values()) == 1

    table = pd.read_parquet(out / "structures.parquet")
    assert list(table["index"]) == [0, 1, 2, 3]
    assert table["source"].str.endswith(tuple(c.name for c in cifs) + ("broken.cif",)).all()
    broken = table[~table["parse_ok"]]
    assert len(broken) == 1 and broken["parse_reason"].iloc[0]
    assert (broken["hhi_status"] == "skipped").all() and (broken["novelty_reason"] == "parse failed").all()
    assert table.loc[table["validity_valid"] == True, "hhi_status"].eq("ok").all()  # noqa: E712


def test_score_refuses_unusable_input_with_exit_code_2(tmp_path):
    pkl = tmp_path / "structures.pkl"
    pkl.write_bytes(b"\x80\x04K\x01.")
    proc = score(pkl, "--out", tmp_path / "out")
    assert proc.returncode == 2
    assert proc.stderr.startswith("error:") and "pickle" in proc.stderr.lower()
    assert "Traceback" not in proc.stderr
    proc = score(tmp_path / "missing.cif", "--out", tmp_path / "out")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr


def test_upload_in_which_nothing_parses_is_refused_with_the_reasons(tmp_path):
    bad = BAD_INPUTS
    proc = score(bad / "garbage.cif", bad / "empty.cif", bad / "unknown_element.cif",
                 "--out", tmp_path / "out", "--families", "validity")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "none of the 3 structures in the upload could be read" in proc.stderr
    assert "empty file (1×)" in proc.stderr and "not a CIF" in proc.stderr
    assert not (tmp_path / "out" / "summary.json").exists()


def test_unknown_family_is_refused(tmp_path, mp_sample):
    proc = score(next(mp_sample.glob("*.cif")), "--out", tmp_path / "out", "--families", "validty")
    assert proc.returncode == 2 and "unknown families" in proc.stderr


def test_unwritable_output_folder_is_refused_before_evaluating(tmp_path, mp_sample):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    proc = score(next(mp_sample.glob("*.cif")), "--out", blocker / "out", "--families", "validity")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.startswith("error: cannot write to the output folder")


def test_misspelled_option_is_refused_before_any_work(tmp_path, mp_sample):
    out = tmp_path / "out"
    proc = score(next(mp_sample.glob("*.cif")), "--out", out, "--option", "novelty.cheap_frist=false")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.startswith("error:") and "cheap_frist" in proc.stderr
    assert not out.exists()  # refused before the output folder was even made
    proc = score(next(mp_sample.glob("*.cif")), "--out", out, "--option", "cheap_first=false")
    assert proc.returncode == 2 and "FAMILY.NAME=VALUE" in proc.stderr and "Traceback" not in proc.stderr


def test_options_from_the_environment_are_checked_too(tmp_path, mp_sample, monkeypatch):
    from evaluator.cli import main

    monkeypatch.setenv("GENBENCH_OPTIONS", '{"novelty": {"cheap_frist": false}}')
    assert main(["score", str(next(mp_sample.glob("*.cif"))), "--out", str(tmp_path / "out")]) == 2
    monkeypatch.setenv("GENBENCH_OPTIONS", "not json")
    assert main(["score", str(next(mp_sample.glob("*.cif"))), "--out", str(tmp_path / "out")]) == 2


def test_every_command_is_a_subcommand_of_one_cli(capsys):
    from evaluator.cli import build_parser

    parser = build_parser()
    with pytest.raises(SystemExit):
        parser.parse_args(["--help"])
    usage = capsys.readouterr().out
    for command in ("score", "reference", "fd-reference", "lemat-hull", "mlip-check"):
        assert command in usage
    args = parser.parse_args(["lemat-hull", "--out", "hull.parquet"])
    assert (args.split, args.threshold) == ("mace_mp", 0.001)
    with pytest.raises(SystemExit):
        parser.parse_args(["lemat-hull", "--split", "mace_mq", "--out", "hull.parquet"])


def _score_from_stdin(mp_sample, tmp_path, n: int, patch: str = ""):
    """``python - < script.py``: a script read from standard input runs the score command
    in its own process (``patch``: lines run before it, e.g. to break the worker processes)."""
    upload = tmp_path / "upload"
    upload.mkdir()
    for cif in sorted(mp_sample.glob("*.cif"))[:n]:
        shutil.copy(cif, upload)
    out = tmp_path / "out"
    script = "\n".join([
        "import sys",
        f"sys.path[:0] = [{str(REPO)!r}, {str(SUPPORT)!r}]",
        "import procpool_helpers",
        "import evaluator.identity.fingerprint as F",
        patch,
        "from evaluator.cli import main",
        f"sys.exit(main(['score', {str(upload)!r}, '--out', {str(out)!r}, '--families', 'novelty',"
        "            '--option', 'novelty.identity_processes=2']))",
    ])
    proc = subprocess.run([sys.executable, "-"], input=script, capture_output=True, text=True,
                          timeout=600, cwd=tmp_path)
    return proc, out


def test_score_driven_from_standard_input_fingerprints_every_structure(mp_sample, tmp_path):
    """Forkserver workers used to die at start when __main__ was "<stdin>", and every
    structure was published as "fingerprint failed" with exit status 0."""
    proc, out = _score_from_stdin(mp_sample, tmp_path, 12)
    assert proc.returncode == 0, proc.stderr[-3000:]
    table = pd.read_parquet(out / "structures.parquet")
    assert len(table) == 12 and table["validity_valid"].all()
    assert not table["novelty_reason"].fillna("").str.contains("fingerprint failed|timed out").any()
    assert table["novelty_status"].eq("ok").all() and table["novelty_fingerprint"].notna().sum() >= 3


@pytest.mark.parametrize("patch, cause", [
    ("F.warm_up = procpool_helpers.exit_at_start", "could not start"),
    ("F.safe_fingerprint_pair = procpool_helpers.kill_own_worker", "every worker process died"),
], ids=["workers-cannot-start", "workers-killed-whatever-they-run"])
def test_workers_failing_for_the_machine_fail_the_command_not_the_structures(mp_sample, tmp_path, patch, cause):
    """No scorecard is written from rows that the machine's failure would have spoiled:
    exit status 3 and a clear message instead."""
    proc, out = _score_from_stdin(mp_sample, tmp_path, 6, patch)
    assert proc.returncode == 3, proc.stderr[-3000:]
    assert "error: infrastructure failure, no scorecard written: " in proc.stderr and cause in proc.stderr
    assert not (out / "summary.json").exists() and not (out / "structures.parquet").exists()
