"""summary.json as the bytes that are published (``leaderboard.publishing.summary_file``):
the evaluation's bytes are kept byte for byte, the leaderboard block is appended, and the
values are what the bytes read back as."""

from __future__ import annotations

import json

from evaluator.outputs import json_bytes
from leaderboard.publishing.summary_file import LEADERBOARD_BLOCK, SummaryFile

SUMMARY = {"schema_version": 2, "n_submitted": 3, "metrics": {"validity": {"valid_count": 2}},
           "provenance": {"lifecycle": {"lease_s": 60.0}}}
BLOCK = {"submission_id": "x", "attempt": 1, "metadata": {"model_name": "M <b>"}, "rescore_of": None}


def test_the_block_is_appended_to_the_evaluations_bytes():
    data = json_bytes(SUMMARY)  # as the evaluation process serializes it
    published = SummaryFile(data).with_block(LEADERBOARD_BLOCK, BLOCK)
    assert published.data.startswith(data.rstrip()[:-1].rstrip())  # the evaluator's part, unchanged
    assert json.loads(published.data) == {**SUMMARY, LEADERBOARD_BLOCK: BLOCK} == published.values


def test_an_empty_document_a_compact_one_and_an_existing_block():
    assert json.loads(SummaryFile(b"{}").with_block("b", {"k": 1}).data) == {"b": {"k": 1}}
    compact = SummaryFile(b'{"a":[1,2]}\n').with_block("b", {})
    assert json.loads(compact.data) == {"a": [1, 2], "b": {}}
    again = SummaryFile(b'{"b": {"old": true}, "a": 1}').with_block("b", {"new": 1})
    assert json.loads(again.data) == {"b": {"new": 1}, "a": 1} == again.values  # replaced, never duplicated


def test_values_are_parsed_once_from_the_bytes():
    f = SummaryFile.of(SUMMARY)
    assert f.values == SUMMARY and f.values is f.values
