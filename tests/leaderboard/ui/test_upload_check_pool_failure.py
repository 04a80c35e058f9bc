"""The upload check when the server's reading processes fail (evaluator.procpool.PoolFailure):
the upload is neither refused nor discarded, and the message holds no server path."""

from evaluator.procpool import PoolFailure
from leaderboard.ui import submit_tab


def test_reading_processes_that_fail_do_not_refuse_the_upload(tmp_path, monkeypatch):
    upload = tmp_path / "gen.cif"
    upload.write_text("data_x\n")

    def broken(paths, limits=None):
        raise PoolFailure("worker process could not start: OSError: [Errno 12] Cannot allocate memory: "
                          "'/srv/genbench/tmp/pymp-1'")

    monkeypatch.setattr(submit_tab, "inspect_upload", broken)
    text = submit_tab.check_files([str(upload)])
    assert text.startswith("**Not checked:** the server could not read the upload just now")
    assert "not refused" in text and "/srv" not in text and "…/pymp-1" in text
    assert upload.exists()  # refused uploads are deleted; this one is kept
