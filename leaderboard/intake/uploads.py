"""Uploaded files the app refused are deleted at once (they are not kept on the server).

Only files inside Gradio's upload cache are ever deleted: a path anywhere else (a
test fixture, a server path) is left alone.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from pathlib import Path

log = logging.getLogger(__name__)


def upload_folder() -> Path:
    """Gradio's upload cache (``GRADIO_TEMP_DIR``, default ``<tmp>/gradio``)."""
    from gradio.utils import get_upload_folder

    return Path(get_upload_folder()).resolve()


def discard_refused(paths: Iterable[str | Path]) -> list[Path]:
    """Delete the uploaded files among ``paths`` (those in the upload cache); returns them."""
    root = upload_folder()
    removed = []
    for raw in paths:
        path = Path(raw).resolve()
        if not path.is_file() or not path.is_relative_to(root):
            continue
        try:
            path.unlink()
            removed.append(path)
        except OSError as exc:  # already gone, or not ours to delete: nothing to do
            log.warning("could not delete refused upload %s: %s", path, exc)
    return removed
