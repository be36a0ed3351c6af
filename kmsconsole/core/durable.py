"""Writing files that survive a crash: the helpers the key file, audit archives and checkpoints share."""

from __future__ import annotations

import os
from pathlib import Path


def fsync_folder(folder: Path) -> None:
    """Flush `folder`'s own entries to disk: a file renamed into it (or created in it) survives a crash only once
    the folder is synced too, not merely the file."""
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
