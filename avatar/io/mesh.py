"""Mesh files (OBJ, PLY, GLB) read and written without changing the vertex topology.

The engine's meshes are morphable models: vertex ``i`` of a file must stay vertex ``i``.
So the readers keep the vertex count and the order of the file's vertices, and UV seams
are kept the way OBJ keeps them, as a separate UV index per face corner
(:attr:`Mesh.face_uvs`), never by splitting vertices. Polygons (the quads of ICT-FaceKit)
are fan-triangulated into :attr:`Mesh.faces`, and the original polygons are kept in
:attr:`Mesh.polygons` so that writing an OBJ or PLY gives the quads back.

Per format:

- **OBJ** ``v`` (optionally ``v x y z r g b``), ``vt``, ``vn``, ``f`` with ``a``, ``a/b``,
  ``a/b/c``, ``a//c`` corners and negative (relative) indices. Other statements
  (``mtllib``, ``usemtl``, ``g``, ``o``, ``s``, ``l``, ...) and comments are ignored.
- **PLY** ascii, binary_little_endian and binary_big_endian on read; binary little endian
  on write. Vertex ``x y z`` (float), optional ``nx ny nz``, ``red green blue`` (uchar);
  faces as ``list uchar int vertex_indices`` (``vertex_index`` also read). UVs go in a
  per-face ``list uchar float texcoord`` (MeshLab's wedge texture coordinates, which keep
  seams), plus our ``list uchar int texcoord_index`` with the uv index of every corner, so
  that ``uvs`` and ``face_uvs`` come back exactly (tools that do not know the property
  ignore it). Without ``texcoord_index`` the distinct corner UVs become :attr:`Mesh.uvs`
  in order of first use. Per-vertex ``s t``/``u v``/``texture_u texture_v`` are read too.
- **GLB** (binary glTF 2.0, one mesh, one triangle primitive). glTF attributes are per
  vertex, so where the UV layout has seams the writer duplicates vertices *in the file*
  and records, per file vertex, the original vertex and UV ids in the application-specific
  attributes ``_VERTEX_ID`` and ``_UV_ID`` (FLOAT scalars, exact below 2^24; glTF allows
  UNSIGNED_INT only for indices). The first ``V`` file vertices are the original vertices
  in order; seam copies follow. :func:`read_glb` uses the two attributes to restore the
  original vertex count and order, faces and face_uvs exactly; files from other tools
  (without them) are read as they are. glTF's ``v`` runs downward, so
  ``v_gltf = 1 - v_obj`` in float32: a UV comes back to within float32 rounding of that
  flip (|error| <= 6e-8), and UVs that no face uses come back as (0, 0). Polygons are
  not kept (glTF has triangles only); node transforms are not applied.

Every writer builds the file in memory and writes it through
:func:`avatar.paths.atomic_write`, so a failed write leaves no partial file.
"""

from __future__ import annotations

import json
import struct
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, NamedTuple

import numpy as np
import torch
from torch import Tensor

from avatar.paths import atomic_write

__all__ = [
    "Mesh",
    "Polygons",
    "Triangles",
    "read_glb",
    "read_mesh",
    "read_obj",
    "read_ply",
    "write_glb",
    "write_mesh",
    "write_obj",
    "write_ply",
]

PathLike = str | Path


# --------------------------------------------------------------------------------------
# Types
# --------------------------------------------------------------------------------------


class Triangles(NamedTuple):
    """Triangles of a fan triangulation.

    Attributes:
        faces: [F, 3] long vertex indices.
        face_uvs: [F, 3] long uv indices, or None when the polygons have none.
    """

    faces: Tensor  # [F, 3]
    face_uvs: Tensor | None  # [F, 3]


@dataclass(frozen=True, eq=False, repr=False)
class Polygons:
    """Polygon faces as a ragged array: polygon ``p`` has corners ``offsets[p]:offsets[p + 1]``.

    Attributes:
        vertex_index: [C] long, the vertex of every corner, polygons concatenated.
        offsets: [P + 1] long, ``offsets[0] == 0``, ``offsets[-1] == C``, every polygon
            has at least 3 corners.
        uv_index: [C] long uv index of every corner, or None.
    """

    vertex_index: Tensor  # [C]
    offsets: Tensor  # [P + 1]
    uv_index: Tensor | None = None  # [C]

    def __post_init__(self) -> None:
        _check_index_vector("vertex_index", self.vertex_index)
        _check_index_vector("offsets", self.offsets)
        if self.offsets.numel() == 0 or int(self.offsets[0]) != 0:
            raise ValueError("expected offsets [P + 1] starting at 0")
        if int(self.offsets[-1]) != self.vertex_index.numel():
            raise ValueError(
                f"expected offsets[-1] == len(vertex_index) = {self.vertex_index.numel()}; got {int(self.offsets[-1])}"
            )
        if self.offsets.numel() > 1 and int(self.sizes.min()) < 3:
            raise ValueError("every polygon needs at least 3 corners")
        if self.uv_index is not None:
            _check_index_vector("uv_index", self.uv_index)
            if self.uv_index.shape != self.vertex_index.shape:
                raise ValueError(
                    f"expected uv_index [C] like vertex_index {tuple(self.vertex_index.shape)}; "
                    f"got {tuple(self.uv_index.shape)}"
                )

    @classmethod
    def from_sizes(cls, vertex_index: Tensor, sizes: Tensor, uv_index: Tensor | None = None) -> Polygons:
        """Polygons from concatenated corners and the corner count of each polygon.

        Args:
            vertex_index: [C] long corners.
            sizes: [P] long corners per polygon (each >= 3, summing to C).
            uv_index: [C] long uv index per corner, or None.
        """
        offsets = torch.zeros(sizes.numel() + 1, dtype=torch.long, device=sizes.device)
        torch.cumsum(sizes.long(), dim=0, out=offsets[1:])
        return cls(vertex_index=vertex_index, offsets=offsets, uv_index=uv_index)

    @property
    def sizes(self) -> Tensor:  # [P]
        """Corner count of every polygon."""
        return self.offsets[1:] - self.offsets[:-1]

    def __len__(self) -> int:
        return self.offsets.numel() - 1

    def __repr__(self) -> str:
        counts = torch.bincount(self.sizes).tolist() if len(self) else []
        by_size = {n: c for n, c in enumerate(counts) if c}
        return f"Polygons(P={len(self)}, corners by size={by_size}, uv_index={self.uv_index is not None})"

    def fan_triangulate(self) -> Triangles:
        """Fan triangulation: polygon ``(c0, c1, ..., cn-1)`` gives ``(c0, ck, ck+1)``, k = 1..n-2.

        Returns:
            :class:`Triangles`, ``F = sum(sizes - 2)``, polygon by polygon in order.
        """
        # numpy: small index arithmetic that torch would spread over threads for no gain.
        offsets = _numpy(self.offsets)
        triangles = np.diff(offsets) - 2  # [P]
        polygon = np.repeat(np.arange(triangles.size), triangles)  # [F]
        first_triangle = np.cumsum(triangles) - triangles  # [P]
        start = offsets[:-1][polygon]
        k = np.arange(polygon.size) - first_triangle[polygon] + 1  # 1..n-2 within each polygon
        corners = np.stack([start, start + k, start + k + 1], axis=-1)  # [F, 3] corner positions

        def take(index: Tensor) -> Tensor:
            return torch.from_numpy(_numpy(index)[corners]).to(index.device)

        return Triangles(
            faces=take(self.vertex_index),
            face_uvs=take(self.uv_index) if self.uv_index is not None else None,
        )


@dataclass(frozen=True, eq=False, repr=False)
class Mesh:
    """A triangle mesh with the file's vertex topology.

    Attributes:
        vertices: [V, 3] float positions (metres in the engine's model space).
        faces: [F, 3] long vertex indices of triangles (counter-clockwise from outside).
        uvs: [U, 2] float texture coordinates, OBJ convention (v up: origin bottom-left).
        face_uvs: [F, 3] long uv index of every triangle corner; given with ``uvs``.
        vertex_colors: [V, 3] float RGB in 0..1.
        normals: [V, 3] float per-vertex normals.
        polygons: the original polygons when the file had faces other than triangles;
            ``faces`` (and ``face_uvs``) are then exactly their fan triangulation, which
            the constructor checks. Writers of OBJ and PLY write the polygons.
    """

    vertices: Tensor  # [V, 3]
    faces: Tensor  # [F, 3]
    uvs: Tensor | None = None  # [U, 2]
    face_uvs: Tensor | None = None  # [F, 3]
    vertex_colors: Tensor | None = None  # [V, 3]
    normals: Tensor | None = None  # [V, 3]
    polygons: Polygons | None = None

    def __post_init__(self) -> None:
        _check_float("vertices", self.vertices, "[V, 3]", 3)
        V = self.vertices.shape[0]
        _check_index_matrix("faces", self.faces, V)
        if (self.uvs is None) != (self.face_uvs is None):
            raise ValueError("expected uvs [U, 2] and face_uvs [F, 3] together, or neither")
        if self.uvs is not None and self.face_uvs is not None:
            _check_float("uvs", self.uvs, "[U, 2]", 2)
            _check_index_matrix("face_uvs", self.face_uvs, self.uvs.shape[0])
            if self.face_uvs.shape != self.faces.shape:
                raise ValueError(
                    f"expected face_uvs [F, 3] like faces {tuple(self.faces.shape)}; got {tuple(self.face_uvs.shape)}"
                )
        if self.vertex_colors is not None:
            _check_float("vertex_colors", self.vertex_colors, f"[V={V}, 3]", 3, rows=V)
        if self.normals is not None:
            _check_float("normals", self.normals, f"[V={V}, 3]", 3, rows=V)
        if self.polygons is not None:
            self._check_polygons(self.polygons)

    def _check_polygons(self, polygons: Polygons) -> None:
        if not isinstance(polygons, Polygons):
            raise TypeError(f"expected polygons to be a Polygons; got {type(polygons).__name__}")
        if (polygons.uv_index is None) != (self.face_uvs is None):
            raise ValueError("expected polygons.uv_index exactly when the mesh has face_uvs")
        tri = polygons.fan_triangulate()
        if not torch.equal(tri.faces, self.faces):
            raise ValueError(
                "polygons do not match faces: faces must be the fan triangulation of polygons "
                "(drop polygons with dataclasses.replace(mesh, polygons=None) after editing faces)"
            )
        if tri.face_uvs is not None and not torch.equal(tri.face_uvs, self.face_uvs):
            raise ValueError("polygons.uv_index does not match face_uvs (fan triangulation)")

    @classmethod
    def from_polygons(
        cls,
        vertices: Tensor,  # [V, 3]
        polygons: Polygons,
        uvs: Tensor | None = None,  # [U, 2]
        vertex_colors: Tensor | None = None,  # [V, 3]
        normals: Tensor | None = None,  # [V, 3]
    ) -> Mesh:
        """A mesh whose triangles are the fan triangulation of ``polygons``.

        Args:
            vertices: [V, 3] positions.
            polygons: the polygons; ``polygons.uv_index`` is required with ``uvs``.
            uvs: [U, 2] texture coordinates.
            vertex_colors: [V, 3] RGB in 0..1.
            normals: [V, 3] normals.
        """
        tri = polygons.fan_triangulate()
        all_triangles = len(polygons) == 0 or bool((polygons.sizes == 3).all())
        return cls(
            vertices=vertices,
            faces=tri.faces,
            uvs=uvs,
            face_uvs=tri.face_uvs,
            vertex_colors=vertex_colors,
            normals=normals,
            polygons=None if all_triangles else polygons,
        )

    @property
    def num_vertices(self) -> int:
        return int(self.vertices.shape[0])

    @property
    def num_faces(self) -> int:
        """Number of triangles."""
        return int(self.faces.shape[0])

    def __repr__(self) -> str:
        parts = [f"V={self.num_vertices}", f"F={self.num_faces}"]
        if self.uvs is not None:
            parts.append(f"U={self.uvs.shape[0]}")
        if self.vertex_colors is not None:
            parts.append("vertex_colors")
        if self.normals is not None:
            parts.append("normals")
        if self.polygons is not None:
            parts.append(repr(self.polygons))
        return f"Mesh({', '.join(parts)})"


def _check_float(name: str, value: object, expected: str, cols: int, rows: int | None = None) -> None:
    """``value`` must be a float tensor [rows, cols] (any rows when None); ``expected`` names the shape."""
    if not isinstance(value, Tensor):
        raise TypeError(f"expected {name} to be a torch.Tensor {expected}; got {type(value).__name__}")
    shape_ok = value.ndim == 2 and value.shape[1] == cols and (rows is None or value.shape[0] == rows)
    if not shape_ok or not value.is_floating_point():
        raise ValueError(f"expected {name} float {expected}; got {value.dtype} {tuple(value.shape)}")


def _check_index_matrix(name: str, value: object, count: int) -> None:
    if not isinstance(value, Tensor):
        raise TypeError(f"expected {name} to be a torch.Tensor [F, 3] long")
    if value.ndim != 2 or value.shape[1] != 3 or value.dtype != torch.long:
        raise ValueError(f"expected {name} [F, 3] long; got {value.dtype} {tuple(value.shape)}")
    if value.numel():
        low, high = (int(v) for v in torch.aminmax(value))
        if low < 0 or high >= count:
            raise ValueError(f"{name} index out of range [0, {count}): min {low}, max {high}")


def _check_index_vector(name: str, value: object) -> None:
    if not isinstance(value, Tensor):
        raise TypeError(f"expected {name} to be a torch.Tensor [N] long")
    if value.ndim != 1 or value.dtype != torch.long:
        raise ValueError(f"expected {name} [N] long; got {value.dtype} {tuple(value.shape)}")


def _numpy(value: Tensor) -> np.ndarray:
    return value.detach().cpu().numpy()


def _tensor(array: np.ndarray, dtype: torch.dtype) -> Tensor:
    return torch.from_numpy(np.ascontiguousarray(array)).to(dtype)


def _text_numbers(text: bytes, dtype: type, count: int) -> np.ndarray | None:
    """Exactly ``count`` whitespace-separated numbers parsed from ``text``, or None."""
    if count == 0:
        return np.zeros(0, dtype)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # older numpy warns where it stops early
            values = np.fromstring(text, dtype=dtype, sep=" ")
    except ValueError:  # numpy >= 2.? raises where it stops early
        return None
    return values if values.size == count else None


def _read_bytes(path: PathLike, kind: str) -> bytes:
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{kind} file {path} does not exist")
    data = path.read_bytes()
    if not data.strip():
        raise ValueError(f"not a valid {kind}: {path} is empty")
    return data


def _corner_uvs_to_indexed(corner_uvs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distinct UVs in order of first use, and the index of every corner's UV."""
    if corner_uvs.shape[0] == 0:
        return np.zeros((0, 2), np.float32), np.zeros(0, np.int64)
    unique, first, inverse = np.unique(corner_uvs, axis=0, return_index=True, return_inverse=True)
    order = np.argsort(first, kind="stable")  # unique rows ordered by first use
    rank = np.empty_like(order)
    rank[order] = np.arange(order.size)
    return unique[order], rank[inverse.reshape(-1)]


# --------------------------------------------------------------------------------------
# OBJ
# --------------------------------------------------------------------------------------


def _obj_error(path: Path, reason: str) -> ValueError:
    return ValueError(f"not a valid OBJ: {path}: {reason}")


class _Statements(NamedTuple):
    """The lines of one OBJ keyword, keyword removed, joined by newlines, with token statistics."""

    body: bytes  # b"\n" + the lines' contents joined by b"\n"
    tokens_per_line: np.ndarray  # [lines]
    slashes_per_token: np.ndarray  # [tokens]


def _statements(lines: list[bytes], keyword: bytes) -> _Statements:
    """Join the lines of ``keyword`` and count their tokens with array operations (no per-line Python)."""
    body = b"\n".join(lines)
    if b"#" in body:  # comments after the data
        body = b"\n".join(line.partition(b"#")[0] for line in lines)
    body = (b"\n" + body).replace(b"\n" + keyword + b" ", b"\n ")
    chars = np.frombuffer(body, np.uint8)
    space = chars <= 32  # tabs were replaced by spaces; \r and \n end lines
    start = ~space
    start[1:] &= space[:-1]
    token_starts = np.flatnonzero(start)
    newlines = np.flatnonzero(chars == 10)  # body starts with one, so lines are numbered from 1
    line_of_token = np.searchsorted(newlines, token_starts)
    tokens_per_line = np.bincount(line_of_token, minlength=len(lines) + 1)[1:]
    token_of_slash = np.searchsorted(token_starts, np.flatnonzero(chars == 47), side="right") - 1  # 47: "/"
    slashes = np.bincount(token_of_slash, minlength=token_starts.size)
    return _Statements(body, tokens_per_line, slashes)


def _parse_numbers(text: bytes, dtype: type, count: int, path: Path, what: str) -> np.ndarray:
    """Whitespace-separated numbers, checked to be exactly ``count``."""
    values = _text_numbers(text, dtype, count)
    if values is None:
        raise _obj_error(path, f"cannot parse the numbers of the {what} lines")
    return values


def _obj_floats(lines: list[bytes], keyword: bytes, columns: int, path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Rows of ``v``/``vt``/``vn`` lines: flat float64 values and the count of values per line."""
    what = f"'{keyword.decode()}'"
    parsed = _statements(lines, keyword)
    counts = parsed.tokens_per_line
    if counts.size and int(counts.min()) < columns:
        raise _obj_error(path, f"a {what} line has fewer than {columns} numbers")
    return _parse_numbers(parsed.body, np.float64, int(counts.sum()), path, what), counts


def _take_columns(flat: np.ndarray, counts: np.ndarray, first: int, n: int) -> np.ndarray:
    """Columns ``first:first+n`` of ragged rows (every row has at least first + n values)."""
    if counts.size and bool((counts == counts[0]).all()):
        return flat.reshape(counts.size, int(counts[0]))[:, first : first + n]
    starts = np.cumsum(counts) - counts
    return flat[starts[:, None] + np.arange(first, first + n)]


def _obj_corners(lines: list[bytes], path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Face corners "a", "a/b", "a/b/c", "a//c": corners per face, and the v, vt, vn index of
    every corner (0 where absent; OBJ indices start at 1)."""
    parsed = _statements(lines, b"f")
    sizes = parsed.tokens_per_line
    if sizes.size and int(sizes.min()) < 3:
        raise _obj_error(path, "a face ('f') line has fewer than 3 corners")
    fields = parsed.slashes_per_token + 1
    if fields.size and int(fields.max()) > 3:
        raise _obj_error(path, "a face corner has more than 3 fields")
    text = parsed.body.replace(b"//", b"/0/").replace(b"/ ", b"/0 ").replace(b"/\n", b"/0\n").replace(b"/\r", b"/0\r")
    if text.endswith(b"/"):
        text += b"0"
    ints = _parse_numbers(text.replace(b"/", b" "), np.int64, int(fields.sum()), path, "'f'")
    if not ints.size:
        empty = np.zeros(0, np.int64)
        return sizes, empty, empty, empty
    starts = np.cumsum(fields) - fields
    last = ints.size - 1
    corner_v = ints[starts]
    corner_t = np.where(fields >= 2, ints[np.minimum(starts + 1, last)], 0)
    corner_n = np.where(fields >= 3, ints[np.minimum(starts + 2, last)], 0)
    return sizes, corner_v, corner_t, corner_n


def read_obj(path: PathLike) -> Mesh:
    """Read a Wavefront OBJ, keeping the count and order of its ``v`` lines.

    Polygons are fan-triangulated into ``faces`` and kept in ``polygons``; seams stay
    as ``face_uvs``. ``uvs`` come when face corners have ``vt`` indices (if only some
    do, the others point at an extra (0, 0) uv appended at the end). Vertex colours
    come from ``v x y z r g b`` lines (divided by 255 when any exceeds 1). Normals are
    per vertex: the ``vn`` lines themselves when there is one per vertex and every corner
    uses its vertex's (as :func:`write_obj` writes them), else the normalized sum of the
    ``vn`` the corners of each vertex reference; given only when every corner has one.

    Args:
        path: the .obj file.

    Returns:
        The :class:`Mesh` (float32 vertices, long faces).

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: the file is empty or not an OBJ (message starts "not a valid OBJ").
    """
    path = Path(path)
    data = _read_bytes(path, "OBJ")
    if b"\0" in data:
        raise _obj_error(path, "binary data (NUL bytes) in a text format")
    data = data.replace(b"\\\r\n", b" ").replace(b"\\\n", b" ").replace(b"\t", b" ")
    lines = [line.strip() for line in data.splitlines()]  # comment lines fall out with the keywords below

    v_lines = [line for line in lines if line[:2] == b"v "]
    vt_lines = [line for line in lines if line[:3] == b"vt "]
    vn_lines = [line for line in lines if line[:3] == b"vn "]
    f_lines = [line for line in lines if line[:2] == b"f "]
    if not v_lines:
        raise _obj_error(path, "no vertex ('v') lines")

    v_flat, v_counts = _obj_floats(v_lines, b"v", 3, path)
    vertices = _take_columns(v_flat, v_counts, 0, 3).astype(np.float32)
    V = vertices.shape[0]
    colors = None
    if bool((v_counts == 6).all()):
        colors = _take_columns(v_flat, v_counts, 3, 3)
        if colors.size and colors.max() > 1.0:
            colors = colors / 255.0
        colors = colors.astype(np.float32)
    uvs = vn = None
    if vt_lines:
        vt_flat, vt_counts = _obj_floats(vt_lines, b"vt", 2, path)
        uvs = _take_columns(vt_flat, vt_counts, 0, 2).astype(np.float32)
    if vn_lines:
        vn_flat, vn_counts = _obj_floats(vn_lines, b"vn", 3, path)
        vn = _take_columns(vn_flat, vn_counts, 0, 3)

    sizes, corner_v, corner_t, corner_n = _obj_corners(f_lines, path)
    if (corner_v < 0).any() or (corner_t < 0).any() or (corner_n < 0).any():
        corner_v, corner_t, corner_n = _resolve_relative(lines, sizes, corner_v, corner_t, corner_n)
    corner_v = _to_zero_based(corner_v, V, path, "vertex")

    face_uv_index = None
    if uvs is not None and corner_t.size and (corner_t != 0).any():
        missing = corner_t == 0
        if missing.any():
            uvs = np.concatenate([uvs, np.zeros((1, 2), np.float32)])
            corner_t = np.where(missing, uvs.shape[0], corner_t)
        face_uv_index = _to_zero_based(corner_t, uvs.shape[0], path, "uv")
    else:
        uvs = None

    normals = None
    if vn is not None and corner_n.size and bool((corner_n != 0).all()):
        corner_n = _to_zero_based(corner_n, vn.shape[0], path, "normal")
        if vn.shape[0] == V and np.array_equal(corner_n, corner_v):
            normals = vn.astype(np.float32)  # one normal per vertex, as write_obj writes them
        else:
            summed = np.zeros((V, 3))
            np.add.at(summed, corner_v, vn[corner_n])
            length = np.linalg.norm(summed, axis=1, keepdims=True)
            normals = (summed / np.where(length > 0, length, 1.0)).astype(np.float32)

    polygons = Polygons.from_sizes(
        _tensor(corner_v, torch.long),
        _tensor(sizes, torch.long),
        _tensor(face_uv_index, torch.long) if face_uv_index is not None else None,
    )
    return Mesh.from_polygons(
        vertices=_tensor(vertices, torch.float32),
        polygons=polygons,
        uvs=_tensor(uvs, torch.float32) if uvs is not None else None,
        vertex_colors=_tensor(colors, torch.float32) if colors is not None else None,
        normals=_tensor(normals, torch.float32) if normals is not None else None,
    )


def _to_zero_based(index: np.ndarray, count: int, path: Path, what: str) -> np.ndarray:
    if index.size and (int(index.min()) < 1 or int(index.max()) > count):
        got = f"{index.min()}..{index.max()}"
        raise _obj_error(path, f"a face refers to a missing {what} (indices 1..{count}; got {got})")
    return index - 1


def _resolve_relative(
    lines: list[bytes], sizes: np.ndarray, corner_v: np.ndarray, corner_t: np.ndarray, corner_n: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Negative OBJ indices count back from the last element defined before the face line."""
    kinds = {b"v": 0, b"vt": 1, b"vn": 2}
    defined = [0, 0, 0]
    before = []  # (v, vt, vn) counts at every face line
    for line in lines:
        keyword = line.split(b" ", 1)[0]
        if keyword in kinds and line[len(keyword) : len(keyword) + 1] == b" ":
            defined[kinds[keyword]] += 1
        elif line[:2] == b"f ":
            before.append(tuple(defined))
    per_corner = np.repeat(np.asarray(before, dtype=np.int64).reshape(-1, 3), sizes, axis=0)  # [C, 3]
    out = []
    for column, index in enumerate((corner_v, corner_t, corner_n)):
        out.append(np.where(index < 0, per_corner[:, column] + index + 1, index))
    return out[0], out[1], out[2]


def _format_rows(fmt: str, rows: np.ndarray) -> str:
    """``fmt`` (one row, ending in a newline) applied to every row of ``rows``."""
    if rows.shape[0] == 0:
        return ""
    return (fmt * rows.shape[0]) % tuple(rows.reshape(-1).tolist())


def write_obj(path: PathLike, mesh: Mesh) -> None:
    """Write a Wavefront OBJ: ``v`` (with ``r g b`` when the mesh has colours), ``vt``, ``vn``, ``f``.

    Writes ``mesh.polygons`` when present (quads stay quads), else the triangles. Floats
    are written with 9 significant digits (float32 values round-trip exactly).

    Args:
        path: the .obj file to write (its folder must exist).
        mesh: the mesh.
    """
    vertices = _numpy(mesh.vertices).astype(np.float64)
    parts = ["# written by avatar\n"]
    if mesh.vertex_colors is not None:
        rows = np.concatenate([vertices, _numpy(mesh.vertex_colors).astype(np.float64)], axis=1)
        parts.append(_format_rows("v %.9g %.9g %.9g %.9g %.9g %.9g\n", rows))
    else:
        parts.append(_format_rows("v %.9g %.9g %.9g\n", vertices))
    if mesh.uvs is not None:
        parts.append(_format_rows("vt %.9g %.9g\n", _numpy(mesh.uvs).astype(np.float64)))
    if mesh.normals is not None:
        parts.append(_format_rows("vn %.9g %.9g %.9g\n", _numpy(mesh.normals).astype(np.float64)))

    if mesh.polygons is not None:
        corner_v = _numpy(mesh.polygons.vertex_index)
        corner_t = _numpy(mesh.polygons.uv_index) if mesh.polygons.uv_index is not None else None
        offsets = _numpy(mesh.polygons.offsets)
    else:
        corner_v = _numpy(mesh.faces).reshape(-1)
        corner_t = _numpy(mesh.face_uvs).reshape(-1) if mesh.face_uvs is not None else None
        offsets = np.arange(0, corner_v.size + 1, 3)
    columns = [corner_v + 1]
    if corner_t is not None:
        columns.append(corner_t + 1)
    if mesh.normals is not None:
        if corner_t is None:
            columns.append(np.zeros_like(corner_v))  # placeholder for the "a//c" form
        columns.append(corner_v + 1)  # one normal per vertex
    corner_fmt = {1: "%d", 2: "%d/%d", 3: "%d/%d/%d"}[len(columns)]
    table = np.stack(columns, axis=1)
    sizes = np.diff(offsets)
    if sizes.size and bool((sizes == sizes[0]).all()):
        n = int(sizes[0])
        fmt = "f " + " ".join([corner_fmt] * n) + "\n"
        faces_text = _format_rows(fmt, table.reshape(-1, n * table.shape[1]))
    else:
        corners = _format_rows(corner_fmt + "\n", table).splitlines()
        faces_text = "".join("f " + " ".join(corners[a:b]) + "\n" for a, b in zip(offsets[:-1], offsets[1:]))
    if mesh.normals is not None and corner_t is None:
        faces_text = faces_text.replace("/0/", "//")
    parts.append(faces_text)
    payload = "".join(parts).encode("ascii")
    with atomic_write(path, "wb") as handle:
        handle.write(payload)


# --------------------------------------------------------------------------------------
# PLY
# --------------------------------------------------------------------------------------

_PLY_TYPES = {
    "char": "i1", "int8": "i1", "uchar": "u1", "uint8": "u1",
    "short": "i2", "int16": "i2", "ushort": "u2", "uint16": "u2",
    "int": "i4", "int32": "i4", "uint": "u4", "uint32": "u4",
    "float": "f4", "float32": "f4", "double": "f8", "float64": "f8",
}  # fmt: skip
_STRUCT_CODES = {"i1": "b", "u1": "B", "i2": "h", "u2": "H", "i4": "i", "u4": "I", "f4": "f", "f8": "d"}


@dataclass(frozen=True)
class _PlyProperty:
    name: str
    dtype: str  # numpy type code without byte order, e.g. "f4"
    count_dtype: str | None = None  # list properties: type of the length prefix


@dataclass(frozen=True)
class _PlyElement:
    name: str
    count: int
    properties: tuple[_PlyProperty, ...]


def _ply_error(path: Path, reason: str) -> ValueError:
    return ValueError(f"not a valid PLY: {path}: {reason}")


def _parse_ply_header(data: bytes, path: Path) -> tuple[str, list[_PlyElement], int]:
    if not data.startswith(b"ply"):
        raise _ply_error(path, "missing the 'ply' magic line")
    end = data.find(b"end_header")
    if end < 0:
        raise _ply_error(path, "missing 'end_header'")
    body_start = data.find(b"\n", end) + 1
    if body_start == 0:
        raise _ply_error(path, "no newline after 'end_header'")
    try:
        header_lines = data[:end].decode("ascii").splitlines()
    except UnicodeDecodeError:
        raise _ply_error(path, "the header is not ASCII") from None
    fmt = None
    elements: list[_PlyElement] = []
    for line in header_lines[1:]:
        words = line.split()
        if not words or words[0] in ("comment", "obj_info"):
            continue
        if words[0] not in ("format", "element", "property"):
            raise _ply_error(path, f"unknown header line {line!r}")
        if words[0] == "property" and not elements:
            raise _ply_error(path, "a property before any element")
        try:
            if words[0] == "format":
                fmt = words[1]
            elif words[0] == "element":
                elements.append(_PlyElement(words[1], int(words[2]), ()))
            else:
                if words[1] == "list":
                    prop = _PlyProperty(words[4], _PLY_TYPES[words[3]], _PLY_TYPES[words[2]])
                else:
                    prop = _PlyProperty(words[2], _PLY_TYPES[words[1]])
                last = elements[-1]
                elements[-1] = _PlyElement(last.name, last.count, last.properties + (prop,))
        except (IndexError, KeyError, ValueError):
            raise _ply_error(path, f"bad header line {line!r}") from None
    if fmt not in ("ascii", "binary_little_endian", "binary_big_endian"):
        raise _ply_error(path, f"unknown format {fmt!r}")
    if any(element.count < 0 for element in elements):
        raise _ply_error(path, "negative element count")
    return fmt, elements, body_start


# A PLY column: fixed properties as [count] arrays; list properties as [count, n] arrays
# when every list has the same length n, else as (flat values, length of every list).
_Column = np.ndarray | tuple[np.ndarray, np.ndarray]


def _ply_record_dtype(element: _PlyElement, order: str, lengths: dict[str, int]) -> np.dtype:
    """The binary layout of one record whose lists have the given lengths."""
    fields: list[tuple] = []
    for p in element.properties:
        if p.count_dtype is None:
            fields.append((p.name, order + p.dtype))
        else:
            fields.append((p.name + "__count", order + p.count_dtype))
            fields.append((p.name, order + p.dtype, (lengths[p.name],)))
    return np.dtype(fields)


def _read_binary_element(
    data: bytes, offset: int, element: _PlyElement, order: str, path: Path
) -> tuple[dict[str, _Column], int]:
    """One binary element and the offset just after it."""
    n_records = element.count
    lists = [p for p in element.properties if p.count_dtype is not None]
    truncated = _ply_error(path, f"truncated '{element.name}' data")

    # Fast path: every list has the length of the first record's (checked afterwards).
    first: dict[str, int] = {}
    position = offset
    for p in element.properties:
        if p.count_dtype is None:
            position += np.dtype(p.dtype).itemsize
        elif n_records == 0:
            first[p.name] = 0
        else:
            if position + np.dtype(p.count_dtype).itemsize > len(data):
                raise truncated
            first[p.name] = int(np.frombuffer(data, order + p.count_dtype, 1, position)[0])
            position += np.dtype(p.count_dtype).itemsize + first[p.name] * np.dtype(p.dtype).itemsize
    dtype = _ply_record_dtype(element, order, first)
    if offset + dtype.itemsize * n_records <= len(data):
        records = np.frombuffer(data, dtype, n_records, offset)
        if all(bool((records[p.name + "__count"] == first[p.name]).all()) for p in lists):
            return {p.name: records[p.name] for p in element.properties}, offset + dtype.itemsize * n_records
    if not lists:
        raise truncated

    # Lists of different lengths: walk the records once for their offsets and list lengths,
    # then gather the records of each distinct layout with array indexing.
    plan = []
    for p in element.properties:
        if p.count_dtype is None:
            plan.append((None, np.dtype(p.dtype).itemsize, 0))
        else:
            reader = struct.Struct(order + _STRUCT_CODES[p.count_dtype])
            plan.append((reader, reader.size, np.dtype(p.dtype).itemsize))
    starts = [0] * n_records
    lengths_flat = []
    position = offset
    try:
        for record in range(n_records):
            starts[record] = position
            for reader, size, item_size in plan:
                if reader is None:
                    position += size
                else:
                    length = reader.unpack_from(data, position)[0]
                    lengths_flat.append(length)
                    position += size + length * item_size
    except struct.error:
        raise truncated from None
    if position > len(data):
        raise truncated
    record_starts = np.asarray(starts, dtype=np.int64)
    lengths = np.asarray(lengths_flat, dtype=np.int64).reshape(n_records, len(lists))
    layouts, layout_of_record = np.unique(lengths, axis=0, return_inverse=True)
    layout_of_record = layout_of_record.reshape(-1)
    raw = np.frombuffer(data, np.uint8)
    list_offsets = [np.cumsum(lengths[:, j]) - lengths[:, j] for j in range(len(lists))]
    columns: dict[str, np.ndarray] = {}
    for p in element.properties:
        if p.count_dtype is None:
            columns[p.name] = np.empty(n_records, order + p.dtype)
    flats = [np.empty(int(lengths[:, j].sum()), order + p.dtype) for j, p in enumerate(lists)]
    for layout_index, layout in enumerate(layouts):
        chosen = np.flatnonzero(layout_of_record == layout_index)
        layout_dtype = _ply_record_dtype(element, order, {p.name: int(n) for p, n in zip(lists, layout)})
        gathered = raw[record_starts[chosen, None] + np.arange(layout_dtype.itemsize)]
        group = np.ascontiguousarray(gathered).view(layout_dtype).reshape(-1)
        for p in element.properties:
            if p.count_dtype is None:
                columns[p.name][chosen] = group[p.name]
        for j, p in enumerate(lists):
            n = int(layout[j])
            flats[j][list_offsets[j][chosen, None] + np.arange(n)] = group[p.name].reshape(chosen.size, n)
    result: dict[str, _Column] = dict(columns)
    for j, p in enumerate(lists):
        result[p.name] = (flats[j], lengths[:, j])
    return result, position


def _count_tokens(text: bytes) -> int:
    chars = np.frombuffer(text, np.uint8)
    space = chars <= 32
    return int((~space[:1]).sum() + (~space[1:] & space[:-1]).sum()) if chars.size else 0


def _read_ascii_elements(data: bytes, elements: list[_PlyElement], path: Path) -> dict[str, dict[str, _Column]]:
    """All elements of an ascii PLY body (every value parsed as float64, then cast)."""
    values = _text_numbers(data, np.float64, _count_tokens(data))
    if values is None:
        raise _ply_error(path, "non-numeric data in the body")
    result: dict[str, dict[str, _Column]] = {}
    position = 0
    for element in elements:
        truncated = _ply_error(path, f"truncated '{element.name}' data")
        parsed: dict[str, _Column] = {}
        if all(p.count_dtype is None for p in element.properties):
            width = len(element.properties)
            end = position + width * element.count
            if end > values.size:
                raise truncated
            table = values[position:end].reshape(element.count, width)
            for column, p in enumerate(element.properties):
                parsed[p.name] = table[:, column].astype(p.dtype)
            position = end
        elif (table := _ascii_uniform_records(values, position, element)) is not None:
            column = 0
            for p in element.properties:
                if p.count_dtype is None:
                    parsed[p.name] = table[:, column].astype(p.dtype)
                    column += 1
                else:
                    length = int(table[0, column]) if table.shape[0] else 0
                    parsed[p.name] = table[:, column + 1 : column + 1 + length].astype(p.dtype)
                    column += 1 + length
            position += table.size
        else:
            # Walk the records for the position of every value, then gather with arrays.
            starts: dict[str, list[int]] = {p.name: [] for p in element.properties}
            lengths: dict[str, list[int]] = {p.name: [] for p in element.properties if p.count_dtype is not None}
            try:
                for _ in range(element.count):
                    for p in element.properties:
                        if p.count_dtype is None:
                            starts[p.name].append(position)
                            position += 1
                        else:
                            length = int(values[position])
                            starts[p.name].append(position + 1)
                            lengths[p.name].append(length)
                            position += 1 + length
            except IndexError:
                raise truncated from None
            if position > values.size:
                raise truncated
            for p in element.properties:
                first = np.asarray(starts[p.name], dtype=np.int64)
                if p.count_dtype is None:
                    parsed[p.name] = values[first].astype(p.dtype)
                    continue
                n = np.asarray(lengths[p.name], dtype=np.int64)
                within = np.arange(int(n.sum())) - np.repeat(np.cumsum(n) - n, n)
                parsed[p.name] = (values[np.repeat(first, n) + within].astype(p.dtype), n)
        result[element.name] = parsed
    return result


def _ascii_uniform_records(values: np.ndarray, position: int, element: _PlyElement) -> np.ndarray | None:
    """The element as a [count, width] table when every list has the first record's length, else None."""
    if element.count == 0:
        return None
    width, count_columns, lengths = 0, [], []
    for p in element.properties:
        if p.count_dtype is None:
            width += 1
            continue
        if position + width >= values.size:
            return None
        length = values[position + width]
        count_columns.append(width)
        lengths.append(length)
        width += 1 + int(length)
    end = position + width * element.count
    if end > values.size:
        return None
    table = values[position:end].reshape(element.count, width)
    if not all(bool((table[:, c] == n).all()) for c, n in zip(count_columns, lengths)):
        return None
    return table


def _ragged(values: _Column) -> tuple[np.ndarray, np.ndarray]:
    """Flat values and per-record lengths of a list property."""
    if isinstance(values, tuple):
        return values
    if values.shape[0] == 0:
        return values.reshape(-1), np.zeros(0, np.int64)
    rows = values.reshape(values.shape[0], -1)  # [count, n]
    return rows.reshape(-1), np.full(rows.shape[0], rows.shape[1], np.int64)


def _color_channel(values: np.ndarray) -> np.ndarray:
    if values.dtype == np.uint8:
        return values / 255.0
    if values.dtype == np.uint16:
        return values / 65535.0
    return values.astype(np.float64)


def read_ply(path: PathLike) -> Mesh:
    """Read a PLY mesh (ascii, binary little or big endian), keeping vertex count and order.

    Args:
        path: the .ply file.

    Returns:
        The :class:`Mesh`. Polygons other than triangles are fan-triangulated and kept
        in ``polygons``; per-face ``texcoord`` lists give ``uvs`` (distinct corner UVs in
        order of first use) and ``face_uvs``; per-vertex UVs give ``face_uvs == faces``.

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: the file is empty or not a PLY mesh (message starts "not a valid PLY").
    """
    path = Path(path)
    data = _read_bytes(path, "PLY")
    fmt, elements, body_start = _parse_ply_header(data, path)
    if fmt == "ascii":
        parsed = _read_ascii_elements(data[body_start:], elements, path)
    else:
        order = "<" if fmt == "binary_little_endian" else ">"
        parsed = {}
        position = body_start
        for element in elements:
            parsed[element.name], position = _read_binary_element(data, position, element, order, path)
            if element.name in ("vertex", "face") and {"vertex", "face"} <= parsed.keys():
                break

    if "vertex" not in parsed:
        raise _ply_error(path, "no 'vertex' element")
    vertex = parsed["vertex"]
    if not {"x", "y", "z"} <= vertex.keys():
        raise _ply_error(path, "the vertex element lacks x, y, z")
    vertices = np.stack([np.asarray(vertex[c], dtype=np.float64) for c in "xyz"], axis=1).astype(np.float32)
    V = vertices.shape[0]
    colors = normals = None
    if {"red", "green", "blue"} <= vertex.keys():
        colors = np.stack([_color_channel(np.asarray(vertex[c])) for c in ("red", "green", "blue")], axis=1)
        colors = colors.astype(np.float32)
    if {"nx", "ny", "nz"} <= vertex.keys():
        normals = np.stack([np.asarray(vertex[c], dtype=np.float64) for c in ("nx", "ny", "nz")], axis=1)
        normals = normals.astype(np.float32)
    vertex_uvs = None
    for u_name, v_name in (("s", "t"), ("u", "v"), ("texture_u", "texture_v"), ("texture_s", "texture_t")):
        if {u_name, v_name} <= vertex.keys():
            vertex_uvs = np.stack([np.asarray(vertex[u_name]), np.asarray(vertex[v_name])], axis=1).astype(np.float32)
            break

    face = parsed.get("face", {})
    index_name = next((n for n in ("vertex_indices", "vertex_index") if n in face), None)
    if face and index_name is None:
        raise _ply_error(path, "the face element has no 'vertex_indices' list")
    if index_name is not None:
        corner_v, sizes = _ragged(face[index_name])
        corner_v = corner_v.astype(np.int64)
    else:
        corner_v, sizes = np.zeros(0, np.int64), np.zeros(0, np.int64)
    if sizes.size and int(sizes.min()) < 3:
        raise _ply_error(path, "a face has fewer than 3 vertices")
    if corner_v.size and (int(corner_v.min()) < 0 or int(corner_v.max()) >= V):
        raise _ply_error(path, f"a face refers to a missing vertex (valid 0..{V - 1})")

    uvs = corner_t = None
    if "texcoord" in face:
        flat, lengths = _ragged(face["texcoord"])
        if not np.array_equal(lengths, 2 * sizes):
            raise _ply_error(path, "face texcoord lists must hold 2 values per corner")
        corner_uvs = flat.reshape(-1, 2).astype(np.float32)
        if "texcoord_index" in face:  # written by write_ply: the exact uv indices
            corner_t, lengths = _ragged(face["texcoord_index"])
            corner_t = corner_t.astype(np.int64)
            if not np.array_equal(lengths, sizes) or (corner_t.size and int(corner_t.min()) < 0):
                raise _ply_error(path, "face texcoord_index lists must hold one index >= 0 per corner")
            uvs = np.zeros((int(corner_t.max()) + 1 if corner_t.size else 0, 2), np.float32)
            uvs[corner_t] = corner_uvs
        else:
            uvs, corner_t = _corner_uvs_to_indexed(corner_uvs)
    elif vertex_uvs is not None:
        uvs, corner_t = vertex_uvs, corner_v

    polygons = Polygons.from_sizes(
        _tensor(corner_v, torch.long),
        _tensor(sizes, torch.long),
        _tensor(corner_t, torch.long) if corner_t is not None else None,
    )
    return Mesh.from_polygons(
        vertices=_tensor(vertices, torch.float32),
        polygons=polygons,
        uvs=_tensor(uvs, torch.float32) if uvs is not None else None,
        vertex_colors=_tensor(colors, torch.float32) if colors is not None else None,
        normals=_tensor(normals, torch.float32) if normals is not None else None,
    )


def write_ply(path: PathLike, mesh: Mesh) -> None:
    """Write a binary little-endian PLY.

    Vertex ``x y z`` float (``nx ny nz`` float with normals, ``red green blue`` uchar with
    colours); faces ``list uchar int vertex_indices`` (polygons when the mesh has them),
    plus ``list uchar float texcoord`` (u, v per corner) and ``list uchar int
    texcoord_index`` when the mesh has UVs (see the module docstring).

    Args:
        path: the .ply file to write (its folder must exist).
        mesh: the mesh.
    """
    V = mesh.num_vertices
    vertex_fields = [("x", "<f4"), ("y", "<f4"), ("z", "<f4")]
    if mesh.normals is not None:
        vertex_fields += [("nx", "<f4"), ("ny", "<f4"), ("nz", "<f4")]
    if mesh.vertex_colors is not None:
        vertex_fields += [("red", "u1"), ("green", "u1"), ("blue", "u1")]
    vertex = np.zeros(V, dtype=np.dtype(vertex_fields))
    positions = _numpy(mesh.vertices)
    for column, name in enumerate("xyz"):
        vertex[name] = positions[:, column]
    if mesh.normals is not None:
        normals = _numpy(mesh.normals)
        for column, name in enumerate(("nx", "ny", "nz")):
            vertex[name] = normals[:, column]
    if mesh.vertex_colors is not None:
        rgb = np.rint(np.clip(_numpy(mesh.vertex_colors).astype(np.float64), 0.0, 1.0) * 255.0).astype(np.uint8)
        for column, name in enumerate(("red", "green", "blue")):
            vertex[name] = rgb[:, column]

    if mesh.polygons is not None:
        corner_v = _numpy(mesh.polygons.vertex_index)
        sizes = _numpy(mesh.polygons.sizes)
        corner_t = _numpy(mesh.polygons.uv_index) if mesh.polygons.uv_index is not None else None
    else:
        corner_v = _numpy(mesh.faces).reshape(-1)
        sizes = np.full(mesh.num_faces, 3, np.int64)
        corner_t = _numpy(mesh.face_uvs).reshape(-1) if mesh.face_uvs is not None else None
    if sizes.size and int(sizes.max()) > 255:
        raise ValueError("cannot write a PLY polygon with more than 255 corners (uchar list length)")
    corner_uv = None
    if corner_t is not None and mesh.uvs is not None:
        corner_uv = _numpy(mesh.uvs)[corner_t].astype(np.float32)
        corner_t = corner_t.astype(np.int32)
    face_bytes = _ply_face_records(corner_v.astype(np.int32), sizes, corner_uv, corner_t)

    header = ["ply", "format binary_little_endian 1.0", "comment written by avatar", f"element vertex {V}"]
    header += [f"property float {name}" for name, _ in vertex_fields[:3]]
    if mesh.normals is not None:
        header += ["property float nx", "property float ny", "property float nz"]
    if mesh.vertex_colors is not None:
        header += ["property uchar red", "property uchar green", "property uchar blue"]
    header += [f"element face {sizes.size}", "property list uchar int vertex_indices"]
    if corner_uv is not None:
        header += ["property list uchar float texcoord", "property list uchar int texcoord_index"]
    header.append("end_header")
    payload = ("\n".join(header) + "\n").encode("ascii") + vertex.tobytes() + face_bytes
    with atomic_write(path, "wb") as handle:
        handle.write(payload)


def _ply_face_records(
    corner_v: np.ndarray, sizes: np.ndarray, corner_uv: np.ndarray | None, corner_t: np.ndarray | None
) -> bytes:
    """Face records ``n, n x int32 [, 2n, 2n x float32, n, n x int32]``, vectorized per polygon size."""
    if sizes.size == 0:
        return b""
    offsets = np.concatenate([[0], np.cumsum(sizes)])
    record_sizes = 1 + 4 * sizes + (2 + 12 * sizes if corner_uv is not None else 0)
    record_starts = np.concatenate([[0], np.cumsum(record_sizes)])
    out = np.zeros(int(record_starts[-1]), np.uint8)
    for n in np.unique(sizes):
        n = int(n)
        polygons = np.flatnonzero(sizes == n)
        fields = [("n", "u1"), ("v", "<i4", (n,))]
        if corner_uv is not None:
            fields += [("m", "u1"), ("t", "<f4", (2 * n,)), ("k", "u1"), ("ti", "<i4", (n,))]
        records = np.zeros(polygons.size, dtype=np.dtype(fields))
        corner_rows = offsets[polygons][:, None] + np.arange(n)  # [P_n, n]
        records["n"] = n
        records["v"] = corner_v[corner_rows]
        if corner_uv is not None:
            records["m"] = 2 * n
            records["t"] = corner_uv[corner_rows].reshape(polygons.size, 2 * n)
            records["k"] = n
            records["ti"] = corner_t[corner_rows]
        raw = records.view(np.uint8).reshape(polygons.size, records.dtype.itemsize)
        target = record_starts[polygons][:, None] + np.arange(records.dtype.itemsize)
        out[target] = raw
    return out.tobytes()


# --------------------------------------------------------------------------------------
# GLB (binary glTF 2.0)
# --------------------------------------------------------------------------------------

_GLB_MAGIC = 0x46546C67  # "glTF"
_CHUNK_JSON = 0x4E4F534A  # "JSON"
_CHUNK_BIN = 0x004E4942  # "BIN\0"
_ARRAY_BUFFER = 34962
_ELEMENT_ARRAY_BUFFER = 34963
_COMPONENT_DTYPES = {5120: "i1", 5121: "u1", 5122: "<i2", 5123: "<u2", 5125: "<u4", 5126: "<f4"}
_TYPE_SIZES = {"SCALAR": 1, "VEC2": 2, "VEC3": 3, "VEC4": 4, "MAT2": 4, "MAT3": 9, "MAT4": 16}
_MAX_EXACT_FLOAT_ID = 2**24  # integers stored as float32 are exact below this


def _glb_error(path: Path, reason: str) -> ValueError:
    return ValueError(f"not a valid GLB: {path}: {reason}")


def _pad4(data: bytes, fill: bytes) -> bytes:
    return data + fill * (-len(data) % 4)


class _GlbBuilder:
    """Accumulates bufferViews and accessors for a single-buffer GLB."""

    def __init__(self) -> None:
        self.binary = bytearray()
        self.buffer_views: list[dict] = []
        self.accessors: list[dict] = []

    def add(
        self, array: np.ndarray, accessor_type: str, component: int, target: int | None, bounds: bool = False
    ) -> int:
        """Append ``array`` [count, ...] as a new bufferView and accessor; returns the accessor index."""
        array = np.ascontiguousarray(array)
        self.binary.extend(b"\0" * (-len(self.binary) % 4))  # 4-byte aligned bufferViews
        view: dict = {"buffer": 0, "byteOffset": len(self.binary), "byteLength": array.nbytes}
        if target is not None:
            view["target"] = target
        self.binary.extend(array.tobytes())
        self.buffer_views.append(view)
        rows = array.reshape(array.shape[0], -1)
        accessor: dict = {
            "bufferView": len(self.buffer_views) - 1,
            "componentType": component,
            "count": int(array.shape[0]),
            "type": accessor_type,
        }
        if bounds:
            accessor["min"] = rows.min(axis=0).astype(np.float64).tolist()
            accessor["max"] = rows.max(axis=0).astype(np.float64).tolist()
        self.accessors.append(accessor)
        return len(self.accessors) - 1


def _split_seams(mesh: Mesh) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """glTF vertices: one per distinct (vertex, uv) corner pair.

    Returns:
        vertex_id [V'] original vertex of each file vertex (the first V are 0..V-1),
        uv_id [V'] uv of each file vertex (0 for vertices no face uses),
        indices [F, 3] triangles over file vertices, and the uv table [U, 2].
    """
    V = mesh.num_vertices
    faces = _numpy(mesh.faces).astype(np.int64)
    uvs = _numpy(mesh.uvs).astype(np.float32)
    face_uvs = _numpy(mesh.face_uvs).astype(np.int64)
    U = max(uvs.shape[0], 1)
    keys = faces.reshape(-1) * U + face_uvs.reshape(-1)
    pairs, inverse = np.unique(keys, return_inverse=True)  # sorted by vertex, then uv
    pair_v, pair_t = pairs // U, pairs % U
    primary = np.ones(pairs.size, dtype=bool)
    primary[1:] = pair_v[1:] != pair_v[:-1]  # the first pair of each vertex keeps the vertex's slot
    slot = np.where(primary, pair_v, V + np.cumsum(~primary) - 1)
    vertex_id = np.concatenate([np.arange(V), pair_v[~primary]])
    uv_id = np.zeros(vertex_id.size, np.int64)
    uv_id[slot] = pair_t
    indices = slot[inverse.reshape(-1)].reshape(faces.shape)
    return vertex_id, uv_id, indices, uvs


def write_glb(path: PathLike, mesh: Mesh) -> None:
    """Write a binary glTF 2.0 file with one mesh and one triangle primitive.

    Attributes: POSITION (float VEC3 with min/max), NORMAL, TEXCOORD_0 (``1 - v``),
    COLOR_0 (float VEC3) when the mesh has them; indices uint32. Where UV seams require
    it, vertices are duplicated in the file and ``_VERTEX_ID``/``_UV_ID`` (float
    scalars) map every file vertex back to the mesh's vertex and uv ids; the primitive's
    ``extras`` record ``vertex_count``/``uv_count`` (see the module docstring).

    Args:
        path: the .glb file to write (its folder must exist).
        mesh: the mesh (``polygons`` are not written: glTF has triangles only).
    """
    V, F = mesh.num_vertices, mesh.num_faces
    if V == 0:
        raise ValueError("cannot write a GLB without vertices (glTF accessors need count >= 1)")
    faces = _numpy(mesh.faces).astype(np.int64)
    vertex_id = np.arange(V)
    uv_id = indices = None
    texcoords = None
    extras: dict = {}
    if mesh.uvs is not None and mesh.face_uvs is not None:
        uvs = _numpy(mesh.uvs).astype(np.float32)
        face_uvs = _numpy(mesh.face_uvs)
        if uvs.shape[0] == V and np.array_equal(face_uvs, faces):  # UVs already per vertex: no split
            texcoords, indices = uvs, faces
        else:
            vertex_id, uv_id, indices, uvs = _split_seams(mesh)
            if max(vertex_id.size, uvs.shape[0]) >= _MAX_EXACT_FLOAT_ID:
                raise ValueError(f"cannot write vertex or uv ids >= 2^24 exactly as glTF float attributes ({path})")
            texcoords = uvs[uv_id] if uvs.shape[0] else np.zeros((vertex_id.size, 2), np.float32)
            extras = {"avatar": {"vertex_count": V, "uv_count": int(uvs.shape[0])}}
        texcoords = np.stack([texcoords[:, 0], 1.0 - texcoords[:, 1]], axis=1).astype(np.float32)
    else:
        indices = faces

    builder = _GlbBuilder()
    positions = _numpy(mesh.vertices).astype(np.float32)[vertex_id]
    attributes = {"POSITION": builder.add(positions, "VEC3", 5126, _ARRAY_BUFFER, bounds=True)}
    if mesh.normals is not None:
        normals = _numpy(mesh.normals).astype(np.float32)[vertex_id]
        attributes["NORMAL"] = builder.add(normals, "VEC3", 5126, _ARRAY_BUFFER)
    if texcoords is not None:
        attributes["TEXCOORD_0"] = builder.add(texcoords, "VEC2", 5126, _ARRAY_BUFFER)
    if mesh.vertex_colors is not None:
        colors = _numpy(mesh.vertex_colors).astype(np.float32)[vertex_id]
        attributes["COLOR_0"] = builder.add(colors, "VEC3", 5126, _ARRAY_BUFFER)
    if uv_id is not None:
        attributes["_VERTEX_ID"] = builder.add(vertex_id.astype(np.float32), "SCALAR", 5126, _ARRAY_BUFFER)
        attributes["_UV_ID"] = builder.add(uv_id.astype(np.float32), "SCALAR", 5126, _ARRAY_BUFFER)
    primitive: dict = {"attributes": attributes, "mode": 4 if F else 0}
    if F:
        flat_indices = indices.astype(np.uint32).reshape(-1)
        primitive["indices"] = builder.add(flat_indices, "SCALAR", 5125, _ELEMENT_ARRAY_BUFFER)
    if extras:
        primitive["extras"] = extras

    document, binary = _single_mesh_document(builder, primitive)
    with atomic_write(path, "wb") as handle:
        handle.write(_pack_glb(document, binary))


def _single_mesh_document(
    builder: "_GlbBuilder", primitive: dict, extensions_used: list[str] | None = None
) -> tuple[dict, bytes]:
    """A glTF document with one scene, one node and one mesh of one primitive, and its buffer."""
    binary = _pad4(bytes(builder.binary), b"\0")
    document = {"asset": {"version": "2.0", "generator": "avatar"}}
    if extensions_used:
        document["extensionsUsed"] = list(extensions_used)
    document.update({
        "scene": 0,
        "scenes": [{"nodes": [0]}],
        "nodes": [{"mesh": 0}],
        "meshes": [{"primitives": [primitive]}],
        "buffers": [{"byteLength": len(binary)}],
        "bufferViews": builder.buffer_views,
        "accessors": builder.accessors,
    })
    return document, binary


def _pack_glb(document: dict, binary: bytes) -> bytes:
    """The GLB container: header, JSON chunk (space-padded), BIN chunk (4-byte aligned)."""
    json_chunk = _pad4(json.dumps(document, separators=(",", ":")).encode("utf-8"), b" ")
    total = 12 + 8 + len(json_chunk) + 8 + len(binary)
    return b"".join(
        [
            struct.pack("<III", _GLB_MAGIC, 2, total),
            struct.pack("<II", len(json_chunk), _CHUNK_JSON),
            json_chunk,
            struct.pack("<II", len(binary), _CHUNK_BIN),
            binary,
        ]
    )


def _parse_glb(data: bytes, path: Path) -> tuple[dict, bytes]:
    if len(data) < 20:
        raise _glb_error(path, "shorter than a GLB header")
    magic, version, length = struct.unpack_from("<III", data, 0)
    if magic != _GLB_MAGIC:
        raise _glb_error(path, "missing the 'glTF' magic (only binary .glb is read)")
    if version != 2:
        raise _glb_error(path, f"glTF container version {version}; only 2 is supported")
    if length > len(data):
        raise _glb_error(path, f"truncated: header says {length} bytes, file has {len(data)}")
    json_length, json_type = struct.unpack_from("<II", data, 12)
    if json_type != _CHUNK_JSON or 20 + json_length > length:
        raise _glb_error(path, "the first chunk is not a complete JSON chunk")
    try:
        document = json.loads(data[20 : 20 + json_length].decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise _glb_error(path, f"bad JSON chunk ({error})") from None
    if not isinstance(document, dict):
        raise _glb_error(path, "the JSON chunk is not an object")
    binary = b""
    position = 20 + json_length
    if position + 8 <= length:
        bin_length, bin_type = struct.unpack_from("<II", data, position)
        if bin_type == _CHUNK_BIN:
            if position + 8 + bin_length > length:
                raise _glb_error(path, "truncated BIN chunk")
            binary = data[position + 8 : position + 8 + bin_length]
    return document, binary


def _read_accessor(document: dict, binary: bytes, index: int, path: Path) -> np.ndarray:
    """Accessor ``index`` as an array [count, components] (normalized integers scaled to 0..1)."""
    try:
        accessor = document["accessors"][index]
        if "sparse" in accessor:
            raise _glb_error(path, "sparse accessors are not supported")
        dtype = np.dtype(_COMPONENT_DTYPES[accessor["componentType"]])
        components = _TYPE_SIZES[accessor["type"]]
        count = int(accessor["count"])
        if "bufferView" not in accessor:
            return np.zeros((count, components), np.float32)
        view = document["bufferViews"][accessor["bufferView"]]
        buffer = document["buffers"][view.get("buffer", 0)]
    except (KeyError, IndexError, TypeError):
        raise _glb_error(path, f"bad accessor {index}") from None
    if view.get("buffer", 0) != 0 or "uri" in buffer:
        raise _glb_error(path, "only the embedded BIN chunk is supported as a buffer")
    start = int(view.get("byteOffset", 0)) + int(accessor.get("byteOffset", 0))
    element = dtype.itemsize * components
    stride = int(view.get("byteStride", 0)) or element
    end = start + stride * (count - 1) + element if count else start
    if end > len(binary) or end > int(view.get("byteOffset", 0)) + int(view["byteLength"]):
        raise _glb_error(path, f"accessor {index} reads past its bufferView")
    if stride == element:
        array = np.frombuffer(binary, dtype, count * components, start).reshape(count, components)
    else:
        array = np.lib.stride_tricks.as_strided(
            np.frombuffer(binary, np.uint8, end - start, start).view(np.uint8),
            shape=(count, element),
            strides=(stride, 1),
        )
        array = np.ascontiguousarray(array).view(dtype).reshape(count, components)
    if accessor.get("normalized"):
        array = array.astype(np.float64) / float(np.iinfo(dtype).max)
    return array


def read_glb(path: PathLike) -> Mesh:
    """Read the first mesh of a binary glTF 2.0 file.

    Triangle primitives (mode 4) of the first mesh are concatenated. When the file holds
    ``_VERTEX_ID``/``_UV_ID`` attributes (as :func:`write_glb` writes them for UV seams),
    the original vertices, faces, uvs and face_uvs are restored; otherwise the file's
    vertices are the mesh's, and per-vertex TEXCOORD_0 gives ``face_uvs == faces``.
    ``v`` is flipped back: ``v_obj = 1 - v_gltf``. Node transforms are not applied.

    Args:
        path: the .glb file.

    Returns:
        The :class:`Mesh`.

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: the file is empty or not a GLB with a mesh (message starts "not a valid GLB").
    """
    path = Path(path)
    data = _read_bytes(path, "GLB")
    document, binary = _parse_glb(data, path)

    def accessor(index: int) -> np.ndarray:
        return _read_accessor(document, binary, index, path)

    try:
        if str(document.get("asset", {}).get("version", "")).split(".")[0] != "2":
            raise _glb_error(path, "asset.version is not 2.x")
        meshes = document.get("meshes") or []
        if not meshes or not meshes[0].get("primitives"):
            raise _glb_error(path, "no mesh with primitives")
        pieces = [_read_primitive(p, accessor, path) for p in meshes[0]["primitives"]]
    except (AttributeError, KeyError, IndexError, TypeError) as error:  # JSON of the wrong shape
        raise _glb_error(path, f"malformed glTF JSON ({type(error).__name__}: {error})") from None
    return pieces[0] if len(pieces) == 1 else _concatenate(pieces)


def _ids(values: np.ndarray, name: str, path: Path) -> np.ndarray:
    """Integer ids stored as float32 scalars."""
    ids = values[:, 0]
    if not np.isfinite(ids).all() or (ids.size and (ids.min() < 0 or ids.max() >= _MAX_EXACT_FLOAT_ID)):
        raise _glb_error(path, f"{name} holds values that are not vertex ids")
    return np.rint(ids).astype(np.int64)


def _read_primitive(primitive: dict, accessor: Callable[[int], np.ndarray], path: Path) -> Mesh:
    mode = primitive.get("mode", 4)
    if mode not in (0, 4):
        raise _glb_error(path, f"primitive mode {mode} is not supported (triangles only)")
    attributes = primitive.get("attributes", {})
    if "POSITION" not in attributes:
        raise _glb_error(path, "a primitive has no POSITION")
    positions = accessor(attributes["POSITION"]).astype(np.float32)
    n = positions.shape[0]
    if mode == 0:
        indices = np.zeros((0, 3), np.int64)
    elif "indices" in primitive:
        indices = accessor(primitive["indices"]).astype(np.int64).reshape(-1)
        if indices.size % 3:
            raise _glb_error(path, "the index count is not a multiple of 3")
        indices = indices.reshape(-1, 3)
    else:
        if n % 3:
            raise _glb_error(path, "the vertex count of a non-indexed primitive is not a multiple of 3")
        indices = np.arange(n, dtype=np.int64).reshape(-1, 3)
    if indices.size and int(indices.max()) >= n:
        raise _glb_error(path, "an index refers to a missing vertex")

    def optional(name: str, columns: int) -> np.ndarray | None:
        return accessor(attributes[name])[:, :columns].astype(np.float32) if name in attributes else None

    normals, colors, texcoords = optional("NORMAL", 3), optional("COLOR_0", 3), optional("TEXCOORD_0", 2)
    if texcoords is not None:
        texcoords = np.stack([texcoords[:, 0], 1.0 - texcoords[:, 1]], axis=1).astype(np.float32)

    if "_VERTEX_ID" not in attributes:
        faces = _tensor(indices, torch.long)
        return Mesh(
            vertices=_tensor(positions, torch.float32),
            faces=faces,
            uvs=_tensor(texcoords, torch.float32) if texcoords is not None else None,
            face_uvs=faces.clone() if texcoords is not None else None,
            vertex_colors=_tensor(colors, torch.float32) if colors is not None else None,
            normals=_tensor(normals, torch.float32) if normals is not None else None,
        )

    # Seams were split by write_glb: map file vertices back to the original ids.
    vertex_id = _ids(accessor(attributes["_VERTEX_ID"]), "_VERTEX_ID", path)
    info = primitive.get("extras", {}).get("avatar", {})
    V = int(info.get("vertex_count", int(vertex_id.max()) + 1 if vertex_id.size else 0))
    if vertex_id.size and (int(vertex_id.min()) < 0 or int(vertex_id.max()) >= V):
        raise _glb_error(path, "_VERTEX_ID out of range")

    def gather(values: np.ndarray | None) -> np.ndarray | None:
        if values is None:
            return None
        out = np.zeros((V, values.shape[1]), np.float32)
        out[vertex_id] = values
        return out

    uvs = face_uvs = None
    if texcoords is not None and "_UV_ID" in attributes:
        uv_id = _ids(accessor(attributes["_UV_ID"]), "_UV_ID", path)
        U = int(info.get("uv_count", int(uv_id[indices].max()) + 1 if indices.size else 0))
        face_uvs = uv_id[indices]
        if face_uvs.size and (int(face_uvs.min()) < 0 or int(face_uvs.max()) >= U):
            raise _glb_error(path, "_UV_ID out of range")
        uvs = np.zeros((U, 2), np.float32)
        uvs[face_uvs.reshape(-1)] = texcoords[indices.reshape(-1)]  # only corners: unused file vertices ignored
    return Mesh(
        vertices=_tensor(gather(positions), torch.float32),
        faces=_tensor(vertex_id[indices], torch.long),
        uvs=_tensor(uvs, torch.float32) if uvs is not None else None,
        face_uvs=_tensor(face_uvs, torch.long) if face_uvs is not None else None,
        vertex_colors=_tensor(gather(colors), torch.float32) if colors is not None else None,
        normals=_tensor(gather(normals), torch.float32) if normals is not None else None,
    )


def _concatenate(meshes: list[Mesh]) -> Mesh:
    """Meshes of several primitives as one (attributes kept only when every piece has them)."""
    vertex_offset = uv_offset = 0
    faces, face_uvs = [], []
    for mesh in meshes:
        faces.append(mesh.faces + vertex_offset)
        if mesh.face_uvs is not None and mesh.uvs is not None:
            face_uvs.append(mesh.face_uvs + uv_offset)
            uv_offset += mesh.uvs.shape[0]
        vertex_offset += mesh.num_vertices

    def all_or_none(name: str) -> Tensor | None:
        values = [getattr(m, name) for m in meshes]
        return torch.cat(values) if all(v is not None for v in values) else None

    uvs = all_or_none("uvs")
    return Mesh(
        vertices=torch.cat([m.vertices for m in meshes]),
        faces=torch.cat(faces),
        uvs=uvs,
        face_uvs=torch.cat(face_uvs) if uvs is not None else None,
        vertex_colors=all_or_none("vertex_colors"),
        normals=all_or_none("normals"),
    )


# --------------------------------------------------------------------------------------
# Dispatch
# --------------------------------------------------------------------------------------

_READERS: dict[str, Callable[[PathLike], Mesh]] = {".obj": read_obj, ".ply": read_ply, ".glb": read_glb}
_WRITERS: dict[str, Callable[[PathLike, Mesh], None]] = {".obj": write_obj, ".ply": write_ply, ".glb": write_glb}


def _suffix(path: PathLike, table: dict) -> str:
    suffix = Path(path).suffix.lower()
    if suffix not in table:
        supported = ", ".join(sorted(table))
        raise ValueError(f"unknown mesh file suffix {suffix!r} of {path}; supported: {supported}")
    return suffix


def read_mesh(path: PathLike) -> Mesh:
    """Read an OBJ, PLY or GLB mesh, chosen by the file suffix (case-insensitive).

    Args:
        path: a .obj, .ply or .glb file.

    Raises:
        ValueError: for another suffix, or a file that is not valid.
        FileNotFoundError: the file does not exist.
    """
    return _READERS[_suffix(path, _READERS)](path)


def write_mesh(path: PathLike, mesh: Mesh) -> None:
    """Write an OBJ, PLY or GLB mesh, chosen by the file suffix (case-insensitive).

    Args:
        path: a .obj, .ply or .glb path in an existing folder.
        mesh: the mesh.

    Raises:
        ValueError: for another suffix.
        FileNotFoundError: the folder does not exist (nothing is written).
    """
    _WRITERS[_suffix(path, _WRITERS)](path, mesh)
