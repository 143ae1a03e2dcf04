"""Linear blend skinning (FLAME/SMPL style): stateless, pure torch, batched, differentiable.

The math is that of the reference FLAME layer (smplx ``lbs.py``), minus the shape
blend (done by :class:`~avatar.facemodel.model.FaceModel` before skinning):

1. joints are regressed from the shaped vertices: ``J = joint_regressor @ v``;
2. pose correctives: ``v += pose_basis @ (R_j - I)`` for the non-root joints
   ``j = 1..J-1``, each 3x3 flattened row-major, joints in order;
3. the kinematic chain composes, for each joint, its rotation about its rest position
   with its parent's transform (``parents[j] < j``);
4. each vertex is moved by the skinning-weighted blend of the joints' transforms
   relative to the rest pose.

Shapes follow the project's letters: V vertices, J joints, P = 9 (J - 1) pose features;
``...`` are any leading (batch) dims, broadcast between arguments.
"""

from __future__ import annotations

import torch
from torch import Tensor

from .model import Skinning

__all__ = ["axis_angle_to_matrix", "pose_features", "skin_vertices", "check_skinning"]


def _skew(v: Tensor) -> Tensor:  # [..., 3] -> [..., 3, 3]
    """Cross-product matrix: ``_skew(v) @ u == v x u``."""
    x, y, z = v.unbind(-1)
    zero = torch.zeros_like(x)
    return torch.stack(
        [
            torch.stack([zero, -z, y], -1),
            torch.stack([z, zero, -x], -1),
            torch.stack([-y, x, zero], -1),
        ],
        -2,
    )


def axis_angle_to_matrix(
    axis_angle: Tensor,  # [..., 3]
) -> Tensor:  # [..., 3, 3]
    """Rotation matrices from axis-angle vectors (Rodrigues' formula).

    ``R = I + a(t) K + b(t) K^2`` with ``K`` the cross-product matrix of the axis-angle
    vector itself (not normalised), ``t`` its norm, ``a = sin t / t`` and
    ``b = (1 - cos t) / t^2 = (sin(t/2) / (t/2))^2 / 2``. The half-angle form of ``b``
    keeps full precision at small angles, and below ``t^2 < eps`` both factors switch
    to their Taylor series, so the value and the gradient are exact and finite at
    ``t = 0`` (unlike smplx's ``batch_rodrigues``, which adds 1e-8 to the vector).

    Args:
        axis_angle: [..., 3] rotation axis times angle in radians (right-handed).

    Returns:
        [..., 3, 3] rotation matrices, ``R @ x`` rotates column vectors ``x``.
    """
    if axis_angle.shape[-1:] != (3,):
        raise ValueError(f"expected axis_angle [..., 3]; got {tuple(axis_angle.shape)}")
    if not axis_angle.is_floating_point():
        raise ValueError(f"expected a floating axis_angle; got {axis_angle.dtype}")
    theta2 = (axis_angle * axis_angle).sum(-1)  # [...]
    small = theta2 < torch.finfo(axis_angle.dtype).eps
    # Evaluate the closed forms on a safe angle only, so their gradients never see 0/0.
    theta = torch.where(small, torch.ones_like(theta2), theta2).sqrt()
    half = 0.5 * theta
    a_exact = torch.sin(theta) / theta
    b_exact = 0.5 * (torch.sin(half) / half) ** 2
    a_taylor = 1.0 - theta2 / 6.0 + theta2 * theta2 / 120.0
    b_taylor = 0.5 - theta2 / 24.0 + theta2 * theta2 / 720.0
    a = torch.where(small, a_taylor, a_exact)[..., None, None]
    b = torch.where(small, b_taylor, b_exact)[..., None, None]
    K = _skew(axis_angle)
    eye = torch.eye(3, dtype=axis_angle.dtype, device=axis_angle.device)
    return eye + a * K + b * (K @ K)


def pose_features(
    rotations: Tensor,  # [..., J, 3, 3]
) -> Tensor:  # [..., 9 * (J - 1)]
    """SMPL/FLAME pose-corrective features: ``(R_j - I)`` of joints 1..J-1, row-major, joint-major."""
    eye = torch.eye(3, dtype=rotations.dtype, device=rotations.device)
    return (rotations[..., 1:, :, :] - eye).flatten(-3)


def check_skinning(skinning: Skinning, num_vertices: int | None = None) -> None:
    """Raise ValueError unless the Skinning tensors agree with each other (and with V).

    Args:
        skinning: the LBS data.
        num_vertices: V of the mesh it is applied to, or None to take it from the weights.
    """
    J = int(skinning.parents.shape[0]) if skinning.parents.ndim == 1 else -1
    V = int(skinning.weights.shape[0]) if num_vertices is None else num_vertices
    expected = {
        "parents": (skinning.parents, (J,)),
        "joint_regressor": (skinning.joint_regressor, (J, V)),
        "weights": (skinning.weights, (V, J)),
        "pose_basis": (skinning.pose_basis, (V, 3, 9 * (J - 1))),
    }
    if J < 1:
        raise ValueError(f"expected parents [J] with J >= 1; got {tuple(skinning.parents.shape)}")
    for name, (tensor, shape) in expected.items():
        if tuple(tensor.shape) != shape:
            raise ValueError(
                f"Skinning.{name} must be {list(shape)} for J={J} joints and V={V} vertices; "
                f"got {list(tensor.shape)}"
            )
    if len(skinning.joint_names) != J:
        raise ValueError(f"Skinning has {len(skinning.joint_names)} joint names for {J} joints")
    parents = skinning.parents.tolist()
    if parents[0] != -1 or any(not 0 <= p < j for j, p in enumerate(parents) if j > 0):
        raise ValueError(
            f"Skinning.parents must be -1 for the root and parents[j] < j for the others; got {parents}"
        )


def skin_vertices(
    vertices: Tensor,  # [..., V, 3]
    joint_rotations: Tensor,  # [..., J, 3]
    skinning: Skinning,
) -> Tensor:  # [..., V, 3]
    """Pose shaped vertices with linear blend skinning, exactly as FLAME's ``lbs``.

    Joints are regressed from ``vertices`` (which must already hold the identity and
    expression blend shapes, as in smplx where ``J = J_regressor @ v_shaped``; the
    expression offsets therefore move the joints slightly, as they do in FLAME).

    Args:
        vertices: [..., V, 3] shaped rest-pose vertices (metres, model space).
        joint_rotations: [..., J, 3] axis-angle per joint, relative to its parent;
            joint 0 is the root (global rotation about the root joint).
        skinning: LBS data; its tensors are used in ``vertices.dtype``.

    Returns:
        [..., V, 3] posed vertices; the leading dims are those of ``vertices`` and
        ``joint_rotations`` broadcast together.
    """
    if vertices.ndim < 2 or vertices.shape[-1] != 3:
        raise ValueError(f"expected vertices [..., V, 3]; got {tuple(vertices.shape)}")
    V = vertices.shape[-2]
    J = skinning.parents.shape[0]
    if joint_rotations.ndim < 2 or joint_rotations.shape[-2:] != (J, 3):
        raise ValueError(f"expected joint_rotations [..., {J}, 3]; got {tuple(joint_rotations.shape)}")
    check_skinning(skinning, V)
    try:
        lead = torch.broadcast_shapes(vertices.shape[:-2], joint_rotations.shape[:-2])
    except RuntimeError:
        raise ValueError(
            f"leading dims of vertices {tuple(vertices.shape)} and joint_rotations "
            f"{tuple(joint_rotations.shape)} do not broadcast"
        ) from None

    dtype, device = vertices.dtype, vertices.device
    regressor = skinning.joint_regressor.to(dtype=dtype, device=device)  # [J, V]
    weights = skinning.weights.to(dtype=dtype, device=device)  # [V, J]
    pose_basis = skinning.pose_basis.to(dtype=dtype, device=device)  # [V, 3, P]
    rotations = axis_angle_to_matrix(joint_rotations.to(dtype=dtype, device=device))  # [..., J, 3, 3]

    # 1. joints from the shaped vertices: J[..., j, c] = sum_v regressor[j, v] * vertices[..., v, c]
    joints = torch.matmul(regressor, vertices)  # [..., J, 3]

    # 2. pose correctives: offsets[..., v, c] = sum_p pose_basis[v, c, p] * feature[..., p]
    feature = pose_features(rotations)  # [..., P]
    offsets = torch.matmul(feature, pose_basis.reshape(V * 3, -1).T).reshape(*feature.shape[:-1], V, 3)
    posed = vertices + offsets  # [..., V, 3]

    # 3. kinematic chain: world rotation G_j and translation g_j of each joint's frame;
    #    the rest position of joint j is mapped to g_j.
    parents = skinning.parents.tolist()
    world_rot: list[Tensor] = []  # [..., 3, 3] each
    world_pos: list[Tensor] = []  # [..., 3] each
    for j, parent in enumerate(parents):
        if parent < 0:
            world_rot.append(rotations[..., j, :, :])
            world_pos.append(joints[..., j, :])
        else:
            offset = joints[..., j, :] - joints[..., parent, :]  # rest-pose bone
            world_rot.append(world_rot[parent] @ rotations[..., j, :, :])
            world_pos.append(world_pos[parent] + (world_rot[parent] @ offset[..., None])[..., 0])
    G = torch.stack(world_rot, -3)  # [..., J, 3, 3]
    g = torch.stack(world_pos, -2)  # [..., J, 3]
    # Relative to the rest pose: x -> G_j x + (g_j - G_j j_rest)
    t = g - (G @ joints[..., None])[..., 0]  # [..., J, 3]

    # 4. blend: x'[v] = (sum_j w[v, j] G_j) x[v] + sum_j w[v, j] t_j
    blend_rot = torch.einsum("vj,...jab->...vab", weights, G)  # [..., V, 3, 3]
    blend_t = torch.matmul(weights, t)  # [..., V, 3]
    out = (blend_rot @ posed[..., None])[..., 0] + blend_t
    return out.expand(*lead, V, 3)
