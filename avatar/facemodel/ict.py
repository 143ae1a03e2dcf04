"""ICT-FaceKit ("ICT Face Model Light", MIT licence) loader.

Reads the ``FaceXModel`` folder exactly as a clone of the public ICT-FaceKit
repository has it: ``generic_neutral_mesh.obj``, ``identity000..099.obj``, the
expression OBJs with ARKit-style names (``eyeBlink_L``...) and ``vertex_indices.json``.
Only the ``v`` lines give topology: vertices are never split at UV seams (UVs are kept
per face corner), so vertex ``i`` of the model is line ``i`` of every OBJ.

The first read compiles the folder into one ``.npz`` file in the user's cache
directory (keyed by the folder's content), later loads read that file.

Expression basis: the 52 ARKit names in ARKit order, then ICT's extra shapes
(``cheekRaiser_L/R``, ``PupilDilate_L/R``) under their own names. ARKit has single
``browInnerUp`` and ``cheekPuff`` shapes where ICT has _L/_R halves: those are summed.
ICT has no tongue shape: ``tongueOut`` is an all-zero shape (documented, so weights
for it are accepted and do nothing).

Units: the OBJs are in centimetres; the model is converted to metres.
Identity modes: ``identityNNN.obj`` is the neutral head plus mode NNN at one standard
deviation, so identity coefficients are in standard deviations.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np
import torch

from ..paths import atomic_path, cache_dir as default_cache_dir, model_dir
from ..progress import progress
from .arkit import ARKIT_NAMES, from_side_suffix
from .model import FaceModel, LandmarkEmbedding

ICT_ENV = "AVATAR_ICT_DIR"
CACHE_VERSION = 3  # bump when the compiled layout changes
CM_TO_M = 0.01
NUM_IDENTITY = 100
EXTRA_SHAPES = ("cheekRaiser_L", "cheekRaiser_R", "PupilDilate_L", "PupilDilate_R")

# Vertex ranges of the ICT geometry parts (ICT-FaceKit README), [start, stop).
PARTS = {
    "face": (0, 9409),
    "head_and_neck": (9409, 11248),
    "mouth_socket": (11248, 13294),
    "eye_socket_left": (13294, 13678),
    "eye_socket_right": (13678, 14062),
    "gums_and_tongue": (14062, 17039),
    "teeth": (17039, 21451),
    "eyeball_left": (21451, 23021),
    "eyeball_right": (23021, 24591),
    "lacrimal_fluid": (24591, 24999),
    "eye_blend": (24999, 25047),
    "eye_occlusion": (25047, 25351),
    "eyelashes": (25351, 26719),
}


class ICTModelError(ValueError):
    """The ICT folder is missing files or they are corrupt."""


# --------------------------------------------------------------------------- discovery
def find_ict_dir(path: str | os.PathLike | None = None) -> Path:
    """Locate the ``FaceXModel`` folder.

    Order: an explicit ``path`` (the folder itself, or an ICT-FaceKit clone containing
    it), then ``$AVATAR_ICT_DIR``, then ``<model dir>/ict-facekit`` and
    ``<model dir>/ICT-FaceKit`` (see :func:`avatar.paths.model_dir`).
    """
    candidates: list[Path] = []
    if path is not None:
        candidates.append(Path(path))
    elif os.environ.get(ICT_ENV):
        candidates.append(Path(os.environ[ICT_ENV]))
    else:
        for name in ("ict-facekit", "ICT-FaceKit", "FaceXModel"):
            candidates.append(model_dir() / name)
    for c in candidates:
        for folder in (c, c / "FaceXModel"):
            if (folder / "generic_neutral_mesh.obj").is_file():
                return folder
    where = ", ".join(str(c) for c in candidates)
    raise FileNotFoundError(
        f"ICT-FaceKit model not found (looked in {where}). Clone https://github.com/ICT-VGL/ICT-FaceKit "
        f"and pass its FaceXModel folder, set ${ICT_ENV}, or put it in {model_dir() / 'ict-facekit'}"
    )


def _fingerprint(folder: Path) -> str:
    """A content key for the folder: names, sizes and the first/last 64 KiB of every file."""
    h = hashlib.sha256(f"ict-v{CACHE_VERSION}".encode())
    for f in sorted(folder.iterdir()):
        if f.suffix not in (".obj", ".json"):
            continue
        size = f.stat().st_size
        h.update(f"{f.name}:{size}".encode())
        with open(f, "rb") as handle:
            h.update(handle.read(65536))
            if size > 65536:
                handle.seek(max(size - 65536, 65536))
                h.update(handle.read())
    return h.hexdigest()[:20]


# --------------------------------------------------------------------------- parsing
def _read_obj_vertices(path: Path) -> np.ndarray:  # [V, 3] float64
    """The ``v`` lines of an OBJ, in order (fast path for the basis files)."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ICTModelError(f"cannot read {path}: {exc}") from exc
    # The v lines come first in ICT's files: parse only up to the first uv/face line
    # when no vertex line follows it (4x faster than splitting the whole file).
    cut = min((i for i in (data.find(b"\nvt "), data.find(b"\nf ")) if i >= 0), default=len(data))
    if data.find(b"\nv ", cut) >= 0:
        cut = len(data)
    rows = [line[2:] for line in data[:cut].split(b"\n") if line.startswith(b"v ")]
    if not rows:
        raise ICTModelError(f"{path} has no vertices: the ICT folder is incomplete or corrupt; clone it again")
    try:
        values = np.array(b" ".join(rows).split(), dtype=np.float64)
        return values.reshape(len(rows), 3)
    except ValueError as exc:
        raise ICTModelError(f"{path} has malformed vertex lines ({exc}); clone the ICT folder again") from exc


def _read_obj_topology(path: Path):
    """Faces (as polygons split into triangles) with their UV indices, and the UVs."""
    from ..io.mesh import read_obj

    mesh = read_obj(path)
    return mesh


def _vertex_embedding(faces: np.ndarray, vertex_ids: np.ndarray, name: str) -> LandmarkEmbedding:
    from .landmarks import vertex_embedding

    return vertex_embedding(torch.from_numpy(faces), torch.from_numpy(vertex_ids), name)


def compile_ict(folder: Path) -> dict[str, np.ndarray]:
    """Read the OBJ folder into arrays (metres); the slow path behind :func:`load_ict`."""
    index_file = folder / "vertex_indices.json"
    try:
        indices = json.loads(index_file.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ICTModelError(f"cannot read {index_file}: {exc}; the ICT folder is incomplete") from exc

    mesh = _read_obj_topology(folder / "generic_neutral_mesh.obj")
    neutral = _read_obj_vertices(folder / "generic_neutral_mesh.obj")
    V = neutral.shape[0]
    if mesh.vertices.shape[0] != V:
        raise ICTModelError(f"neutral mesh topology has {mesh.vertices.shape[0]} vertices, v lines {V}")

    ict_names = list(indices["expressions"]) + [n for n in EXTRA_SHAPES if n not in indices["expressions"]]
    files = [f"identity{i:03d}" for i in range(NUM_IDENTITY)] + ict_names
    deltas: dict[str, np.ndarray] = {}
    with progress(len(files), "compiling ICT-FaceKit") as bar:
        for name in files:
            path = folder / f"{name}.obj"
            if not path.is_file():
                raise ICTModelError(f"{path} is missing: the ICT folder is incomplete; clone it again")
            verts = _read_obj_vertices(path)
            if verts.shape != neutral.shape:
                raise ICTModelError(f"{path} has {verts.shape[0]} vertices; the neutral mesh has {V}")
            deltas[name] = ((verts - neutral) * CM_TO_M).astype(np.float32)
            bar.update(1)

    identity = np.stack([deltas[f"identity{i:03d}"] for i in range(NUM_IDENTITY)], axis=-1)  # [V,3,S]
    zero = np.zeros((V, 3), np.float32)
    expression = []
    for name in ARKIT_NAMES:
        if name == "browInnerUp":
            expression.append(deltas["browInnerUp_L"] + deltas["browInnerUp_R"])
        elif name == "cheekPuff":
            expression.append(deltas["cheekPuff_L"] + deltas["cheekPuff_R"])
        elif name == "tongueOut":
            expression.append(zero)  # ICT Light has no tongue shape.
        else:
            ict = {from_side_suffix(n): n for n in ict_names}[name]
            expression.append(deltas[ict])
    names = list(ARKIT_NAMES) + list(EXTRA_SHAPES)
    expression += [deltas[n] for n in EXTRA_SHAPES]
    expression = np.stack(expression, axis=-1)  # [V,3,E]

    template = (neutral * CM_TO_M).astype(np.float32)
    faces = mesh.faces.numpy().astype(np.int64)

    # Skull mask: ICT's "rigid" vertices that no expression moves (they include teeth
    # and jaw parts that jawOpen moves), i.e. max displacement under 0.1 mm at weight 1.
    moved = np.linalg.norm(expression, axis=1).max(axis=1)  # [V]
    rigid = np.zeros(V, bool)
    rigid[np.asarray(indices["idx_to_rigid_verts"])] = True
    rigid &= moved < 1e-4

    regions = _regions(template, faces, np.asarray(indices["idx_to_landmark_verts"]))
    out = dict(
        template=template, faces=faces, identity_basis=identity, expression_basis=expression,
        expression_names=np.array(names), rigid_mask=rigid,
        ibug68_vertices=np.asarray(indices["idx_to_landmark_verts"], np.int64),
        **{f"region_{k}": v for k, v in regions.items()},
    )
    if mesh.uvs is not None:
        out["uvs"] = mesh.uvs.numpy().astype(np.float32)
        out["face_uvs"] = mesh.face_uvs.numpy().astype(np.int64)
    return out


def _regions(template: np.ndarray, faces: np.ndarray, ibug68: np.ndarray) -> dict[str, np.ndarray]:
    """Region masks from ICT's part ranges and its landmark vertices (documented rules).

    - face: the "full face area" part.
    - lips: face vertices inside the outer-lip landmark contour (iBUG 48-59) seen from
      the front, grown by 3 mm, and in front of the mouth corners' depth minus 1 cm.
    - eyes: eyeballs, lacrimal fluid, eye blend/occlusion meshes and eye sockets.
    - neck / scalp: the head-and-neck part split at the height of the chin (iBUG 8):
      below it and behind the jaw corners is neck, the rest scalp.
    """
    V = template.shape[0]

    def part(name):
        m = np.zeros(V, bool)
        a, b = PARTS[name]
        m[a:b] = True
        return m

    face = part("face")
    lip_poly = template[ibug68[48:60], :2]
    lips = face & _inside_grown(template[:, :2], lip_poly, 0.003)
    lips &= template[:, 2] > template[ibug68[[48, 54]], 2].mean() - 0.01
    eyes = np.zeros(V, bool)
    for name in ("eyeball_left", "eyeball_right", "lacrimal_fluid", "eye_blend", "eye_occlusion",
                 "eye_socket_left", "eye_socket_right"):
        eyes |= part(name)
    head = part("head_and_neck")
    chin_y = template[ibug68[8], 1]
    neck = head & (template[:, 1] < chin_y)
    scalp = head & ~neck
    return dict(face=face, lips=lips, eyes=eyes, scalp=scalp, neck=neck)


def _inside_grown(points: np.ndarray, polygon: np.ndarray, grow: float) -> np.ndarray:
    """Points [N,2] inside a polygon [P,2] or within ``grow`` of its edges (even-odd rule)."""
    x, y = points[:, 0:1], points[:, 1:2]
    a, b = polygon, np.roll(polygon, -1, axis=0)
    crosses = ((a[:, 1] > y) != (b[:, 1] > y)) & (
        x < (b[:, 0] - a[:, 0]) * (y - a[:, 1]) / (b[:, 1] - a[:, 1] + 1e-12) + a[:, 0]
    )
    inside = crosses.sum(1) % 2 == 1
    ab = b - a
    t = np.clip(((points[:, None] - a) * ab).sum(-1) / ((ab * ab).sum(-1) + 1e-12), 0, 1)
    dist = np.linalg.norm(points[:, None] - (a + t[..., None] * ab), axis=-1).min(1)
    return inside | (dist < grow)


# --------------------------------------------------------------------------- loading
def load_ict(path: str | os.PathLike | None = None, cache_dir: str | os.PathLike | None = None) -> FaceModel:
    """Load ICT-FaceKit, compiling it to the cache on first use.

    Args:
        path: the ``FaceXModel`` folder or a clone containing it (see :func:`find_ict_dir`).
        cache_dir: where compiled models are kept (default: :func:`avatar.paths.cache_dir`).
    """
    folder = find_ict_dir(path)
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    cache.mkdir(parents=True, exist_ok=True)
    cache_file = cache / f"ict-{_fingerprint(folder)}.npz"
    arrays = None
    if cache_file.exists():
        try:
            with np.load(cache_file, allow_pickle=False) as data:
                arrays = {k: data[k] for k in data.files}
        except (OSError, ValueError):
            arrays = None  # a damaged cache is rebuilt
    if arrays is None:
        arrays = compile_ict(folder)
        arrays.update(_derived_landmarks(arrays))
        with atomic_path(cache_file) as tmp:
            np.savez(tmp, **arrays)
    return _to_model(arrays, source=str(folder))


def _derived_landmarks(arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """MediaPipe-478 embedding registered from the built-in model (cached with the model)."""
    from .landmarks import register_mediapipe_embedding

    faces = arrays["faces"]
    ibug = _vertex_embedding(faces, arrays["ibug68_vertices"], "ibug68")
    # Skin of the face and the eyeballs (irises), not the lashes or occlusion shells.
    mask = arrays["region_face"].copy()
    for part in ("eyeball_left", "eyeball_right"):
        a, b = PARTS[part]
        mask[a:b] = True
    mp = register_mediapipe_embedding(
        torch.from_numpy(arrays["template"]), torch.from_numpy(faces), ibug, surface_mask=torch.from_numpy(mask)
    )
    return {"mediapipe478_face_index": mp.face_index.numpy(), "mediapipe478_bary": mp.bary.numpy()}


def _to_model(arrays: dict[str, np.ndarray], source: str) -> FaceModel:
    t = torch.from_numpy
    faces = t(arrays["faces"])
    landmarks = {"ibug68": _vertex_embedding(arrays["faces"], arrays["ibug68_vertices"], "ibug68")}
    if "mediapipe478_face_index" in arrays:
        landmarks["mediapipe478"] = LandmarkEmbedding(
            t(arrays["mediapipe478_face_index"]), t(arrays["mediapipe478_bary"]), "mediapipe478"
        )
    regions = {k[len("region_"):]: t(v) for k, v in arrays.items() if k.startswith("region_")}
    return FaceModel(
        name="ict",
        template=t(arrays["template"]),
        faces=faces,
        identity_basis=t(arrays["identity_basis"]),
        expression_basis=t(arrays["expression_basis"]),
        expression_names=tuple(str(n) for n in arrays["expression_names"]),
        uvs=t(arrays["uvs"]) if "uvs" in arrays else None,
        face_uvs=t(arrays["face_uvs"]) if "face_uvs" in arrays else None,
        rigid_mask=t(arrays["rigid_mask"]),
        regions=regions,
        landmarks=landmarks,
        source=source,
        licence="MIT (ICT-FaceKit, USC Institute for Creative Technologies)",
    )
