"""One writer per output folder: an OS lock (`fcntl.flock`) on `<folder>/.edgessl.lock`, which holds the PID.

`edgessl pretrain` holds its run folder (rank 0 only under torchrun), `export` and `prune` hold `--out`, so two runs
on one folder cannot interleave `metrics.csv` or replace each other's checkpoints: the second is refused with a
one-line error naming the holder's PID. The kernel drops the lock when its process dies (kill -9 included), so a
lock is never stale; the file such a process leaves is taken over by the next run. A run removes the lock file when
it ends (a taker checks that the file it locked is still the one at the path), and removes the folder too when it
created it and left it empty, so a refused start leaves nothing behind. Holding a folder twice in one process is
fine (`prune` holds `--out`, then its recovery run holds it again).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

from edgessl.errors import EdgeSSLError

LOCK_NAME = ".edgessl.lock"
_held: dict[Path, int] = {}  # folders this process holds -> nesting depth


def _make_folder(folder: Path, option: str) -> bool:
    """Create `folder` (and parents) if needed; True if it was created. One-line errors for a file or no access."""
    if folder.is_dir():
        return False
    if folder.exists():
        raise EdgeSSLError(f"{option} '{folder}' is an existing file, not a folder; choose a folder path")
    try:
        folder.mkdir(parents=True)
    except FileExistsError:  # created meanwhile by another process
        return False
    except OSError as exc:
        raise EdgeSSLError(f"{option} '{folder}' cannot be created ({exc.strerror}); choose a writable folder") \
            from None
    return True


def _holder_pid(path: Path) -> str:
    try:
        return path.read_text().strip() or "unknown"
    except OSError:
        return "unknown"


@contextlib.contextmanager
def hold(folder: str | Path, option: str, enabled: bool = True) -> Iterator[Path]:
    """Hold `folder` for this process while the block runs (creating it if needed); `option` names the setting
    that chose it, for errors (e.g. `output_dir`, `--out`). `enabled=False` does nothing: for torchrun ranks other
    than 0, which write into rank 0's folder."""
    folder = Path(folder)
    if not enabled:
        yield folder
        return
    key = folder.resolve()
    if key in _held:
        _held[key] += 1
        try:
            yield folder
        finally:
            _held[key] -= 1
        return
    created = _make_folder(folder, option)
    lock = folder / LOCK_NAME
    fd = _lock(lock, folder, option)
    try:
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        _held[key] = 1
        try:
            yield folder
        finally:
            del _held[key]
            lock.unlink(missing_ok=True)  # still locked: a taker that opened it meanwhile sees it gone and retries
            if created and not any(folder.iterdir()):
                folder.rmdir()
    finally:
        os.close(fd)


def _lock(lock: Path, folder: Path, option: str) -> int:
    """An open, exclusively locked descriptor of `lock`, the file at that path when locked."""
    while True:
        try:
            fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise EdgeSSLError(f"{option} '{folder}' is not writable ({exc.strerror}); choose a writable folder") \
                from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise EdgeSSLError(f"{option} '{folder}' is in use by another edgessl process (PID {_holder_pid(lock)}); "
                               f"wait for it to finish or choose another folder") from None
        try:
            if os.stat(lock).st_ino == os.fstat(fd).st_ino:
                return fd
        except FileNotFoundError:
            pass
        os.close(fd)  # its holder removed it between our open and lock: lock the new one
