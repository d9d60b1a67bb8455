"""One `alpharl train` per output_dir at a time.

A requeued job that starts while the job it replaces still runs, or a job submitted twice, would train into
the same output_dir as the running one and interleave their checkpoints and AlphaRL state. `alpharl train`
holds an exclusive `flock` on `OUTPUT_DIR/alpharl/train.lock` for its whole life, and a second one is
refused with the holder's host and pid. The kernel releases the lock when its holder dies, however it
dies: a lock file left by a killed run never blocks (the host and pid written in it are for the message).

In a multi-process run (`accelerate launch`, every rank with the same output_dir) the run's rank 0 (the
`RANK` of torchrun and accelerate) holds it alone: the other ranks are part of the same run, not a second
one, and the rank of a refused run's processes that does not check stops with the launch when rank 0 exits
(before any collective, so before it writes anything). Only rank 0 taking it also keeps a multi-node run on
a shared file system, where flock locks are seen across hosts, to one holder.
"""

from __future__ import annotations

import fcntl
import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from alpharl_trainer.errors import AlphaRLError

LOCK_FILE = "alpharl/train.lock"


@contextmanager
def run_lock(output_dir: str | os.PathLike) -> Iterator[None]:
    """Hold `output_dir`'s run lock inside the `with` block (rank 0 of the run only); AlphaRLError naming
    the holder when another process holds it."""
    if int(os.environ.get("RANK", "0")) != 0:
        yield
        return
    path = Path(output_dir) / LOCK_FILE
    fd = _open(path)
    try:
        _lock(fd, output_dir)
        os.ftruncate(fd, 0)
        os.write(fd, f"host {socket.gethostname()}, pid {os.getpid()}\n".encode())
        yield
    finally:
        os.close(fd)  # releases the lock; the file stays (removing it would race with the next holder)


def _open(path: Path) -> int:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        return os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as err:
        raise AlphaRLError(f"cannot create the run lock {path}: {err.strerror or err}") from None


def _lock(fd: int, output_dir: str | os.PathLike) -> None:
    """Take the lock of the open lock file `fd`, or refuse with what its holder wrote in it."""
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 200, 0).decode(errors="replace").strip() or "host and pid not yet written"
        raise AlphaRLError(
            f"{output_dir} is in use by another `alpharl train` ({holder}); wait for it to end, stop it, or "
            "choose another output_dir"
        ) from None
