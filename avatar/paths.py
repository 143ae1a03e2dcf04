"""Where the engine keeps things on disk, and how it writes files safely.

- cache directory: ``$AVATAR_CACHE``, else ``$XDG_CACHE_HOME/avatar``, else ``~/.cache/avatar``.
- model directory (user-supplied face models such as ICT-FaceKit or FLAME):
  ``$AVATAR_MODELS``, else ``$XDG_DATA_HOME/avatar/models``, else ``~/.local/share/avatar/models``.
- shipped assets: the ``avatar.assets`` package (the repository's ``assets/`` folder).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import Iterator


def _umask_mode() -> int:
    """The mode a plain ``open()`` would give a new file (mkstemp makes 0600 files)."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def cache_dir() -> Path:
    """The user's cache directory for compiled models (created on demand)."""
    env = os.environ.get("AVATAR_CACHE")
    if env:
        path = Path(env)
    else:
        base = os.environ.get("XDG_CACHE_HOME") or os.path.join(Path.home(), ".cache")
        path = Path(base) / "avatar"
    path.mkdir(parents=True, exist_ok=True)
    return path


def model_dir() -> Path:
    """The user's directory of face models (not created: it is only searched)."""
    env = os.environ.get("AVATAR_MODELS")
    if env:
        return Path(env)
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(Path.home(), ".local", "share")
    return Path(base) / "avatar" / "models"


def asset_path(name: str) -> Path:
    """Path of a file shipped in ``assets/`` (installed as the ``avatar.assets`` package)."""
    try:
        from importlib.resources import files

        path = Path(str(files("avatar.assets") / name))
        if path.exists():
            return path
    except ModuleNotFoundError:
        pass
    # Source checkout without installation.
    path = Path(__file__).resolve().parent.parent / "assets" / name
    if not path.exists():
        raise FileNotFoundError(
            f"shipped asset {name!r} is missing from the installation; reinstall the package "
            f"(pip install -e .) or regenerate it with the script in tools/"
        )
    return path


def _writable_folder(path: Path) -> Path:
    """The folder a file will be written to; a clear error when it cannot be."""
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise FileNotFoundError(f"cannot write {path}: folder {folder} does not exist; create it first")
    if not os.access(folder, os.W_OK):
        raise PermissionError(f"cannot write {path}: folder {folder} is not writable; choose another output path")
    return folder


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "wb") -> Iterator:
    """Open a temporary file beside ``path``; rename it over ``path`` only on success.

    An existing file is never half overwritten, and a failed write leaves nothing behind.
    Raises a clear error if the folder is missing or not writable.
    """
    path = Path(path)
    folder = _writable_folder(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=folder)
    try:
        with os.fdopen(fd, mode) as handle:
            yield handle
        os.chmod(tmp, _umask_mode())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Like :func:`atomic_write`, but yields a temporary *path* for libraries that open files themselves.

    The temporary name keeps the file's suffix so that writers choosing a format by suffix work.
    """
    path = Path(path)
    folder = _writable_folder(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=f".part{path.suffix}", dir=folder)
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, _umask_mode())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
