"""Mesh rasterizer speed on the ICT head (full topology, 52,220 triangles) at 512x512.

    python tools/bench/bench_mesh_raster.py [--ict PATH] [--size 512] [--repeat 5]

Runs, in one process: our pure-PyTorch reference and our fast CPU path (rasterize,
and the full render: shading, SH light, antialiasing), forward and forward+backward
(gradients to vertex positions), with their ratio; then the non-differentiable peers
of ``raster_peers.py`` (moderngl on Mesa llvmpipe, open3d ray casting) on the same
mesh and resolution, with how far the fast path is from them, and whether their
triangle ids agree with ours.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_facemodel import ict_folder  # noqa: E402

from avatar.camera import Camera, look_at  # noqa: E402
from avatar.facemodel.ict import load_ict  # noqa: E402
from renderers.mesh import named_lighting, rasterize_mesh, render_mesh  # noqa: E402
from renderers.mesh._common import to_camera  # noqa: E402


def best_of(fn, repeat):
    fn()  # warm-up (numba compiles on first use)
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times), float(np.median(times))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ict", default=None)
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    folder = ict_folder(args.ict)
    if folder is None:
        raise SystemExit("ICT-FaceKit not found: pass --ict or set AVATAR_SHARED")
    model = load_ict(folder)
    S = args.size
    verts = model.template[None].clone().requires_grad_()
    faces = model.faces
    cam = Camera.from_fov(25.0, S, S, look_at(torch.tensor([0.06, 0.03, 0.6]), torch.zeros(3),
                                               torch.tensor([0.0, 1.0, 0.0])))
    light = named_lighting("studio")
    colours = torch.full_like(model.template, 0.7)
    print(f"ICT head: {model.num_vertices} vertices, {len(faces)} triangles, {S}x{S}, "
          f"torch {torch.__version__} with {torch.get_num_threads()} threads")

    rows = {}
    for backend in ("reference", "cpu"):
        def raster():
            with torch.no_grad():
                return rasterize_mesh(verts, faces, cam, backend=backend)

        def raster_bwd():
            fr = rasterize_mesh(verts, faces, cam, backend=backend)
            (fr.bary.sum() + fr.depth.sum()).backward()

        def render():
            with torch.no_grad():
                return render_mesh(verts, faces, cam, vertex_colors=colours, sh=light, backend=backend)

        def render_bwd():
            out = render_mesh(verts, faces, cam, vertex_colors=colours, sh=light, backend=backend)
            out.image.square().mean().backward()

        rep = args.repeat if backend == "cpu" else max(2, args.repeat // 2)
        rows[backend] = {name: best_of(fn, rep) for name, fn in
                         (("rasterize", raster), ("rasterize+backward", raster_bwd),
                          ("render", render), ("render+backward", render_bwd))}
    print(f"\n{'':22s}{'reference':>14s}{'fast cpu':>14s}{'ratio':>9s}   (best of runs, ms)")
    for name in rows["cpu"]:
        r, f = rows["reference"][name][0], rows["cpu"][name][0]
        print(f"{name:22s}{r * 1e3:14.1f}{f * 1e3:14.1f}{r / f:8.1f}x")

    from raster_peers import available_peers, moderngl_raster, open3d_raster

    with torch.no_grad():
        ours = rasterize_mesh(verts, faces, cam, backend="cpu").face_index[0].numpy()
        vc = to_camera(verts.detach(), cam.world_to_camera[None])[0].double().numpy()
    K = cam.K.double().numpy()
    fast = rows["cpu"]["rasterize"][0]
    print("\nnon-differentiable peers (forward only, same mesh and resolution):")
    status = available_peers()
    for name, fn in (("moderngl", moderngl_raster), ("open3d", open3d_raster)):
        if status.get(name) != "ok":
            print(f"  {name:9s} unavailable: {status.get(name)}")
            continue
        fi, _, sec = fn(vc, faces.numpy(), K, S, S, repeat=args.repeat)
        agree = float((fi == ours).mean())
        print(f"  {name:9s} {sec * 1e3:8.1f} ms/frame; our fast rasterize is {fast / sec:5.1f}x its time; "
              f"triangle ids agree on {agree * 100:.2f}% of pixels")


if __name__ == "__main__":
    main()
