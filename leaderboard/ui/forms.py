"""A Gradio form built from ``submissions_schema.json`` (JSON Schema 2020-12).

Each property becomes a component (enum -> dropdown, boolean -> checkbox,
integer -> number, string -> textbox); fields the server fills in
(submitter, file digest) are left out. Simple ``allOf`` if/then rules
("field Y is required when X == v") show field Y only when it applies.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gradio as gr

Schema = dict[str, Any]  # a JSON Schema document
FormComponent = gr.Dropdown | gr.Checkbox | gr.Textbox

SCHEMA_PATH = Path(__file__).resolve().parents[2] / "submissions_schema.json"
SERVER_FIELDS = ("submitter", "file_sha256")


def load_schema(path: Path | None = None) -> Schema:
    schema: Schema = json.loads(Path(path or SCHEMA_PATH).read_text())
    return schema


def conditional_fields(schema: Schema) -> dict[str, tuple[str, object]]:
    """{dependent field: (controlling field, value that makes it required)} from allOf if/then."""
    out: dict[str, tuple[str, object]] = {}
    for rule in schema.get("allOf", []):
        props = rule.get("if", {}).get("properties", {})
        then = rule.get("then", {}).get("required", [])
        if len(props) == 1 and then:
            (ctrl, cond), = props.items()
            if "const" in cond:
                for dep in then:
                    out[dep] = (ctrl, cond["const"])
    return out


@dataclass
class SchemaForm:
    schema: Schema
    names: list[str] = field(default_factory=list)
    components: list[FormComponent] = field(default_factory=list)

    def component(self, name: str) -> FormComponent:
        return self.components[self.names.index(name)]

    def collect(self, *values: object) -> dict[str, Any]:
        """Metadata dict from component values: empty optional fields are omitted."""
        props: dict[str, dict[str, Any]] = self.schema["properties"]
        cond = conditional_fields(self.schema)
        given = dict(zip(self.names, values))
        meta: dict[str, Any] = {}
        for name, value in given.items():
            if name in cond:  # a conditional field only counts when its condition holds
                ctrl, want = cond[name]
                if given.get(ctrl) != want:
                    continue
            kind = props[name].get("type")
            if kind == "boolean":
                meta[name] = bool(value)
            elif kind == "integer":
                text = str(value if value is not None else "").strip()
                if text:
                    try:
                        meta[name] = int(text)
                    except ValueError:
                        meta[name] = text  # schema validation names the field and the problem
            elif isinstance(value, str):
                if value.strip():
                    meta[name] = value.strip()
            elif value is not None:
                meta[name] = value
        return meta


def build_form(schema: Schema | None = None) -> SchemaForm:
    """Create the form's components in the current Blocks context."""
    schema = schema or load_schema()
    form = SchemaForm(schema)
    required = set(schema.get("required", []))
    cond = conditional_fields(schema)
    for name, prop in schema["properties"].items():
        if name in SERVER_FIELDS:
            continue
        title = prop.get("title", name)
        label = f"{title} *" if name in required else title
        info = prop.get("description")
        examples = prop.get("examples") or []
        visible = name not in cond
        kind = prop.get("type")
        comp: FormComponent
        if "enum" in prop:
            comp = gr.Dropdown(prop["enum"], value=None, label=label, info=info, elem_id=f"meta-{name}",
                               visible=visible)
        elif kind == "boolean":
            comp = gr.Checkbox(value=False, label=label, info=info, elem_id=f"meta-{name}", visible=visible)
        elif kind == "integer":  # a textbox: an empty optional number stays absent (gr.Number shows 0)
            lo, hi = prop.get("minimum"), prop.get("maximum")
            hint = f"whole number {lo}–{hi}" if lo is not None and hi is not None else "whole number"
            comp = gr.Textbox(label=label, info=info, placeholder=hint, elem_id=f"meta-{name}", visible=visible)
        else:
            long = prop.get("maxLength", 0) > 500
            comp = gr.Textbox(label=label, info=info, lines=3 if long else 1, max_lines=8 if long else 1,
                              placeholder=", ".join(map(str, examples[:3])) if examples else None,
                              elem_id=f"meta-{name}", visible=visible)
        form.names.append(name)
        form.components.append(comp)
    # Show a conditional field only when its controlling field has the triggering value.
    for dep, (ctrl, want) in cond.items():
        if dep in form.names and ctrl in form.names:
            form.component(ctrl).change(lambda v, want=want: gr.update(visible=v == want),
                                        form.component(ctrl), form.component(dep), api_visibility="private",
                                        show_progress="hidden")
    return form
