"""Inverse rendering through the mesh rasterizer: from a perturbed head pose and
expression, gradient descent on the image difference recovers the target's parameters."""

from __future__ import annotations

import torch

from avatar.camera import Camera, look_at
from avatar.facemodel.skinning import axis_angle_to_matrix
from renderers.mesh import named_lighting, render_mesh

SHAPES = ("jawOpen", "mouthSmileLeft", "browInnerUp", "eyeBlinkRight")


def test_recovers_pose_and_expression(ict_model):
    torch.manual_seed(0)
    model = ict_model
    keep = model.regions["face"] | model.regions["lips"]  # the face mask, as a fit would use
    faces = model.faces[keep[model.faces].all(-1)]
    idx = torch.tensor([model.expression_index(n) for n in SHAPES])
    basis = model.expression_basis[..., idx]  # [V, 3, 4]
    # A colour pattern on the skin gives the photometric loss something to lock onto.
    p = model.template
    albedo = 0.55 + 0.25 * torch.sin(p * torch.tensor([90.0, 70.0, 50.0]))
    cam = Camera.from_fov(22.0, 112, 112, look_at(torch.tensor([0.0, 0.0, 0.62]), torch.zeros(3),
                                                   torch.tensor([0.0, 1.0, 0.0])))
    light = named_lighting("studio")
    pivot = torch.tensor([0.0, -0.02, -0.02])

    def render(weights, rotation, translation):
        v = model.template + basis @ weights
        R = axis_angle_to_matrix(rotation)
        v = (v - pivot) @ R.T + pivot + translation
        return render_mesh(v, faces, cam, vertex_colors=albedo, sh=light, backend="cpu").image

    true_w = torch.tensor([0.5, 0.6, 0.4, 0.7])
    true_r = torch.tensor([-0.08, 0.15, 0.03])
    true_t = torch.tensor([0.004, -0.003, 0.0])
    with torch.no_grad():
        target = render(true_w, true_r, true_t)

    w = torch.zeros(4, requires_grad=True)
    r = (true_r + torch.tensor([0.06, -0.07, 0.04])).requires_grad_()
    t = torch.zeros(3, requires_grad=True)
    opt = torch.optim.Adam([{"params": [w], "lr": 0.03}, {"params": [r], "lr": 0.01},
                            {"params": [t], "lr": 0.001}])
    start = None
    for step in range(240):
        if step in (160, 210):  # settle: Adam at a fixed rate keeps oscillating around the optimum
            for group in opt.param_groups:
                group["lr"] *= 0.3
        opt.zero_grad()
        loss = (render(w, r, t) - target).pow(2).mean()
        start = float(loss.detach()) if start is None else start
        loss.backward()
        opt.step()
        with torch.no_grad():
            w.clamp_(0, 1)
    # Tolerances: 0.08 in ARKit weight (a visible change is about 0.1), 0.6 degrees of
    # rotation and 1 mm of translation; the start is 0.4-0.7 and ~6 degrees away.
    w, r, t = w.detach(), r.detach(), t.detach()
    assert float(loss.detach()) < 0.02 * start
    assert float((w - true_w).abs().max()) < 0.08, (w, true_w)
    assert float((r - true_r).abs().max()) < 0.01, (r, true_r)
    assert float((t - true_t).abs().max()) < 0.001, (t, true_t)
