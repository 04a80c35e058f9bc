"""The results store's dataset card (``README.md``), generated from what it holds.

The YAML header declares the two ``datasets`` configurations, ``leaderboard``
(``results/leaderboard.parquet``: one row per visible submission) and ``structures``
(the per-structure tables of those submissions, listed file by file so a withdrawn
submission's table is never part of it), plus the licence. The body documents every
column: metric columns from the metric catalogue (``evaluator.catalogue``: meaning,
unit, whether higher or lower is better), metadata columns from the submission schema
(``submissions_schema.json``), the rest from the table below. It also names the
protocol(s) the rows were produced under and how to cite. The card is a pure function
of its inputs; ``leaderboard.publishing.dataset`` rewrites it in the commit that changes the
tables.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any
from functools import lru_cache
from pathlib import Path

import pandas as pd
import pyarrow as pa

from evaluator.catalogue import FAMILIES, breakdown_of, family_label, interval_column, summary_column
from evaluator.columns import BASE_COLUMNS
from evaluator.families.sun.metrics import CANDIDATE
from leaderboard.settings import RESULTS_LICENSE

LICENSE_ENV = RESULTS_LICENSE.name
DEFAULT_LICENSE = RESULTS_LICENSE.default
SCHEMA_PATH = Path(__file__).resolve().parents[2] / "submissions_schema.json"
LEADERBOARD_CONFIG, STRUCTURES_CONFIG = "leaderboard", "structures"

# Columns of the leaderboard table that are neither submission metadata nor metrics.
FIXED_COLUMNS: dict[str, tuple[str, str]] = {  # name -> (unit, meaning)
    "submission_id": ("", "Submission id (one per upload; the key shared with the structures config)"),
    "protocol_id": ("", "Id of the evaluation protocol that produced the row (null: unknown)"),
    "protocol_label": ("", "That protocol in words"),
    "protocol_source": ("", "Where the protocol comes from: the summary, derived from its provenance, or unknown"),
    "protocol_record": ("", "The protocol's full record (JSON): every setting a score depends on"),
    "device": ("", "Device the evaluation ran on"),
    "engine": ("", "Relaxation engine"),
    "relax_mode": ("", "How structures were relaxed (batched or serial)"),
    "rescore_of": ("", "For a re-scoring under another protocol: the submission it scores again"),
    "n_structures_declared": ("count", "Number of structures the submitter declared"),
    "submitted_at": ("ISO-8601 UTC", "When the submission was received"),
    "finished_at": ("ISO-8601 UTC", "When its evaluation was published"),
    "attempts": ("count", "Evaluation attempts it took (infrastructure failures are retried)"),
    "n_submitted": ("count", "Structures submitted"),
    "n_parsed": ("count", "Structures that could be read"),
    "n_valid": ("count", "Structures that passed the validity checks"),
    "n_evaluated": ("count", "Structures the metric families evaluated"),
    "schema_version": ("", "Version of the summary format the row was built from"),
    "provenance": ("", "Who computed the row"),
    "evaluator_version": ("", "Version of the evaluator that scored the submission"),
    "families": ("", "Metric families that ran (comma-separated)"),
    "reference": ("", "Reference set novelty and the convex hull are computed against"),
    "mlip": ("", "Machine-learned interatomic potential used for relaxation and energies"),
    "mlip_model": ("", "Checkpoint of that potential"),
    "reference_coverage": ("", "What the reference set covers"),
    "reference_n_structures": ("count", "Structures in the reference set"),
    "reference_max_sites": ("count", "Largest cell (sites) in the reference set"),
    "uncertainty_method": ("", "How the confidence intervals were computed"),
    "uncertainty_n_resamples": ("count", "Resamples of that method"),
    "uncertainty_seed": ("", "Random seed of the resampling"),
    "uncertainty_level": ("fraction", "Confidence level of the intervals"),
}
STRUCTURE_KEYS: dict[str, str] = {
    "submission_id": "Submission id (joins the leaderboard config)",
    "protocol_id": "Id of the evaluation protocol (joins the leaderboard config's protocol_id; null: unknown)",
    **{c.name: c.description for c in BASE_COLUMNS},  # the pipeline's declared columns
    CANDIDATE.name: "JSON page of a counted SUN/MSUN representative (relaxed structure, phase diagram)",
}
REP_UNITS: dict[str, str] = {"count": "count", "frac_submitted": "fraction of submitted (0-1)",
             "frac_valid": "fraction of valid (0-1)"}
BETTER = {1: "higher", -1: "lower", 0: ""}


@lru_cache(maxsize=1)
def _meta_properties() -> dict[str, Any]:
    props: dict[str, Any] = json.loads(SCHEMA_PATH.read_text()).get("properties", {})
    return props


def describe(column: str) -> tuple[str, str, str]:
    """(unit, better, meaning) of a leaderboard column; meaning "" when undocumented."""
    if column in FIXED_COLUMNS:
        unit, meaning = FIXED_COLUMNS[column]
        return unit, "", meaning
    prop = _meta_properties().get(column)
    if prop is not None:
        meaning = prop.get("title", column)
        if prop.get("description"):
            meaning += f": {prop['description']}"
        return "", "", "Submission metadata. " + meaning
    ci = ""
    found = interval_column(column)
    rec = found[0] if found is not None else summary_column(column)
    part = None
    if rec is None:
        rec = breakdown_of(column)
        part = column.removeprefix(rec.name + ".") if rec is not None else None
    if rec is None:
        return "", "", ""
    if found is not None:
        ci = "lower" if found[1] == "lo" else "upper"
    metric = rec.metric
    unit = REP_UNITS[rec.rep] if rec.rep != "value" else metric.unit
    if not unit and rec.fraction_of is not None:  # e.g. valid_frac_parsed
        unit = f"fraction of {rec.fraction_of} (0-1)"
    meaning = f"{metric.label}: {metric.description}".rstrip(": ")
    if part:
        meaning += f" (entry {part!r})"
    if rec.group is not None:  # a group of a family, e.g. stability_unrelaxed
        meaning += f" [{rec.block}]"
    if ci:
        meaning = f"{ci} bound of the confidence interval of {meaning}"
    return unit, BETTER.get(metric.direction, ""), meaning


def _family_of_column(column: str) -> str:
    for fam in FAMILIES:
        if column == fam or column.startswith(fam + "_"):
            return family_label(fam) or fam
    return ""


def _cell(text: object) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _type_name(t: object) -> str:
    return str(t).replace("large_string", "string")


def _yaml_quote(s: str) -> str:
    return json.dumps(s)  # a JSON string is a valid YAML scalar


def render_card(*, leaderboard: pd.DataFrame, structures_files: Sequence[str],
                structures_schema: pa.Schema | None, protocols: Mapping[str | None, int],
                protocol_labels: Mapping[str, str], name: str, leaderboard_path: str,
                license_id: str | None = None) -> str:
    """The dataset card text (see module docstring).

    structures_files: the published per-structure tables (one per visible submission);
    protocols: {protocol id or None: number of submissions}; protocol_labels: {id: label};
    name: how the dataset is addressed (``ORG/NAME`` or a folder).
    """
    license_id = license_id or RESULTS_LICENSE.read()
    lines = ["---", f"license: {license_id}", "pretty_name: Crystal generative-model leaderboard results",
             "tags:", "- materials-science", "- crystal-structure-generation", "- leaderboard",
             "configs:", f"- config_name: {LEADERBOARD_CONFIG}", "  default: true", "  data_files:",
             "  - split: train", f"    path: {leaderboard_path}"]
    if structures_files:
        lines += [f"- config_name: {STRUCTURES_CONFIG}", "  data_files:", "  - split: train", "    path:"]
        lines += [f"    - {_yaml_quote(p)}" for p in structures_files]
    lines += ["---", "", "# Crystal generative-model leaderboard: results", "",
              "Scores of generative models of inorganic crystals, computed by the leaderboard's evaluator "
              "(validity, uniqueness, novelty, stability from a machine-learned interatomic potential and "
              "the energy above the reference convex hull, SUN/MSUN, diversity, distribution distances, "
              "supply risk). Uploaded structures and the submission queue are kept in a separate, private "
              "store; withdrawn submissions are removed from this dataset.", "",
              "```python", "import datasets", "",
              f"board = datasets.load_dataset({_yaml_quote(name)}, {_yaml_quote(LEADERBOARD_CONFIG)}, "
              "split=\"train\")  # one row per submission"]
    if structures_files:
        lines.append(f"structures = datasets.load_dataset({_yaml_quote(name)}, "
                     f"{_yaml_quote(STRUCTURES_CONFIG)}, split=\"train\")  # one row per structure")
    lines += ["```", "",
              f"{len(leaderboard)} submission(s); {len(structures_files)} per-structure table(s). "
              "Each submission's evaluator summary is `results/<submission_id>/summary.json`.", "",
              "## Protocols", "",
              "Every row names the protocol (metric settings, reference, potential) that produced it; "
              "compare rows of the same protocol.", ""]
    if protocols:
        lines += ["| protocol | submissions | description |", "|---|---|---|"]
        for pid, n in sorted(protocols.items(), key=lambda kv: (kv[0] is None, kv[0] or "")):
            label = protocol_labels.get(pid, "") if pid is not None else \
                "unknown (see the provenance columns)"
            lines.append(f"| {_cell(pid if pid is not None else '(none)')} | {n} | {_cell(label)} |")
    else:
        lines.append("No submission is published yet.")
    lines += ["", f"## Config `{LEADERBOARD_CONFIG}`", "",
              "Metric columns are `<family block>.<metric>`; counted metrics come as `_count`, "
              "`_frac_submitted` and `_frac_valid`. Null means not computed (the family did not run, or "
              "the value is undefined for the submission).", "",
              "| column | type | unit | better | meaning |", "|---|---|---|---|---|"]
    arrow = pa.Table.from_pandas(leaderboard, preserve_index=False).schema
    for col in leaderboard.columns:
        unit, better, meaning = describe(str(col))
        lines.append(f"| `{_cell(col)}` | {_type_name(arrow.field(str(col)).type)} | {_cell(unit)} | "
                     f"{better} | {_cell(meaning or '(not in the metric catalogue)')} |")
    if structures_schema is not None and structures_files:
        lines += ["", f"## Config `{STRUCTURES_CONFIG}`", "",
                  "One row per submitted structure, in every published submission (including the ones "
                  "that failed to parse or were invalid, with the reason). A column a submission did not "
                  "produce (its family did not run) is null in its rows.", "",
                  "| column | type | meaning |", "|---|---|---|"]
        for f in structures_schema:
            fam = _family_of_column(f.name)
            meaning = STRUCTURE_KEYS.get(f.name) or (
                f"{fam}: {'ok, failed or skipped' if f.name.endswith('_status') else ''}"
                f"{'why it failed or was skipped' if f.name.endswith('_reason') else ''}".rstrip(": ")
                + ("" if f.name.endswith(("_status", "_reason")) else " (per-structure output)")
                if fam else "per-structure output of the evaluator")
            lines.append(f"| `{_cell(f.name)}` | {_type_name(f.type)} | {_cell(meaning)} |")
    lines += ["", "## Licence", "",
              f"The scores in this dataset are released under `{license_id}`. The reference data they are "
              "computed against (Materials Project, Alexandria, OQMD, LeMat-Bulk) is CC-BY-4.0; each "
              "model's own licence is in its `license` column.", "",
              "## Citation", "",
              "Cite the metric suite (LeMat-GenBench, arXiv:2512.04562), the paper of each model you "
              "compare (`paper_url` column), and this dataset with the revision you loaded:", "",
              "```bibtex", "@misc{crystal_genbench_leaderboard_results,",
              "  title = {Crystal generative-model leaderboard: results},",
              f"  howpublished = {{{name}}},",
              "  note = {Hugging Face dataset; cite the commit revision you used}",
              "}", "```", ""]
    return "\n".join(lines)


__all__ = ["DEFAULT_LICENSE", "LEADERBOARD_CONFIG", "LICENSE_ENV", "STRUCTURES_CONFIG", "describe",
           "render_card"]
