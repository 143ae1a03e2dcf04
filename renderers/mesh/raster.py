"""``rasterize_mesh``: triangles to per-pixel (triangle, barycentrics, depth).

Backends (``backend=``): ``reference`` (pure PyTorch, the spec), ``cpu`` (numba
z-buffer), ``nvdiffrast`` (CUDA), ``auto`` (nvdiffrast where usable, else cpu, else
reference). They differ only in how the visible triangle per pixel is found; the
barycentrics and depth are then recomputed by one differentiable function, so every
backend gives the same gradients w.r.t. vertex positions.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor

from ._common import Fragments, differentiable_fragments, pixel_rays, to_camera

Backend = Literal["auto", "reference", "cpu", "nvdiffrast"]


def _camera_tensors(camera, B: int) -> tuple[Tensor, Tensor, int, int]:
    K = camera.K
    w2c = camera.world_to_camera
    K = K.expand(B, 3, 3) if K.ndim == 2 else K.reshape(-1, 3, 3).expand(B, 3, 3)
    w2c = w2c.expand(B, 4, 4) if w2c.ndim == 2 else w2c.reshape(-1, 4, 4).expand(B, 4, 4)
    return K, w2c, int(camera.height), int(camera.width)


def choose_backend(backend: Backend) -> str:
    if backend != "auto":
        return backend
    from ._nvdiffrast import nvdiffrast_available

    if nvdiffrast_available()[0]:
        return "nvdiffrast"
    from ._cpu import numba_available

    return "cpu" if numba_available()[0] else "reference"


def rasterize_mesh(
    vertices: Tensor,  # [B, V, 3] or [V, 3], world space
    faces: Tensor,  # [F, 3] long
    camera,  # avatar.camera.Camera with batch () or (B,)
    near: float = 0.01,
    far: float = 100.0,
    cull_backfaces: bool = False,
    backend: Backend = "auto",
) -> Fragments:
    """Rasterize triangles seen by OpenCV cameras.

    Args:
        vertices: [B, V, 3] (or [V, 3]) world-space positions (metres).
        faces: [F, 3] long triangle indices; counter-clockwise seen from outside is front.
        camera: ``avatar.camera.Camera`` (K [.., 3, 3], world_to_camera [.., 4, 4]), one
            per batch item or one shared.
        near, far: depth range in metres (camera z).
        cull_backfaces: drop triangles seen from behind.
        backend: ``auto``, ``reference``, ``cpu`` or ``nvdiffrast``.

    Returns:
        Fragments with face_index [B, H, W], bary [B, H, W, 3], depth [B, H, W], mask.
    """
    if vertices.ndim == 2:
        vertices = vertices[None]
    if vertices.ndim != 3 or vertices.shape[-1] != 3:
        raise ValueError(f"expected vertices [B, V, 3] or [V, 3]; got {tuple(vertices.shape)}")
    if faces.ndim != 2 or faces.shape[-1] != 3:
        raise ValueError(f"expected faces [F, 3]; got {tuple(faces.shape)}")
    if faces.numel() and (int(faces.min()) < 0 or int(faces.max()) >= vertices.shape[1]):
        raise ValueError(f"faces index vertices outside 0..{vertices.shape[1] - 1}")
    if not 0 < near < far:
        raise ValueError(f"expected 0 < near < far; got near={near}, far={far}")
    faces = faces.long()
    B = vertices.shape[0]
    K, w2c, H, W = _camera_tensors(camera, B)
    verts_cam = to_camera(vertices, w2c.to(vertices.dtype))
    rays = pixel_rays(K, H, W)  # float64, shared by the visibility pass and the recomputation
    name = choose_backend(backend)
    if name == "reference":
        from ._reference import visible_faces_reference

        face_index = visible_faces_reference(verts_cam, faces, K, rays, near, far, cull_backfaces)
    elif name == "cpu":
        from ._cpu import visible_faces_cpu

        face_index = visible_faces_cpu(verts_cam, faces, K, rays, near, far, cull_backfaces)
    elif name == "nvdiffrast":
        from ._nvdiffrast import nvdiffrast_available, visible_faces_nvdiffrast

        ok, why = nvdiffrast_available()
        if not ok:
            raise RuntimeError(f"backend='nvdiffrast' is not usable here: {why}")
        if cull_backfaces:
            raise ValueError("cull_backfaces is not supported by the nvdiffrast adapter")
        face_index = visible_faces_nvdiffrast(verts_cam, faces, K, H, W, near, far)
    else:
        raise ValueError(f"unknown backend {backend!r}; use auto, reference, cpu or nvdiffrast")
    return differentiable_fragments(face_index, verts_cam, faces, rays)


def interpolate(
    attributes: Tensor,  # [B, V, C] or [V, C]
    faces: Tensor,  # [F, 3]
    fragments: Fragments,
) -> Tensor:  # [B, H, W, C]
    """Interpolate per-vertex attributes with the fragments' barycentrics (0 on background)."""
    attr = attributes if attributes.ndim == 3 else attributes[None]
    if attr.ndim != 3 or attr.shape[1] <= int(faces.max()):
        raise ValueError(f"expected attributes [B, V, C] or [V, C] covering the faces' vertices; "
                         f"got {tuple(attributes.shape)}")
    fi = fragments.face_index.clamp_min(0)
    B = fi.shape[0]
    attr = attr.expand(B, *attr.shape[1:])
    idx = faces[fi]  # [B, H, W, 3]
    bidx = torch.arange(B)[:, None, None, None].expand_as(idx)
    return _weigh(attr[bidx, idx], fragments)


def interpolate_corners(
    corner_attributes: Tensor,  # [F, 3, C] or [B, F, 3, C]
    fragments: Fragments,
) -> Tensor:  # [B, H, W, C]
    """Interpolate per-triangle-corner attributes: values that differ between the
    triangles meeting at a vertex, such as UVs across a seam (0 on background)."""
    attr = corner_attributes if corner_attributes.ndim == 4 else corner_attributes[None]
    if attr.ndim != 4 or attr.shape[2] != 3:
        raise ValueError(f"expected corner attributes [F, 3, C] or [B, F, 3, C]; got {tuple(corner_attributes.shape)}")
    fi = fragments.face_index.clamp_min(0)
    B = fi.shape[0]
    attr = attr.expand(B, *attr.shape[1:])
    bidx = torch.arange(B)[:, None, None].expand_as(fi)
    return _weigh(attr[bidx, fi], fragments)


def _weigh(corner_values: Tensor, fragments: Fragments) -> Tensor:  # [B, H, W, 3, C] -> [B, H, W, C]
    out = (corner_values * fragments.bary[..., None].to(corner_values.dtype)).sum(-2)
    return out * fragments.mask[..., None]
