"""All-or-nothing writes, the one way every output of the project is written.

A folder or file is built under a temporary name beside its destination (`.NAME.tmp-PID-TAG`) and renamed
into place when complete. On any exception, Ctrl-C included (and SIGTERM, which `alpharl` turns into one),
the temporary is removed and the destination is untouched. An existing destination is replaced whole (moved
aside, replaced, then deleted), never a mix of old and new files. Every file of the temporary is flushed to
disk before the rename, and the folder holding the new name after it: otherwise a machine lost right after
the rename can leave the new name pointing at an empty or cut-short file. A process killed outright
(SIGKILL, a node failure) leaves its temporary behind; the next write to the same destination removes it
and says so.
"""

from __future__ import annotations

import errno
import os
import shutil
import sys
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from alpharl_trainer.errors import AlphaRLError

NAME_MAX, PATH_MAX = 255, 4096  # Linux's limits, in bytes
WRITE_ERRORS = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS}
"""OS errors that say the output cannot be written (disk or quota full, a file too large, a read-only
filesystem): a clear error naming the output, never a traceback, and nothing half-written."""


def _temp_prefix(target: Path) -> str:
    """`.NAME.tmp-` beside the destination, NAME cut so that the temporary name stays under NAME_MAX bytes."""
    return f".{os.fsencode(target.name)[:200].decode(errors='ignore')}.tmp-"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


def _remove_stale(target: Path) -> None:
    """Remove temporaries an earlier write to `target` left when it was killed: `.NAME.tmp-PID-TAG` whose
    process is gone. They hold partial outputs only (hundreds of MB for a checkpoint); each is reported."""
    for tmp in target.parent.glob(f"{_temp_prefix(target)}*"):
        pid = tmp.name.rsplit(".tmp-", 1)[1].split("-", 1)[0]
        if pid.isdigit() and not _pid_alive(int(pid)):
            _remove(tmp)
            print(
                f"removed {tmp}: a partial output left by an interrupted run (process {pid})", file=sys.stderr
            )


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def check_limits(target: Path) -> None:
    """A name or path over the OS limits is a clear error (the OS says only "File name too long")."""
    if len(os.fsencode(target.name)) > NAME_MAX:
        raise AlphaRLError(f"output name {target.name[:40]}... is over the {NAME_MAX}-byte file-name limit")
    if len(os.fsencode(str(target.absolute()))) >= PATH_MAX:
        raise AlphaRLError(f"output path {str(target)[:40]}... is over the {PATH_MAX}-byte path limit")


def check_writable_dir(out: str | os.PathLike, *, flag: str = "--out") -> None:
    """Refuse, before the work that fills it, an output folder that cannot be made or written: a file, a path
    inside a file, or under a folder this user may not write (the OS would say so only at the end)."""
    target = Path(out)
    check_limits(target)
    if target.exists() and not target.is_dir():
        raise AlphaRLError(f"{flag} {out} is a file, not a folder")
    existing = next(p for p in [target.absolute(), *target.absolute().parents] if p.exists())
    if not existing.is_dir():
        raise AlphaRLError(f"{flag} {out} lies inside {existing}, which is a file")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise AlphaRLError(f"{flag} {out} cannot be written: {existing} is not writable by this user")


def check_output(
    out: str | os.PathLike,
    inputs: Sequence[str | os.PathLike],
    *,
    flag: str = "--out",
    inside_ok: bool = False,
    cwd_ok: bool = False,
) -> None:
    """Refuse an output folder that is, contains or lies inside an input, or is the working directory: with
    --overwrite, replacing it would delete the inputs (or write the result into one of them). `inside_ok`
    allows an output inside an input (a command that only adds files, such as `eval`'s default
    `<checkpoint>/eval/<target>`); `cwd_ok` allows the working directory (a command that never replaces its
    output whole)."""
    target = Path(out).resolve()
    if not cwd_ok and target == Path.cwd().resolve():
        raise AlphaRLError(f"{flag} {out} is the current directory; choose a new folder")
    for given in inputs:
        source = Path(given).resolve()
        if target == source:
            raise AlphaRLError(f"{flag} {out} is the input {given}; choose a new folder")
        if target in source.parents:
            raise AlphaRLError(f"{flag} {out} contains the input {given}: replacing it would delete it")
        if not inside_ok and source in target.parents:
            raise AlphaRLError(f"{flag} {out} lies inside the input {given}; choose a folder outside it")


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _flush(tmp: Path) -> None:
    """Flush the file `tmp`, or every file and folder under the folder `tmp`, to disk (links are not followed:
    what they point at is not part of the output)."""
    if not tmp.is_dir():
        _fsync(tmp)
        return
    for root, _dirs, files in os.walk(tmp):
        for path in (Path(root) / name for name in files):
            if not path.is_symlink():
                _fsync(path)
        _fsync(Path(root))


@contextmanager
def _atomic(target: str | os.PathLike, make) -> Iterator[Path]:
    target = Path(target)
    check_limits(target)
    tag = f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
    tmp = target.parent / f"{_temp_prefix(target)}{tag}"
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        _remove_stale(target)
        make(tmp)
    except OSError as err:  # an unwritable parent, a file where a folder should be, ...
        where = f" ({err.filename})" if err.filename else ""
        raise AlphaRLError(f"cannot write the output {target}: {err.strerror or err}{where}") from err
    try:
        yield tmp
        _flush(tmp)
        if target.exists() and target.is_dir() and not target.is_symlink():
            old = target.parent / f"{_temp_prefix(target)[:-5]}.old-{tag}"
            os.rename(target, old)
            os.rename(tmp, target)
            _remove(old)
        else:
            os.replace(tmp, target)
        _fsync(target.parent)
    except OSError as err:
        _remove(tmp)
        if err.errno not in WRITE_ERRORS:
            raise
        raise AlphaRLError(f"cannot write the output {target}: {err.strerror}; nothing was written") from err
    except BaseException:
        _remove(tmp)
        raise


def atomic_dir(target: str | os.PathLike) -> Iterator[Path]:
    """`with atomic_dir(folder) as tmp:` fill the empty folder `tmp`; on success it becomes `folder`."""
    return _atomic(target, lambda tmp: tmp.mkdir())


def atomic_file(target: str | os.PathLike) -> Iterator[Path]:
    """`with atomic_file(path) as tmp:` write the file `tmp`; on success it becomes `path`."""
    return _atomic(target, lambda tmp: None)
