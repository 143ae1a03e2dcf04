"""Pinhole cameras: intrinsics, OpenCV world-to-camera poses, projection, and converters.

Conventions (CONVENTIONS 11; every renderer and fitter of the engine uses these):

- **Camera frame** is OpenCV's: x right, y down, z forward (into the scene), metres.
- **world_to_camera** ``[..., 4, 4]`` maps world points to camera points,
  ``p_cam = R @ p_world + t`` (gsplat calls this matrix ``viewmats``).
- **Pixel coordinates** are continuous, with the origin at the top-left *corner* of the
  image, x to the right and y down. Pixel (row ``i``, column ``j``) covers the square
  ``[j, j + 1) x [i, i + 1)``, so its centre is ``(j + 0.5, i + 0.5)``, and the whole
  image spans ``[0, width] x [0, height]``. A point projects to
  ``(u, v) = (K @ p_cam)[:2] / z``.

Why half-integer pixel centres: it is the convention of both GPU back ends the engine
drives. gsplat projects means with ``K @ p / z`` and evaluates pixel ``(i, j)`` at
``(j + 0.5, i + 0.5)`` (``gsplat/cuda/_torch_impl.py``, ``accumulate``); OpenGL and
nvdiffrast put fragment centres at half-integers of the window. With it, ``K`` goes to
gsplat unchanged, :func:`opengl_projection` needs no half-pixel fudge, a centred
principal point is exactly ``(width / 2, height / 2)``, and resizing an image by ``s``
is just ``K' = diag(s, s, 1) @ K``. COLMAP uses the same convention. OpenCV's own
calibration puts pixel centres at *integers* (top-left centre at ``(0, 0)``); convert
such intrinsics with :func:`intrinsics_from_opencv` (``cx + 0.5, cy + 0.5``).
"""

from __future__ import annotations

import math
import operator
from dataclasses import dataclass
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = [
    "Camera",
    "GsplatCameras",
    "Projection",
    "camera_center",
    "intrinsics",
    "intrinsics_from_opencv",
    "intrinsics_to_opencv",
    "look_at",
    "ndc_to_pixels",
    "opencv_to_opengl_view",
    "opengl_projection",
    "project",
    "to_gsplat",
]


def _check_matrix(name: str, value: object, rows: int, cols: int) -> Tensor:
    if not isinstance(value, Tensor):
        raise TypeError(f"expected {name} to be a torch.Tensor [..., {rows}, {cols}]; got {type(value).__name__}")
    if value.ndim < 2 or tuple(value.shape[-2:]) != (rows, cols):
        raise ValueError(f"expected {name} [..., {rows}, {cols}]; got {tuple(value.shape)}")
    if not value.is_floating_point():
        raise ValueError(f"expected {name} to be floating point; got {value.dtype}")
    return value


def _check_vectors(name: str, value: object, size: int) -> Tensor:
    if not isinstance(value, Tensor):
        raise TypeError(f"expected {name} to be a torch.Tensor [..., {size}]; got {type(value).__name__}")
    if value.ndim < 1 or value.shape[-1] != size:
        raise ValueError(f"expected {name} [..., {size}]; got {tuple(value.shape)}")
    if not value.is_floating_point():
        raise ValueError(f"expected {name} to be floating point; got {value.dtype}")
    return value


def _positive_int(name: str, value: object) -> int:
    if isinstance(value, bool):
        raise TypeError(f"expected {name} to be a positive int; got {value!r}")
    try:
        number = operator.index(value)  # accepts numpy integers, refuses floats
    except TypeError:
        raise TypeError(f"expected {name} to be a positive int; got {value!r}") from None
    if number <= 0:
        raise ValueError(f"expected {name} to be a positive int; got {number}")
    return number


@dataclass(frozen=True, eq=False)
class Camera:
    """A pinhole camera (no distortion), batched over leading dims ``[...]``.

    The batch dims of ``K`` and ``world_to_camera`` must broadcast against each other
    (one ``K`` may serve many poses); :attr:`batch_shape` is the broadcast shape.

    Attributes:
        K: [..., 3, 3] intrinsics in pixels, ``[[fx, s, cx], [0, fy, cy], [0, 0, 1]]``,
            with the half-integer pixel-centre convention of this module.
        world_to_camera: [..., 4, 4] OpenCV world-to-camera transform (metres).
        width: image width in pixels.
        height: image height in pixels.
    """

    K: Tensor  # [..., 3, 3]
    world_to_camera: Tensor  # [..., 4, 4]
    width: int
    height: int

    def __post_init__(self) -> None:
        K = _check_matrix("K", self.K, 3, 3)
        w2c = _check_matrix("world_to_camera", self.world_to_camera, 4, 4)
        if K.dtype != w2c.dtype or K.device != w2c.device:
            raise ValueError(
                f"expected K and world_to_camera on the same dtype and device; got "
                f"{K.dtype}/{K.device} and {w2c.dtype}/{w2c.device}"
            )
        try:
            torch.broadcast_shapes(K.shape[:-2], w2c.shape[:-2])
        except RuntimeError:
            raise ValueError(
                f"expected K [..., 3, 3] and world_to_camera [..., 4, 4] with broadcastable batch dims; "
                f"got {tuple(K.shape)} and {tuple(w2c.shape)}"
            ) from None
        object.__setattr__(self, "width", _positive_int("width", self.width))
        object.__setattr__(self, "height", _positive_int("height", self.height))

    @classmethod
    def from_fov(
        cls,
        fov_y_degrees: float | Tensor,  # scalar or [...]
        width: int,
        height: int,
        world_to_camera: Tensor | None = None,  # [..., 4, 4]
    ) -> Camera:
        """A camera with square pixels, a centred principal point and a vertical field of view.

        Args:
            fov_y_degrees: vertical field of view in degrees, in (0, 180); a float or a
                tensor [...] (differentiable).
            width: image width in pixels.
            height: image height in pixels.
            world_to_camera: [..., 4, 4] OpenCV pose; identity (camera at the origin
                looking down +z) if omitted.

        Returns:
            A camera with ``fx = fy = (height / 2) / tan(fov_y / 2)`` and
            ``(cx, cy) = (width / 2, height / 2)``.
        """
        width = _positive_int("width", width)
        height = _positive_int("height", height)
        if world_to_camera is not None:
            _check_matrix("world_to_camera", world_to_camera, 4, 4)
        if isinstance(fov_y_degrees, Tensor):
            fov = fov_y_degrees
            if not fov.is_floating_point():
                raise ValueError(f"expected fov_y_degrees to be floating point; got {fov.dtype}")
        else:
            if not 0.0 < float(fov_y_degrees) < 180.0:
                raise ValueError(f"expected fov_y_degrees in (0, 180); got {fov_y_degrees}")
            like = world_to_camera
            fov = torch.tensor(
                float(fov_y_degrees),
                dtype=like.dtype if like is not None else torch.get_default_dtype(),
                device=like.device if like is not None else None,
            )
        focal = 0.5 * height / torch.tan(torch.deg2rad(fov) * 0.5)  # [...]
        K = intrinsics(focal, focal, torch.full_like(focal, width / 2), torch.full_like(focal, height / 2))
        if world_to_camera is None:
            world_to_camera = torch.eye(4, dtype=K.dtype, device=K.device).expand(*K.shape[:-2], 4, 4).clone()
        return cls(K=K, world_to_camera=world_to_camera, width=width, height=height)

    @property
    def batch_shape(self) -> torch.Size:
        """The broadcast batch dims ``[...]`` of ``K`` and ``world_to_camera``."""
        return torch.broadcast_shapes(self.K.shape[:-2], self.world_to_camera.shape[:-2])

    @property
    def fov_y(self) -> Tensor:  # [...]
        """Vertical field of view in degrees: the angle between the top and bottom image edges.

        ``atan(cy / fy) + atan((height - cy) / fy)``; equals ``2 atan(height / (2 fy))``
        for a centred principal point. Ignores skew.
        """
        fy, cy = self.K[..., 1, 1], self.K[..., 1, 2]
        return torch.rad2deg(torch.atan(cy / fy) + torch.atan((self.height - cy) / fy))

    @property
    def fov_x(self) -> Tensor:  # [...]
        """Horizontal field of view in degrees (see :attr:`fov_y`)."""
        fx, cx = self.K[..., 0, 0], self.K[..., 0, 2]
        return torch.rad2deg(torch.atan(cx / fx) + torch.atan((self.width - cx) / fx))

    @property
    def center(self) -> Tensor:  # [..., 3]
        """The camera centre in world coordinates (see :func:`camera_center`)."""
        return camera_center(self.world_to_camera)


def intrinsics(
    fx: Tensor,  # [...]
    fy: Tensor,  # [...]
    cx: Tensor,  # [...]
    cy: Tensor,  # [...]
) -> Tensor:  # [..., 3, 3]
    """Intrinsics matrices ``[[fx, 0, cx], [0, fy, cy], [0, 0, 1]]`` (differentiable).

    Args:
        fx: [...] focal length along x, pixels.
        fy: [...] focal length along y, pixels.
        cx: [...] principal point x, pixels (half-integer pixel-centre convention).
        cy: [...] principal point y, pixels.

    Returns:
        [..., 3, 3] with the broadcast batch shape of the inputs.
    """
    fx, fy, cx, cy = torch.broadcast_tensors(fx, fy, cx, cy)
    zero, one = torch.zeros_like(fx), torch.ones_like(fx)
    rows = [fx, zero, cx, zero, fy, cy, zero, zero, one]
    return torch.stack(rows, dim=-1).reshape(*fx.shape, 3, 3)


def _principal_point_shift(K: Tensor) -> Tensor:  # [3, 3]
    shift = torch.zeros(3, 3, dtype=K.dtype, device=K.device)
    shift[0, 2] = shift[1, 2] = 0.5
    return shift


def intrinsics_from_opencv(K_opencv: Tensor) -> Tensor:  # [..., 3, 3] -> [..., 3, 3]
    """Intrinsics calibrated with OpenCV (pixel centres at integers) to this module's convention.

    Args:
        K_opencv: [..., 3, 3] intrinsics whose top-left pixel centre is at ``(0, 0)``.

    Returns:
        [..., 3, 3] the same camera with the top-left pixel centre at ``(0.5, 0.5)``:
        ``cx + 0.5, cy + 0.5``.
    """
    _check_matrix("K_opencv", K_opencv, 3, 3)
    return K_opencv + _principal_point_shift(K_opencv)


def intrinsics_to_opencv(K: Tensor) -> Tensor:  # [..., 3, 3] -> [..., 3, 3]
    """Inverse of :func:`intrinsics_from_opencv`: ``cx - 0.5, cy - 0.5``.

    Args:
        K: [..., 3, 3] intrinsics in this module's convention.

    Returns:
        [..., 3, 3] intrinsics for OpenCV functions (pixel centres at integers).
    """
    _check_matrix("K", K, 3, 3)
    return K - _principal_point_shift(K)


def look_at(
    eye: Tensor,  # [..., 3]
    target: Tensor,  # [..., 3]
    up: Tensor,  # [..., 3]
) -> Tensor:  # [..., 4, 4]
    """OpenCV world-to-camera transforms of cameras at ``eye`` looking at ``target``.

    The camera's +z axis points from ``eye`` to ``target``, its +y axis (image down)
    points as far away from ``up`` as possible, and +x = y cross z (image right). For
    the engine's model space (+y up, +z out of the face) a camera in front of the face
    is ``look_at(eye=(0, 0, d), target=(0, 0, 0), up=(0, 1, 0))``.

    Args:
        eye: [..., 3] camera centres in world coordinates.
        target: [..., 3] points the cameras look at.
        up: [..., 3] world up directions (need not be unit or orthogonal to the view).

    Returns:
        [..., 4, 4] world-to-camera matrices with the broadcast batch shape of the inputs.

    Raises:
        ValueError: for bad shapes, or when ``eye == target`` or ``up`` is parallel to
            the viewing direction (the orientation is then undefined).
    """
    eye = _check_vectors("eye", eye, 3)
    target = _check_vectors("target", target, 3)
    up = _check_vectors("up", up, 3)
    try:
        eye, target, up = torch.broadcast_tensors(eye, target, up)
    except RuntimeError:
        raise ValueError(
            f"expected eye, target and up [..., 3] with broadcastable batch dims; got "
            f"{tuple(eye.shape)}, {tuple(target.shape)}, {tuple(up.shape)}"
        ) from None
    forward = target - eye
    side = torch.linalg.cross(forward, up, dim=-1)
    tiny = torch.finfo(forward.dtype).eps
    scale = forward.norm(dim=-1) * up.norm(dim=-1)
    if bool((side.norm(dim=-1) <= 1e3 * tiny * scale).any()) or bool((scale == 0).any()):
        raise ValueError(
            "look_at is undefined where eye == target or up is parallel to target - eye; choose another up"
        )
    z = F.normalize(forward, dim=-1)
    x = F.normalize(side, dim=-1)
    y = torch.linalg.cross(z, x, dim=-1)
    R = torch.stack([x, y, z], dim=-2)  # [..., 3, 3], rows are the camera axes in world coordinates
    t = -(R @ eye.unsqueeze(-1))  # [..., 3, 1]
    bottom = torch.zeros(*R.shape[:-2], 1, 4, dtype=R.dtype, device=R.device)
    bottom[..., 0, 3] = 1.0
    return torch.cat([torch.cat([R, t], dim=-1), bottom], dim=-2)


def camera_center(world_to_camera: Tensor) -> Tensor:  # [..., 4, 4] -> [..., 3]
    """Camera centres in world coordinates, ``-R^T t``.

    Args:
        world_to_camera: [..., 4, 4] rigid OpenCV world-to-camera transforms.

    Returns:
        [..., 3] centres.
    """
    _check_matrix("world_to_camera", world_to_camera, 4, 4)
    R = world_to_camera[..., :3, :3]
    t = world_to_camera[..., :3, 3:]
    return -(R.transpose(-1, -2) @ t).squeeze(-1)


class Projection(NamedTuple):
    """Result of :func:`project`.

    Attributes:
        pixels: [..., N, 2] continuous pixel coordinates (x right, y down; pixel
            centres at half-integers). Finite everywhere, meaningless where not ``valid``.
        depth: [..., N] camera-space z (metres); positive in front of the camera.
        valid: [..., N] bool, ``depth > 0``.
    """

    pixels: Tensor  # [..., N, 2]
    depth: Tensor  # [..., N]
    valid: Tensor  # [..., N]


def project(
    points_world: Tensor,  # [..., N, 3]
    camera: Camera,
) -> Projection:
    """Pinhole projection of world points to pixels (differentiable).

    ``p_cam = R p + t``, ``(u, v) = (K p_cam)[:2] / z``. Points at or behind the camera
    plane (``z <= 0``) are flagged in ``valid`` and divided by 1 instead of ``z`` so that
    outputs and gradients stay finite.

    Args:
        points_world: [..., N, 3] world points; the batch dims broadcast with the
            camera's :attr:`Camera.batch_shape`.
        camera: the camera.

    Returns:
        :class:`Projection` with pixels [..., N, 2], depth [..., N], valid [..., N].
    """
    if not isinstance(points_world, Tensor):
        raise TypeError(f"expected points_world to be a torch.Tensor [..., N, 3]; got {type(points_world).__name__}")
    if points_world.ndim < 2 or points_world.shape[-1] != 3:
        raise ValueError(f"expected points_world [..., N, 3]; got {tuple(points_world.shape)}")
    R = camera.world_to_camera[..., :3, :3].unsqueeze(-3)  # [..., 1, 3, 3]
    t = camera.world_to_camera[..., :3, 3].unsqueeze(-2)  # [..., 1, 3]
    K = camera.K.unsqueeze(-3)  # [..., 1, 3, 3]
    p_cam = (R @ points_world.unsqueeze(-1)).squeeze(-1) + t  # [..., N, 3]
    depth = p_cam[..., 2]
    valid = depth > 0
    z = torch.where(valid, depth, torch.ones_like(depth))
    # The third row of K is (0, 0, 1), so (K p_cam)[2] == depth.
    uv = (K[..., :2, :] @ p_cam.unsqueeze(-1)).squeeze(-1)  # [..., N, 2]
    return Projection(pixels=uv / z.unsqueeze(-1), depth=depth, valid=valid)


def opencv_to_opengl_view(world_to_camera: Tensor) -> Tensor:  # [..., 4, 4] -> [..., 4, 4]
    """OpenCV world-to-camera matrices to OpenGL view matrices (camera y up, z backward).

    Flips the camera's y and z axes: ``diag(1, -1, -1, 1) @ world_to_camera``. Points in
    front of the camera then have negative view-space z, as OpenGL expects.

    Args:
        world_to_camera: [..., 4, 4] OpenCV world-to-camera.

    Returns:
        [..., 4, 4] OpenGL view matrices (world to OpenGL eye space).
    """
    _check_matrix("world_to_camera", world_to_camera, 4, 4)
    flip = torch.tensor([1.0, -1.0, -1.0, 1.0], dtype=world_to_camera.dtype, device=world_to_camera.device)
    return world_to_camera * flip[:, None]


def opengl_projection(camera: Camera, near: float, far: float) -> Tensor:  # [..., 4, 4]
    """The OpenGL clip-space matrix that reproduces ``camera.K`` exactly.

    With ``clip = P @ opencv_to_opengl_view(world_to_camera) @ [p, 1]`` and
    ``ndc = clip[:3] / clip[3]``, :func:`ndc_to_pixels` of ``ndc[:2]`` equals the pixel
    :func:`project` gives, principal-point offset and skew included; ``ndc_z`` runs from
    -1 at ``near`` to +1 at ``far``. Derivation: ``u = (fx x + s y + cx z) / z`` and
    ``u = (ndc_x + 1) W / 2`` with OpenCV ``(x, y, z) = (x_gl, -y_gl, -z_gl)``, ``w = -z_gl``;
    likewise ``v = (1 - ndc_y) H / 2``.

    Args:
        camera: the camera (only ``K``, ``width``, ``height`` are used).
        near: near clipping distance, metres (> 0).
        far: far clipping distance, metres (> near).

    Returns:
        [..., 4, 4] projection matrices with the batch dims of ``camera.K``.
    """
    if not 0.0 < near < far:
        raise ValueError(f"expected 0 < near < far; got near={near}, far={far}")
    K = camera.K
    W, H = float(camera.width), float(camera.height)
    fx, s, cx = K[..., 0, 0], K[..., 0, 1], K[..., 0, 2]
    fy, cy = K[..., 1, 1], K[..., 1, 2]
    zero = torch.zeros_like(fx)
    row0 = torch.stack([2 * fx / W, -2 * s / W, (W - 2 * cx) / W, zero], dim=-1)
    row1 = torch.stack([zero, 2 * fy / H, (2 * cy - H) / H, zero], dim=-1)
    a = -(far + near) / (far - near)
    b = -2.0 * far * near / (far - near)
    row2 = torch.stack([zero, zero, zero + a, zero + b], dim=-1)
    row3 = torch.stack([zero, zero, zero - 1.0, zero], dim=-1)
    return torch.stack([row0, row1, row2, row3], dim=-2)


def ndc_to_pixels(
    ndc: Tensor,  # [..., 2]
    width: int,
    height: int,
) -> Tensor:  # [..., 2]
    """OpenGL normalized device coordinates (x right, y up, in [-1, 1]) to pixel coordinates.

    ``u = (ndc_x + 1) * width / 2``, ``v = (1 - ndc_y) * height / 2``: NDC -1..1 spans the
    image edges, so pixel centres sit at half-integers, as in the rest of this module.
    Row 0 is the *top* image row; an OpenGL-style renderer (nvdiffrast) whose row 0 is
    the bottom must flip its output vertically to match.

    Args:
        ndc: [..., 2] NDC x, y.
        width: image width in pixels.
        height: image height in pixels.

    Returns:
        [..., 2] pixel coordinates (x right, y down).
    """
    ndc = _check_vectors("ndc", ndc, 2)
    u = (ndc[..., 0] + 1.0) * (width / 2)
    v = (1.0 - ndc[..., 1]) * (height / 2)
    return torch.stack([u, v], dim=-1)


class GsplatCameras(NamedTuple):
    """Cameras in the form ``gsplat.rasterization`` takes them.

    Attributes:
        viewmats: [C, 4, 4] OpenCV world-to-camera (gsplat's ``viewmats``).
        Ks: [C, 3, 3] intrinsics (gsplat's ``Ks``; same pixel convention, unchanged).
        width: image width in pixels.
        height: image height in pixels.
    """

    viewmats: Tensor  # [C, 4, 4]
    Ks: Tensor  # [C, 3, 3]
    width: int
    height: int


def to_gsplat(camera: Camera) -> GsplatCameras:
    """The camera's batch flattened to gsplat's ``C`` cameras.

    gsplat's conventions match this module's (verified against gsplat's pure-PyTorch
    reference ``_torch_impl.py``): ``viewmats`` are OpenCV world-to-camera
    (``means_c = R @ means + t``), means project as ``K @ means_c / z``, and pixel
    ``(i, j)`` is evaluated at ``(j + 0.5, i + 0.5)``. So both matrices pass unchanged.

    Args:
        camera: a camera with any batch dims ``[...]``; ``C = prod(batch_shape)``
            (``C = 1`` for an unbatched camera).

    Returns:
        :class:`GsplatCameras` (viewmats [C, 4, 4], Ks [C, 3, 3], width, height).
    """
    batch = camera.batch_shape
    count = math.prod(batch)
    viewmats = camera.world_to_camera.expand(*batch, 4, 4).reshape(count, 4, 4)
    Ks = camera.K.expand(*batch, 3, 3).reshape(count, 3, 3)
    return GsplatCameras(viewmats=viewmats, Ks=Ks, width=camera.width, height=camera.height)
