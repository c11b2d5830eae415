"""What every stage repeats: connect to or start Ray, atomic writes, a file lock, progress bars.

One implementation of each, so that a fix (a longer Ray start-up window, a permission on written
files) lands everywhere at once. Nothing here imports Ray or torch at module level.
"""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any, Iterable, Iterator

from genaudio.errors import GenaudioError

# ---------------------------------------------------------------------------------------------
# Ray

RAY_START_ATTEMPTS = 3


def connect_ray(address: str | None = None, *, log_to_driver: bool = False, **init_kw) -> bool:
    """Connect to a Ray cluster or start an embedded one; return True if this call started Ray.

    Parameters
    ----------
    address : str, optional
        A cluster to join (``ray://...``, ``HOST:PORT``, ``auto``). Without one, ``RAY_ADDRESS``
        (which the Ray job server sets for a job's driver) is used; without that, or with
        ``"local"``, a new embedded Ray starts, never a ``ray start`` cluster that happens to run
        on this machine.
    log_to_driver : bool
        Forward the workers' stdout/stderr to this process.
    **init_kw
        Passed to ``ray.init`` when starting the embedded Ray (``num_cpus``, ``num_gpus``,
        ``resources``, ...); ``None`` values are left out.

    Nothing happens (False) when Ray is already initialised in this process. The embedded start is
    retried when the raylet misses Ray's fixed 30-s registration window (a saturated machine), and
    on no other error.
    """
    import ray

    if ray.is_initialized():
        return False
    address = address or os.environ.get("RAY_ADDRESS") or None
    if address and address != "local":
        ray.init(address=address, log_to_driver=log_to_driver, configure_logging=False)
        return True
    kw = {k: v for k, v in init_kw.items() if v is not None}
    for attempt in range(RAY_START_ATTEMPTS):
        try:
            ray.init(address="local", include_dashboard=False, log_to_driver=log_to_driver,
                     configure_logging=False, **kw)
            return True
        except Exception as e:  # noqa: BLE001 - Ray raises a bare Exception here
            ray.shutdown()
            if "timed out during startup" not in str(e) or attempt == RAY_START_ATTEMPTS - 1:
                raise GenaudioError(f"could not start the embedded Ray: {e}") from None
            print("warning: Ray did not start in time (machine busy?); retrying", file=sys.stderr)
    raise AssertionError("unreachable")


# ---------------------------------------------------------------------------------------------
# Atomic writes: a reader never sees a half-written file or folder.


def _umask_mode() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """A temporary file name beside ``path`` to write to; renamed onto ``path`` when the block
    ends without error, removed otherwise.

    Example: ``with atomic_path(p) as tmp: torch.save(obj, tmp)``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        os.chmod(tmp, _umask_mode())  # mkstemp makes 0600; a shared store must be readable
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (flushed to disk before the rename)."""
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def atomic_write_json(path: str | Path, obj: Any) -> None:
    """``obj`` as indented JSON (non-JSON values as ``str``), written atomically."""
    atomic_write_bytes(path, (json.dumps(obj, indent=2, sort_keys=False, default=str) + "\n").encode())


def temp_dir_beside(path: str | Path) -> Path:
    """A new empty hidden folder next to ``path`` (same file system, so it can be renamed onto it)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp"))


def replace_dir(tmp: str | Path, out: str | Path) -> None:
    """Move the finished folder ``tmp`` to ``out``, replacing an existing ``out`` with two renames,
    so readers see the old folder or the new one, never a mix."""
    tmp, out = Path(tmp), Path(out)
    if out.exists():
        old = out.with_name(f".{out.name}.old")
        shutil.rmtree(old, ignore_errors=True)
        os.replace(out, old)
        os.replace(tmp, out)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, out)


@contextlib.contextmanager
def atomic_dir(path: str | Path) -> Iterator[Path]:
    """A temporary folder beside ``path`` to fill; it replaces ``path`` (:func:`replace_dir`) when
    the block ends without error and is removed otherwise."""
    tmp = temp_dir_beside(path)
    try:
        yield tmp
        replace_dir(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


# ---------------------------------------------------------------------------------------------
# Lock and progress


def file_lock(path: str | Path, *, timeout: float = -1):
    """An exclusive inter-process lock on ``path`` (created if needed), as a context manager.

    Held by one process (or Ray worker) on this machine at a time; ``timeout`` seconds (-1: wait
    forever) before ``filelock.Timeout``.
    """
    from filelock import FileLock

    Path(path).parent.mkdir(parents=True, exist_ok=True)
    return FileLock(str(path), timeout=timeout)


def progress(iterable: Iterable | None = None, *, enabled: bool = True, **kw):
    """A tqdm progress bar (``total=``, ``desc=``, ``unit=``, ... as tqdm takes them); a disabled
    bar accepts the same calls and prints nothing."""
    from tqdm.auto import tqdm

    kw.setdefault("dynamic_ncols", True)
    if not enabled:  # only then: an enabled bar still honours TQDM_DISABLE=1 from the environment
        kw["disable"] = True
    return tqdm(iterable, **kw)
