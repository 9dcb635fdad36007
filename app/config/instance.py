"""Where the checkout is, and the files the service makes for itself under instance/ on first use
(the admin token, the webhook secret key, the development signing key)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent.parent
INSTANCE_DIR = PROJECT_ROOT / "instance"


def stored_text(path: Path) -> str:
    """What `path` holds, stripped; empty if it does not exist."""
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        return ""


def store_once(path: Path, content: str) -> str:
    """Write `content` to `path` unless it holds something already; return what the file holds.

    The file appears whole or not at all (written aside, mode 0600, then linked into place): of
    several processes storing at once, the first wins and all read its content.
    """
    fd, draft = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")  # mode 0600
    with os.fdopen(fd, "w") as f:
        f.write(content)
    try:
        os.link(draft, path)  # fails if another process stored its content first: theirs wins
    except FileExistsError:
        if not stored_text(path):
            os.replace(draft, path)
    finally:
        Path(draft).unlink(missing_ok=True)
    return stored_text(path)
