"""A submission's ``summary.json`` as the bytes that are published, and its values.

The evaluation process serializes the summary once (``evaluator.outputs.serialize``); the
worker publishes those bytes. The values are parsed from them only where a value is needed
(the protocol check, the leaderboard row), once. The leaderboard's own block
(``"leaderboard"``: submission id, attempt, worker, metadata) is appended to the document
without serializing the evaluator's part again.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from leaderboard.store import dumps

LEADERBOARD_BLOCK = "leaderboard"


@dataclass(frozen=True)
class SummaryFile:
    """The bytes of one ``summary.json`` (UTF-8 JSON of an object) and, on demand, its values."""

    data: bytes

    @classmethod
    def of(cls, summary: Mapping[str, Any]) -> SummaryFile:
        """The file of a summary held as values (serialized as the store writes documents)."""
        return cls(dumps(dict(summary)))

    @cached_property
    def values(self) -> dict[str, Any]:
        """The summary as JSON data (parsed once); ValueError when it is not a JSON object."""
        out = json.loads(self.data)
        if not isinstance(out, dict):
            raise ValueError(f"summary.json holds a {type(out).__name__}, not an object")
        return out

    def with_block(self, name: str, block: Mapping[str, Any]) -> SummaryFile:
        """This summary with ``block`` as its top-level entry ``name``, appended to the bytes
        (the rest of the document is kept byte for byte; a summary that already has an entry
        ``name`` is serialized again with it replaced)."""
        text = json.dumps(dict(block), indent=2, default=str)
        values = {**self.values, name: json.loads(text)}  # the block as it reads back
        body = self.data.rstrip()
        if name in self.values or not body.endswith(b"}"):
            out = SummaryFile.of(values)
        else:
            head = body[:-1].rstrip()
            sep = b"" if head.endswith(b"{") else b","
            out = SummaryFile(head + sep + b"\n  " + json.dumps(name).encode() + b": "
                              + text.replace("\n", "\n  ").encode() + b"\n}\n")
        out.__dict__["values"] = values  # known: not parsed again
        return out


__all__ = ["LEADERBOARD_BLOCK", "SummaryFile"]
