"""Landmark embeddings: landmarks as (triangle, barycentric) points on a model's surface.

Two ways to make one, both computed, never typed in:

- :func:`vertex_embedding` for schemes a model defines on its own vertices (ICT's
  68 landmark vertices, the built-in model's MediaPipe vertices).
- :func:`transfer_embedding` registers a source model that has a scheme onto a
  target that lacks it: a similarity fit then a thin-plate-spline warp through
  shared anchor landmarks, and a projection of every warped landmark onto the
  target's surface (closest point, within a mask). The MediaPipe-478 points of ICT
  come from the built-in model this way, anchored by both models' iBUG-68 points.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from .model import FaceModel, LandmarkEmbedding, barycentric_points


def vertex_embedding(faces: Tensor, vertex_ids: Tensor, name: str) -> LandmarkEmbedding:
    """Landmarks on vertices: for each vertex a triangle containing it, with one-hot weights.

    Args:
        faces: [F, 3] triangles.
        vertex_ids: [L] vertex index of each landmark.
        name: the scheme name.
    """
    faces = torch.as_tensor(faces)
    vertex_ids = torch.as_tensor(vertex_ids, dtype=torch.long)
    hit = faces[None] == vertex_ids[:, None, None]  # [L, F, 3]
    any_hit = hit.any(-1)  # [L, F]
    if not bool(any_hit.any(-1).all()):
        missing = vertex_ids[~any_hit.any(-1)].tolist()
        raise ValueError(f"landmark vertices {missing} are on no triangle")
    face_index = any_hit.float().argmax(-1)  # first triangle containing the vertex
    bary = hit[torch.arange(len(vertex_ids)), face_index].float()  # [L, 3] one-hot
    return LandmarkEmbedding(face_index, bary, name)


def closest_points_on_mesh(
    points: Tensor,  # [P, 3]
    vertices: Tensor,  # [V, 3]
    faces: Tensor,  # [F, 3]
    candidates: int = 48,
) -> tuple[Tensor, Tensor, Tensor]:  # face_index [P], bary [P, 3], distance [P]
    """Closest point on a triangle mesh for each query point.

    Exact point-triangle distances to the ``candidates`` triangles whose centroids are
    nearest to each query (all triangles when ``candidates`` is 0 or exceeds F); with
    well-shaped meshes the closest triangle is always among them.

    Returns:
        face_index [P] long, bary [P, 3] float, distance [P] float.
    """
    from scipy.spatial import cKDTree

    vertices = vertices.double()
    faces = torch.as_tensor(faces, dtype=torch.long)
    a, b, c = (vertices[faces[:, i]] for i in range(3))  # [F, 3] each
    P = points.double()
    F = faces.shape[0]
    if 0 < candidates < F:
        centroids = ((a + b + c) / 3).numpy()
        _, idx = cKDTree(centroids).query(P.numpy(), k=candidates)
        cand = torch.from_numpy(idx).long()  # [P, k]
    else:
        cand = torch.arange(F).expand(P.shape[0], F)
    bary = _closest_bary(P[:, None], a[cand], b[cand], c[cand])  # [P, k, 3]
    q = bary[..., 0:1] * a[cand] + bary[..., 1:2] * b[cand] + bary[..., 2:3] * c[cand]
    d = (q - P[:, None]).norm(dim=-1)  # [P, k]
    best = d.argmin(-1)
    rows = torch.arange(P.shape[0])
    return cand[rows, best], bary[rows, best].float(), d[rows, best].float()


def _closest_bary(p: Tensor, a: Tensor, b: Tensor, c: Tensor) -> Tensor:
    """Barycentric weights of the closest point of triangle abc to p (Ericson, RTCD 5.1.5)."""
    ab, ac, ap = b - a, c - a, p - a
    d1, d2 = (ab * ap).sum(-1), (ac * ap).sum(-1)
    bp = p - b
    d3, d4 = (ab * bp).sum(-1), (ac * bp).sum(-1)
    cp = p - c
    d5, d6 = (ab * cp).sum(-1), (ac * cp).sum(-1)
    va = d3 * d6 - d5 * d4
    vb = d5 * d2 - d1 * d6
    vc = d1 * d4 - d3 * d2
    eps = 1e-30
    # Interior.
    denom = va + vb + vc
    v = vb / (denom + eps)
    w = vc / (denom + eps)
    bary = torch.stack([1 - v - w, v, w], -1)

    def put(mask, u0, u1, u2):
        nonlocal bary
        new = torch.stack([u0, u1, u2], -1)
        bary = torch.where(mask[..., None], new, bary)

    zero, one = torch.zeros_like(d1), torch.ones_like(d1)
    # Edges (checked before vertices so that vertex regions win).
    t = d1 / (d1 - d3 + eps)
    put((vc <= 0) & (d1 >= 0) & (d3 <= 0), 1 - t, t, zero)  # edge ab
    t = d2 / (d2 - d6 + eps)
    put((vb <= 0) & (d2 >= 0) & (d6 <= 0), 1 - t, zero, t)  # edge ac
    t = (d4 - d3) / ((d4 - d3) + (d5 - d6) + eps)
    put((va <= 0) & ((d4 - d3) >= 0) & ((d5 - d6) >= 0), zero, 1 - t, t)  # edge bc
    put((d1 <= 0) & (d2 <= 0), one, zero, zero)  # vertex a
    put((d3 >= 0) & (d4 <= d3), zero, one, zero)  # vertex b
    put((d6 >= 0) & (d5 <= d6), zero, zero, one)  # vertex c
    return bary


def similarity_transform(src: Tensor, dst: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Least-squares scale s, rotation R [3,3], translation t with dst ~ s R src + t (Umeyama)."""
    src, dst = src.double(), dst.double()
    mu_s, mu_d = src.mean(0), dst.mean(0)
    xs, xd = src - mu_s, dst - mu_d
    cov = xd.T @ xs / src.shape[0]
    U, S, Vt = torch.linalg.svd(cov)
    D = torch.eye(3, dtype=torch.float64)
    if torch.det(U @ Vt) < 0:
        D[2, 2] = -1
    R = U @ D @ Vt
    s = (S * D.diagonal()).sum() / xs.pow(2).sum(-1).mean()
    t = mu_d - s * R @ mu_s
    return s, R, t


def thin_plate_warp(src_anchors: Tensor, dst_anchors: Tensor, regularization: float = 1e-6):
    """A 3D thin-plate-spline map taking ``src_anchors`` [A,3] to ``dst_anchors`` [A,3].

    Returns a function mapping points [..., 3] (kernel |r|, the 3D biharmonic one).
    """
    X, Y = src_anchors.double(), dst_anchors.double()
    A = X.shape[0]
    K = torch.cdist(X, X)
    P = torch.cat([torch.ones(A, 1, dtype=torch.float64), X], 1)
    L = torch.zeros(A + 4, A + 4, dtype=torch.float64)
    L[:A, :A] = K + regularization * torch.eye(A, dtype=torch.float64)
    L[:A, A:] = P
    L[A:, :A] = P.T
    rhs = torch.cat([Y, torch.zeros(4, 3, dtype=torch.float64)])
    coef = torch.linalg.solve(L, rhs)
    W, aff = coef[:A], coef[A:]

    def warp(points: Tensor) -> Tensor:
        p = points.double().reshape(-1, 3)
        out = torch.cdist(p, X) @ W + torch.cat([torch.ones(p.shape[0], 1, dtype=torch.float64), p], 1) @ aff
        return out.reshape(points.shape).to(points.dtype)

    return warp


def transfer_embedding(
    source: FaceModel,
    scheme: str,
    target_vertices: Tensor,  # [V, 3]
    target_faces: Tensor,  # [F, 3]
    target_anchors: Tensor,  # [A, 3]
    anchor_scheme: str = "ibug68",
    surface_mask: Tensor | None = None,  # [V] bool
) -> tuple[LandmarkEmbedding, Tensor]:
    """Register ``source``'s landmark ``scheme`` onto a target surface.

    Args:
        source: a model that has both ``scheme`` and ``anchor_scheme`` landmarks.
        scheme: the scheme to transfer (e.g. ``mediapipe478``).
        target_vertices: [V, 3] target surface (neutral).
        target_faces: [F, 3] its triangles.
        target_anchors: [A, 3] the target's ``anchor_scheme`` points.
        surface_mask: [V] bool, only triangles whose three vertices are in the mask
            receive landmarks (e.g. skin and eyeballs, not eyelashes).

    Returns:
        The embedding, and [L] the distance (metres) from each warped landmark to the
        surface point it was projected on (a registration-quality figure).
    """
    src_verts = source.template
    src_anchor = source.landmarks_3d(src_verts, anchor_scheme).double()
    src_points = source.landmarks_3d(src_verts, scheme).double()
    s, R, t = similarity_transform(src_anchor, target_anchors)
    to_target = lambda x: s * x @ R.T + t  # noqa: E731
    warp = thin_plate_warp(to_target(src_anchor), target_anchors.double(), regularization=1e-5)
    warped = warp(to_target(src_points))
    faces = torch.as_tensor(target_faces)
    keep = torch.arange(faces.shape[0])
    if surface_mask is not None:
        keep = keep[surface_mask[faces].all(-1)]
    fi, bary, dist = closest_points_on_mesh(warped, target_vertices.double(), faces[keep])
    return LandmarkEmbedding(keep[fi], bary, scheme), dist


def register_mediapipe_embedding(
    template: Tensor,  # [V, 3]
    faces: Tensor,  # [F, 3]
    ibug68: LandmarkEmbedding,
    surface_mask: Tensor | None = None,  # [V] bool
) -> LandmarkEmbedding:
    """MediaPipe-478 embedding for a model that has iBUG-68, registered from the built-in model."""
    from .builtin import load_builtin

    anchors = barycentric_points(template, faces, ibug68.face_index, ibug68.bary)
    emb, _ = transfer_embedding(load_builtin(), "mediapipe478", template, faces, anchors, "ibug68", surface_mask)
    return emb


def mirror_pairs(points: np.ndarray, tol: float = np.inf) -> np.ndarray:
    """For points [N,3] of a roughly symmetric shape, the index of each point's mirror (x -> -x)."""
    from scipy.optimize import linear_sum_assignment

    mirrored = points * np.array([-1.0, 1.0, 1.0])
    cost = np.linalg.norm(points[:, None] - mirrored[None], axis=-1)
    rows, cols = linear_sum_assignment(cost)
    pairs = np.empty(len(points), np.int64)
    pairs[rows] = cols
    return pairs


def complete_landmarks(
    template: Tensor,  # [V, 3]
    faces: Tensor,  # [F, 3]
    landmarks: dict[str, LandmarkEmbedding],
    surface_mask: Tensor | None = None,  # [V] bool
    eye_centres: Tensor | None = None,  # [2, 3] (subject's left, right) eyeball centres
) -> dict[str, LandmarkEmbedding]:
    """Add the schemes a model lacks (``ibug68``, ``mediapipe478``) by registering the
    built-in model onto it.

    - ``ibug68`` missing but ``ibug51`` known (FLAME's static embedding): the built-in
      model's iBUG-68 is warped through the 51 shared points (similarity + thin-plate
      spline) and projected on the surface; the 51 given points are kept as they are.
    - neither known: the built-in model is placed by the eyeball centres (scale and
      translation; both models are in the canonical frame, +y up, +z forward) and its
      iBUG-68 points are projected on the surface: approximate (a few mm), and said so.
    - ``mediapipe478`` missing: registered through iBUG-68 as for ICT.
    """
    from .builtin import load_builtin

    out = dict(landmarks)
    faces = torch.as_tensor(faces, dtype=torch.long)
    builtin = load_builtin()
    keep = torch.arange(faces.shape[0])
    if surface_mask is not None:
        keep = keep[surface_mask[faces].all(-1)]
        if len(keep) == 0:
            raise ValueError("the surface mask selects no triangle to put landmarks on")
    if "ibug68" not in out and "ibug51" in out:
        emb51 = out["ibug51"]
        anchors = barycentric_points(template, faces, emb51.face_index, emb51.bary)
        src51 = builtin.landmarks_3d(builtin.template, "ibug68")[17:].double()
        s, R, t = similarity_transform(src51, anchors)
        to_target = lambda x: s * x.double() @ R.T + t  # noqa: E731
        warp = thin_plate_warp(to_target(src51), anchors.double(), regularization=1e-5)
        jaw = warp(to_target(builtin.landmarks_3d(builtin.template, "ibug68")[:17]))
        fi, bary, _ = closest_points_on_mesh(jaw, template.double(), faces[keep])
        out["ibug68"] = LandmarkEmbedding(torch.cat([keep[fi], emb51.face_index]),
                                          torch.cat([bary, emb51.bary.float()]), "ibug68")
    elif "ibug68" not in out and eye_centres is not None:
        eyes = builtin.regions["eyes"]
        x = builtin.template[:, 0]
        src = torch.stack([builtin.template[eyes & (x > 0)].mean(0), builtin.template[eyes & (x < 0)].mean(0)])
        src, dst = src.double(), eye_centres.double()
        s = (dst[0] - dst[1]).norm() / (src[0] - src[1]).norm()
        t = dst.mean(0) - s * src.mean(0)
        pts = s * builtin.landmarks_3d(builtin.template, "ibug68").double() + t
        fi, bary, _ = closest_points_on_mesh(pts, template.double(), faces[keep])
        out["ibug68"] = LandmarkEmbedding(keep[fi], bary, "ibug68")
    if "mediapipe478" not in out and "ibug68" in out:
        out["mediapipe478"] = register_mediapipe_embedding(template, faces, out["ibug68"], surface_mask)
    return out
