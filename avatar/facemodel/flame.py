"""Loader for the FLAME head model (``generic_model.pkl`` 2017-2020, ``flame2023.pkl``).

FLAME is not redistributable: the engine ships none of it, the user downloads the file
from https://flame.is.tue.mpg.de and points :func:`load_flame` at it (see
:data:`FLAME_LICENCE`). The pickle is read through :mod:`avatar.facemodel.safe_pickle`,
so chumpy is not needed and the file cannot run code.

What a FLAME file holds (a pickled dict; V = 5023, F = 9976, J = 5 in every release):

===============  =============  ================================================
key              shape          meaning
===============  =============  ================================================
``v_template``   [V, 3]         mean head, metres, +y up, +z out of the face
``f``            [F, 3]         triangles
``shapedirs``    [V, 3, 400]    300 identity then 100 expression PCA directions
``posedirs``     [V, 3, 36]     pose correctives for (R - I) of joints 1..4
``J_regressor``  [J, V]         sparse (scipy CSC) joint regressor
``kintree_table``[2, J]         row 0 parents, row 1 joint ids
``weights``      [V, J]         skinning weights
``vt``, ``ft``   [U, 2], [F, 3] optional texture coordinates
===============  =============  ================================================

Joints, in FLAME's order: ``global`` (root, at the base of the neck), ``neck`` (carries
the skull), ``jaw``, ``eye_left``, ``eye_right`` (the subject's sides), as in smplx's
``full_pose = [global_orient, neck_pose, jaw_pose, leye_pose, reye_pose]``.

FLAME's model space already is the engine's: metres, +x toward the subject's left, +y up,
+z out of the face; nothing is rescaled or rotated.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .model import FaceModel, LandmarkEmbedding, Skinning, barycentric_points
from .safe_pickle import load_npy, load_pickle
from .skinning import check_skinning

__all__ = ["FLAME_LICENCE", "FLAME_JOINT_NAMES", "FLAME_NUM_IDENTITY", "load_flame"]

FLAME_LICENCE = (
    "FLAME (Max Planck Institute for Intelligent Systems) is not redistributable: the engine ships none "
    "of it. Register at https://flame.is.tue.mpg.de, accept the licence of the release you download, "
    "and pass the file (generic_model.pkl or flame2023.pkl) to load_flame. Everything computed from it "
    "(meshes, fitted avatars, caches) stays bound by that licence; check it before you share results."
)
"""Licence note shown wherever a FLAME model is used; also stored in ``FaceModel.licence``."""

FLAME_JOINT_NAMES: tuple[str, ...] = ("global", "neck", "jaw", "eye_left", "eye_right")
"""FLAME's five joints, in the order of its ``kintree_table`` and pose vector."""

FLAME_NUM_IDENTITY = 300
"""Identity (shape) components in every FLAME release; the next 100 are expressions."""

_REQUIRED: dict[str, str] = {
    "v_template": "[V, 3] mean head in metres",
    "f": "[F, 3] triangles",
    "shapedirs": "[V, 3, 400] shape then expression directions",
    "posedirs": "[V, 3, 36] pose-corrective directions",
    "J_regressor": "[5, V] sparse joint regressor",
    "kintree_table": "[2, 5] joint parents and ids",
    "weights": "[V, 5] skinning weights",
}
_LAYOUT = (
    "a FLAME model file (generic_model.pkl or flame2023.pkl from https://flame.is.tue.mpg.de) is a pickled "
    "dict with " + ", ".join(f"{k!r} {v}" for k, v in _REQUIRED.items()) + " (optionally 'vt'/'ft' UVs)"
)

# rigid_mask rule: carried by the neck joint alone, and no expression moves it much.
_RIGID_MIN_NECK_WEIGHT = 0.95
_RIGID_MAX_EXPRESSION_MOTION = 0.5e-3  # metres per standard deviation of any one expression component
_RIGID_MAX_RELATIVE_MOTION = 0.05  # ... or this fraction of the largest motion, if larger

# Files that may sit beside the model, read when present.
_DECA_LANDMARKS = "landmark_embedding.npy"
_STATIC_LANDMARKS = "flame_static_embedding.pkl"
_DYNAMIC_LANDMARKS = "flame_dynamic_embedding.npy"
_MASKS = ("FLAME_masks.pkl", os.path.join("FLAME_masks", "FLAME_masks.pkl"))
_MASK_KEYS = {"face": ("face",), "lips": ("lips",), "eyes": ("left_eyeball", "right_eyeball"),
              "scalp": ("scalp",), "neck": ("neck",)}


def load_flame(
    path: str | os.PathLike[str],
    *,
    num_identity: int | None = None,
    dtype: torch.dtype = torch.float32,
) -> FaceModel:
    """Load a FLAME model file into a :class:`FaceModel` (no chumpy, no unsafe unpickling).

    The expression basis is FLAME's: 100 PCA components named ``flame_exp_000`` ..
    ``flame_exp_099``. They are *not* ARKit blend shapes (``FaceModel.arkit`` is False);
    expression coefficients are signed PCA weights, not 0..1 activations. FLAME's
    shape and expression directions are stored multiplied by their standard deviation,
    so both kinds of coefficient are in standard deviations, as the engine expects.

    Beside the model file, when present:

    * landmarks: DECA's ``landmark_embedding.npy`` (its 68-point ``full_lmk`` embedding
      becomes ``ibug68``), else FLAME's ``flame_static_embedding.pkl``. The static
      embedding has the 51 inner iBUG points (17..67: brows, nose, eyes, mouth) and no
      jaw line: it is stored as ``ibug51``, and ``ibug68`` only exists when
      ``flame_dynamic_embedding.npy`` is also there, whose frontal (yaw 0) contour row
      gives the 17 jaw-line points, as FLAME's own layer concatenates them. Without
      any of these files the built-in model is registered onto FLAME by the eye joints
      (approximate); schemes still missing (``mediapipe478`` always) are registered
      through iBUG-68 as for ICT (:func:`avatar.facemodel.landmarks.complete_landmarks`).
    * regions: MPI's ``FLAME_masks.pkl`` (or ``FLAME_masks/FLAME_masks.pkl``) gives
      ``face``, ``lips``, ``eyes`` (both eyeballs), ``scalp``, ``neck``; otherwise the
      approximate rules of :func:`_geometric_regions` are used.

    ``rigid_mask``: vertices whose skinning weight on the ``neck`` joint (the one that
    carries the skull) is at least 0.95 and that no single expression component moves
    by more than 0.5 mm per standard deviation, or 5 % of the largest such motion of any
    vertex if that is more (FLAME 2020's expressions leak a little onto the whole head).

    Args:
        path: the FLAME ``.pkl`` file.
        num_identity: how many of the ``shapedirs`` components are identity; None means
            300 (every FLAME release), which requires the file's 400 components.
        dtype: floating dtype of the model's tensors.

    Returns:
        The FaceModel (``name="flame"``, with ``skinning``; joint names
        :data:`FLAME_JOINT_NAMES`).

    Raises:
        FileNotFoundError: no such file.
        UnsafeModelFileError: the pickle names something a FLAME file never contains.
        ValueError: not a readable FLAME file (corrupt, truncated, missing keys, bad shapes).
    """
    if not dtype.is_floating_point:
        raise ValueError(f"dtype must be a floating dtype; got {dtype}")
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"{path} is a folder; pass the FLAME .pkl file itself (generic_model.pkl or flame2023.pkl)")
    if not path.is_file():
        raise FileNotFoundError(f"no FLAME model at {path}. {FLAME_LICENCE}")
    data = load_pickle(path)
    if not isinstance(data, dict):
        raise ValueError(f"{path} holds a {type(data).__name__}, not a FLAME model: {_LAYOUT}")
    for key in _REQUIRED:
        if key not in data:
            raise ValueError(f"{path} has no {key!r} entry, so it is not a FLAME model: {_LAYOUT}")

    template = _float_array(data, "v_template", path, ndim=2)
    V = template.shape[0]
    if template.shape != (V, 3):
        raise ValueError(f"{path}: 'v_template' must be [V, 3]; got {list(template.shape)}")
    faces = _index_array(data, "f", path, limit=V)
    if faces.ndim != 2 or faces.shape[1] != 3:
        raise ValueError(f"{path}: 'f' must be [F, 3]; got {list(faces.shape)}")
    shapedirs = _float_array(data, "shapedirs", path, ndim=3, lead=(V, 3))
    posedirs = _float_array(data, "posedirs", path, ndim=3, lead=(V, 3))
    weights = _float_array(data, "weights", path, ndim=2, lead=(V,))
    J = weights.shape[1]
    if J != len(FLAME_JOINT_NAMES):
        raise ValueError(f"{path}: 'weights' has {J} joints; FLAME has {len(FLAME_JOINT_NAMES)}")
    regressor = _regressor(data["J_regressor"], path, J, V)
    parents = _parents(data["kintree_table"], path, J)

    K = shapedirs.shape[2]
    S = num_identity if num_identity is not None else FLAME_NUM_IDENTITY
    if num_identity is None and K != FLAME_NUM_IDENTITY + 100:
        raise ValueError(
            f"{path}: 'shapedirs' has {K} components, not FLAME's 300 identity + 100 expression; "
            "pass num_identity= to say how many of them are identity"
        )
    if not 0 < S < K:
        raise ValueError(f"num_identity={S} must be between 1 and {K - 1} for {K} shapedirs components")

    uvs, face_uvs = _uvs(data, path, faces.shape[0])
    landmarks = _landmarks(path.parent, faces)
    joints = regressor @ template  # [J, 3] rest joints
    regions = _mask_regions(path.parent, V)
    geometric = _geometric_regions(template, faces, weights, joints, landmarks)
    regions = {name: regions.get(name, geometric[name]) for name in geometric}
    expression = shapedirs[:, :, S:]
    rigid = _rigid_mask(weights, expression)

    def tensor(a: np.ndarray) -> torch.Tensor:
        return torch.as_tensor(np.ascontiguousarray(a), dtype=dtype)

    skinning = Skinning(
        joint_regressor=tensor(regressor),
        parents=torch.as_tensor(parents, dtype=torch.long),
        weights=tensor(weights),
        pose_basis=tensor(posedirs),
        joint_names=FLAME_JOINT_NAMES,
    )
    check_skinning(skinning, V)
    # Schemes the files beside the model did not give are registered from the built-in
    # model (see complete_landmarks): eyeball centres are FLAME's eye joints.
    from .landmarks import complete_landmarks

    template_t = torch.as_tensor(template, dtype=torch.float64)
    joints = torch.as_tensor(regressor, dtype=torch.float64) @ template_t
    given = {name: LandmarkEmbedding(torch.as_tensor(fi, dtype=torch.long), torch.as_tensor(bary, dtype=torch.float32),
                                     name) for name, (fi, bary) in landmarks.items()}
    # FLAME's surface is skin and eyeballs only (no lash or occlusion shells): all of it
    # may receive landmarks.
    completed = complete_landmarks(template_t, torch.as_tensor(faces, dtype=torch.long), given,
                                   surface_mask=None,
                                   eye_centres=joints[[FLAME_JOINT_NAMES.index("eye_left"),
                                                       FLAME_JOINT_NAMES.index("eye_right")]])
    landmarks = {name: (emb.face_index.numpy(), emb.bary.numpy()) for name, emb in completed.items()}
    return FaceModel(
        name="flame",
        template=tensor(template),
        faces=torch.as_tensor(faces, dtype=torch.long),
        identity_basis=tensor(shapedirs[:, :, :S]),
        expression_basis=tensor(expression),
        expression_names=tuple(f"flame_exp_{i:03d}" for i in range(K - S)),
        uvs=None if uvs is None else tensor(uvs),
        face_uvs=None if face_uvs is None else torch.as_tensor(face_uvs, dtype=torch.long),
        rigid_mask=torch.as_tensor(rigid),
        regions={name: torch.as_tensor(mask) for name, mask in regions.items()},
        landmarks={
            name: LandmarkEmbedding(torch.as_tensor(fi, dtype=torch.long), tensor(bary), name)
            for name, (fi, bary) in landmarks.items()
        },
        skinning=skinning,
        source=str(path),
        licence=FLAME_LICENCE,
        units="metres",
    )


# ------------------------------------------------------------------ array checks
def _float_array(
    data: dict[Any, Any], key: str, path: Path, *, ndim: int, lead: tuple[int, ...] = ()
) -> np.ndarray:
    value = data[key]
    if not isinstance(value, np.ndarray) or value.dtype.kind not in "fiu":
        raise ValueError(f"{path}: {key!r} is a {type(value).__name__}, not a numeric array: {_LAYOUT}")
    if value.ndim != ndim or value.shape[: len(lead)] != lead:
        want = "[" + ", ".join([*map(str, lead), *["*"] * (ndim - len(lead))]) + "]"
        raise ValueError(f"{path}: {key!r} must be {want}; got {list(value.shape)}")
    value = value.astype(np.float64)
    if not np.isfinite(value).all():
        raise ValueError(f"{path}: {key!r} holds NaN or infinite values")
    return value


def _index_array(data: dict[Any, Any], key: str, path: Path, *, limit: int) -> np.ndarray:
    value = data[key]
    if not isinstance(value, np.ndarray) or value.dtype.kind not in "iu":
        raise ValueError(f"{path}: {key!r} is not an integer array: {_LAYOUT}")
    value = value.astype(np.int64)
    if value.size and (value.min() < 0 or value.max() >= limit):
        raise ValueError(f"{path}: {key!r} has indices outside 0..{limit - 1}")
    return value


def _regressor(value: Any, path: Path, J: int, V: int) -> np.ndarray:
    if hasattr(value, "toarray"):  # scipy.sparse, rebuilt by safe_pickle
        value = value.toarray()
    if not isinstance(value, np.ndarray) or value.shape != (J, V) or value.dtype.kind not in "fiu":
        shape = list(getattr(value, "shape", ()))
        raise ValueError(f"{path}: 'J_regressor' must be a [{J}, {V}] matrix; got {type(value).__name__} {shape}")
    value = value.astype(np.float64)
    if not np.isfinite(value).all():
        raise ValueError(f"{path}: 'J_regressor' holds NaN or infinite values")
    return value


def _parents(kintree: Any, path: Path, J: int) -> list[int]:
    """Parent index per joint from ``kintree_table`` (row 0 parent ids, row 1 joint ids)."""
    if not isinstance(kintree, np.ndarray) or kintree.shape != (2, J) or kintree.dtype.kind not in "iu":
        raise ValueError(f"{path}: 'kintree_table' must be an integer [2, {J}] array; got {kintree!r:.80}")
    ids = [int(i) for i in kintree[1]]
    column = {joint_id: j for j, joint_id in enumerate(ids)}
    if len(column) != J:
        raise ValueError(f"{path}: 'kintree_table' repeats joint ids {ids}")
    # The root's parent is stored as 2**32 - 1 (or -1); every other parent must be a known id.
    parents = [-1] + [column.get(int(p), -2) for p in kintree[0, 1:]]
    if any(not 0 <= p < j for j, p in enumerate(parents) if j > 0):
        raise ValueError(
            f"{path}: 'kintree_table' is not a tree rooted at joint 0 with parents first: {kintree.tolist()}"
        )
    return parents


def _uvs(data: dict[Any, Any], path: Path, F: int) -> tuple[np.ndarray | None, np.ndarray | None]:
    if "vt" not in data or "ft" not in data:
        return None, None
    uvs = _float_array(data, "vt", path, ndim=2)
    if uvs.shape[1] != 2:
        raise ValueError(f"{path}: 'vt' must be [U, 2]; got {list(uvs.shape)}")
    face_uvs = _index_array(data, "ft", path, limit=uvs.shape[0])
    if face_uvs.shape != (F, 3):
        raise ValueError(f"{path}: 'ft' must be [{F}, 3] like 'f'; got {list(face_uvs.shape)}")
    return uvs, face_uvs


# --------------------------------------------------------------------- landmarks
def _embedding(face_index: Any, bary: Any, source: Path, F: int) -> tuple[np.ndarray, np.ndarray]:
    fi = np.asarray(face_index)
    b = np.asarray(bary)
    if fi.dtype.kind not in "iu" or b.dtype.kind != "f":
        raise ValueError(f"{source}: landmark face indices/barycentrics have dtypes {fi.dtype}/{b.dtype}")
    fi = fi.reshape(-1).astype(np.int64)
    b = b.reshape(-1, 3).astype(np.float64)
    if b.shape[0] != fi.shape[0]:
        raise ValueError(f"{source}: {fi.shape[0]} landmark triangles for {b.shape[0]} barycentric triples")
    if fi.size and (fi.min() < 0 or fi.max() >= F):
        raise ValueError(f"{source}: landmark triangle indices outside 0..{F - 1}: not made for this model")
    if not np.isfinite(b).all() or not np.allclose(b.sum(1), 1.0, atol=1e-3):
        raise ValueError(f"{source}: landmark barycentric coordinates do not sum to 1")
    return fi, b


def _entry(table: Any, key: str, source: Path) -> Any:
    if isinstance(table, np.ndarray) and table.dtype.hasobject and table.shape == ():
        table = table[()]  # np.save of a dict: a 0-d object array
    if not isinstance(table, dict) or key not in table:
        raise ValueError(f"{source}: expected a dict with {key!r}; got {type(table).__name__}")
    return table[key]


def _landmarks(folder: Path, faces: np.ndarray) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Landmark embeddings from files beside the model (see :func:`load_flame`)."""
    F = faces.shape[0]
    out: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    deca = folder / _DECA_LANDMARKS
    static = folder / _STATIC_LANDMARKS
    dynamic = folder / _DYNAMIC_LANDMARKS
    if deca.is_file():
        table = load_npy(deca, torch_placeholders=True)  # its contour tables are torch tensors
        out["ibug68"] = _embedding(
            _entry(table, "full_lmk_faces_idx", deca), _entry(table, "full_lmk_bary_coords", deca), deca, F
        )
        if len(out["ibug68"][0]) != 68:
            raise ValueError(f"{deca}: 'full_lmk_faces_idx' has {len(out['ibug68'][0])} points, not 68")
        out["ibug51"] = (out["ibug68"][0][17:], out["ibug68"][1][17:])
    elif static.is_file():
        table = load_pickle(static)
        fi, b = _embedding(_entry(table, "lmk_face_idx", static), _entry(table, "lmk_b_coords", static), static, F)
        if len(fi) == 68:
            out["ibug68"] = (fi, b)
            out["ibug51"] = (fi[17:], b[17:])
        elif len(fi) == 51:
            out["ibug51"] = (fi, b)
            if dynamic.is_file():
                table = load_npy(dynamic)
                dfi = np.asarray(_entry(table, "lmk_face_idx", dynamic))
                db = np.asarray(_entry(table, "lmk_b_coords", dynamic))
                if dfi.ndim != 2 or dfi.shape[1] != 17 or db.shape[:2] != dfi.shape:
                    raise ValueError(f"{dynamic}: expected [yaw, 17] contour tables; got {dfi.shape}, {db.shape}")
                cfi, cb = _embedding(dfi[0], db[0], dynamic, F)  # row 0: the frontal head
                out["ibug68"] = (np.concatenate([cfi, fi]), np.concatenate([cb, b]))
        else:
            raise ValueError(f"{static}: {len(fi)} landmarks; FLAME's static embedding has 51")
    return out


# ----------------------------------------------------------------------- regions
def _rigid_mask(
    weights: np.ndarray,  # [V, J]
    expression: np.ndarray,  # [V, 3, E]
) -> np.ndarray:  # [V] bool
    """Vertices that move only with the skull (the rule is in :func:`load_flame`)."""
    motion = np.linalg.norm(expression, axis=1).max(axis=1)  # [V] metres per standard deviation
    limit = max(_RIGID_MAX_EXPRESSION_MOTION, _RIGID_MAX_RELATIVE_MOTION * float(motion.max(initial=0.0)))
    return (weights[:, FLAME_JOINT_NAMES.index("neck")] >= _RIGID_MIN_NECK_WEIGHT) & (motion <= limit)


def _mask_regions(folder: Path, V: int) -> dict[str, np.ndarray]:
    """Regions from MPI's ``FLAME_masks.pkl`` (vertex index arrays), when it is beside the model."""
    for name in _MASKS:
        source = folder / name
        if source.is_file():
            break
    else:
        return {}
    table = load_pickle(source)
    if not isinstance(table, dict):
        raise ValueError(f"{source}: expected a dict of vertex index arrays; got {type(table).__name__}")
    regions: dict[str, np.ndarray] = {}
    for region, keys in _MASK_KEYS.items():
        if not all(k in table for k in keys):
            continue
        mask = np.zeros(V, dtype=bool)
        for key in keys:
            index = np.asarray(table[key])
            if index.dtype.kind not in "iu" or (index.size and (index.min() < 0 or index.max() >= V)):
                raise ValueError(f"{source}: {key!r} is not a list of vertex indices below {V}")
            mask[index.astype(np.int64)] = True
        regions[region] = mask
    return regions


def _inside_polygon(points: np.ndarray, polygon: np.ndarray) -> np.ndarray:
    """Even-odd test of [N, 2] points against a closed [M, 2] polygon."""
    x, y = points[:, 0:1], points[:, 1:2]
    x0, y0 = polygon[:, 0], polygon[:, 1]
    x1, y1 = np.roll(x0, -1), np.roll(y0, -1)
    crosses = (y0 > y) != (y1 > y)
    with np.errstate(divide="ignore", invalid="ignore"):
        x_cross = x0 + (y - y0) * (x1 - x0) / (y1 - y0)
    return (crosses & (x < x_cross)).sum(1) % 2 == 1


def _geometric_regions(
    template: np.ndarray,  # [V, 3]
    faces: np.ndarray,  # [F, 3]
    weights: np.ndarray,  # [V, J]
    joints: np.ndarray,  # [J, 3]
    landmarks: dict[str, tuple[np.ndarray, np.ndarray]],
) -> dict[str, np.ndarray]:
    """Approximate regions from skinning, landmarks and head proportions (without FLAME_masks.pkl).

    With ``d`` the distance between the eye joints (the eyeball centres, ~6 cm), ``m``
    their midpoint, and ``chin`` the height of iBUG point 8 when ``ibug68`` is known,
    else ``m.y - 1.9 d``:

    * ``eyes``: vertices whose largest skinning weight is an eye joint (the eyeballs).
    * ``neck``: not eyes, and below the chin or weighted more to the ``global`` joint
      than to the ``neck`` joint (which carries the skull).
    * ``face``: not eyes/neck, at most ``0.5 d`` behind the eye centres (in front of
      the ears) and below ``m.y + 1.0 d`` (about the hairline).
    * ``lips``: face vertices inside the outer lip contour (iBUG 48-59) seen from the
      front and in front of the mouth corners' depth minus 1 cm, as for ICT, when
      landmarks are known; else the box ``|x - m.x| < 0.45 d``,
      ``m.y - 1.35 d < y < m.y - 0.95 d`` in front of the eye centres.
    * ``scalp``: the rest of the head (top, back, ears).

    These are proportions of an average adult head, good to a centimetre or so; put
    MPI's ``FLAME_masks.pkl`` beside the model for its hand-painted regions.
    """
    names = FLAME_JOINT_NAMES
    dominant = weights.argmax(1)
    eyes = np.isin(dominant, [names.index("eye_left"), names.index("eye_right")])
    left, right = joints[names.index("eye_left")], joints[names.index("eye_right")]
    m = 0.5 * (left + right)
    d = max(float(np.linalg.norm(left - right)), 1e-6)
    x, y, z = template[:, 0], template[:, 1], template[:, 2]

    def on_surface(name: str, rows: np.ndarray) -> np.ndarray:  # [len(rows), 3] landmark positions
        fi, bary = landmarks[name]
        return barycentric_points(
            torch.as_tensor(template), torch.as_tensor(faces), torch.as_tensor(fi[rows]), torch.as_tensor(bary[rows])
        ).numpy()

    chin_y = on_surface("ibug68", np.array([8]))[0, 1] if "ibug68" in landmarks else m[1] - 1.9 * d
    neck = ~eyes & ((y < chin_y) | (weights[:, names.index("global")] > weights[:, names.index("neck")]))
    face = ~eyes & ~neck & (z > m[2] - 0.5 * d) & (y < m[1] + 1.0 * d)
    if "ibug68" in landmarks or "ibug51" in landmarks:
        if "ibug68" in landmarks:
            lip = on_surface("ibug68", np.arange(48, 60))  # outer lip contour, from the left corner
        else:
            lip = on_surface("ibug51", np.arange(31, 43))  # the same points without the 17 jaw-line ones
        lips = face & _inside_polygon(template[:, :2], lip[:, :2]) & (z > lip[[0, 6], 2].mean() - 0.01)
    else:
        lips = face & (np.abs(x - m[0]) < 0.45 * d) & (y > m[1] - 1.35 * d) & (y < m[1] - 0.95 * d) & (z > m[2])
    scalp = ~eyes & ~neck & ~face
    return {"face": face, "lips": lips, "eyes": eyes, "scalp": scalp, "neck": neck}
