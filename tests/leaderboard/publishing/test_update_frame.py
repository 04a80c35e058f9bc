"""``rows.update_frame`` (the leaderboard table updated in place of being rebuilt, issue 26 item 2)
gives exactly the table ``rows_to_frame`` builds from all the rows, on rows of every type mix."""

from __future__ import annotations

import random

import numpy as np
import pandas as pd
import pytest

from leaderboard.publishing.frames import (frame_to_parquet, read_rows, records, row_order, rows_to_frame,
                                         update_frame)

VALUES = [None, float("nan"), True, False, 0, 3, -7, 0.5, 2.25, "text", "", {"a": 1}, [1, 2]]


def _row(rng: random.Random, i: int, columns: list[str], kinds: dict[str, list[object]]) -> dict[str, object]:
    row: dict[str, object] = {"submission_id": f"s{i:04d}",
                              "finished_at": rng.choice([None, f"2026-12-0{rng.randint(1, 7)}T00:00:{i % 60:02d}"])}
    for col in rng.sample(columns, rng.randint(0, len(columns))):
        row[col] = rng.choice(kinds[col])
    return row


def _stored(frame: pd.DataFrame) -> pd.DataFrame:
    """A table as the store gives it back (parquet round trip)."""
    stored = read_rows(frame_to_parquet(frame))
    assert stored is not None
    return stored


def _expected(old_rows: list[dict[str, object]], keep: set[str], new_rows: list[dict[str, object]]) -> pd.DataFrame:
    """What the publisher built before: every row as a record, sorted, through rows_to_frame."""
    stored = _stored(rows_to_frame(old_rows))
    kept = [r for r in records(stored) if r["submission_id"] in keep]
    return rows_to_frame(sorted(kept + new_rows, key=row_order))


def test_update_frame_equals_the_full_rebuild() -> None:
    for seed in range(60):
        _check_update(seed)


def _check_update(seed: int) -> None:
    rng = random.Random(seed)
    columns = [f"c{k}" for k in range(8)]
    # per column a pool of values: one type mostly, sometimes a mix (which re-types the column)
    kinds = {c: rng.choice([[True, False, None], [1, 2, None, float("nan")], [0.5, 1.5, None],
                            ["x", "y", None], rng.sample(VALUES, 3)]) for c in columns}
    n_old, n_new = rng.randint(0, 30), rng.randint(0, 4)
    old_rows = [_row(rng, i, columns, kinds) for i in range(n_old)]
    # new rows may bring a value of another type into a column, or a new column
    kinds_new = {c: (rng.sample(VALUES, 2) if rng.random() < 0.3 else v) for c, v in kinds.items()}
    kinds_new["fresh"] = [1.0, None]
    new_rows = [_row(rng, 1000 + i, columns + ["fresh"], kinds_new) for i in range(n_new)]
    keep = {r["submission_id"] for r in old_rows if rng.random() < 0.8}
    expected = _expected(old_rows, keep, new_rows)
    got = update_frame(_stored(rows_to_frame(old_rows)) if old_rows else None, keep, new_rows)
    pd.testing.assert_frame_equal(got, expected, check_exact=True, obj=f"seed {seed}")
    # and what the store gets is the same file
    assert frame_to_parquet(got) == frame_to_parquet(expected), seed


def test_numpy_scalars_of_kept_rows_are_retyped_as_records_gives_them() -> None:
    """A boolean column meeting ints becomes text; a kept True must read "true" (as JSON of
    the Python value), never numpy's "True"."""
    old = _stored(rows_to_frame([{"submission_id": "a", "finished_at": "1", "x": True}]))
    got = update_frame(old, {"a"}, [{"submission_id": "b", "finished_at": "2", "x": 3}])
    assert list(got["x"]) == ["true", "3"]
    assert got["x"].dtype == object
    assert isinstance(np.asarray(got["submission_id"])[0], str)


def test_no_rows_left_is_the_empty_table() -> None:
    old = _stored(rows_to_frame([{"submission_id": "a", "finished_at": "1", "x": 1}]))
    pd.testing.assert_frame_equal(update_frame(old, set(), []), rows_to_frame([]))


def test_typing_a_column_at_once_equals_typing_it_value_by_value() -> None:
    for seed in range(200):
        _check_typing(seed)


def _check_typing(seed: int) -> None:
    from leaderboard.publishing.frames import _typed, _typed_by_value

    rng = random.Random(seed)
    pool = VALUES + [pd.NA, np.nan, np.int64(4), np.float32(1.5), np.bool_(True), np.str_("s"), pd.NaT, 10**30]
    kind = rng.choice([pool, [1, None, np.nan, pd.NA, np.int64(2)], [True, np.bool_(False), None, pd.NA],
                       [0.5, 2, np.float32(1.0), None, np.nan], ["a", np.str_("b"), None, np.nan, pd.NA],
                       [None, np.nan]])
    raw = [rng.choice(kind) for _ in range(rng.randint(0, 12))]
    index = pd.RangeIndex(len(raw))
    try:
        expected = _typed_by_value(raw, index)
    except (OverflowError, TypeError, ValueError) as exc:  # an integer beyond int64: both refuse it
        with pytest.raises(type(exc)):
            _typed(raw, index)
        return
    pd.testing.assert_series_equal(_typed(raw, index), expected, check_exact=True, obj=f"seed {seed}: {raw!r}")


def test_upgrading_whole_columns_equals_upgrading_each_row() -> None:
    """``upgrade_frame`` = ``rows_to_frame`` of ``upgrade_row`` of every record, on tables where
    a union metric (e.g. SUN+MSUN) is missing, present, partly present, or its parts are not
    numbers."""
    for seed in range(80):
        _check_upgrade(seed)


def _check_upgrade(seed: int) -> None:
    from evaluator.summary import ROW_UPGRADES, upgrade_row
    from leaderboard.publishing.frames import upgrade_frame

    rng = random.Random(seed)
    ups = rng.sample(ROW_UPGRADES, 3)
    rows = []
    for i in range(rng.randint(1, 12)):
        row: dict[str, object] = {"submission_id": f"s{i}", "finished_at": str(i)}
        for up in ups:
            for part in up.parts:
                if rng.random() < 0.8:
                    row[part] = rng.choice([1, 2, 0.25, None, float("nan"), True, "3", "x"] if rng.random() < 0.2
                                           else [1, 2, 7] if up.integer else [0.25, 0.5])
            if rng.random() < 0.3:
                row[up.key] = rng.choice([None, 5, 0.75])
        rows.append(row)
    table = _stored(rows_to_frame(rows))
    expected = rows_to_frame([upgrade_row(r) for r in records(table)])
    pd.testing.assert_frame_equal(upgrade_frame(table), expected, check_exact=True, obj=f"seed {seed}")
