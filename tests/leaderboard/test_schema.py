"""submissions_schema.json: a valid draft 2020-12 schema that accepts good metadata
and rejects bad metadata with messages naming the field."""

import json

import jsonschema
import pytest

from store_helpers import META
from leaderboard.intake.submissions import SCHEMA_PATH, load_schema, validate_meta

SHA = "a" * 64


def full(**changes):
    meta = {**META, "submitter": "alice", "file_sha256": SHA, **changes}
    return {k: v for k, v in meta.items() if v is not None}


def test_schema_is_valid_2020_12_and_form_friendly():
    schema = json.loads(SCHEMA_PATH.read_text())
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    jsonschema.Draft202012Validator.check_schema(schema)
    for name, prop in schema["properties"].items():
        assert prop.get("title") and prop.get("description"), name
    assert set(schema["required"]) <= set(schema["properties"])
    assert "other" in schema["properties"]["training_set"]["enum"]
    assert schema["properties"]["task"]["enum"] == ["unconditional", "conditional"]


@pytest.mark.parametrize("meta", [
    full(),
    full(training_set="other", training_set_other="my own 1M-structure set"),
    full(task="conditional", condition="band gap = 3 eV"),
    full(relaxed_before_submission=True, relaxation_method="MACE-MP-0, FIRE, fmax 0.05"),
    full(organisation=None, paper_url=None, notes=None, n_structures=1000, license="CC-BY-4.0",
         code_url="http://github.com/x/y", checkpoint_url="https://hf.co/x/y"),
])
def test_valid_examples(meta):
    assert validate_meta(meta) == []
    jsonschema.validate(meta, load_schema())


@pytest.mark.parametrize("meta, fragment", [
    (full(model_name=None), "Model name (model_name) is required"),
    (full(model_name=""), "Model name"),
    (full(model_name="  padded "), "Model name"),
    (full(training_set="ImageNet"), "Training set: 'ImageNet' is not one of"),
    (full(training_set="other"), "training_set_other) is required"),
    (full(task="conditional"), "Condition (condition) is required"),
    (full(relaxed_before_submission=True), "Relaxation method (relaxation_method) is required"),
    (full(relaxed_before_submission="yes"), "Relaxed before submission"),
    (full(paper_url="arxiv.org/abs/1"), "Paper URL: must be an http(s) URL"),
    (full(n_structures=0), "Number of structures"),
    (full(file_sha256="xyz"), "File sha256"),
    (full(submitter="bad name!"), "Submitter"),
    (full(favourite_colour="blue"), "unknown field(s)"),
    (full(submitter=None), "Submitter (submitter) is required"),
])
def test_invalid_examples(meta, fragment):
    errors = validate_meta(meta)
    assert errors, meta
    assert any(fragment in e for e in errors), errors
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(meta, load_schema())


def test_incomplete_form_skips_server_fields_and_blank_optionals():
    form = {**META, "organisation": "", "code_url": "  "}
    assert validate_meta(form) != []  # submitter/file_sha256 missing, blanks invalid
    assert validate_meta(form, complete=False) == []
    assert validate_meta({**form, "task": "conditional"}, complete=False) == [
        "Condition (condition) is required"]


def test_not_an_object():
    assert validate_meta(["model"]) == [
        "metadata must be a JSON object of fields (model_name, model_version, ...), not a list"]
