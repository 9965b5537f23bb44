"""Where the lab keeps things: cache directory and environment-variable overrides.

The SDK has one configuration mechanism: a YAML centres file plus environment variables.

``EARTHLAB_CENTRES``
    Path of the centres file to use instead of the embedded sample federation.
``EARTHLAB_CACHE_DIR``
    Directory where the embedded sample federation is generated on first use
    (default: ``$XDG_CACHE_HOME/earthlab`` or ``~/.cache/earthlab``).
"""

from __future__ import annotations

import os
from pathlib import Path

CENTRES_ENV = "EARTHLAB_CENTRES"
CACHE_ENV = "EARTHLAB_CACHE_DIR"


def cache_dir() -> Path:
    """Return the lab's cache directory (not created).

    Returns
    -------
    pathlib.Path
        ``$EARTHLAB_CACHE_DIR`` if set, else ``$XDG_CACHE_HOME/earthlab``, else
        ``~/.cache/earthlab``.
    """
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base).expanduser() / "earthlab"
