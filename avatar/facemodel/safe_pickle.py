"""A restricted unpickler for FLAME model files (no chumpy, no arbitrary code).

FLAME's ``generic_model.pkl`` (2017/2019/2020) and ``flame2023.pkl`` are pickles written
with chumpy and scipy, the older ones by Python 2. A plain ``pickle.load`` needs chumpy
installed and, worse, runs whatever callable the file names. This module reads such
files with an allow-list: every global the pickle names is looked up in
``_ALLOWED`` and anything else raises :class:`UnsafeModelFileError` before it is
imported, let alone called.

What the allow-list holds, and why:

* numpy array reconstruction: ``numpy.core.multiarray._reconstruct`` (and its numpy 2
  spelling ``numpy._core.multiarray``), ``numpy.ndarray``, ``numpy.dtype``,
  ``numpy.core.multiarray.scalar``. Pickles written at protocol 5 name
  ``numpy.core.numeric._frombuffer`` instead; that one is replaced by a stand-in
  that only accepts a byte buffer and an object-free dtype.
* ``chumpy.ch.Ch`` (the array lives in its state under ``'x'``) and
  ``chumpy.reordering.Select`` (``a.ravel()[idxs].reshape(preferred_shape)``, seen
  in MPI's MANO/SMPL-family files), both mapped to stand-ins that only record
  their state. A chumpy ``Ch``'s state also holds a ``set`` (``_dirty_vars``), so
  ``__builtin__.set`` / ``builtins.set`` is allowed.
* ``scipy.sparse`` CSC/CSR matrices (``scipy.sparse.csc.csc_matrix`` as in the
  Python 2 files, ``scipy.sparse._csc.csc_matrix`` as written by scipy >= 1.8, and
  the CSR twins), mapped to stand-ins; the matrix is rebuilt afterwards from
  ``(data, indices, indptr, shape)`` through scipy's validating constructor, never
  through scipy's own unpickling.
* ``_codecs.encode``, which Python 3 writes for ``bytes`` at protocol <= 2 (numpy
  array payloads), replaced by a stand-in that only does latin-1 encoding of text.

The stand-ins are resolved once loading is done: :func:`load_pickle` returns plain
Python containers, numpy arrays and ``scipy.sparse`` matrices, never a stand-in.
All stand-ins are classes whose ``__setstate__`` stores the state in a slot, so a
crafted ``BUILD`` opcode cannot write attributes into this module's objects.

Limits: the allow-list stops code execution, not resource exhaustion; a hostile file
can still ask numpy for a large allocation (that fails with ``MemoryError``, reported
as an unreadable file).
"""

from __future__ import annotations

import io
import os
import pickle
from collections.abc import Callable
from typing import Any

import numpy as np

__all__ = ["UnsafeModelFileError", "load_pickle", "load_npy"]

try:  # numpy >= 2
    from numpy._core.multiarray import _reconstruct, scalar
except ImportError:  # pragma: no cover - numpy 1.x
    from numpy.core.multiarray import _reconstruct, scalar  # type: ignore[no-redef]


class UnsafeModelFileError(ValueError):
    """The pickle names a global that a FLAME model file never contains."""


# ----------------------------------------------------------------------- stand-ins
class _ChumpyCh:
    """Stand-in for ``chumpy.ch.Ch``: keeps the pickled state; the value is ``state['x']``."""

    __slots__ = ("_state",)

    def __init__(self) -> None:
        self._state: Any = None

    def __setstate__(self, state: Any) -> None:
        self._state = state

    def __reduce__(self) -> Any:  # never re-pickle a stand-in under chumpy's name
        raise TypeError("chumpy stand-ins are not picklable")


class _ChumpySelect(_ChumpyCh):
    """Stand-in for ``chumpy.reordering.Select``: ``a.ravel()[idxs].reshape(preferred_shape)``."""

    __slots__ = ()


class _SparseMatrix:
    """Stand-in for a scipy CSC/CSR matrix: keeps the state dict for a validated rebuild."""

    __slots__ = ("_state",)
    format = ""

    def __init__(self) -> None:
        self._state: Any = None

    def __setstate__(self, state: Any) -> None:
        self._state = state

    def __reduce__(self) -> Any:
        raise TypeError("scipy stand-ins are not picklable")


class _CscMatrix(_SparseMatrix):
    __slots__ = ()
    format = "csc"


class _CsrMatrix(_SparseMatrix):
    __slots__ = ()
    format = "csr"


class _Latin1Encode:
    """Stand-in for ``_codecs.encode``: Python 3 pickles ``bytes`` at protocol <= 2 as
    ``_codecs.encode(text, 'latin1')``. Only that exact use is accepted."""

    __slots__ = ()

    def __new__(cls, text: Any, encoding: Any = "utf-8", errors: Any = "strict") -> Any:  # type: ignore[misc]
        if not isinstance(text, str) or encoding not in ("latin1", "latin-1") or errors != "strict":
            raise UnsafeModelFileError(
                f"refused _codecs.encode({type(text).__name__}, {encoding!r}): only latin-1 byte payloads "
                "are expected in a FLAME model file"
            )
        return text.encode("latin-1")


class _FromBuffer:
    """Stand-in for numpy's ``_frombuffer`` (protocol-5 array pickles): plain dtypes only."""

    __slots__ = ()

    def __new__(cls, buffer: Any, dtype: Any, shape: Any, order: Any = "C") -> Any:  # type: ignore[misc]
        if not isinstance(buffer, (bytes, bytearray)) or not isinstance(dtype, np.dtype) or dtype.hasobject:
            raise UnsafeModelFileError("refused numpy _frombuffer with a non-byte buffer or an object dtype")
        if order not in ("C", "F"):
            raise ValueError(f"bad array order {order!r}")
        return np.frombuffer(buffer, dtype=dtype).reshape(shape, order=order).copy(order=order)


class _TorchPlaceholder:
    """Absorbs a pickled torch tensor without decoding it (landmark files written by DECA)."""

    __slots__ = ("_state",)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._state = None  # arguments (storage bytes, sizes) are dropped unread

    def __setstate__(self, state: Any) -> None:
        self._state = None


_NUMPY: dict[tuple[str, str], Any] = {}
for _mod in ("numpy.core.multiarray", "numpy._core.multiarray"):
    _NUMPY[(_mod, "_reconstruct")] = _reconstruct
    _NUMPY[(_mod, "scalar")] = scalar
for _mod in ("numpy.core.numeric", "numpy._core.numeric"):
    _NUMPY[(_mod, "_frombuffer")] = _FromBuffer
_NUMPY[("numpy", "ndarray")] = np.ndarray
_NUMPY[("numpy", "dtype")] = np.dtype

# (module, name) as written in the file -> the object used in its place.
_ALLOWED: dict[tuple[str, str], Any] = {
    **_NUMPY,
    ("chumpy.ch", "Ch"): _ChumpyCh,
    ("chumpy.reordering", "Select"): _ChumpySelect,
    ("scipy.sparse.csc", "csc_matrix"): _CscMatrix,
    ("scipy.sparse._csc", "csc_matrix"): _CscMatrix,
    ("scipy.sparse.csr", "csr_matrix"): _CsrMatrix,
    ("scipy.sparse._csr", "csr_matrix"): _CsrMatrix,
    ("__builtin__", "set"): set,
    ("builtins", "set"): set,
    ("_codecs", "encode"): _Latin1Encode,
}

# Only with ``torch_placeholders=True``: torch tensors pickled inside DECA's
# ``landmark_embedding.npy``. They become None; nothing of torch is imported or called.
_TORCH_PLACEHOLDERS: dict[tuple[str, str], Any] = {
    ("torch._utils", "_rebuild_tensor"): _TorchPlaceholder,
    ("torch._utils", "_rebuild_tensor_v2"): _TorchPlaceholder,
    ("torch.storage", "_load_from_bytes"): _TorchPlaceholder,
    ("torch", "Size"): _TorchPlaceholder,
    ("collections", "OrderedDict"): _TorchPlaceholder,
}


class _RestrictedUnpickler(pickle.Unpickler):
    def __init__(self, file: io.BytesIO, label: str, allowed: dict[tuple[str, str], Any]) -> None:
        super().__init__(file, encoding="latin1")
        self._label = label
        self._allowed = allowed

    def find_class(self, module: str, name: str) -> Any:
        try:
            return self._allowed[(module, name)]
        except (KeyError, TypeError):
            raise UnsafeModelFileError(
                f"{self._label} refers to {module}.{name}, which a FLAME model file never contains: "
                "it is not a FLAME model or it has been tampered with; refusing to load it"
            ) from None

    def persistent_load(self, pid: Any) -> Any:
        raise UnsafeModelFileError(
            f"{self._label} uses a persistent id ({type(pid).__name__}), which a FLAME model file never "
            "contains: it is not a FLAME model or it has been tampered with; refusing to load it"
        )


# ---------------------------------------------------------------------- resolution
def _ch_value(obj: _ChumpyCh, resolve: Callable[[Any], Any]) -> np.ndarray:
    state = getattr(obj, "_state", None)  # unset when the pickle never BUILDs the object
    if not isinstance(state, dict):
        raise ValueError(f"chumpy object with a {type(state).__name__} state; expected a dict")
    if isinstance(obj, _ChumpySelect):
        missing = {"a", "idxs"} - state.keys()
        if missing:
            raise ValueError(f"chumpy Select without {sorted(missing)}")
        source = np.asarray(resolve(state["a"]))
        idxs = np.asarray(resolve(state["idxs"]))
        if idxs.dtype.kind not in "iu":
            raise ValueError(f"chumpy Select with {idxs.dtype} indices")
        value = source.ravel()[idxs.astype(np.int64)]
        if state.get("preferred_shape") is not None:
            value = value.reshape(tuple(int(n) for n in state["preferred_shape"]))
        return value
    if "x" not in state:
        raise ValueError(f"chumpy Ch without an 'x' entry (state keys: {sorted(map(str, state))})")
    value = resolve(state["x"])
    if not isinstance(value, (np.ndarray, int, float)):
        raise ValueError(f"chumpy Ch whose 'x' is a {type(value).__name__}")
    return np.asarray(value)


def _sparse_value(obj: _SparseMatrix, resolve: Callable[[Any], Any]) -> Any:
    import scipy.sparse

    state = getattr(obj, "_state", None)
    if not isinstance(state, dict):
        raise ValueError(f"sparse matrix with a {type(state).__name__} state; expected a dict")
    shape = state.get("_shape", state.get("shape"))
    parts = {k: resolve(state.get(k)) for k in ("data", "indices", "indptr")}
    for key, arr in parts.items():
        if not isinstance(arr, np.ndarray) or arr.ndim != 1 or arr.dtype.hasobject:
            raise ValueError(f"sparse matrix field {key!r} is not a 1-D numeric array")
    if parts["indices"].dtype.kind not in "iu" or parts["indptr"].dtype.kind not in "iu":
        raise ValueError("sparse matrix indices/indptr are not integers")
    if not (isinstance(shape, tuple) and len(shape) == 2 and all(isinstance(n, int) and n >= 0 for n in shape)):
        raise ValueError(f"sparse matrix shape {shape!r} is not two non-negative ints")
    cls = scipy.sparse.csc_matrix if obj.format == "csc" else scipy.sparse.csr_matrix
    matrix = cls((parts["data"], parts["indices"], parts["indptr"]), shape=shape)
    matrix.check_format(full_check=True)
    return matrix


def _resolve(root: Any) -> Any:
    """Replace stand-ins by plain values, walking dicts, lists, tuples and object arrays."""
    done: dict[int, Any] = {}
    active: set[int] = set()

    def resolve(obj: Any) -> Any:
        key = id(obj)
        if key in done:
            return done[key]
        if key in active:
            raise ValueError("the pickle holds a reference cycle, which a FLAME file never does")
        active.add(key)
        if isinstance(obj, _ChumpyCh):
            out: Any = _ch_value(obj, resolve)
        elif isinstance(obj, _SparseMatrix):
            out = _sparse_value(obj, resolve)
        elif isinstance(obj, _TorchPlaceholder):
            out = None
        elif isinstance(obj, dict):
            out = {resolve(k): resolve(v) for k, v in obj.items()}
        elif isinstance(obj, list):
            out = [resolve(v) for v in obj]
        elif isinstance(obj, tuple):
            out = tuple(resolve(v) for v in obj)
        elif isinstance(obj, np.ndarray) and obj.dtype.hasobject:
            out = np.empty(obj.shape, dtype=object)
            for index in np.ndindex(obj.shape):
                out[index] = resolve(obj[index])
        else:
            out = obj
        active.discard(key)
        done[key] = out
        return out

    return resolve(root)


# --------------------------------------------------------------------------- API
def _read(source: str | os.PathLike[str] | bytes | bytearray) -> tuple[bytes, str]:
    if isinstance(source, (bytes, bytearray)):
        return bytes(source), "the given bytes"
    path = os.fspath(source)
    with open(path, "rb") as f:
        return f.read(), repr(path)


def _load(data: bytes, label: str, torch_placeholders: bool) -> object:
    allowed = {**_ALLOWED, **_TORCH_PLACEHOLDERS} if torch_placeholders else _ALLOWED
    try:
        raw = _RestrictedUnpickler(io.BytesIO(data), label, allowed).load()
        return _resolve(raw)
    except UnsafeModelFileError:
        raise
    except Exception as exc:  # any failure of a corrupt or hostile byte stream, reported with its cause
        raise ValueError(f"{label} is not a readable FLAME pickle: {type(exc).__name__}: {exc}") from exc


def load_pickle(
    source: str | os.PathLike[str] | bytes | bytearray,
    *,
    torch_placeholders: bool = False,
) -> object:
    """Read a FLAME-style pickle (Python 2 or 3, chumpy and scipy inside) safely.

    Args:
        source: a path, or the pickle's bytes.
        torch_placeholders: also accept pickled torch tensors (as in DECA's
            ``landmark_embedding.npy``); they come back as None, undecoded.

    Returns:
        The unpickled object with chumpy values as numpy arrays and sparse matrices
        as ``scipy.sparse.csc_matrix`` / ``csr_matrix``.

    Raises:
        UnsafeModelFileError: the pickle names a global outside the allow-list
            (``os.system``, ``builtins.eval``, ...); nothing it names was called.
        ValueError: the bytes are not a readable pickle (truncated, corrupt, or
            holding values of the wrong kind).
        OSError: the file cannot be opened.
    """
    data, label = _read(source)
    return _load(data, label, torch_placeholders)


def load_npy(path: str | os.PathLike[str], *, torch_placeholders: bool = False) -> np.ndarray:
    """Read a ``.npy`` file; an object array's pickled payload goes through :func:`load_pickle`.

    FLAME's ``flame_dynamic_embedding.npy`` and DECA's ``landmark_embedding.npy`` are
    0-d object arrays holding a pickled dict; ``np.load(allow_pickle=True)`` would
    unpickle that without restriction.

    Args:
        path: the ``.npy`` file.
        torch_placeholders: see :func:`load_pickle`.

    Returns:
        The array (for an object array, its items resolved as in :func:`load_pickle`).

    Raises:
        UnsafeModelFileError: the payload names a global outside the allow-list.
        ValueError: not a readable ``.npy`` file.
    """
    from numpy.lib import format as npy_format

    label = repr(os.fspath(path))
    with open(path, "rb") as f:
        try:
            version = npy_format.read_magic(f)
            if version == (1, 0):
                shape, fortran, dtype = npy_format.read_array_header_1_0(f)
            elif version == (2, 0):
                shape, fortran, dtype = npy_format.read_array_header_2_0(f)
            else:
                raise ValueError(f"unsupported .npy version {version}")
        except Exception as exc:
            raise ValueError(f"{label} is not a readable .npy file: {exc}") from exc
        if not dtype.hasobject:
            f.seek(0)
            try:
                return np.load(f, allow_pickle=False)
            except Exception as exc:
                raise ValueError(f"{label} is not a readable .npy file: {exc}") from exc
        payload = f.read()
    array = _load(payload, label, torch_placeholders)
    if not isinstance(array, np.ndarray):
        raise ValueError(f"{label}: the pickled payload is a {type(array).__name__}, not an array")
    return array
