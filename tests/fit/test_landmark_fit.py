"""Landmark fitting (issue 4 in progress): fit each model to MediaPipe's 478 points of a
real photo and measure its iBUG-68 points against the hand-placed ones.

Measured (tools: this test): takeo NME 0.060 (builtin and ICT), einstein 0.122 (a 3/4
view where iBUG's jaw and brow points follow the visible contour, and MediaPipe itself
is 0.03-0.15 off). The bounds below guard these numbers; the issue's goal is 0.05.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

pytest.importorskip("mediapipe", reason="landmark detection needs the capture extra")

from avatar.capture import detect_faces, read_image  # noqa: E402
from avatar.facemodel import load  # noqa: E402
from avatar.fit import fit_landmarks, normalized_mean_error  # noqa: E402

# mediapipe 0.10.14 calls a protobuf API that protobuf deprecates; not ours to fix.
pytestmark = pytest.mark.filterwarnings("ignore:SymbolDatabase.GetPrototype:UserWarning")

BOUNDS = {"takeo": 0.07, "einstein": 0.14}


def ibug_points(path) -> torch.Tensor:
    """iBUG .pts: 1-based pixel coordinates -> continuous (pixel centres at +0.5)."""
    body = path.read_text().split("{")[1].split("}")[0].split()
    return torch.tensor(np.array(body, float).reshape(-1, 2) - 0.5, dtype=torch.float32)


@pytest.fixture(scope="module", params=["builtin", "ict"])
def model(request, ict_model):
    return load("builtin") if request.param == "builtin" else ict_model


@pytest.mark.parametrize("name, file", [("takeo", "takeo.ppm"), ("einstein", "einstein.jpg")])
def test_landmark_fit_nme(shared, model, name, file):
    image = read_image(shared / "data" / "faces" / file)
    truth = ibug_points(shared / "data" / "faces" / f"{name}.pts")
    faces = detect_faces(image)
    face = min(faces, key=lambda d: float((torch.tensor(d.landmarks[:, :2]).mean(0) - truth.mean(0)).norm()))
    fit = fit_landmarks(model, torch.tensor(face.landmarks), image.shape[1], image.shape[0])
    nme = normalized_mean_error(fit.project(model), truth)
    assert fit.residual < 3.0  # pixels: the model follows MediaPipe's points
    assert nme < BOUNDS[name], f"{model.name} {name}: NME {nme:.4f}"
    # Metric plausibility: the fitted inter-pupillary distance of an adult, 54-74 mm.
    verts = model.vertices(identity=fit.identity, expression=fit.expression)
    mp = model.landmarks_3d(verts, "mediapipe478")
    ipd = float((mp[468] - mp[473]).norm()) * 1000
    assert 54 < ipd < 74, ipd
