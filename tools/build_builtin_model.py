"""Build the built-in face model shipped in ``assets/builtin_face.npz``.

    python tools/build_builtin_model.py [--shared ../shared] [-o assets/builtin_face.npz]

Everything comes from permissively licensed sources and this script:

- **Topology**: the 468-point MediaPipe face mesh (Apache-2.0, the pinned
  ``mediapipe==0.10.14`` wheel): its triangles are recovered from the wheel's
  ``FACEMESH_TESSELATION`` edge list (3-cliques that are real faces).
- **Mean shape**: MediaPipe's 478 landmarks (with irises) detected by that wheel on the
  public-domain portraits in ``shared/data/faces``, similarity-aligned, averaged,
  mirrored to be symmetric, oriented (eyes along +x, face toward +z), and scaled to
  metres by an inter-pupillary distance of 63 mm (the adult mean).
- **Added geometry**: eyeballs (spheres behind the eye openings, irises where
  MediaPipe puts them), a mouth cavity closed behind the inner lips, upper and lower
  teeth rows and a tongue, so that blinks, gaze and an open mouth render sensibly.
- **Identity basis**: 22 anatomical modes (face width/height/depth, jaw, chin, nose,
  eye spacing/size/tilt, mouth, lips, cheeks, brows), each scaled to about one
  population standard deviation.
- **Expressions**: the 52 ARKit shapes rigged procedurally from the anatomy (the jaw
  hinges about the temporomandibular joint, lids close onto the lower lid, eyeballs
  rotate, lip corners travel over the cheek, ...), with smooth falloffs computed as
  harmonic (Laplace) weights over the mesh or as Gaussian falloffs.
- **Landmarks**: MediaPipe-478 on the model's own vertices (irises on the eyeballs);
  iBUG-68 placed from the mesh's named feature loops (eye, lip, brow and face-oval
  loops of MediaPipe), resampled by arc length as the iBUG definitions describe.

The output is deterministic for the same wheel and photos (a hash is printed).
"""

from __future__ import annotations

import argparse
import collections
import hashlib
import os
import sys
from pathlib import Path

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from avatar.facemodel.arkit import ARKIT_NAMES  # noqa: E402
from avatar.facemodel.landmarks import mirror_pairs  # noqa: E402

PHOTOS = ["obama.jpg", "obama2.jpg", "biden.jpg", "grace_hopper.jpg", "astronaut.png"]
IPD = 0.063
MM = 0.001

# Named MediaPipe points used to orient the mean shape (MediaPipe's documented mesh).
NOSE_TIP, CHIN, FOREHEAD = 1, 152, 10
IRIS_RIGHT, IRIS_LEFT = 468, 473  # subject's right / left iris centres


# ----------------------------------------------------------------------------- data
def detect_mean_shape(shared: Path) -> np.ndarray:
    """Average 478-point MediaPipe shape of the portraits, in model axes (not yet metric)."""
    import cv2
    import mediapipe as mp

    shapes = []
    with mp.solutions.face_mesh.FaceMesh(static_image_mode=True, refine_landmarks=True, max_num_faces=1) as fm:
        for name in PHOTOS:
            bgr = cv2.imread(str(shared / "data" / "faces" / name))
            if bgr is None:
                raise SystemExit(f"cannot read {name} in {shared}/data/faces")
            h, w = bgr.shape[:2]
            res = fm.process(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
            if not res.multi_face_landmarks:
                raise SystemExit(f"no face found in {name}")
            lm = np.array([[p.x * w, p.y * h, p.z * w] for p in res.multi_face_landmarks[0].landmark])
            # Image axes (x right, y down, z into the image) -> model axes
            # (+x toward the subject's left = image right, +y up, +z out of the face).
            shapes.append(lm * np.array([1.0, -1.0, -1.0]))
    return generalized_procrustes(shapes)


def similarity(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    mu_s, mu_d = src.mean(0), dst.mean(0)
    xs, xd = src - mu_s, dst - mu_d
    U, S, Vt = np.linalg.svd(xd.T @ xs)
    D = np.diag([1, 1, np.sign(np.linalg.det(U @ Vt))])
    R = U @ D @ Vt
    s = (S * np.diag(D)).sum() / (xs**2).sum()
    return s * xs @ R.T + mu_d


def generalized_procrustes(shapes: list[np.ndarray], iters: int = 10) -> np.ndarray:
    ref = shapes[0] - shapes[0].mean(0)
    ref /= np.linalg.norm(ref)
    for _ in range(iters):
        aligned = [similarity(s, ref) for s in shapes]
        mean = np.mean(aligned, 0)
        mean -= mean.mean(0)
        ref = mean / np.linalg.norm(mean)
    return ref


def canonicalize(points: np.ndarray) -> np.ndarray:
    """Symmetric, upright, facing +z, metres, origin near the centre of the head."""
    pairs = mirror_pairs(points - points.mean(0))
    # Orient: x along the irises, y from chin to forehead, z = x cross y.
    x = points[IRIS_LEFT] - points[IRIS_RIGHT]
    x /= np.linalg.norm(x)
    y = points[FOREHEAD] - points[CHIN]
    y -= x * (y @ x)
    y /= np.linalg.norm(y)
    R = np.stack([x, y, np.cross(x, y)])
    p = points @ R.T
    p = p * (IPD / np.linalg.norm(p[IRIS_LEFT] - p[IRIS_RIGHT]))
    p[:, 0] -= p[:, 0].mean()
    # Mirror-average with the mirror partner, midline points exactly on x = 0.
    mirrored = p[pairs] * np.array([-1.0, 1.0, 1.0])
    p = 0.5 * (p + mirrored)
    p[pairs == np.arange(len(p)), 0] = 0.0
    # Origin: between the irises in x/y, 95 mm behind them (about the centre of the head).
    eyes = 0.5 * (p[IRIS_LEFT] + p[IRIS_RIGHT])
    return p - np.array([0.0, eyes[1], eyes[2] - 0.095])


# ------------------------------------------------------------------------- topology
def tessellation_triangles(points: np.ndarray) -> np.ndarray:
    """Triangles of the MediaPipe mesh from its edge list, consistently oriented (+z outward)."""
    from mediapipe.python.solutions.face_mesh_connections import FACEMESH_TESSELATION

    adj = collections.defaultdict(set)
    edges = set()
    for a, b in FACEMESH_TESSELATION:
        adj[a].add(b)
        adj[b].add(a)
        edges.add((min(a, b), max(a, b)))
    tris = set()
    for a, b in edges:
        for c in adj[a] & adj[b]:
            tris.add(tuple(sorted((a, b, c))))
    tris = sorted(tris)
    count = collections.Counter()
    for t in tris:
        for e in ((t[0], t[1]), (t[1], t[2]), (t[0], t[2])):
            count[e] += 1
    # A 3-clique whose three edges all border a third triangle is not a face (it closes
    # a loop of real triangles); the real surface is a disc with three holes (eyes, mouth).
    tris = [t for t in tris if not all(count[e] > 2 for e in ((t[0], t[1]), (t[1], t[2]), (t[0], t[2])))]
    F = np.array(tris)
    return orient(F, points)


def orient(F: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Consistent winding by propagation over shared edges, then outward (+z on average)."""
    F = F.copy()
    edge_faces = collections.defaultdict(list)
    for i, t in enumerate(F):
        for k in range(3):
            edge_faces[tuple(sorted((t[k], t[(k + 1) % 3])))].append(i)
    done = np.zeros(len(F), bool)
    for seed in range(len(F)):
        if done[seed]:
            continue
        done[seed] = True
        queue = [seed]
        while queue:
            i = queue.pop()
            t = F[i]
            for k in range(3):
                a, b = t[k], t[(k + 1) % 3]
                for j in edge_faces[tuple(sorted((a, b)))]:
                    if done[j]:
                        continue
                    u = F[j]
                    # Consistent neighbours traverse the shared edge in opposite directions.
                    same = any(u[m] == a and u[(m + 1) % 3] == b for m in range(3))
                    if same:
                        F[j] = u[::-1]
                    done[j] = True
                    queue.append(j)
    n = np.cross(points[F[:, 1]] - points[F[:, 0]], points[F[:, 2]] - points[F[:, 0]])
    if n[:, 2].sum() < 0:
        F = F[:, ::-1]
    return np.ascontiguousarray(F)


def loop_order(edge_set) -> list[int]:
    """Vertices of a closed loop given as a set of edges, in walking order."""
    adj = collections.defaultdict(list)
    for a, b in edge_set:
        adj[a].append(b)
        adj[b].append(a)
    start = min(adj)
    order, prev, cur = [start], None, start
    while True:
        nxt = [n for n in adj[cur] if n != prev]
        if not nxt or nxt[0] == start:
            break
        prev, cur = cur, nxt[0]
        order.append(cur)
    return order


def components(edge_set) -> list[set]:
    adj = collections.defaultdict(set)
    for a, b in edge_set:
        adj[a].add(b)
        adj[b].add(a)
    seen, comps = set(), []
    for v in adj:
        if v in seen:
            continue
        comp, stack = set(), [v]
        while stack:
            u = stack.pop()
            if u in comp:
                continue
            comp.add(u)
            stack.extend(adj[u] - comp)
        seen |= comp
        comps.append({e for e in edge_set if e[0] in comp})
    return comps


# ---------------------------------------------------------------------- geometry kit
def laplacian(F: np.ndarray, n: int) -> sp.csr_matrix:
    i = np.concatenate([F[:, 0], F[:, 1], F[:, 2], F[:, 1], F[:, 2], F[:, 0]])
    j = np.concatenate([F[:, 1], F[:, 2], F[:, 0], F[:, 0], F[:, 1], F[:, 2]])
    A = sp.coo_matrix((np.ones(len(i)), (i, j)), shape=(n, n)).tocsr()
    A.data[:] = 1.0
    return (sp.diags(np.asarray(A.sum(1)).ravel()) - A).tocsr()


def harmonic(L: sp.csr_matrix, fixed: dict[int, np.ndarray | float]) -> np.ndarray:
    """Harmonic interpolation over the mesh graph with values fixed at some vertices."""
    n = L.shape[0]
    idx = np.array(sorted(fixed))
    vals = np.array([np.atleast_1d(fixed[i]) for i in idx], float)
    free = np.setdiff1d(np.arange(n), idx)
    out = np.zeros((n, vals.shape[1]))
    out[idx] = vals
    A = L[free][:, free].tocsc()
    B = -L[free][:, idx] @ vals
    solve = spla.factorized(A)
    for c in range(vals.shape[1]):
        out[free, c] = solve(B[:, c])
    return out.squeeze(-1) if out.shape[1] == 1 else out


def smoothstep(e0, e1, x):
    t = np.clip((x - e0) / (e1 - e0), 0.0, 1.0)
    return t * t * (3 - 2 * t)


def gauss(P: np.ndarray, centre: np.ndarray, sigma: float) -> np.ndarray:
    return np.exp(-((P - centre) ** 2).sum(-1) / (2 * sigma**2))


def rotation(axis, degrees: float) -> np.ndarray:
    axis = np.asarray(axis, float) / np.linalg.norm(axis)
    a = np.radians(degrees)
    K = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    return np.eye(3) + np.sin(a) * K + (1 - np.cos(a)) * K @ K


def uv_sphere(centre, radius, n_lat=10, n_lon=16):
    verts = [centre + [0, 0, radius]]
    for i in range(1, n_lat):
        th = np.pi * i / n_lat
        for j in range(n_lon):
            ph = 2 * np.pi * j / n_lon
            verts.append(centre + radius * np.array([np.sin(th) * np.cos(ph), np.sin(th) * np.sin(ph), np.cos(th)]))
    verts.append(centre - [0, 0, radius])
    V = np.array(verts)
    F = []
    for j in range(n_lon):
        F.append([0, 1 + j, 1 + (j + 1) % n_lon])
    for i in range(n_lat - 2):
        for j in range(n_lon):
            a = 1 + i * n_lon + j
            b = 1 + i * n_lon + (j + 1) % n_lon
            F += [[a, a + n_lon, b], [b, a + n_lon, b + n_lon]]
    last = len(V) - 1
    base = 1 + (n_lat - 2) * n_lon
    for j in range(n_lon):
        F.append([base + j, last, base + (j + 1) % n_lon])
    F = np.array(F)
    # Outward winding.
    n = np.cross(V[F[:, 1]] - V[F[:, 0]], V[F[:, 2]] - V[F[:, 0]])
    c = V[F].mean(1) - centre
    flip = (n * c).sum(-1) < 0
    F[flip] = F[flip][:, ::-1]
    return V, F


def grid_strip(curve: np.ndarray, heights: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """A quad strip through rows of points (rows = ``curve + h``), facing +z."""
    rows = [curve + h for h in heights]
    V = np.concatenate(rows)
    n = len(curve)
    F = []
    for r in range(len(rows) - 1):
        for j in range(n - 1):
            a, b = r * n + j, r * n + j + 1
            c, d = a + n, b + n
            F += [[a, c, b], [b, c, d]]
    F = np.array(F)
    nrm = np.cross(V[F[:, 1]] - V[F[:, 0]], V[F[:, 2]] - V[F[:, 0]])
    if nrm[:, 2].sum() < 0:
        F = F[:, ::-1]
    return V, F


def _inside_polygon(points: np.ndarray, polygon: np.ndarray) -> np.ndarray:
    """Points [N,2] strictly inside a polygon [P,2] (even-odd rule)."""
    x, y = points[:, 0:1], points[:, 1:2]
    a, b = polygon, np.roll(polygon, -1, axis=0)
    crosses = ((a[:, 1] > y) != (b[:, 1] > y)) & (
        x < (b[:, 0] - a[:, 0]) * (y - a[:, 1]) / (b[:, 1] - a[:, 1] + 1e-12) + a[:, 0]
    )
    return crosses.sum(1) % 2 == 1


def close_lips(P: np.ndarray, F: np.ndarray, inner_loop: list[int]) -> np.ndarray:
    """Neutral pose: the photos' slightly parted lips are closed (inner lips meet midway),
    the motion spread over the surrounding skin by harmonic interpolation."""
    xs = P[inner_loop, 0]
    cR, cL = inner_loop[int(np.argmin(xs))], inner_loop[int(np.argmax(xs))]
    n = len(inner_loop)
    i, j = inner_loop.index(cR), inner_loop.index(cL)
    a = [inner_loop[(i + k) % n] for k in range(1, (j - i) % n)]
    b = [inner_loop[(j + k) % n] for k in range(1, (i - j) % n)]
    upper, lower = (a, b) if P[a, 1].mean() > P[b, 1].mean() else (b, a)
    up_pts = sorted([(P[v, 0], P[v, 1], P[v, 2]) for v in upper + [cR, cL]])
    lo_pts = sorted([(P[v, 0], P[v, 1], P[v, 2]) for v in lower + [cR, cL]])
    fixed: dict[int, np.ndarray] = {cR: np.zeros(3), cL: np.zeros(3)}
    for v in upper:
        other_y = np.interp(P[v, 0], [p[0] for p in lo_pts], [p[1] for p in lo_pts])
        other_z = np.interp(P[v, 0], [p[0] for p in lo_pts], [p[2] for p in lo_pts])
        fixed[v] = np.array([0.0, 0.5 * (other_y - P[v, 1]), 0.5 * (other_z - P[v, 2])])
    for v in lower:
        other_y = np.interp(P[v, 0], [p[0] for p in up_pts], [p[1] for p in up_pts])
        other_z = np.interp(P[v, 0], [p[0] for p in up_pts], [p[2] for p in up_pts])
        fixed[v] = np.array([0.0, 0.5 * (other_y - P[v, 1]), 0.5 * (other_z - P[v, 2])])
    centre = P[inner_loop].mean(0)
    for v in range(len(P)):
        if v not in fixed and np.linalg.norm(P[v, :2] - centre[:2]) > 0.035:
            fixed[v] = np.zeros(3)
    return P + harmonic(laplacian(F, len(P)), fixed)


# ------------------------------------------------------------------------ the model
class Builder:
    def __init__(self, mean478: np.ndarray):
        from mediapipe.python.solutions import face_mesh_connections as C

        self.C = C
        P = mean478[:468].copy()
        F = tessellation_triangles(P)
        lips0 = components(C.FACEMESH_LIPS)
        lips0.sort(key=lambda c: -np.ptp(P[[e[0] for e in c], 0]))
        P = close_lips(P, F, loop_order(lips0[1]))
        mean478 = np.concatenate([P, mean478[468:]])
        self.P478 = mean478
        self.face_n = 468
        parts_v, parts_f = [P], [F]
        self.part_ranges: dict[str, tuple[int, int]] = {"face": (0, 468)}
        n = 468

        def add(name, V, Fp):
            nonlocal n
            parts_v.append(V)
            parts_f.append(Fp + n)
            self.part_ranges[name] = (n, n + len(V))
            n += len(V)

        # Feature loops.
        lips = components(C.FACEMESH_LIPS)
        lips.sort(key=lambda c: -np.ptp(P[[e[0] for e in c], 0]))
        self.outer_lip = loop_order(lips[0])
        self.inner_lip = loop_order(lips[1])
        self.eye_loop = {"L": loop_order(C.FACEMESH_LEFT_EYE), "R": loop_order(C.FACEMESH_RIGHT_EYE)}
        self.oval = loop_order(C.FACEMESH_FACE_OVAL)
        brows = {}
        for side, edges in (("L", C.FACEMESH_LEFT_EYEBROW), ("R", C.FACEMESH_RIGHT_EYEBROW)):
            comps = components(edges)
            comps.sort(key=lambda c: -np.mean([P[e[0], 1] for e in c]))
            brows[side] = sorted({v for e in comps[0] for v in e}, key=lambda v: abs(P[v, 0]))  # inner->outer
        self.brow_upper = brows

        # Key points.
        self.corner = {"L": max(self.outer_lip, key=lambda v: P[v, 0]), "R": min(self.outer_lip, key=lambda v: P[v, 0])}
        self.mouth_centre = P[self.inner_lip].mean(0)
        self.y_corner = P[[self.corner["L"], self.corner["R"]], 1].mean()
        nose_mid = [v for v in range(468) if abs(P[v, 0]) < 1e-9]
        self.midline = nose_mid
        self.nose_tip = P[NOSE_TIP]
        # Subnasale: the deepest midline point in the upper half between the nose tip and the mouth.
        span = self.nose_tip[1] - self.mouth_centre[1]
        below_tip = [v for v in nose_mid if self.nose_tip[1] - 0.6 * span < P[v, 1] < self.nose_tip[1]]
        self.subnasale = min(below_tip, key=lambda v: P[v, 2])
        self.iris = {"L": mean478[IRIS_LEFT], "R": mean478[IRIS_RIGHT]}

        # Eyeballs: 12 mm radius, cornea apex 2 mm behind the iris landmark so closed lids cover it.
        self.eye_centre = {}
        for side in ("R", "L"):
            c = self.iris[side] - np.array([0, 0, 0.012 + 0.002])
            self.eye_centre[side] = c
            V, Fe = uv_sphere(c, 0.012)
            add(f"eyeball_{'left' if side == 'L' else 'right'}", V, Fe)

        # Mouth cavity: the inner-lip loop extruded backward and closed.
        loop = P[self.inner_lip]
        centre = loop.mean(0)
        rings = [loop]
        upper_side = np.where(loop[:, 1] >= centre[1] - 1e-9, 1.0, -1.0)
        corner_w = np.clip(1 - (np.abs(loop[:, 0] - centre[0]) / (np.ptp(loop[:, 0]) / 2)) ** 2, 0, 1)
        for depth, sx, h in ((0.003, 1.0, 0.004), (0.012, 1.15, 0.014), (0.030, 0.9, 0.010)):
            r = loop.copy()
            r[:, 0] = centre[0] + (r[:, 0] - centre[0]) * sx
            r[:, 1] = r[:, 1] + upper_side * h * np.sqrt(corner_w)
            r[:, 2] = centre[2] - depth - 0.004 * (r[:, 0] / 0.025) ** 2
            rings.append(r)
        m = len(loop)
        cav_v = np.concatenate(rings[1:] + [np.array([centre - [0, 0, 0.034]])])
        self.cavity_source = list(self.inner_lip) * 3 + [-1]
        # Faces: ring0 (face vertices, global ids) -> ring1 -> ring2 -> ring3 -> cap.
        cav_f = []
        ring_ids = [np.array(self.inner_lip)] + [n + k * m + np.arange(m) for k in range(3)]
        for a_ids, b_ids in zip(ring_ids[:-1], ring_ids[1:]):
            for j in range(m):
                a, b = a_ids[j], a_ids[(j + 1) % m]
                c, d = b_ids[j], b_ids[(j + 1) % m]
                cav_f += [[a, c, b], [b, c, d]]
        cap = n + 3 * m
        for j in range(m):
            cav_f.append([ring_ids[-1][j], cap, ring_ids[-1][(j + 1) % m]])
        cav_f = np.array(cav_f)
        allv = np.concatenate(parts_v + [cav_v])
        # Inward winding: normals point toward the cavity axis (seen from the mouth opening).
        nrm = np.cross(allv[cav_f[:, 1]] - allv[cav_f[:, 0]], allv[cav_f[:, 2]] - allv[cav_f[:, 0]])
        cen = allv[cav_f].mean(1)
        axis_pt = np.stack([np.full(len(cen), centre[0]), np.full(len(cen), centre[1]), cen[:, 2]], 1)
        toward = ((axis_pt - cen) * nrm).sum(-1) + 0.3 * nrm[:, 2] * np.linalg.norm(nrm, axis=1) * 0
        flip = toward < 0
        cav_f[flip] = cav_f[flip][:, ::-1]
        parts_v.append(cav_v)
        parts_f.append(cav_f)
        self.part_ranges["mouth_cavity"] = (n, n + len(cav_v))
        n += len(cav_v)

        # Teeth: upper and lower rows following the lip arc, 4 mm behind the inner lips.
        half_w = 0.55 * (P[self.corner["L"], 0] - P[self.corner["R"], 0]) / 2
        xs = np.linspace(-half_w, half_w, 13)
        zs = centre[2] - 0.005 - 0.35 * xs**2 / half_w
        y0 = self.y_corner
        upper_curve = np.stack([xs, np.full_like(xs, y0), zs], 1)
        V, Ft = grid_strip(upper_curve, [np.array([0, 0.009, -0.002]), np.array([0, 0.0, 0.0]),
                                         np.array([0, -0.0015, -0.0005])])
        add("teeth_upper", V, Ft)
        lower_curve = np.stack([xs * 0.93, np.full_like(xs, y0), zs - 0.0015], 1)
        V, Ft = grid_strip(lower_curve, [np.array([0, -0.001, 0.0]), np.array([0, -0.0025, 0.0]),
                                         np.array([0, -0.009, -0.002])])
        add("teeth_lower", V, Ft)

        # Tongue: a flattened half-ellipsoid resting on the floor of the cavity.
        tV, tF = uv_sphere(np.zeros(3), 1.0, n_lat=8, n_lon=12)
        tV = tV * np.array([0.016, 0.005, 0.020]) + (centre - np.array([0, 0.009, 0.021]))
        add("tongue", tV, tF)

        self.V = np.concatenate(parts_v)
        self.F = np.concatenate(parts_f)
        self.L_face = laplacian(F, 468)
        self.Fface = F

    # ---------------------------------------------------------------- helpers
    def frontal_ray(self, x: float, y: float) -> tuple[int, np.ndarray]:
        """The face triangle hit first by a ray along -z through (x, y), and its weights."""
        P = self.V[:468]
        F = self.Fface
        a, b, c = P[F[:, 0], :2], P[F[:, 1], :2], P[F[:, 2], :2]
        q = np.array([x, y])
        den = (b[:, 1] - c[:, 1]) * (a[:, 0] - c[:, 0]) + (c[:, 0] - b[:, 0]) * (a[:, 1] - c[:, 1])
        w0 = ((b[:, 1] - c[:, 1]) * (q[0] - c[:, 0]) + (c[:, 0] - b[:, 0]) * (q[1] - c[:, 1])) / den
        w1 = ((c[:, 1] - a[:, 1]) * (q[0] - c[:, 0]) + (a[:, 0] - c[:, 0]) * (q[1] - c[:, 1])) / den
        w = np.stack([w0, w1, 1 - w0 - w1], 1)
        hit = np.nonzero((w >= -1e-9).all(1))[0]
        z = (w[hit] * P[F[hit], 2]).sum(1)
        k = hit[int(np.argmax(z))]
        return int(k), w[k].astype(np.float32)

    def part_mask(self, name: str) -> np.ndarray:
        m = np.zeros(len(self.V), bool)
        a, b = self.part_ranges[name]
        m[a:b] = True
        return m

    def near(self, x: float, y: float) -> int:
        """The face vertex nearest to (x, y) seen from the front."""
        P = self.V[:468]
        return int(np.argmin((P[:, 0] - x) ** 2 + (P[:, 1] - y) ** 2))

    def side(self, s: str) -> np.ndarray:
        x = self.V[:, 0]
        return smoothstep(-0.004, 0.004, x) if s == "L" else smoothstep(0.004, -0.004, x)

    def lip_halves(self, loop: list[int]) -> tuple[list[int], list[int]]:
        """Split a closed lip loop at its two corners (extreme x) into upper and lower halves."""
        P = self.V[:468]
        xs = P[loop, 0]
        i, j = int(np.argmin(xs)), int(np.argmax(xs))
        n = len(loop)
        a = [loop[(i + k) % n] for k in range(1, (j - i) % n)]
        b = [loop[(j + k) % n] for k in range(1, (i - j) % n)]
        return (a, b) if P[a, 1].mean() > P[b, 1].mean() else (b, a)

    # -------------------------------------------------------------- weights
    def jaw_weight(self) -> np.ndarray:
        """How much each vertex follows the jaw (0 skull .. 1 mandible)."""
        P = self.V[:468]
        up_inner, lo_inner = self.lip_halves(self.inner_lip)
        up_outer, lo_outer = self.lip_halves(self.outer_lip)
        fixed: dict[int, float] = {}
        y_sub = P[self.subnasale, 1]
        for v in range(468):
            if P[v, 1] > y_sub - 0.002:
                fixed[v] = 0.0
            elif P[v, 1] < self.y_corner - 0.016 and abs(P[v, 0]) < 0.05:
                fixed[v] = 1.0
        # Lips: the lower lip follows the jaw fully at the middle, both lips about half
        # at the corners, so the corners stretch instead of tearing a web.
        half = 0.5 * (P[self.corner["L"], 0] - P[self.corner["R"], 0])
        # The whole lower lip follows the jaw and the whole upper lip stays, with both
        # tending to one half toward the corners (quadratically), so that the lips and
        # the corner skin stretch smoothly instead of folding.
        seam_x = P[up_inner + lo_inner, 0]
        order = np.argsort(seam_x)
        seam_y = P[up_inner + lo_inner, 1][order]
        seam_x = seam_x[order]
        inside = _inside_polygon(P[:, :2], P[self.outer_lip, :2])
        for v in range(468):
            on_upper = v in up_inner or v in up_outer
            on_lower = v in lo_inner or v in lo_outer
            if not (inside[v] or on_upper or on_lower):
                continue
            if not (on_upper or on_lower):
                on_lower = P[v, 1] < np.interp(P[v, 0], seam_x, seam_y)
                on_upper = not on_lower
            c = 0.5 * min(abs(P[v, 0]) / half, 1.0) ** 2
            fixed[v] = 1.0 - c if on_lower else c
        w = np.zeros(len(self.V))
        w[:468] = harmonic(self.L_face, fixed)
        # Interior parts: the cavity rings follow the lip vertex they were extruded from.
        a, b = self.part_ranges["mouth_cavity"]
        src = np.asarray(self.cavity_source)
        w[a:b] = np.where(src >= 0, w[np.maximum(src, 0)], 0.5)
        w[self.part_mask("teeth_lower")] = 1.0
        w[self.part_mask("tongue")] = 1.0
        return w

    def lid_closure(self, s: str, amount: float = 1.0, meet: float = 0.25) -> np.ndarray:
        """Displacement that brings the upper lid down to meet the lower lid (blink)."""
        P = self.V[:468]
        loop = self.eye_loop[s]
        xs = P[loop, 0]
        c_in, c_out = loop[int(np.argmin(np.abs(xs)))], loop[int(np.argmax(np.abs(xs)))]
        line_y = lambda x: P[c_in, 1] + (P[c_out, 1] - P[c_in, 1]) * (x - P[c_in, 0]) / (P[c_out, 0] - P[c_in, 0])  # noqa: E731
        upper = [v for v in loop if v not in (c_in, c_out) and P[v, 1] > line_y(P[v, 0])]
        lower = [v for v in loop if v not in (c_in, c_out) and v not in upper]
        lower_sorted = sorted(lower + [c_in, c_out], key=lambda v: P[v, 0])
        lx, ly, lz = P[lower_sorted, 0], P[lower_sorted, 1], P[lower_sorted, 2]
        fixed: dict[int, np.ndarray] = {}
        for v in upper:
            y_low = np.interp(P[v, 0], lx, ly)
            z_low = np.interp(P[v, 0], lx, lz)
            target_y = y_low + meet * (P[v, 1] - y_low)
            fixed[v] = amount * np.array([0.0, target_y - P[v, 1], max(z_low - P[v, 2], 0.0) + 0.0015])
        for v in lower:
            upper_y = np.interp(P[v, 0], *zip(*sorted((P[u, 0], P[u, 1]) for u in upper + [c_in, c_out])))
            target_y = P[v, 1] + meet * (upper_y - P[v, 1])
            fixed[v] = amount * np.array([0.0, target_y - P[v, 1], 0.001])
        fixed[c_in] = np.zeros(3)
        fixed[c_out] = np.zeros(3)
        centre = P[loop].mean(0)
        for v in range(468):
            if v not in fixed and np.linalg.norm(P[v, :2] - centre[:2]) > 0.024:
                fixed[v] = np.zeros(3)
        d = np.zeros((len(self.V), 3))
        d[:468] = harmonic(self.L_face, fixed)
        return d

    def eyeball_rotation(self, s: str, axis, degrees: float) -> np.ndarray:
        name = "eyeball_left" if s == "L" else "eyeball_right"
        m = self.part_mask(name)
        c = self.eye_centre[s]
        R = rotation(axis, degrees)
        d = np.zeros((len(self.V), 3))
        d[m] = (self.V[m] - c) @ R.T + c - self.V[m]
        return d

    # ---------------------------------------------------------- expressions
    def expressions(self) -> np.ndarray:  # [V, 3, 52]
        V = self.V
        P = V[:468]
        face = np.zeros(len(V), bool)
        face[:468] = True
        w_jaw = self.jaw_weight()
        self.w_jaw = w_jaw
        y_sub = P[self.subnasale, 1]
        pivot = np.array([0.0, y_sub + 0.004, self.iris["L"][2] - 0.080])

        def jaw_rotate(deg):
            R = rotation([1, 0, 0], deg)
            return w_jaw[:, None] * ((V - pivot) @ R.T + pivot - V)

        def vec(x, y, z):
            return np.array([x, y, z]) * MM

        lips_w = gauss(V, self.mouth_centre, 0.016) * face  # lips and surroundings
        lower_lip = w_jaw * lips_w
        upper_lip = (1 - w_jaw) * lips_w * (V[:, 1] > self.y_corner - 0.004)
        shapes: dict[str, np.ndarray] = {}
        jaw_open = jaw_rotate(22.0)
        shapes["jawOpen"] = jaw_open
        # Sideways and forward jaw motion drags the lips with it: a smoother weight keeps
        # the small triangles at the lip corners from folding.
        w_soft = w_jaw.copy()
        A = sp.diags(1.0 / np.maximum(self.L_face.diagonal(), 1)) @ (sp.diags(self.L_face.diagonal()) - self.L_face)
        for _ in range(15):
            w_soft[:468] = 0.5 * w_soft[:468] + 0.5 * (A @ w_soft[:468])
        shapes["jawForward"] = w_soft[:, None] * vec(0, 0, 6)
        shapes["jawLeft"] = w_soft[:, None] * vec(6, 0, 0)
        shapes["jawRight"] = w_soft[:, None] * vec(-6, 0, 0)
        # mouthClose: the lips close while the jaw is open (ARKit pairs it with jawOpen).
        shapes["mouthClose"] = -jaw_open * (gauss(V, self.mouth_centre, 0.012) * face)[:, None] * (w_jaw > 0.3)[:, None]
        shapes["mouthClose"] += upper_lip[:, None] * vec(0, -1.5, 0)

        radial = V - self.mouth_centre
        radial[:, 2] = 0
        inner = gauss(V, self.mouth_centre, 0.010) * face
        shapes["mouthFunnel"] = lips_w[:, None] * vec(0, 0, 7) + inner[:, None] * radial * 0.35 - (
            lips_w[:, None] * radial * np.array([0.25, 0, 0]))
        wide = gauss(V, self.mouth_centre, 0.024) * face
        shapes["mouthPucker"] = lips_w[:, None] * vec(0, 0, 8) - wide[:, None] * radial * np.array([0.45, 0.1, 0])
        mouth_region = gauss(V, self.mouth_centre, 0.020) * face
        shapes["mouthLeft"] = mouth_region[:, None] * vec(8, 0, 0)
        shapes["mouthRight"] = mouth_region[:, None] * vec(-8, 0, 0)
        for s, sign in (("L", 1), ("R", -1)):
            S = "Left" if s == "L" else "Right"
            corner = P[self.corner[s]]
            wc = gauss(V, corner, 0.013) * face
            cheek = gauss(V, corner + np.array([sign * 0.012, 0.02, 0]), 0.014) * face
            shapes[f"mouthSmile{S}"] = wc[:, None] * vec(sign * 4, 7, -3) + cheek[:, None] * vec(0, 2.5, 1.5)
            shapes[f"mouthFrown{S}"] = wc[:, None] * vec(sign * 1, -6, 0)
            shapes[f"mouthDimple{S}"] = wc[:, None] * vec(sign * 3, 0, -4)
            shapes[f"mouthStretch{S}"] = wc[:, None] * vec(sign * 6, -3, -1.5)
            side = self.side(s)
            shapes[f"mouthPress{S}"] = (side * upper_lip)[:, None] * vec(0, -1.5, 0.5) + (side * lower_lip)[:, None] * vec(0, 2.0, 0.5)
            shapes[f"mouthLowerDown{S}"] = (side * lower_lip)[:, None] * vec(0, -5, 0.5)
            shapes[f"mouthUpperUp{S}"] = (side * upper_lip)[:, None] * vec(0, 5, 0.5)
            # Eyes.
            shapes[f"eyeBlink{S}"] = self.lid_closure(s)
            lid = self.lid_closure(s, amount=1.0, meet=0.0)  # lower-lid-only motion is (upper->lower)
            eye_c = self.iris[s]
            lower_lid_region = gauss(V, eye_c + np.array([0, -0.008, 0]), 0.007) * face
            upper_lid_region = gauss(V, eye_c + np.array([0, 0.007, 0]), 0.007) * face
            shapes[f"eyeSquint{S}"] = lower_lid_region[:, None] * vec(0, 2.5, 0.5) + 0.12 * lid + (
                gauss(V, eye_c + np.array([sign * 0.006, -0.018, 0]), 0.010) * face)[:, None] * vec(0, 1.5, 0.5)
            shapes[f"eyeWide{S}"] = upper_lid_region[:, None] * vec(0, 2.5, 0.3)
            look = {
                "Up": ([1, 0, 0], -20.0), "Down": ([1, 0, 0], 20.0),
                "In": ([0, 1, 0], -25.0 * sign), "Out": ([0, 1, 0], 25.0 * sign),
            }
            for k, (axis, deg) in look.items():
                d = self.eyeball_rotation(s, axis, deg)
                if k == "Down":
                    d += 0.35 * shapes[f"eyeBlink{S}"] * (upper_lid_region > 0.05)[:, None]
                if k == "Up":
                    d += upper_lid_region[:, None] * vec(0, 1.5, 0)
                shapes[f"eyeLook{k}{S}"] = d
            # Brows.
            brow = self.brow_upper[s]
            outer_b = P[brow[-1]]
            brow_region = gauss(V, P[brow].mean(0), 0.016) * face
            shapes[f"browDown{S}"] = brow_region[:, None] * vec(-sign * 1.5, -4, 1)
            shapes[f"browOuterUp{S}"] = (gauss(V, outer_b, 0.014) * face)[:, None] * vec(0, 5, 0)
            # Cheeks and nose.
            cheek_c = P[self.near(sign * 0.040, self.iris[s][1] - 0.030)]
            shapes[f"cheekSquint{S}"] = (gauss(V, cheek_c, 0.013) * face)[:, None] * vec(0, 3, 1)
            alar = P[self.near(sign * 0.017, P[self.subnasale, 1] + 0.008)]
            shapes[f"noseSneer{S}"] = (gauss(V, alar, 0.009) * face)[:, None] * vec(0, 4.5, 0.5) + (
                gauss(V, alar + np.array([0, 0.012, 0]), 0.008) * face)[:, None] * vec(0, 1.5, -0.5)
        inner_brows = gauss(V, P[self.brow_upper["L"][0]], 0.012) + gauss(V, P[self.brow_upper["R"][0]], 0.012)
        shapes["browInnerUp"] = (inner_brows * face)[:, None] * vec(0, 5, 0.5)
        cheeks = sum(gauss(V, P[self.near(sg * 0.045, self.y_corner + 0.008)], 0.016) for sg in (1, -1)) * face
        shapes["cheekPuff"] = cheeks[:, None] * (np.sign(V[:, 0])[:, None] * vec(5, 0, 0) + vec(0, 0, 4))
        shapes["mouthRollLower"] = lower_lip[:, None] * vec(0, 2, -4)
        shapes["mouthRollUpper"] = upper_lip[:, None] * vec(0, -2, -4)
        chin = gauss(V, P[CHIN] + np.array([0, 0.012, 0]), 0.014) * face
        shapes["mouthShrugLower"] = (lower_lip + chin)[:, None] * vec(0, 3.5, 1.5)
        shapes["mouthShrugUpper"] = upper_lip[:, None] * vec(0, 3, 0.5)
        tongue = self.part_mask("tongue")
        shapes["tongueOut"] = tongue[:, None] * vec(0, -3, 28)
        missing = set(ARKIT_NAMES) - set(shapes)
        assert not missing, missing
        return np.stack([shapes[n] for n in ARKIT_NAMES], -1).astype(np.float32)

    # -------------------------------------------------------------- identity
    def identity(self) -> np.ndarray:  # [V, 3, S]
        V = self.V.copy()
        P = V[:468]
        # Eyeballs move rigidly with their iris: evaluate their fields at the iris centre.
        for s, name in (("L", "eyeball_left"), ("R", "eyeball_right")):
            V[self.part_mask(name)] = self.iris[s]
        face_like = np.ones(len(V))
        eye_y = self.iris["L"][1]
        y_sub = P[self.subnasale, 1]
        y_chin = P[CHIN, 1]
        low = np.clip((y_sub - V[:, 1]) / (y_sub - y_chin), 0, 1)
        zc = P[:, 2].mean()
        mouth = self.mouth_centre
        modes = []

        def g(c, sigma):
            return gauss(V, c, sigma)[:, None]

        def sym(c, sigma, d):
            """Symmetric pair of Gaussian bumps: ``d`` at (+x) and mirrored at (-x)."""
            c = np.asarray(c)
            m = np.array([-1, 1, 1])
            return g(c, sigma) * d + g(c * m, sigma) * (d * m)

        modes.append(np.stack([0.035 * V[:, 0], 0 * V[:, 0], 0 * V[:, 0]], 1))  # face width
        modes.append(np.stack([0 * V[:, 0], 0.035 * (V[:, 1] - eye_y), 0 * V[:, 0]], 1))  # face height
        modes.append(np.stack([0 * V[:, 0], 0 * V[:, 0], 0.05 * (V[:, 2] - zc)], 1))  # depth
        modes.append(np.stack([0 * low, -0.005 * low, 0 * low], 1))  # lower-face length
        modes.append(np.stack([0.06 * V[:, 0] * low, 0 * low, 0 * low], 1))  # jaw width
        modes.append(g(P[CHIN] + [0, 0.01, 0], 0.015) * [0, 0, 0.004])  # chin projection
        modes.append(g(self.nose_tip, 0.012) * [0, -0.003, 0])  # nose length
        modes.append(g(self.nose_tip + [0, 0.01, 0], 0.014) * [0, 0, 0.003])  # nose projection
        alar = P[self.near(0.017, y_sub + 0.008)]
        modes.append(sym(alar, 0.009, np.array([0.002, 0, 0])))  # nose width
        modes.append(sym(self.iris["L"], 0.013, np.array([0.002, 0, 0])))  # eye spacing
        modes.append((g(self.iris["L"], 0.013) + g(self.iris["R"], 0.013)) * [0, 0.002, 0])  # eye height
        for s in ("L",):
            d = np.zeros_like(V)
            for ss in "LR":
                c = self.iris[ss]
                d += g(c, 0.010) * (V - c) * 0.12 * np.array([1, 1, 0])
            modes.append(d)  # eye size
        tilt = np.zeros_like(V)
        for ss, sg in (("L", 1), ("R", -1)):
            c = self.iris[ss]
            tilt += g(c, 0.012) * np.stack([0 * V[:, 0], sg * 0.07 * (V[:, 0] - c[0]), 0 * V[:, 0]], 1)
        modes.append(tilt)  # canthal tilt
        modes.append(sym(P[self.corner["L"]], 0.011, np.array([0.003, 0, 0])))  # mouth width
        w_jaw = self.w_jaw
        lips = gauss(V, mouth, 0.014)[:, None]
        modes.append(lips * (1 - w_jaw)[:, None] * (V[:, 1] > mouth[1])[:, None] * [0, 0.0015, 0.0005])  # upper lip
        modes.append(lips * w_jaw[:, None] * [0, -0.0015, 0.0005])  # lower lip
        modes.append(g(mouth, 0.02) * [0, 0.003, 0])  # mouth height
        cheek = P[self.near(0.045, y_sub)]
        modes.append(sym(cheek, 0.02, np.array([0.003, 0, 0.002])))  # cheek fullness
        bone = P[self.near(0.042, eye_y - 0.02)]
        modes.append(sym(bone, 0.013, np.array([0.0005, 0, 0.003])))  # cheekbones
        brow = P[self.brow_upper["L"]].mean(0)
        modes.append(sym(brow, 0.016, np.array([0, 0, 0.003])))  # brow ridge
        top = np.clip(V[:, 1] - brow[1], 0, None)
        modes.append(np.stack([0 * top, 0 * top, -0.08 * top], 1))  # forehead slope
        modes.append(g(P[self.near(0.0, eye_y)], 0.012) * [0, 0, 0.0025])  # nose bridge
        B = np.stack([np.asarray(m, float) * face_like[:, None] for m in modes], -1)
        return B.astype(np.float32)

    # -------------------------------------------------------------- landmarks
    def ibug68(self):
        """iBUG-68 as (triangle, barycentric) on the face mesh, from its feature loops."""
        P = self.V[:468]
        F = self.Fface

        def arc(vertices: list[int], count: int, include_ends: bool = True) -> list[np.ndarray]:
            pts = P[vertices]
            seg = np.linalg.norm(np.diff(pts, axis=0), axis=1)
            s = np.concatenate([[0], np.cumsum(seg)])
            ts = np.linspace(0, s[-1], count) if include_ends else np.linspace(0, s[-1], count + 2)[1:-1]
            out = []
            for t in ts:
                k = min(np.searchsorted(s, t, side="right") - 1, len(seg) - 1)
                f = (t - s[k]) / max(seg[k], 1e-12)
                out.append((vertices[k], vertices[k + 1], f))
            return out

        def path(loop: list[int], a: int, b: int, via_lower: bool | None = None) -> list[int]:
            """The part of a closed loop from a to b; of the two ways, the one above/below."""
            i, j = loop.index(a), loop.index(b)
            fwd = [loop[(i + k) % len(loop)] for k in range((j - i) % len(loop) + 1)]
            bwd = [loop[(i - k) % len(loop)] for k in range((i - j) % len(loop) + 1)]
            mean_y = lambda p: P[p[1:-1], 1].mean() if len(p) > 2 else 0  # noqa: E731
            if via_lower is None:
                return fwd
            return min((fwd, bwd), key=mean_y) if via_lower else max((fwd, bwd), key=mean_y)

        points: list[tuple[int, int, float]] = []
        # Jaw 0-16: the face oval below the outer eye corners, subject's right to left.
        eyeR, eyeL = self.eye_loop["R"], self.eye_loop["L"]
        outer_R = min(eyeR, key=lambda v: P[v, 0])
        outer_L = max(eyeL, key=lambda v: P[v, 0])
        y_top = 0.5 * (P[outer_R, 1] + P[outer_L, 1]) - 0.004
        oval = self.oval
        start = min((v for v in oval if P[v, 0] < 0), key=lambda v: abs(P[v, 1] - y_top))
        end = min((v for v in oval if P[v, 0] > 0), key=lambda v: abs(P[v, 1] - y_top))
        points += arc(path(oval, start, end, via_lower=True), 17)
        # Brows 17-26: upper brow line, outer->inner on the right, inner->outer on the left.
        points += arc(self.brow_upper["R"][::-1], 5)
        points += arc(self.brow_upper["L"], 5)
        # Nose bridge 27-30: midline from between the eyes to the tip.
        mid = sorted((v for v in self.midline if self.nose_tip[1] <= P[v, 1] <= P[self.near(0, self.iris["L"][1])][1] + 1e-9),
                     key=lambda v: -P[v, 1])
        bridge = [self.near(0, self.iris["L"][1])] + [v for v in mid if v != self.near(0, self.iris["L"][1])]
        bridge = sorted(set(bridge), key=lambda v: -P[v, 1])
        points += arc(bridge + ([NOSE_TIP] if bridge[-1] != NOSE_TIP else []), 4)
        # Lower nose 31-35: the lower edge of the nose from the right alar base through
        # the subnasale to the left, 3 mm above the subnasale, found by a frontal ray.
        y_base = P[self.subnasale, 1] + 0.0045
        nose_points = [("ray", x, y_base) for x in (-0.015, -0.0075)] + [(self.subnasale, self.subnasale, 0.0)]
        nose_points += [("ray", x, y_base) for x in (0.0075, 0.015)]
        points += nose_points
        # Eyes 36-47.
        for loop in (eyeR, eyeL):
            xs = P[loop, 0]
            left_c, right_c = loop[int(np.argmin(xs))], loop[int(np.argmax(xs))]
            upper = path(loop, left_c, right_c, via_lower=False)
            lower = path(loop, right_c, left_c, via_lower=True)
            pts = arc(upper, 4)  # corner, 2 upper, corner
            low = arc(lower, 4)
            points += [pts[0], pts[1], pts[2], pts[3], low[1], low[2]]
        # Mouth 48-59 outer, 60-67 inner.
        cR, cL = self.corner["R"], self.corner["L"]
        up = arc(path(self.outer_lip, cR, cL, via_lower=False), 7)
        lo = arc(path(self.outer_lip, cL, cR, via_lower=True), 7)
        points += up[:6] + lo[:6]
        iR = min(self.inner_lip, key=lambda v: P[v, 0])
        iL = max(self.inner_lip, key=lambda v: P[v, 0])
        up = arc(path(self.inner_lip, iR, iL, via_lower=False), 5)
        lo = arc(path(self.inner_lip, iL, iR, via_lower=True), 5)
        points += up[:4] + lo[:4]
        assert len(points) == 68, len(points)
        return self._embed_on_edges(points, F)

    def _embed_on_edges(self, points, F):
        face_index, bary = [], []
        for a, b, f in points:
            if isinstance(a, str):  # ("ray", x, y): the front-most surface point at (x, y)
                r, w = self.frontal_ray(b, f)
                face_index.append(r)
                bary.append(w)
                continue
            if a == b or f == 0.0:
                rows, cols = np.nonzero(F == a)
                w = np.zeros(3)
                w[cols[0]] = 1.0
                face_index.append(rows[0])
                bary.append(w)
                continue
            has = (F == a).any(1) & (F == b).any(1)
            r = int(np.nonzero(has)[0][0])
            w = np.zeros(3)
            w[list(F[r]).index(a)] = 1 - f
            w[list(F[r]).index(b)] = f
            face_index.append(r)
            bary.append(w)
        return np.array(face_index, np.int64), np.array(bary, np.float32)

    def mediapipe478(self):
        """MediaPipe's 478 points: vertices 0..467, irises projected onto the eyeballs."""
        F = self.F
        face_index, bary = [], []
        for v in range(468):
            rows, cols = np.nonzero(F == v)
            w = np.zeros(3)
            w[cols[0]] = 1
            face_index.append(rows[0])
            bary.append(w)
        import torch

        from avatar.facemodel.landmarks import closest_points_on_mesh

        for i in range(468, 478):
            side = "R" if i < 473 else "L"
            name = "eyeball_right" if side == "R" else "eyeball_left"
            a, b = self.part_ranges[name]
            keep = np.nonzero((F >= a).all(1) & (F < b).all(1))[0]
            # The iris point seen from the front lands on the eyeball's front.
            c = self.eye_centre[side]
            d = self.P478[i] - c
            d = d / np.linalg.norm(d) * 0.012 + c
            fi, bw, _ = closest_points_on_mesh(torch.tensor(d[None]), torch.tensor(self.V), torch.tensor(F[keep]))
            face_index.append(int(keep[int(fi[0])]))
            bary.append(bw[0].numpy())
        return np.array(face_index, np.int64), np.array(bary, np.float32)

    # -------------------------------------------------------------------- UVs
    def uvs(self) -> tuple[np.ndarray, np.ndarray]:
        """Per-vertex UVs (no seams): the face by frontal projection into [0.02, 0.98]^2;
        the interior parts and eyeballs share small tiles along the bottom edge."""
        V = self.V
        uv = np.zeros((len(V), 2))
        P = V[:468]
        lo, hi = P[:, :2].min(0), P[:, :2].max(0)
        span = (hi - lo).max()
        uv[:468] = 0.1 + 0.88 * (P[:, :2] - (lo + hi) / 2) / span + 0.44
        for k, name in enumerate(["eyeball_right", "eyeball_left", "mouth_cavity", "teeth_upper", "teeth_lower", "tongue"]):
            a, b = self.part_ranges[name]
            q = V[a:b, :2]
            qlo, qhi = q.min(0), q.max(0)
            t = (q - qlo) / np.maximum(qhi - qlo, 1e-9)
            uv[a:b] = np.array([0.01 + k * 0.165, 0.005]) + 0.08 * t * [1.9, 1.0]
        uv = np.clip(uv, 0, 1)
        return uv.astype(np.float32), self.F.copy()


def build(shared: Path) -> dict[str, np.ndarray]:
    mean = canonicalize(detect_mean_shape(shared))
    b = Builder(mean)
    expr = b.expressions()
    ident = b.identity()
    ib_f, ib_b = b.ibug68()
    mp_f, mp_b = b.mediapipe478()
    uvs, face_uvs = b.uvs()
    n = len(b.V)
    masks = {}
    face = b.part_mask("face")
    lips = np.zeros(n, bool)
    lip_v = set(b.outer_lip) | set(b.inner_lip)
    P = b.V[:468]
    outer = P[b.outer_lip, :2]
    from avatar.facemodel.ict import _inside_grown

    lips[:468] = _inside_grown(P[:, :2], outer, 0.0005)
    lips[list(lip_v)] = True
    eyes = b.part_mask("eyeball_left") | b.part_mask("eyeball_right")
    masks["face"] = face
    masks["lips"] = lips
    masks["eyes"] = eyes
    masks["scalp"] = np.zeros(n, bool)  # the built-in model is a face mask: no scalp
    masks["neck"] = np.zeros(n, bool)  # and no neck
    masks["mouth_interior"] = b.part_mask("mouth_cavity") | b.part_mask("tongue")
    masks["teeth"] = b.part_mask("teeth_upper") | b.part_mask("teeth_lower")
    iris = np.zeros(n, bool)
    for s, name in (("L", "eyeball_left"), ("R", "eyeball_right")):
        m = b.part_mask(name)
        d = b.V[m] - b.eye_centre[s]
        iris[np.nonzero(m)[0]] = d[:, 2] / np.linalg.norm(d, axis=1) > np.cos(np.radians(38))
    masks["iris"] = iris
    moved = np.linalg.norm(expr, axis=1).max(1)
    rigid = (moved < 1e-4) & ~eyes
    return dict(
        template=b.V.astype(np.float32), faces=b.F.astype(np.int64),
        identity_basis=ident, expression_basis=expr, expression_names=np.array(ARKIT_NAMES),
        uvs=uvs, face_uvs=face_uvs, rigid_mask=rigid,
        ibug68_face_index=ib_f, ibug68_bary=ib_b, mediapipe478_face_index=mp_f, mediapipe478_bary=mp_b,
        identity_names=np.array(IDENTITY_NAMES),
        **{f"region_{k}": v for k, v in masks.items()},
    )


IDENTITY_NAMES = (
    "face_width", "face_height", "face_depth", "lower_face_length", "jaw_width", "chin_projection",
    "nose_length", "nose_projection", "nose_width", "eye_spacing", "eye_height", "eye_size",
    "canthal_tilt", "mouth_width", "upper_lip", "lower_lip", "mouth_height", "cheek_fullness",
    "cheekbones", "brow_ridge", "forehead_slope", "nose_bridge",
)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shared", default=os.environ.get("AVATAR_SHARED", str(ROOT.parent / "shared")))
    ap.add_argument("-o", "--output", default=str(ROOT / "assets" / "builtin_face.npz"))
    args = ap.parse_args()
    arrays = build(Path(args.shared))
    assert arrays["identity_basis"].shape[-1] == len(IDENTITY_NAMES)
    from avatar.paths import atomic_path

    with atomic_path(args.output) as tmp:
        np.savez_compressed(tmp, **arrays)
    digest = hashlib.sha256(b"".join(np.ascontiguousarray(arrays[k]).tobytes() for k in sorted(arrays))).hexdigest()
    print(f"wrote {args.output}: {len(arrays['template'])} vertices, {len(arrays['faces'])} triangles, "
          f"{arrays['identity_basis'].shape[-1]} identity modes, 52 ARKit shapes; content sha256 {digest[:16]}")


if __name__ == "__main__":
    main()
