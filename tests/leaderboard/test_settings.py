"""leaderboard.settings: the one place the leaderboard reads GENBENCH_* variables."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from leaderboard import settings
from leaderboard.settings import EVALUATOR_VARIABLES, VARIABLES, SettingError

ROOT = Path(__file__).resolve().parents[2]


def test_every_variable_is_named_once_and_says_what_it_sets():
    names = [v.name for v in VARIABLES]
    assert len(names) == len(set(names)) and all(n.startswith("GENBENCH_") for n in names)
    assert all(v.meaning for v in VARIABLES)
    assert not set(names) & set(EVALUATOR_VARIABLES)


def test_a_bad_value_names_the_variable_and_display_code_keeps_the_default(caplog):
    env = {"GENBENCH_STALL_TIMEOUT": "ten minutes"}
    with pytest.raises(SettingError, match=r"GENBENCH_STALL_TIMEOUT='ten minutes': expected a number of seconds"):
        settings.STALL_TIMEOUT.read(env)
    with pytest.raises(SettingError, match="positive"):
        settings.STALL_TIMEOUT.read({"GENBENCH_STALL_TIMEOUT": "-5"})
    assert settings.STALL_TIMEOUT.read_or_default(env) == 600.0
    assert settings.STALL_TIMEOUT.read({"GENBENCH_STALL_TIMEOUT": " 120 "}) == 120.0
    assert settings.STALL_TIMEOUT.read({"GENBENCH_STALL_TIMEOUT": ""}) == 600.0  # empty: the default
    assert settings.RATE_LIMIT.read({"GENBENCH_RATE_LIMIT": "0"}) == 0  # 0 = unlimited, not unset
    with pytest.raises(SettingError, match="GENBENCH_RATE_LIMIT"):
        settings.check({"GENBENCH_RATE_LIMIT": "many"})


def test_the_worker_refuses_a_bad_setting_at_start(tmp_path, monkeypatch, capsys):
    from leaderboard.worker import CONFIG_ERROR, main

    monkeypatch.setenv("GENBENCH_JOB_BUDGET", "a day")
    assert main(["--store", str(tmp_path / "s"), "--families", "validity", "--once"]) == CONFIG_ERROR
    assert "GENBENCH_JOB_BUDGET='a day'" in capsys.readouterr().err


def _reads_environment(call: ast.Call) -> str | None:
    """The GENBENCH_* name a call such as ``os.environ.get("GENBENCH_X")`` / ``os.getenv(...)`` reads."""
    f = call.func
    name = f.attr if isinstance(f, ast.Attribute) else f.id if isinstance(f, ast.Name) else ""
    if name in ("get", "getenv", "setdefault", "pop") and call.args:
        arg = call.args[0]
        if isinstance(arg, ast.Constant) and isinstance(arg.value, str) and arg.value.startswith("GENBENCH_"):
            return arg.value
    return None


def test_no_leaderboard_module_but_settings_reads_a_genbench_variable():
    found = []
    for path in sorted((ROOT / "leaderboard").rglob("*.py")):
        if path.name == "settings.py" and path.parent.name == "leaderboard":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and (name := _reads_environment(node)):
                found.append(f"{path.relative_to(ROOT)}: {name}")
            if (isinstance(node, ast.Subscript) and isinstance(node.slice, ast.Constant)
                    and str(node.slice.value).startswith("GENBENCH_")):
                found.append(f"{path.relative_to(ROOT)}: {node.slice.value}")
    assert found == []


def test_every_variable_the_readme_names_is_read_somewhere():
    """The README's GENBENCH_* names are the leaderboard's settings or the evaluator's own
    (read in evaluator/, e.g. GENBENCH_CACHE_DIR); none is left over from an old version."""
    named = set(re.findall(r"GENBENCH_[A-Z_]*[A-Z]", (ROOT / "README.md").read_text()))
    evaluator_source = "\n".join(p.read_text() for p in (ROOT / "evaluator").rglob("*.py"))
    known = {v.name for v in VARIABLES} | set(EVALUATOR_VARIABLES)
    unknown = sorted(n for n in named if n not in known and n not in evaluator_source)
    assert unknown == []
    assert {"GENBENCH_STORE", "GENBENCH_STALL_TIMEOUT", "GENBENCH_LOCAL_USER"} <= named
