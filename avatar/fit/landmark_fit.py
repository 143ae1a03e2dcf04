"""Fit a face model to 2D landmarks: identity, expression, head pose, focal length.

The model's MediaPipe-478 embedding is projected through a pinhole camera (OpenCV,
principal point at the image centre) and matched to detected MediaPipe landmarks in
the least-squares sense, with Gaussian priors on identity (coefficients are in standard
deviations) and a small L2 prior on expression weights kept in [0, 1]. Only the
landmark points are evaluated (the basis rows of their triangles' corners), so a fit
costs milliseconds per step for any model size.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from avatar.camera import Camera
from avatar.facemodel.model import FaceModel
from avatar.facemodel.skinning import axis_angle_to_matrix


@dataclass(frozen=True, eq=False)
class LandmarkFit:
    """Result of :func:`fit_landmarks`.

    Attributes:
        identity: [S] coefficients; expression: [E] weights.
        rotation: [3] axis-angle model-to-camera rotation (after the OpenCV flip).
        translation: [3] metres, camera space.
        focal: focal length in pixels.
        camera: the OpenCV camera (world = model space, world_to_camera = the head pose).
        residual: mean landmark distance in pixels after the fit.
    """

    identity: Tensor
    expression: Tensor
    rotation: Tensor
    translation: Tensor
    focal: float
    camera: Camera
    residual: float

    def project(self, model: FaceModel, scheme: str = "ibug68") -> Tensor:  # [L, 2] pixels
        from avatar.camera import project

        verts = model.vertices(identity=self.identity, expression=self.expression)
        return project(model.landmarks_3d(verts, scheme), self.camera).pixels


# A head facing an OpenCV camera (x right, y down, z into the scene): the subject's left
# (+x) appears on the image's right (+x), up (+y) is image -y, and the face's +z points
# back at the camera (-z): diag(1, -1, -1), a rotation of 180 degrees about x.
_FLIP = torch.diag(torch.tensor([1.0, -1.0, -1.0]))


def _landmark_basis(model: FaceModel, scheme: str):
    emb = model.landmarks[scheme]
    corners = model.faces[emb.face_index]  # [L, 3]
    w = emb.bary.to(model.template.dtype)[..., None]  # [L, 3, 1]
    template = (model.template[corners] * w).sum(1)  # [L, 3]
    ident = (model.identity_basis[corners] * w[..., None]).sum(1)  # [L, 3, S]
    expr = (model.expression_basis[corners] * w[..., None]).sum(1)  # [L, 3, E]
    return template, ident, expr


def fit_landmarks(
    model: FaceModel,
    landmarks: Tensor,  # [478, 2] or [478, 3] MediaPipe landmarks in pixels
    width: int,
    height: int,
    steps: int = 400,
    identity_prior: float = 2e-3,
    expression_prior: float = 1e-3,
    num_identity: int | None = None,
) -> LandmarkFit:
    """Fit identity, expression, pose and focal length to one face's MediaPipe landmarks.

    Args:
        model: any FaceModel with a ``mediapipe478`` embedding.
        landmarks: [478, 2 or 3] detected points (x, y in input pixels; z ignored).
        width, height: image size in pixels.
        steps: optimization steps (Adam, then the last quarter at a lower rate).
        identity_prior, expression_prior: weights of the priors, relative to the
            landmark term measured in face-size units.
        num_identity: how many identity modes to use (default: all).
    """
    target = torch.as_tensor(landmarks, dtype=torch.float32)[:, :2]
    if target.shape != (478, 2):
        raise ValueError(f"expected 478 MediaPipe landmarks [478, 2 or 3]; got {tuple(landmarks.shape)}")
    T0, B_id, B_ex = _landmark_basis(model, "mediapipe478")
    S = model.num_identity if num_identity is None else min(num_identity, model.num_identity)
    B_id = B_id[..., :S]
    E = B_ex.shape[-1]
    scale = float((target.max(0).values - target.min(0).values).norm())  # face size in pixels
    cx, cy = width / 2.0, height / 2.0
    # Initial pose: facing the camera at a distance that makes the face the right size.
    face_w = float((T0.max(0).values - T0.min(0).values)[:2].norm())
    f0 = 1.2 * max(width, height)
    z0 = f0 * face_w / scale
    centre = target.mean(0)
    t_init = torch.tensor([(float(centre[0]) - cx) * z0 / f0, (float(centre[1]) - cy) * z0 / f0, z0])
    ident = torch.zeros(S, requires_grad=True)
    expr_raw = torch.full((E,), -4.0, requires_grad=True)  # sigmoid(-4) ~ 0.02
    rot = torch.zeros(3, requires_grad=True)
    trans = (t_init - (T0.mean(0) @ _FLIP.T)).clone().requires_grad_()
    log_f = torch.tensor(math.log(f0), requires_grad=True)
    opt = torch.optim.Adam([{"params": [ident], "lr": 0.05}, {"params": [expr_raw], "lr": 0.1},
                            {"params": [rot], "lr": 0.02}, {"params": [trans], "lr": 0.01 * z0},
                            {"params": [log_f], "lr": 0.01}])

    def points():
        expr = torch.sigmoid(expr_raw)
        X = T0 + B_id @ ident + B_ex @ expr  # [478, 3] model space
        R = axis_angle_to_matrix(rot) @ _FLIP
        P = X @ R.T + trans
        f = log_f.exp()
        return torch.stack([f * P[:, 0] / P[:, 2] + cx, f * P[:, 1] / P[:, 2] + cy], -1), expr

    for step in range(steps):
        if step == (3 * steps) // 4:
            for group in opt.param_groups:
                group["lr"] *= 0.2
        opt.zero_grad()
        uv, expr = points()
        loss = ((uv - target) / scale).pow(2).sum(-1).mean()
        loss = loss + identity_prior * ident.pow(2).mean() + expression_prior * expr.pow(2).mean()
        loss.backward()
        opt.step()
    with torch.no_grad():
        uv, expr = points()
        residual = float((uv - target).norm(dim=-1).mean())
        f = float(log_f.exp())
        R = axis_angle_to_matrix(rot) @ _FLIP
        w2c = torch.eye(4)
        w2c[:3, :3] = R
        w2c[:3, 3] = trans
        K = torch.tensor([[f, 0.0, cx], [0.0, f, cy], [0.0, 0.0, 1.0]])
        cam = Camera(K=K, world_to_camera=w2c, width=width, height=height)
        full_ident = torch.zeros(model.num_identity)
        full_ident[:S] = ident
    return LandmarkFit(full_ident, expr.detach(), rot.detach(), trans.detach(), f, cam, residual)


def normalized_mean_error(
    predicted: Tensor,  # [68, 2]
    truth: Tensor,  # [68, 2]
) -> float:
    """Mean point error over the distance of the outer eye corners (iBUG 36 and 45)."""
    iod = float((truth[36] - truth[45]).norm())
    return float((predicted - truth).norm(dim=-1).mean()) / iod
