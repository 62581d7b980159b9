"""How a printed hint spells the ``simlab`` command, so that it runs when pasted into this shell.

``make`` installs ``simlab`` into the project's virtual environment without activating it, so a
bare ``simlab`` in a hint ("Replay one: simlab replay ...") would say "command not found". A hint
therefore says ``simlab`` only when that is the command the shell finds (an activated
environment, or an install on the PATH); otherwise it names the environment's script by its path,
relative to the working directory when it lies inside it (``.venv/bin/simlab``), and failing
that the interpreter that runs this (``/path/to/python -m simlab``).
"""

from __future__ import annotations

import os
import shlex
import shutil
import sys
from pathlib import Path


def simlab_command() -> str:
    """The ``simlab`` command as this shell can run it: ``simlab``, ``.venv/bin/simlab`` or ``PYTHON -m simlab``."""
    script = Path(sys.prefix) / "bin" / "simlab"
    found = shutil.which("simlab")
    if found is not None and script.exists() and os.path.samefile(found, script):
        return "simlab"
    if script.exists():
        try:
            return shlex.quote(str(script.relative_to(Path.cwd())))
        except ValueError:  # outside the working directory
            return shlex.quote(str(script))
    return f"{shlex.quote(sys.executable)} -m simlab"
