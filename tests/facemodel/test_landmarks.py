"""Landmark embedding tools: closest points, similarity and thin-plate registration."""

from __future__ import annotations

import math

import pytest
import torch

from avatar.facemodel.landmarks import (
    closest_points_on_mesh,
    mirror_pairs,
    similarity_transform,
    thin_plate_warp,
    vertex_embedding,
)
from avatar.facemodel.model import barycentric_points


def sphere(n_lat: int = 12, n_lon: int = 24):
    verts = [[0.0, 0.0, 1.0]]
    for i in range(1, n_lat):
        th = math.pi * i / n_lat
        for j in range(n_lon):
            ph = 2 * math.pi * j / n_lon
            verts.append([math.sin(th) * math.cos(ph), math.sin(th) * math.sin(ph), math.cos(th)])
    verts.append([0.0, 0.0, -1.0])
    faces = [[0, 1 + j, 1 + (j + 1) % n_lon] for j in range(n_lon)]
    for i in range(n_lat - 2):
        for j in range(n_lon):
            a, b = 1 + i * n_lon + j, 1 + i * n_lon + (j + 1) % n_lon
            faces += [[a, a + n_lon, b], [b, a + n_lon, b + n_lon]]
    last = len(verts) - 1
    base = 1 + (n_lat - 2) * n_lon
    faces += [[base + j, last, base + (j + 1) % n_lon] for j in range(n_lon)]
    return torch.tensor(verts, dtype=torch.float64), torch.tensor(faces)


def test_closest_points_match_brute_force():
    torch.manual_seed(0)
    verts, faces = sphere()
    verts = verts * torch.tensor([1.0, 0.7, 1.3])  # an ellipsoid
    queries = torch.randn(200, 3, dtype=torch.float64) * 1.2
    fi, bary, dist = closest_points_on_mesh(queries, verts, faces)
    fi_all, bary_all, dist_all = closest_points_on_mesh(queries, verts, faces, candidates=0)  # exhaustive
    torch.testing.assert_close(dist.double(), dist_all.double(), atol=1e-6, rtol=0)
    assert bool((bary >= -1e-6).all()) and torch.allclose(bary.sum(-1), torch.ones(200), atol=1e-5)
    # The reported point is at the reported distance, and no dense surface sample is closer.
    pts = barycentric_points(verts, faces, fi, bary.double())
    torch.testing.assert_close((pts - queries).norm(dim=-1), dist.double(), atol=1e-6, rtol=0)
    w = torch.rand(20000, 3, dtype=torch.float64)
    w = w / w.sum(-1, keepdim=True)
    samples = barycentric_points(verts, faces, torch.randint(len(faces), (20000,)), w)
    assert bool((torch.cdist(queries, samples).min(-1).values >= dist.double() - 1e-9).all())


def test_similarity_and_thin_plate_recover_known_maps():
    torch.manual_seed(1)
    src = torch.randn(30, 3, dtype=torch.float64)
    axis = torch.tensor([0.3, -0.5, 0.8], dtype=torch.float64)
    axis = axis / axis.norm()
    K = torch.tensor([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    R = torch.linalg.matrix_exp(0.7 * K)
    dst = 1.7 * src @ R.T + torch.tensor([0.1, -0.2, 0.3], dtype=torch.float64)
    s, R_est, t = similarity_transform(src, dst)
    assert abs(float(s) - 1.7) < 1e-9
    torch.testing.assert_close(R_est, R)
    bent = dst + 0.05 * torch.sin(dst)
    warp = thin_plate_warp(src, bent, regularization=0.0)
    torch.testing.assert_close(warp(src), bent, atol=1e-7, rtol=0)  # interpolates its anchors


def test_vertex_embedding_and_errors():
    verts, faces = sphere()
    emb = vertex_embedding(faces, torch.tensor([0, 5, len(verts) - 1]), "test")
    torch.testing.assert_close(barycentric_points(verts, faces, emb.face_index, emb.bary.double()),
                               verts[[0, 5, len(verts) - 1]])
    with pytest.raises(ValueError, match="on no triangle"):
        vertex_embedding(faces, torch.tensor([len(verts) + 3]), "test")
    with pytest.raises(ValueError, match=r"\[L, 3\]"):
        barycentric_points(verts, faces, torch.tensor([0]), torch.ones(2, 3))


def test_mirror_pairs_are_an_involution():
    torch.manual_seed(2)
    half = torch.rand(20, 3).numpy() + [0.1, 0, 0]
    pts = torch.cat([torch.tensor(half), torch.tensor(half) * torch.tensor([-1.0, 1, 1])]).numpy()
    pairs = mirror_pairs(pts)
    assert (pairs[pairs] == range(40)).all()
    assert (pairs[:20] == range(20, 40)).all()
