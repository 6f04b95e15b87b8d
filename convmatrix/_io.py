"""Files written atomically: a temporary file in the target's directory, checked, then renamed.

Used by the command line (``build --out``, ``show --out``/``--frames``) and by
:func:`convmatrix.plotting.save_figure`: a failed write leaves nothing behind and an existing
file untouched.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
from collections.abc import Iterator

__all__ = ["Staging", "staged"]


class Staging:
    """Files written to temporaries next to their targets and moved into place together by :meth:`commit`."""

    def __init__(self) -> None:
        self._files: list[tuple[str, str, str]] = []  # (temporary, target, parameter name)
        self._made: list[str] = []  # directories created for this call

    def file(self, path: str, name: str) -> str:
        """Reserve (create, empty) a temporary file for ``path`` in its directory; returns the temporary's path."""
        target_dir = os.path.dirname(os.path.abspath(path))
        if os.path.isdir(path):
            raise IsADirectoryError(errno.EISDIR, f"{name} is a directory, not a file", path)
        if not os.path.isdir(target_dir):
            raise FileNotFoundError(errno.ENOENT, f"{name}: directory does not exist", target_dir)
        base = os.path.basename(path)
        ext = os.path.splitext(base)[1]
        tmp = os.path.join(target_dir, f".{base}.{os.getpid()}-{secrets.token_hex(4)}.tmp{ext}")
        try:  # O_EXCL: never someone else's file; mode 0o666 minus the umask, as for any new file
            os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
        except OSError as exc:
            raise type(exc)(exc.errno, f"{name}: cannot write in this directory ({exc.strerror})", target_dir) from None
        self._files.append((tmp, path, name))
        return tmp

    def directory(self, path: str, name: str) -> None:
        """Make sure ``path`` is a directory: created (its parent must exist) unless it is one."""
        if os.path.isdir(path):
            return
        if os.path.exists(path):
            raise NotADirectoryError(errno.ENOTDIR, f"{name} is a file, not a directory", path)
        parent = os.path.dirname(os.path.abspath(path))
        if not os.path.isdir(parent):
            raise FileNotFoundError(errno.ENOENT, f"{name}: directory does not exist", parent)
        try:
            os.mkdir(path)
        except OSError as exc:
            raise type(exc)(exc.errno, f"{name}: cannot create the directory ({exc.strerror})", path) from None
        self._made.append(path)

    def commit(self) -> None:
        """Check that every temporary holds data, then move them all into place."""
        for tmp, path, name in self._files:
            if not os.path.isfile(tmp) or os.path.getsize(tmp) == 0:
                raise OSError(errno.EIO, f"{name}: nothing was written", path)
        for tmp, path, _ in self._files:
            os.replace(tmp, path)
        self._files = []
        self._made = []

    def discard(self) -> None:
        """Remove the temporaries (and the directories made) of a call that failed."""
        for tmp, _, _ in self._files:
            with contextlib.suppress(OSError):
                os.remove(tmp)
        for d in reversed(self._made):
            with contextlib.suppress(OSError):
                os.rmdir(d)  # only if still empty
        self._files = []
        self._made = []


@contextlib.contextmanager
def staged() -> Iterator[Staging]:
    """Write every file of a call through a :class:`Staging`: all moved into place, or none."""
    stage = Staging()
    try:
        yield stage
        stage.commit()
    finally:
        stage.discard()


