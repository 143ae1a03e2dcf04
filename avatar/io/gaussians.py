"""3D Gaussian splat files: the 3DGS PLY layout and glTF 2.0 with ``KHR_gaussian_splatting``.

In memory (:class:`Gaussians`) the values are *activated*, as a renderer uses them: linear
scales in metres, opacities in 0..1, wxyz quaternions (not necessarily unit length), and
real spherical-harmonic coefficients ``sh [N, K, 3]`` in the convention of 3DGS and gsplat
(coefficient ``k = l*l + l + m`` for degree ``l``, order ``m = -l..l``; colour from the DC
term alone is ``0.5 + SH_C0 * sh[:, 0]``). Each file format stores them its own way.

**PLY** (the layout of the original 3DGS ``GaussianModel.save_ply``, read by SuperSplat,
the antimatter15 splat viewer and most tools): binary little endian, one ``vertex``
element of float properties, in this order::

    x y z nx ny nz f_dc_0 f_dc_1 f_dc_2 f_rest_0 ... f_rest_{3(K-1)-1}
    opacity scale_0 scale_1 scale_2 rot_0 rot_1 rot_2 rot_3

``f_rest`` is channel-major: all K-1 higher coefficients of red, then green, then blue
(3DGS's ``features_rest [N, K-1, 3]`` transposed to ``[N, 3, K-1]`` and flattened).
``opacity`` is stored as a logit, ``scale_*`` as natural logarithms, ``rot_*`` as the
quaternion w, x, y, z as given (not normalized), normals as zeros. Opacities of exactly
0 or 1 and zero scales have no finite logit/log: they are clamped to the nearest float32
with one (opacity 1 - 2^-24, and 2^-126 for opacity 0 and for a zero scale). The reader
takes the properties by name (any order; ``nx ny nz`` and other extra properties are
ignored), ascii and big-endian files too, and infers the SH degree from the number of
``f_rest_*`` properties (0, 9, 24, 45 for degrees 0..3).

**glTF 2.0** (``.glb``; ``.gltf`` with the buffer embedded as a base64 ``data:`` URI) with
``KHR_gaussian_splatting``. Spec text followed: the extension's README
(``extensions/2.0/Khronos/KHR_gaussian_splatting/README.md``) with status "Release
Candidate", copyright 2026, the text on KhronosGroup/glTF main that exporters were fixed
against in June 2026 (playcanvas/splat-transform #267). Earlier versions differ: the
"Review Draft" (copyright 2015-2025) stored SCALE as logarithms and said less about
quaternions; the first drafts used COLOR_0 with ``_ROTATION``/``_SCALE``. One mesh with one
primitive, ``mode`` 0 (POINTS), the extension object
``{"kernel": "ellipse", "colorSpace": "srgb_rec709_display"}`` on the primitive (projection
and sorting method left at their defaults, ``perspective``/``cameraDistance``), the
extension listed in ``extensionsUsed`` (not ``extensionsRequired``: a viewer without it
shows a point cloud). Attributes, all float, one 4-byte aligned bufferView each:

- ``POSITION`` VEC3 with min/max;
- ``KHR_gaussian_splatting:ROTATION`` VEC4 unit quaternion in glTF order **xyzw**: the
  writer normalizes ``quats`` (the spec requires unit length), so a round trip gives
  ``quats / |quats|``, reordered back to wxyz;
- ``KHR_gaussian_splatting:SCALE`` VEC3 **linear** (the Release Candidate: "Scale values
  are linear and MUST NOT be negative"; the Review Draft stored log scales);
- ``KHR_gaussian_splatting:OPACITY`` SCALAR, linear 0..1 (after the sigmoid);
- ``KHR_gaussian_splatting:SH_DEGREE_l_COEF_n`` VEC3 (r, g, b) for **every** degree
  ``l <= sh_degree`` and ``n = 0..2l`` (n = m + l, lowest order first, as the spec
  packs them), i.e. ``sh[:, l*l + n]``; the values are the raw coefficients, no bias;
- ``COLOR_0`` VEC4, the spec's optional point-cloud fallback: RGB = the DC colour
  ``clamp(0.5 + SH_C0 * sh_dc, 0, 1)`` decoded from sRGB to linear, A = opacity. The
  reader ignores it.

Khronos glTF-Validator 2.0.0-dev.3.10 (the latest release) reports the extension's
``KHR_gaussian_splatting:*`` attribute names as MESH_PRIMITIVE_INVALID_ATTRIBUTE errors: it
predates extension-prefixed semantics (KhronosGroup/glTF-Validator issue #252; base-spec
change KhronosGroup/glTF PR #2514). Apart from those the files validate with 0 errors
(``tools/gltf_validate.mjs --accept-extension-semantics``).

The colour space is written as ``srgb_rec709_display``: the coefficients are those of
3DGS/gsplat training on ordinary (sRGB-encoded) photographs. The reader takes every
primitive with the extension in every mesh (concatenated; node transforms are not
applied), accepts the quantized component types the spec allows (normalized integers
are dequantized), infers the SH degree from the complete degrees present, and reads
files of the earlier drafts that stored log scales: a negative SCALE value can only be
a logarithm, so such a file is exponentiated with a warning. Positions, rotations and
SH are written without any axis conversion: the engine's model space (+y up, +z out of
the face, metres) is glTF's (+Y up, +Z front, metres).

Every writer builds the file in memory and writes it through
:func:`avatar.paths.atomic_write`, so a failed write leaves no partial file.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import re
import urllib.parse
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import Tensor

from avatar.io.mesh import (
    _ARRAY_BUFFER,
    _COMPONENT_DTYPES,
    _TYPE_SIZES,
    _GlbBuilder,
    _pack_glb,
    _single_mesh_document,
    _parse_glb,
    _parse_ply_header,
    _read_ascii_elements,
    _read_binary_element,
    _read_bytes,
)
from avatar.paths import atomic_write

__all__ = [
    "EXTENSION",
    "SH_C0",
    "Gaussians",
    "read_gaussians",
    "read_gltf",
    "read_ply",
    "write_gaussians",
    "write_gltf",
    "write_ply",
]

PathLike = str | Path

SH_C0 = 0.28209479177387814  # real SH Y_0^0 = 1 / (2 sqrt(pi)); DC colour = 0.5 + SH_C0 * sh[:, 0]
EXTENSION = "KHR_gaussian_splatting"
MAX_SH_DEGREE = 3

_FLOAT32_ONE_BELOW = 1.0 - 2.0**-24  # the largest float32 below 1
_FLOAT32_TINY = 2.0**-126  # the smallest normal float32


# --------------------------------------------------------------------------------------
# Type
# --------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False, repr=False)
class Gaussians:
    """N 3D Gaussians with activated parameters (as a renderer uses them).

    Attributes:
        means: [N, 3] centres (metres).
        quats: [N, 4] rotations as quaternions w, x, y, z (not necessarily unit length).
        scales: [N, 3] standard deviations along the local axes (linear, metres; not log).
        opacities: [N] in 0..1 (not logit).
        sh: [N, K, 3] real spherical-harmonic coefficients per colour channel,
            K = (degree + 1)^2 for degree 0..3; ``sh[:, 0]`` is the DC term
            (colour = 0.5 + SH_C0 * sh[:, 0] without view dependence).
    """

    means: Tensor  # [N, 3]
    quats: Tensor  # [N, 4]
    scales: Tensor  # [N, 3]
    opacities: Tensor  # [N]
    sh: Tensor  # [N, K, 3]

    def __post_init__(self) -> None:
        for name in ("means", "quats", "scales", "opacities", "sh"):
            value = getattr(self, name)
            if not isinstance(value, Tensor):
                raise TypeError(f"expected {name} to be a torch.Tensor; got {type(value).__name__}")
            if not value.is_floating_point():
                raise ValueError(f"expected {name} to be a float tensor; got {value.dtype}")
        if self.means.ndim != 2 or self.means.shape[1] != 3:
            raise ValueError(f"expected means [N, 3]; got {tuple(self.means.shape)}")
        N = self.means.shape[0]
        for name, expected in (("quats", (N, 4)), ("scales", (N, 3)), ("opacities", (N,))):
            shape = tuple(getattr(self, name).shape)
            if shape != expected:
                wanted = f"[N={N}, {expected[1]}]" if len(expected) == 2 else f"[N={N}]"
                raise ValueError(f"expected {name} {wanted}; got {shape}")
        sh_shape = tuple(self.sh.shape)
        valid_k = [(d + 1) ** 2 for d in range(MAX_SH_DEGREE + 1)]
        if len(sh_shape) != 3 or sh_shape[0] != N or sh_shape[2] != 3 or sh_shape[1] not in valid_k:
            raise ValueError(f"expected sh [N={N}, K, 3] with K in {valid_k} (SH degree 0..3); got {sh_shape}")

    @property
    def num_gaussians(self) -> int:
        return int(self.means.shape[0])

    @property
    def sh_degree(self) -> int:
        """Degree of the spherical harmonics, from K = (degree + 1)^2."""
        return math.isqrt(int(self.sh.shape[1])) - 1

    def __repr__(self) -> str:
        return f"Gaussians(N={self.num_gaussians}, sh_degree={self.sh_degree}, dtype={self.means.dtype})"


def _numpy64(value: Tensor) -> np.ndarray:
    return value.detach().cpu().to(torch.float64).numpy()


def _numpy32(value: Tensor) -> np.ndarray:
    """float32 numpy (the files hold float32; large arrays stay float32 to keep memory low)."""
    return value.detach().cpu().to(torch.float32).numpy()


def _tensor(array: np.ndarray) -> Tensor:
    return torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32))


def _check_writable_values(g: Gaussians, path: Path) -> None:
    """Values both formats need: finite, opacities in 0..1, scales >= 0."""
    for name in ("means", "quats", "scales", "opacities", "sh"):
        if not bool(torch.isfinite(getattr(g, name)).all()):
            raise ValueError(f"cannot write {path}: {name} holds NaN or infinite values")
    if g.num_gaussians:
        low, high = (float(v) for v in torch.aminmax(g.opacities))
        if low < 0.0 or high > 1.0:
            raise ValueError(f"cannot write {path}: opacities must lie in [0, 1] (not logits); got {low}..{high}")
        if float(g.scales.min()) < 0.0:
            raise ValueError(f"cannot write {path}: scales must be >= 0 (linear, not log); got min {float(g.scales.min())}")


# --------------------------------------------------------------------------------------
# PLY
# --------------------------------------------------------------------------------------


def _ply_names(num_rest: int) -> list[str]:
    """The standard 3DGS property names, in the standard order."""
    names = ["x", "y", "z", "nx", "ny", "nz", "f_dc_0", "f_dc_1", "f_dc_2"]
    names += [f"f_rest_{i}" for i in range(num_rest)]
    names += ["opacity", "scale_0", "scale_1", "scale_2", "rot_0", "rot_1", "rot_2", "rot_3"]
    return names


def _gaussian_ply_error(path: Path, reason: str) -> ValueError:
    return ValueError(f"not a valid Gaussian splat PLY: {path}: {reason}")


def write_ply(path: PathLike, g: Gaussians) -> None:
    """Write Gaussians as a binary little-endian PLY in the standard 3DGS layout.

    Properties (all float32, in this order): ``x y z nx ny nz f_dc_0..2 f_rest_*
    opacity scale_0..2 rot_0..3``, with ``f_rest`` channel-major, opacity as a logit,
    scales as logs, rotations as w, x, y, z as given (see the module docstring).

    Args:
        path: the .ply file to write (its folder must exist).
        g: the Gaussians (opacities in 0..1, scales >= 0, all finite).

    Raises:
        ValueError: values out of range or not finite (nothing is written).
        FileNotFoundError: the folder does not exist (nothing is written).
    """
    path = Path(path)
    _check_writable_values(g, path)
    N, K = g.num_gaussians, int(g.sh.shape[1])
    names = _ply_names(3 * (K - 1))
    column = {name: i for i, name in enumerate(names)}
    table = np.zeros((N, len(names)), "<f4")  # [N, P]; the normals stay 0
    sh = _numpy32(g.sh)  # [N, K, 3]
    table[:, 0:3] = _numpy32(g.means)
    table[:, column["f_dc_0"] : column["f_dc_0"] + 3] = sh[:, 0, :]
    if K > 1:  # channel-major: [N, K-1, 3] -> [N, 3, K-1] -> [N, 3 (K-1)]
        table[:, column["f_rest_0"] : column["opacity"]] = sh[:, 1:, :].transpose(0, 2, 1).reshape(N, 3 * (K - 1))
    opacity = np.clip(_numpy64(g.opacities), _FLOAT32_TINY, _FLOAT32_ONE_BELOW)
    table[:, column["opacity"]] = np.log(opacity) - np.log1p(-opacity)  # logit
    table[:, column["scale_0"] : column["scale_0"] + 3] = np.log(np.maximum(_numpy64(g.scales), _FLOAT32_TINY))
    table[:, column["rot_0"] : column["rot_0"] + 4] = _numpy32(g.quats)  # w, x, y, z as given
    header = ["ply", "format binary_little_endian 1.0", f"element vertex {N}"]
    header += [f"property float {name}" for name in names]
    header.append("end_header")
    payload = ("\n".join(header) + "\n").encode("ascii") + table.tobytes()
    with atomic_write(path, "wb") as handle:
        handle.write(payload)


def _sh_degree_from_rest(names: list[str], path: Path) -> int:
    """SH degree from the ``f_rest_i`` property names (which must be exactly 0..M-1)."""
    indices = sorted(int(name[len("f_rest_") :]) for name in names)
    if indices != list(range(len(indices))):
        raise _gaussian_ply_error(path, f"the f_rest_* properties are not numbered 0..{len(indices) - 1}")
    by_count = {3 * ((d + 1) ** 2 - 1): d for d in range(MAX_SH_DEGREE + 1)}
    if len(indices) not in by_count:
        counts = ", ".join(f"{n} (degree {d})" for n, d in by_count.items())
        raise _gaussian_ply_error(path, f"{len(indices)} f_rest_* properties; expected one of {counts}")
    return by_count[len(indices)]


def read_ply(path: PathLike) -> Gaussians:
    """Read Gaussians from a 3DGS PLY (binary little/big endian or ascii).

    Properties are taken by name, in any order; ``x y z f_dc_0..2 opacity scale_0..2
    rot_0..3`` are required, ``f_rest_*`` give the SH degree (0, 9, 24 or 45 of them),
    everything else is ignored. Opacity logits go through a sigmoid and log scales
    through exp; quaternions are kept as stored (w, x, y, z).

    Args:
        path: the .ply file.

    Returns:
        :class:`Gaussians` with float32 tensors.

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: the file is empty, not a PLY ("not a valid PLY"), or a PLY without the
            Gaussian properties ("not a valid Gaussian splat PLY").
    """
    path = Path(path)
    data = _read_bytes(path, "Gaussian splat PLY")
    fmt, elements, body_start = _parse_ply_header(data, path)
    vertex_element = next((e for e in elements if e.name == "vertex"), None)
    if vertex_element is None:
        raise _gaussian_ply_error(path, "no 'vertex' element")
    up_to_vertex = elements[: elements.index(vertex_element) + 1]  # earlier elements are read to find it
    if fmt == "ascii":
        vertex = _read_ascii_elements(data[body_start:], up_to_vertex, path)["vertex"]
    else:
        order = "<" if fmt == "binary_little_endian" else ">"
        position = body_start
        for element in up_to_vertex:  # the last one read is the vertex element
            vertex, position = _read_binary_element(data, position, element, order, path)

    rest_names = [name for name in vertex if re.fullmatch(r"f_rest_\d+", name)]
    required = ["x", "y", "z", "f_dc_0", "f_dc_1", "f_dc_2", "opacity"]
    required += ["scale_0", "scale_1", "scale_2", "rot_0", "rot_1", "rot_2", "rot_3"]
    missing = [name for name in required if name not in vertex]
    if missing:
        hint = ""
        if {"x", "y", "z"} <= vertex.keys():
            hint = " (a mesh or point-cloud PLY? read it with avatar.io.read_mesh)"
        raise _gaussian_ply_error(path, f"the vertex element lacks {', '.join(missing)}{hint}")
    for name in required + rest_names:
        if isinstance(vertex[name], tuple) or np.asarray(vertex[name]).ndim != 1:
            raise _gaussian_ply_error(path, f"property {name!r} is a list; expected a scalar")
    degree = _sh_degree_from_rest(rest_names, path)
    K = (degree + 1) ** 2

    def stack(names: list[str], dtype: type = np.float32) -> np.ndarray:  # [N, len(names)]
        return np.stack([np.asarray(vertex[name], dtype=dtype) for name in names], axis=1)

    N = len(vertex["x"])
    sh = np.empty((N, K, 3), np.float32)
    sh[:, 0, :] = stack(["f_dc_0", "f_dc_1", "f_dc_2"])
    if K > 1:
        rest = stack([f"f_rest_{i}" for i in range(3 * (K - 1))])  # [N, 3 (K - 1)], channel-major
        sh[:, 1:, :] = rest.reshape(N, 3, K - 1).transpose(0, 2, 1)
    with np.errstate(over="ignore"):  # exp overflow of very negative logits gives opacity 0
        opacities = 1.0 / (1.0 + np.exp(-stack(["opacity"], np.float64)[:, 0]))
        scales = np.exp(stack(["scale_0", "scale_1", "scale_2"], np.float64))
    return Gaussians(
        means=_tensor(stack(["x", "y", "z"])),
        quats=_tensor(stack(["rot_0", "rot_1", "rot_2", "rot_3"])),
        scales=_tensor(scales),
        opacities=_tensor(opacities),
        sh=_tensor(sh),
    )


# --------------------------------------------------------------------------------------
# glTF 2.0 with KHR_gaussian_splatting
# --------------------------------------------------------------------------------------

_PREFIX = EXTENSION + ":"
_ROTATION, _SCALE, _OPACITY = _PREFIX + "ROTATION", _PREFIX + "SCALE", _PREFIX + "OPACITY"
_FLOAT = 5126
_DATA_URI = "data:application/octet-stream;base64,"
_SUPPORTED_REQUIRED = {EXTENSION, "KHR_mesh_quantization"}  # the latter only allows the quantized types we read


def _sh_attribute(degree: int, n: int) -> str:
    return f"{_PREFIX}SH_DEGREE_{degree}_COEF_{n}"


def _gltf_error(path: Path, reason: str) -> ValueError:
    return ValueError(f"not a valid glTF Gaussian splat file: {path}: {reason}")


def _srgb_to_linear(c: np.ndarray) -> np.ndarray:
    return np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)


def _gltf_document(g: Gaussians, path: Path) -> tuple[dict, bytes]:
    """The glTF JSON and its single binary buffer."""
    _check_writable_values(g, path)
    N = g.num_gaussians
    if N == 0:
        raise ValueError(f"cannot write {path}: glTF needs at least one Gaussian (accessor count >= 1)")
    quats = _numpy64(g.quats)
    norms = np.linalg.norm(quats, axis=1, keepdims=True)  # [N, 1]
    if float(norms.min()) == 0.0:
        bad = int((norms[:, 0] == 0.0).sum())
        raise ValueError(f"cannot write {path}: {bad} quaternion(s) of zero length (glTF needs unit quaternions)")
    wxyz = quats / norms
    xyzw = wxyz[:, [1, 2, 3, 0]]
    sh = _numpy32(g.sh)
    opacities = _numpy32(g.opacities)
    dc_color = _srgb_to_linear(np.clip(0.5 + SH_C0 * sh[:, 0, :].astype(np.float64), 0.0, 1.0))
    fallback = np.concatenate([dc_color, opacities[:, None]], axis=1)  # [N, 4]

    builder = _GlbBuilder()

    def add(array: np.ndarray, kind: str, bounds: bool = False) -> int:
        return builder.add(array.astype("<f4"), kind, _FLOAT, _ARRAY_BUFFER, bounds=bounds)

    attributes = {
        "POSITION": add(_numpy32(g.means), "VEC3", bounds=True),
        "COLOR_0": add(fallback, "VEC4"),
        _ROTATION: add(xyzw, "VEC4"),
        _SCALE: add(_numpy32(g.scales), "VEC3"),
        _OPACITY: add(opacities, "SCALAR"),
    }
    for degree in range(g.sh_degree + 1):
        for n in range(2 * degree + 1):
            attributes[_sh_attribute(degree, n)] = add(sh[:, degree * degree + n, :], "VEC3")
    primitive = {
        "attributes": attributes,
        "mode": 0,  # POINTS
        "extensions": {EXTENSION: {"kernel": "ellipse", "colorSpace": "srgb_rec709_display"}},
    }
    return _single_mesh_document(builder, primitive, extensions_used=[EXTENSION])


def write_gltf(path: PathLike, g: Gaussians) -> None:
    """Write Gaussians as glTF 2.0 with ``KHR_gaussian_splatting`` (see the module docstring).

    ``.glb`` gives a binary glTF; ``.gltf`` a JSON file with the buffer embedded as a base64
    ``data:`` URI. Quaternions are normalized (the spec requires unit quaternions).

    Args:
        path: a .glb or .gltf path in an existing folder.
        g: the Gaussians (N >= 1; opacities in 0..1, scales >= 0, non-zero quaternions,
            all finite).

    Raises:
        ValueError: another suffix, or values the format cannot hold (nothing is written).
        FileNotFoundError: the folder does not exist (nothing is written).
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".glb", ".gltf"):
        raise ValueError(f"unknown glTF suffix {suffix!r} of {path}; use .glb or .gltf")
    document, binary = _gltf_document(g, path)
    if suffix == ".gltf":
        document["buffers"][0]["uri"] = _DATA_URI + base64.b64encode(binary).decode("ascii")
        payload = json.dumps(document, separators=(",", ":")).encode("utf-8")
    else:
        payload = _pack_glb(document, binary)
    with atomic_write(path, "wb") as handle:
        handle.write(payload)


def _load_buffers(document: dict, glb_binary: bytes | None, path: Path) -> list[bytes]:
    """The bytes of every buffer: the GLB BIN chunk, base64 ``data:`` URIs or files beside ``path``."""
    buffers = []
    for index, buffer in enumerate(document.get("buffers") or []):
        uri = buffer.get("uri")
        if uri is None:
            if glb_binary is None or index != 0:
                raise _gltf_error(path, f"buffer {index} has no uri and there is no GLB BIN chunk for it")
            data = glb_binary
        elif uri.startswith("data:"):
            header, _, encoded = uri.partition(",")
            if not header.endswith(";base64"):
                raise _gltf_error(path, f"buffer {index}: only base64 data URIs are supported")
            try:
                data = base64.b64decode(encoded, validate=True)
            except (binascii.Error, ValueError):
                raise _gltf_error(path, f"buffer {index}: bad base64 data") from None
        else:
            file = path.parent / urllib.parse.unquote(uri)
            if not file.is_file():
                raise _gltf_error(path, f"buffer {index}: the file {file} does not exist")
            data = file.read_bytes()
        if len(data) < int(buffer.get("byteLength", 0)):
            raise _gltf_error(path, f"buffer {index} is shorter than its byteLength")
        buffers.append(data)
    return buffers


def _accessor_values(document: dict, buffers: list[bytes], index: int, path: Path) -> np.ndarray:
    """Accessor ``index`` as floats [count, components] (float32 as stored; integers as float64,
    normalized ones dequantized)."""
    try:
        accessor = document["accessors"][index]
        if "sparse" in accessor:
            raise _gltf_error(path, f"accessor {index}: sparse accessors are not supported")
        dtype = np.dtype(_COMPONENT_DTYPES[accessor["componentType"]])
        components = _TYPE_SIZES[accessor["type"]]
        count = int(accessor["count"])
        if "bufferView" not in accessor:
            return np.zeros((count, components))
        view = document["bufferViews"][accessor["bufferView"]]
        data = buffers[int(view["buffer"])]
        view_start, view_length = int(view.get("byteOffset", 0)), int(view["byteLength"])
    except (KeyError, IndexError, TypeError, ValueError):
        raise _gltf_error(path, f"bad accessor {index}") from None
    start = view_start + int(accessor.get("byteOffset", 0))
    element = dtype.itemsize * components
    stride = int(view.get("byteStride", 0)) or element
    end = start + stride * (count - 1) + element if count else start
    if end > view_start + view_length or end > len(data):
        raise _gltf_error(path, f"accessor {index} reads past its bufferView")
    raw = np.frombuffer(data, np.uint8, end - start, start)
    if stride != element:
        rows = np.lib.stride_tricks.as_strided(raw, shape=(count, element), strides=(stride, 1))
        raw = np.ascontiguousarray(rows).reshape(-1)
    values = raw.view(dtype).reshape(count, components)
    if dtype.kind == "f":
        return values.astype(np.float32)  # a copy: the buffer's bytes are read-only
    values = values.astype(np.float64)
    if accessor.get("normalized"):
        values = values / float(np.iinfo(dtype).max)
        if dtype.kind == "i":
            values = np.maximum(values, -1.0)
    return values


def _read_splat_primitive(primitive: dict, accessor: Callable[[int], np.ndarray], path: Path) -> dict:
    """Activated arrays of one KHR_gaussian_splatting primitive, with all its complete SH degrees."""
    mode = primitive.get("mode", 4)
    if mode != 0:
        raise _gltf_error(path, f"a {EXTENSION} primitive has mode {mode}; the extension requires POINTS (0)")
    attributes = primitive.get("attributes") or {}
    required = ["POSITION", _ROTATION, _SCALE, _OPACITY, _sh_attribute(0, 0)]
    missing = [name for name in required if name not in attributes]
    if missing:
        raise _gltf_error(path, f"a {EXTENSION} primitive lacks the attributes {', '.join(missing)}")
    degree = 0
    for d in range(1, MAX_SH_DEGREE + 1):
        present = [_sh_attribute(d, n) in attributes for n in range(2 * d + 1)]
        if not any(present):
            break
        if not all(present):
            raise _gltf_error(path, f"SH degree {d} is partially defined ({sum(present)} of {2 * d + 1} coefficients)")
        degree = d
    for d in range(degree + 2, MAX_SH_DEGREE + 1):
        if any(_sh_attribute(d, n) in attributes for n in range(2 * d + 1)):
            raise _gltf_error(path, f"SH degree {d} is present without degree {degree + 1}")

    def read(name: str, columns: int) -> np.ndarray:
        values = accessor(attributes[name])
        if values.shape[1] != columns:
            raise _gltf_error(path, f"attribute {name} has {values.shape[1]} components; expected {columns}")
        return values

    means = read("POSITION", 3)
    N = means.shape[0]
    sh = np.stack(
        [read(_sh_attribute(d, n), 3) for d in range(degree + 1) for n in range(2 * d + 1)], axis=1
    )  # [N, K, 3]
    arrays = {
        "means": means,
        "quats": read(_ROTATION, 4)[:, [3, 0, 1, 2]],  # xyzw -> wxyz
        "scales": read(_SCALE, 3),
        "opacities": read(_OPACITY, 1)[:, 0],
        "sh": sh,
    }
    counts = {name: value.shape[0] for name, value in arrays.items()}
    if any(count != N for count in counts.values()):
        raise _gltf_error(path, f"the attributes of a {EXTENSION} primitive have different counts {counts}")
    return arrays


def read_gltf(path: PathLike) -> Gaussians:
    """Read Gaussians from a glTF 2.0 file (.glb or .gltf) with ``KHR_gaussian_splatting``.

    Every primitive with the extension, in every mesh, is read and concatenated (node
    transforms are not applied); when they have different SH degrees the lowest is kept.
    ROTATION (xyzw) comes back as wxyz quaternions; SCALE is linear (files of earlier
    drafts with negative, i.e. log, scales are exponentiated with a warning).

    Args:
        path: the .glb or .gltf file.

    Returns:
        :class:`Gaussians` with float32 tensors.

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: the file is empty, not glTF, or has no Gaussian splat primitive.
    """
    path = Path(path)
    data = _read_bytes(path, "glTF")
    if data[:4] == b"glTF":
        document, binary = _parse_glb(data, path)
        glb_binary: bytes | None = binary
    else:
        try:
            document = json.loads(data.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as error:
            raise _gltf_error(path, f"neither a GLB nor glTF JSON ({error})") from None
        if not isinstance(document, dict):
            raise _gltf_error(path, "the JSON is not an object")
        glb_binary = None
    try:
        if str(document.get("asset", {}).get("version", "")).split(".")[0] != "2":
            raise _gltf_error(path, "asset.version is not 2.x")
        unsupported = sorted(set(document.get("extensionsRequired") or []) - _SUPPORTED_REQUIRED)
        if unsupported:
            raise _gltf_error(path, f"requires extensions that are not supported: {', '.join(unsupported)}")
        primitives = [
            primitive
            for mesh in document.get("meshes") or []
            for primitive in mesh.get("primitives") or []
            if EXTENSION in (primitive.get("extensions") or {})
        ]
        if not primitives:
            raise _gltf_error(path, f"no mesh primitive with the {EXTENSION} extension")
        buffers = _load_buffers(document, glb_binary, path)

        def accessor(index: int) -> np.ndarray:
            return _accessor_values(document, buffers, index, path)

        pieces = [_read_splat_primitive(primitive, accessor, path) for primitive in primitives]
    except (AttributeError, KeyError, IndexError, TypeError) as error:  # JSON of the wrong shape
        raise _gltf_error(path, f"malformed glTF JSON ({type(error).__name__}: {error})") from None

    K = min(piece["sh"].shape[1] for piece in pieces)
    merged = {name: np.concatenate([piece[name] for piece in pieces]) for name in pieces[0] if name != "sh"}
    merged["sh"] = np.concatenate([piece["sh"][:, :K] for piece in pieces])
    if merged["scales"].size and float(merged["scales"].min()) < 0.0:
        warnings.warn(
            f"{path}: negative {_SCALE} values: reading them as log scales of an earlier "
            "KHR_gaussian_splatting draft (the Release Candidate stores linear scales)",
            stacklevel=2,
        )
        merged["scales"] = np.exp(merged["scales"])
    return Gaussians(**{name: _tensor(value) for name, value in merged.items()})


# --------------------------------------------------------------------------------------
# Dispatch
# --------------------------------------------------------------------------------------

_READERS: dict[str, Callable[[PathLike], Gaussians]] = {".ply": read_ply, ".glb": read_gltf, ".gltf": read_gltf}
_WRITERS: dict[str, Callable[[PathLike, Gaussians], None]] = {".ply": write_ply, ".glb": write_gltf, ".gltf": write_gltf}


def _suffix(path: PathLike, table: dict) -> str:
    suffix = Path(path).suffix.lower()
    if suffix not in table:
        raise ValueError(f"unknown Gaussian splat file suffix {suffix!r} of {path}; supported: {', '.join(table)}")
    return suffix


def read_gaussians(path: PathLike) -> Gaussians:
    """Read a .ply, .glb or .gltf Gaussian splat file, chosen by the suffix (case-insensitive)."""
    return _READERS[_suffix(path, _READERS)](path)


def write_gaussians(path: PathLike, g: Gaussians) -> None:
    """Write a .ply, .glb or .gltf Gaussian splat file, chosen by the suffix (case-insensitive)."""
    _WRITERS[_suffix(path, _WRITERS)](path, g)
