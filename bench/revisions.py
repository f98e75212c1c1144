"""An earlier commit of the pipeline beside this checkout, for benchmarks that print before and after in one run.

``checkout(rev)`` makes a ``git worktree`` of ``rev`` under /tmp (compiled, so its first run is as warm as this
checkout's) and removes it afterwards; ``env_for(root)`` is what makes a subprocess run the code at ``root`` with
this venv: ``PYTHONPATH`` comes before the venv's editable install of this checkout.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


@contextmanager
def checkout(rev: str) -> Iterator[Path]:
    """A worktree of ``rev`` for the duration of the block."""
    tree = Path(tempfile.mkdtemp(prefix="bench-before-")) / "tree"
    subprocess.run(["git", "worktree", "add", "--detach", str(tree), rev], cwd=ROOT, check=True, capture_output=True)
    try:
        subprocess.run([sys.executable, "-m", "compileall", "-q", str(tree)], check=True)
        yield tree
    finally:
        subprocess.run(["git", "worktree", "remove", "--force", str(tree)], cwd=ROOT, capture_output=True)
        shutil.rmtree(tree.parent, ignore_errors=True)


def env_for(root: Path, env: dict[str, str] | None = None) -> dict[str, str]:
    """``env`` (default: this process's) with the code at ``root`` first on the path."""
    return {**(os.environ if env is None else env), "PYTHONPATH": str(root)}
