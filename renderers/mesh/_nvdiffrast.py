"""nvdiffrast adapter (CUDA only; NVIDIA's licence is non-commercial, so never the
default): visibility from ``nvdiffrast.torch.rasterize`` on an OpenGL clip-space
projection that matches K exactly; barycentrics then come from the shared
differentiable recomputation, so gradients are those of every other backend.

nvdiffrast clips against the near plane in clip space and samples pixel centres at
(j + 0.5, i + 0.5), like our rule; depth-equal ties may resolve differently.
"""

from __future__ import annotations

import torch
from torch import Tensor

_context = None


def nvdiffrast_available() -> tuple[bool, str]:
    try:
        import nvdiffrast.torch  # noqa: F401
    except Exception as exc:  # not installed, or built without CUDA
        return False, f"nvdiffrast unavailable: {type(exc).__name__}: {exc}"
    if not torch.cuda.is_available():
        return False, "nvdiffrast is installed but there is no CUDA device"
    return True, "nvdiffrast"


def visible_faces_nvdiffrast(
    verts_cam: Tensor,  # [B, V, 3]
    faces: Tensor,  # [F, 3]
    K: Tensor,  # [B, 3, 3]
    height: int,
    width: int,
    near: float,
    far: float,
) -> Tensor:  # [B, H, W] long (on the CPU, -1 background)
    import nvdiffrast.torch as dr

    global _context
    if _context is None:
        _context = dr.RasterizeCudaContext()
    dev = torch.device("cuda")
    v = verts_cam.detach().float().to(dev)
    Kc = K.float().to(dev)
    fx, fy, cx, cy = Kc[:, 0, 0], Kc[:, 1, 1], Kc[:, 0, 2], Kc[:, 1, 2]
    x, y, z = v[..., 0], v[..., 1], v[..., 2]
    # OpenCV camera -> clip space with y up in NDC; nvdiffrast's row 0 is y = -1 (bottom),
    # so the image is flipped back below.
    cxn = (2 * (fx[:, None] * x + cx[:, None] * z) / width - z)
    cyn = -(2 * (fy[:, None] * y + cy[:, None] * z) / height - z)
    cz = (far + near) / (far - near) * z - 2 * far * near / (far - near)
    clip = torch.stack([cxn, cyn, cz, z], -1).contiguous()
    rast, _ = dr.rasterize(_context, clip, faces.int().to(dev).contiguous(), (height, width))
    tri = rast[..., 3].long() - 1  # 0 = background
    return tri.flip(1).cpu()
