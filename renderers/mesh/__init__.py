"""Differentiable mesh rendering on the CPU (and CUDA through nvdiffrast).

- :func:`rasterize_mesh` per-pixel triangle, barycentrics, depth (``backend=``).
- :func:`interpolate` / :func:`interpolate_corners` attributes per vertex / corner.
- :func:`sample_texture` bilinear texture lookup.
- :func:`antialias` analytic silhouette blending (gradients to vertex positions).
- :func:`shade`, :func:`sh_irradiance`, :func:`vertex_normals` SH lighting.
- :func:`render_mesh` all of the above in one call.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor

from ._common import Fragments, to_camera
from .antialias import antialias
from .raster import Backend, choose_backend, interpolate, interpolate_corners, rasterize_mesh
from .shading import named_lighting, sh_basis, sh_irradiance, shade, vertex_normals
from .texture import sample_texture

__all__ = [
    "Fragments", "MeshRender", "antialias", "choose_backend", "interpolate", "interpolate_corners",
    "named_lighting", "rasterize_mesh", "render_mesh", "sample_texture", "sh_basis", "sh_irradiance",
    "shade", "vertex_normals",
]


class MeshRender(NamedTuple):
    """Output of :func:`render_mesh` (B images of H x W).

    Attributes:
        image: [B, H, W, 3] linear RGB composited over the background.
        alpha: [B, H, W] coverage (antialiased at silhouettes).
        depth: [B, H, W] camera z (0 on background).
        normals: [B, H, W, 3] world-space unit normals (0 on background).
        fragments: the rasterizer's fragments.
    """

    image: Tensor
    alpha: Tensor
    depth: Tensor
    normals: Tensor
    fragments: Fragments


def render_mesh(
    vertices: Tensor,  # [B, V, 3] or [V, 3] world space
    faces: Tensor,  # [F, 3]
    camera,  # avatar.camera.Camera
    vertex_colors: Tensor | None = None,  # [B, V, 3] or [V, 3] albedo
    texture: Tensor | None = None,  # [Ht, Wt, 3] or [B, Ht, Wt, 3] albedo
    uvs: Tensor | None = None,  # [U, 2]
    face_uvs: Tensor | None = None,  # [F, 3]
    sh: Tensor | None = None,  # [9, 3] or [B, 9, 3] SH radiance; None = uniform white sky
    specular: float = 0.0,
    shininess: float = 32.0,
    background: tuple[float, float, float] | Tensor = (0.0, 0.0, 0.0),
    antialiased: bool = True,
    near: float = 0.01,
    far: float = 100.0,
    cull_backfaces: bool = False,
    backend: Backend = "auto",
) -> MeshRender:
    """Render a lit, coloured or textured mesh; differentiable w.r.t. vertex positions,
    colours, texture and lighting.

    Albedo comes from ``texture`` sampled at ``uvs``/``face_uvs`` (per triangle corner, so
    seams are kept), else from ``vertex_colors``, else mid grey.
    """
    verts = vertices if vertices.ndim == 3 else vertices[None]
    B = verts.shape[0]
    frags = rasterize_mesh(verts, faces, camera, near=near, far=far, cull_backfaces=cull_backfaces,
                           backend=backend)
    dtype = verts.dtype
    faces = faces.long()
    from .raster import _camera_tensors

    K, w2c, H, W = _camera_tensors(camera, B)
    w2c = w2c.to(dtype)
    # Shading runs on the covered pixels only (packed [P, ...]), then is scattered back.
    b, i, j = torch.nonzero(frags.mask, as_tuple=True)
    fid = frags.face_index[b, i, j]
    bary = frags.bary[b, i, j][..., None]  # [P, 3, 1]
    tri = faces[fid]  # [P, 3]
    per_vertex = [vertex_normals(verts, faces), verts]
    if texture is None and vertex_colors is not None:
        vc = vertex_colors.to(dtype)
        per_vertex.append((vc if vc.ndim == 3 else vc[None]).expand(B, *vc.shape[-2:]))
    attrs = torch.cat(per_vertex, -1)  # [B, V, 6 or 9]
    V = attrs.shape[1]
    # index_select (its backward is an index_add) rather than advanced indexing.
    gathered = attrs.reshape(B * V, -1).index_select(0, (b[:, None] * V + tri).reshape(-1))
    vals = (gathered.view(len(b), 3, -1) * bary).sum(1)  # [P, C]
    normals_p = torch.nn.functional.normalize(vals[:, 0:3], dim=-1, eps=1e-12)
    points = vals[:, 3:6]
    if texture is not None:
        if uvs is None or face_uvs is None:
            raise ValueError("a texture needs uvs [U, 2] and face_uvs [F, 3]")
        uv = (uvs.to(dtype)[face_uvs.long()[fid]] * bary).sum(1)  # per-corner UVs keep seams
        tex = texture.to(dtype)
        tex = (tex if tex.ndim == 4 else tex[None]).expand(B, *tex.shape[-3:])
        albedo = torch.cat([sample_texture(tex[k], uv[b == k][None, None])[0, 0] for k in range(B)]) \
            if B > 1 else sample_texture(tex, uv[None, None])[0, 0]
    elif vertex_colors is not None:
        albedo = vals[:, 6:9]
    else:
        albedo = torch.full_like(points, 0.6)
    centre = -(w2c[:, :3, :3].transpose(-1, -2) @ w2c[:, :3, 3:4])[..., 0]  # [B, 3] camera centres
    view = torch.nn.functional.normalize(centre[b] - points, dim=-1, eps=1e-12)
    if sh is None:
        sh = named_lighting("ambient")
    sh = sh.to(dtype)
    sh_b = (sh if sh.ndim == 3 else sh[None]).expand(B, 9, 3)
    colour = shade(albedo, normals_p, view, sh_b[b], specular=specular, shininess=shininess)
    flat = (b * H + i) * W + j
    normals = torch.zeros(B * H * W, 3, dtype=dtype).index_put((flat,), normals_p).view(B, H, W, 3)
    bg = torch.as_tensor(background, dtype=dtype).expand(3)
    rgba = torch.cat([bg, torch.zeros(1, dtype=dtype)]).repeat(B * H * W, 1)
    rgba = rgba.index_put((flat,), torch.cat([colour, torch.ones_like(colour[:, :1])], -1)).view(B, H, W, 4)
    if antialiased:
        verts_cam = to_camera(verts, w2c)
        rgba = antialias(rgba, frags, verts_cam, faces, K.to(dtype), near=near)
    return MeshRender(rgba[..., :3], rgba[..., 3], frags.depth, normals, frags)
