"""Fast CPU visibility: a numba z-buffer that follows the reference's rule exactly.

Same per-pair arithmetic as ``_common.ray_triangle`` (float64, same operation order),
so that coverage decisions match the reference bit for bit. The image is cut into
horizontal bands processed in parallel; every thread walks the triangles whose
clipped bounding box meets its band.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor


_kernel = None


def _compile():
    global _kernel
    if _kernel is not None:
        return _kernel
    import numba as nb

    @nb.njit(parallel=True, cache=True, fastmath=False, nogil=True)
    def zbuffer(tri, box, rays, near, far, cull, bands, out_f, out_z):  # pragma: no cover (compiled)
        H, W = out_f.shape
        F = tri.shape[0]
        rows_per_band = (H + bands - 1) // bands
        for band in nb.prange(bands):
            r0 = band * rows_per_band
            r1 = min(H, r0 + rows_per_band)
            for f in range(F):
                i0 = max(box[f, 0], r0)
                i1 = min(box[f, 1], r1)
                if i0 >= i1 or box[f, 2] >= box[f, 3]:
                    continue
                ax, ay, az = tri[f, 0, 0], tri[f, 0, 1], tri[f, 0, 2]
                e1x, e1y, e1z = tri[f, 1, 0] - ax, tri[f, 1, 1] - ay, tri[f, 1, 2] - az
                e2x, e2y, e2z = tri[f, 2, 0] - ax, tri[f, 2, 1] - ay, tri[f, 2, 2] - az
                sx, sy, sz = -ax, -ay, -az
                # q = s x e1 does not depend on the pixel.
                qx = sy * e1z - sz * e1y
                qy = sz * e1x - sx * e1z
                qz = sx * e1y - sy * e1x
                znum = e2x * qx + e2y * qy + e2z * qz
                for i in range(i0, i1):
                    for j in range(box[f, 2], box[f, 3]):
                        dx, dy, dz = rays[i, j, 0], rays[i, j, 1], rays[i, j, 2]
                        px = dy * e2z - dz * e2y
                        py = dz * e2x - dx * e2z
                        pz = dx * e2y - dy * e2x
                        det = e1x * px + e1y * py + e1z * pz
                        if abs(det) <= 1e-300:
                            continue
                        if cull and det <= 0:
                            continue
                        inv = 1.0 / det
                        u = (sx * px + sy * py + sz * pz) * inv
                        v = (dx * qx + dy * qy + dz * qz) * inv
                        w0 = 1.0 - u - v
                        if u < 0 or v < 0 or w0 < 0:
                            continue
                        z = znum * inv
                        if z < near or z > far:
                            continue
                        if z < out_z[i, j] or (z == out_z[i, j] and f < out_f[i, j]):
                            out_z[i, j] = z
                            out_f[i, j] = f

    @nb.njit(parallel=True, cache=True, fastmath=False, nogil=True)
    def bounds(tri, fx, fy, cx, cy, skew, near, H, W, box):  # pragma: no cover (compiled)
        """The same conservative clipped bounding boxes as _common.triangle_pixel_bounds."""
        F = tri.shape[0]
        pad = 1e-6
        for f in nb.prange(F):
            umin, umax, vmin, vmax = np.inf, -np.inf, np.inf, -np.inf
            any_valid = False
            for k in range(6):
                if k < 3:
                    x, y, z = tri[f, k, 0], tri[f, k, 1], tri[f, k, 2]
                else:
                    p = k - 3
                    q = (p + 1) % 3
                    pz, qz = tri[f, p, 2], tri[f, q, 2]
                    if not ((pz - near) * (qz - near) < 0):
                        continue
                    t = (near - pz) / (qz - pz)
                    x = tri[f, p, 0] + t * (tri[f, q, 0] - tri[f, p, 0])
                    y = tri[f, p, 1] + t * (tri[f, q, 1] - tri[f, p, 1])
                    z = near
                if z < near * (1 - 1e-12):
                    continue
                any_valid = True
                u = (fx * x + skew * y) / z + cx
                v = fy * y / z + cy
                umin, umax = min(umin, u), max(umax, u)
                vmin, vmax = min(vmin, v), max(vmax, v)
            if not any_valid:
                box[f, 0] = box[f, 1] = box[f, 2] = box[f, 3] = 0
                continue
            box[f, 0] = int(min(max(np.ceil(vmin - 0.5 - pad), 0.0), H))
            box[f, 1] = int(min(max(np.floor(vmax - 0.5 + pad) + 1, 0.0), H))
            box[f, 2] = int(min(max(np.ceil(umin - 0.5 - pad), 0.0), W))
            box[f, 3] = int(min(max(np.floor(umax - 0.5 + pad) + 1, 0.0), W))

    _kernel = (zbuffer, bounds)
    return _kernel


def numba_available() -> tuple[bool, str]:
    try:
        import numba  # noqa: F401
    except ImportError:
        return False, "numba is not installed (pip install numba)"
    return True, "numba"


def visible_faces_cpu(
    verts_cam: Tensor,  # [B, V, 3]
    faces: Tensor,  # [F, 3]
    K: Tensor,  # [B, 3, 3]
    rays: Tensor,  # [B, H, W, 3] float64
    near: float,
    far: float,
    cull_backfaces: bool,
) -> Tensor:  # [B, H, W] long
    zbuffer, bounds = _compile()
    B, H, W, _ = rays.shape
    tri_all = verts_cam.detach().double()[:, faces].numpy()  # [B, F, 3, 3]
    Kn = K.double().numpy()
    out = np.empty((B, H, W), np.int64)
    bands = max(4 * torch.get_num_threads(), 1)
    none = np.iinfo(np.int64).max
    for b in range(B):
        tri = np.ascontiguousarray(tri_all[b])
        box = np.empty((tri.shape[0], 4), np.int64)
        bounds(tri, Kn[b, 0, 0], Kn[b, 1, 1], Kn[b, 0, 2], Kn[b, 1, 2], Kn[b, 0, 1], float(near), H, W, box)
        out_f = np.full((H, W), none, np.int64)
        out_z = np.full((H, W), np.inf)
        zbuffer(tri, box, np.ascontiguousarray(rays[b].numpy()), float(near), float(far), bool(cull_backfaces),
                bands, out_f, out_z)
        out_f[out_f == none] = -1
        out[b] = out_f
    return torch.from_numpy(out)
