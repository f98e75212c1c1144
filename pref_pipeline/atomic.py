"""Files written whole or not at all: a reader (or the run after a crash) never sees half a file.

Each file is written under a temporary name in its folder, then renamed over the old one (a rename
within a folder is atomic on POSIX and Windows). A process killed mid-write leaves the previous file
in place and, at worst, a hidden ``.name.tmp-PID`` file that nothing reads.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path


def replace_atomically(path: Path, write: Callable[[Path], object]) -> Path:
    """Call ``write(tmp)`` to fill a temporary file beside ``path``, then rename it to ``path``."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def write_text_atomically(path: Path, text: str) -> Path:
    return replace_atomically(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))
