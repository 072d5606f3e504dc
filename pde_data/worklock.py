"""An exclusive lock on a work file (`F.h5.partial`) for the whole run that writes it.

The lock is `fcntl.flock` on `WORK.lock` next to the work file, taken without waiting; the file
holds the owner's process id so that a refused run can name it. The kernel releases the lock when
its owner dies (even by SIGKILL), so a stale lock file never blocks a later run. The owner removes
the lock file when it is done; a run that opened the old lock file just before its removal notices
(the path then names another file or none) and opens it again, so two runs never both hold it.
On a file system without `flock` support (some parallel file systems mounted without it) the run
goes on unlocked and says so in one warning line.
"""
from __future__ import annotations

import errno
import fcntl
import os

from common.errors import DatasetError


UNSUPPORTED = (errno.ENOLCK, errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP)


def lock_path(work_path: str) -> str:
    """The lock file of the work file `work_path`."""
    return f"{work_path}.lock"


class WorkLock:
    """`with WorkLock(work_path):` holds the exclusive lock on `work_path` (DatasetError, one line,
    naming the other run's process id when another run holds it)."""

    def __init__(self, work_path: str):
        self.work_path = work_path
        self.path = lock_path(work_path)
        self.fd: int | None = None
        self.warning = ""  # set when the file system cannot lock (the run goes on unlocked)

    def acquire(self) -> None:
        while True:
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            except OSError as error:
                raise DatasetError(f"cannot create {self.path} ({error.strerror})") from None
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as error:
                if error.errno in UNSUPPORTED:
                    self.warning = (f"warning: {self.path}: this file system cannot lock files; "
                                    "make sure no other run writes the same output")
                    break
                owner = _read_pid(fd)
                os.close(fd)
                if error.errno not in (errno.EWOULDBLOCK, errno.EACCES):
                    raise DatasetError(f"cannot lock {self.path} ({error.strerror})") from None
                raise DatasetError(f"another run is writing {self.work_path} "
                                   f"(pid {owner if owner else 'unknown'})") from None
            if _same_file(fd, self.path):
                break
            os.close(fd)  # the previous owner removed this lock file after we opened it
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self.fd = fd

    def release(self) -> None:
        """Remove the lock file and release the lock (the owner only)."""
        if self.fd is None:
            return
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass
        os.close(self.fd)
        self.fd = None

    def __enter__(self) -> "WorkLock":
        self.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self.release()


def _read_pid(fd: int) -> int | None:
    try:
        return int(os.pread(fd, 32, 0).decode().strip() or 0) or None
    except (OSError, ValueError):
        return None


def _same_file(fd: int, path: str) -> bool:
    try:
        held, named = os.fstat(fd), os.stat(path)
    except FileNotFoundError:
        return False
    return (held.st_dev, held.st_ino) == (named.st_dev, named.st_ino)
