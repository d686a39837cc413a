"""Atomic file writes (private): a temporary file in the same folder, flushed, checked, renamed.

A failed write (full disk, an exception, an interrupt) leaves the old file, if any, untouched and
no partial file under the final name; at worst a hidden ``.<name>.*.tmp`` file after a hard kill.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

__all__ = ["atomic_write"]


def _link_new(tmp: Path, final: Path) -> None:
    """Give ``tmp``'s content the name ``final`` unless it exists (atomically where the file
    system has hard links; elsewhere a check then a rename)."""
    try:
        os.link(tmp, final)  # FileExistsError if the final name exists
    except FileExistsError:
        raise
    except OSError:  # no hard links here (some network/FUSE file systems)
        if final.exists():
            raise FileExistsError(f"{final} exists") from None
        os.replace(tmp, final)
        tmp.touch()  # the caller removes it


def atomic_write(
    path: str | os.PathLike[str],
    write: Callable[[BinaryIO], None],
    overwrite: bool = True,
    check: Callable[[Path], None] | None = None,
) -> None:
    """Write ``path`` through ``write(handle)`` so that it appears whole or not at all.

    Args:
        path: Final file name.
        write: Writes the content into the open binary handle.
        overwrite: Replace an existing file (atomically, ``os.replace``); else raise
            ``FileExistsError`` if ``path`` exists when the content is ready (``os.link`` never
            replaces, even when another process creates the file meanwhile).
        check: Optional ``check(temp_path)`` that raises if the written file is not what it should
            be (e.g. re-reads an audio header); runs before the rename.

    Raises:
        Whatever ``write``/``check`` or the file system raise (``OSError`` for a full disk);
        the temporary file is removed first.
    """
    final = Path(path)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{final.name}.", suffix=".tmp", dir=final.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        if check is not None:
            check(tmp)
        if overwrite:
            os.replace(tmp, final)
        else:
            _link_new(tmp, final)
            tmp.unlink()
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
