"""One writer per output folder: the lock a training run holds on its `output_dir` while it writes there.

`llada-train` takes the lock before it looks into the folder and lets it go when the run ends, by an exception too
([`output_dir_lock`]; under DDP the main process alone holds it). A second run pointed at the same folder is refused
with the holder's pid and host, and `llada-push` refuses a folder that a live run holds ([`check_not_being_written`]).

The lock file, `_llada-train.lock` in the folder, says who holds it (`{"pid", "host", "started"}`); the lock itself
is an advisory `flock` on that file, which the kernel drops when the holder ends, however it ends. A file left by a
killed run is therefore a stale lock: the next run takes it over with a warning naming the process that left it.
Where `fcntl` is missing (Windows) the pid decides: a lock whose pid no longer runs on this host is stale.

The name starts with `_` so that the Trainer's pushes to the Hub (`ignore_patterns=["_*", ...]`) never upload it.
"""

import json
import logging
import os
import socket
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Optional

from .checkpoints import check_writable

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None

logger = logging.getLogger(__name__)

LOCK_NAME = "_llada-train.lock"


class OutputDirLockedError(ValueError):
    """Another live process holds the folder's lock (a `ValueError`: the command line reports it in one line)."""


def describe(holder: dict) -> str:
    """`pid 123 on host, since 2026-12-07 16:00:00 UTC` from a lock file's contents."""
    return (
        f"pid {holder.get('pid', '?')} on {holder.get('host', 'an unknown host')}, since "
        f"{holder.get('started', 'an unknown time')}"
    )


def _read(path: Path) -> dict:
    """The lock file's contents; `{}` when it is empty, unreadable or not ours."""
    try:
        holder = json.loads(path.read_text(encoding="utf-8") or "{}")
    except (OSError, ValueError):
        return {}
    return holder if isinstance(holder, dict) else {}


def _pid_runs(holder: dict) -> bool:
    """Without `flock`: whether the holder's process still runs (a lock of another host is taken as live)."""
    if holder.get("host") != socket.gethostname():
        return True
    try:
        os.kill(int(holder["pid"]), 0)
    except (KeyError, TypeError, ValueError, ProcessLookupError):
        return False
    except PermissionError:  # someone else's process: it runs
        return True
    return True


class OutputDirLock:
    r"""
    The lock of one output folder (see the module docstring); a context manager.

    Args:
        folder (`str` or `os.PathLike`): the output folder; created when missing (and removed again at release if
            nothing else was written into it).
        option (`str`, *optional*, defaults to `"--output_dir"`): how errors and warnings name the folder.
    """

    def __init__(self, folder, option: str = "--output_dir"):
        self.folder, self.option = Path(folder), option
        self.path = self.folder / LOCK_NAME
        self.fd: Optional[int] = None
        self.created_folder = False

    def acquire(self) -> "OutputDirLock":
        """Takes the lock (a stale one with a warning); raises `OutputDirLockedError` when a live process holds it."""
        self.created_folder = not self.folder.exists()
        self.folder.mkdir(parents=True, exist_ok=True)
        for _ in range(5):  # another process may remove the file between our open and our lock: open it again
            fd = self._open_locked()
            if fd is not None:
                break
        else:
            raise OutputDirLockedError(
                f"{self.option} {str(self.folder)!r}: its lock file {LOCK_NAME} keeps changing "
                "hands; another run is starting there."
            )
        previous = _read(self.path)
        if previous:
            logger.warning(
                "%s %s: taking over a stale lock (%s): that run is no longer running.",
                self.option,
                self.folder,
                describe(previous),
            )
        mine = dict(
            pid=os.getpid(), host=socket.gethostname(), started=time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
        )
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(mine) + "\n").encode("utf-8"), 0)
        self.fd = fd
        return self

    def _open_locked(self) -> Optional[int]:
        """The lock file's descriptor, locked by us; None when the file was replaced meanwhile (try again)."""
        if fcntl is None:
            return self._create_without_flock()
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise self.locked_error(_read(self.path)) from None
        try:
            same_file = os.fstat(fd).st_ino == os.stat(self.path).st_ino
        except FileNotFoundError:  # the holder released it (and removed the file) between our open and our lock
            same_file = False
        if not same_file:
            os.close(fd)
            return None
        return fd

    def _create_without_flock(self) -> Optional[int]:
        try:
            return os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            holder = _read(self.path)
            if _pid_runs(holder):
                raise self.locked_error(holder) from None
            os.replace(self.path, self.path.with_name(f"{LOCK_NAME}.stale-{os.getpid()}"))  # one taker wins
            logger.warning(
                "%s %s: removed a stale lock (%s): that run is no longer running.",
                self.option,
                self.folder,
                describe(holder),
            )
            os.unlink(self.path.with_name(f"{LOCK_NAME}.stale-{os.getpid()}"))
            return None

    def locked_error(self, holder: dict) -> OutputDirLockedError:
        return OutputDirLockedError(
            f"{self.option} {str(self.folder)!r} is being written by another training run ({describe(holder)}); two "
            f"runs in one folder would mix their checkpoints. Wait for it to end, or pass another {self.option}."
        )

    def release(self) -> None:
        """Lets the lock go and removes the file (and the folder, if the lock created it and it is still empty)."""
        if self.fd is None:
            return
        try:
            if os.fstat(self.fd).st_ino == os.stat(self.path).st_ino:
                os.unlink(self.path)  # before unlocking: a waiter that opened this file sees it gone and reopens
        except FileNotFoundError:
            pass
        finally:
            if fcntl is not None:
                fcntl.flock(self.fd, fcntl.LOCK_UN)
            os.close(self.fd)
            self.fd = None
        if self.created_folder:
            try:
                self.folder.rmdir()
            except OSError:  # the run wrote something: the folder stays
                pass

    def __enter__(self):
        return self.acquire()

    def __exit__(self, *exc_info):
        self.release()


def live_holder(folder) -> Optional[dict]:
    """Who holds `folder`'s lock (`{"pid", "host", "started"}`, possibly `{}` when unreadable), or None when no live
    process does (no lock file, or a stale one)."""
    path = Path(folder) / LOCK_NAME
    if not path.is_file():
        return None
    if fcntl is None:
        holder = _read(path)
        return holder if _pid_runs(holder) else None
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return _read(path)
    finally:
        os.close(fd)  # also drops the shared lock, if we got it
    return None


def check_not_being_written(model_dir) -> None:
    """Raises `OutputDirLockedError` when a live training run holds `model_dir`'s lock, or, for a `checkpoint-N`
    folder, that of the run folder around it (its checkpoints may be rotated away meanwhile)."""
    folder = Path(model_dir)
    for candidate in (folder, folder.parent) if folder.name.startswith("checkpoint-") else (folder,):
        holder = live_holder(candidate)
        if holder is not None:
            raise OutputDirLockedError(
                f"`model_dir` {str(model_dir)!r} is still being written by a training run ({describe(holder)}, "
                f"lock file {str(candidate / LOCK_NAME)!r}); push it once that run has ended."
            )


@contextmanager
def output_dir_lock(training_args):
    """Holds `training_args.output_dir`'s lock for the body on the main process (`process_index` 0: the one that
    writes the shared files); the other processes of a distributed run take none."""
    if getattr(training_args, "process_index", 0) != 0:
        yield None
        return
    check_writable(training_args.output_dir)  # its own clear error before the lock tries to create anything
    with OutputDirLock(training_args.output_dir) as lock:
        yield lock


__all__ = [
    "LOCK_NAME",
    "OutputDirLock",
    "OutputDirLockedError",
    "check_not_being_written",
    "live_holder",
    "output_dir_lock",
]
