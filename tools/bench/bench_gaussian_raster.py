"""Gaussian-splat rasterizer speed at 512x512 for 10k and 100k Gaussians.

    python tools/bench/bench_gaussian_raster.py [--sizes 10000 100000] [--repeat 3]

In one process: our pure-PyTorch reference and our fast CPU path (numba), forward
(colours, alpha, depth) and forward+backward (gradients to every input), their ratio;
and the peer pipeline made of gsplat's own pure-PyTorch reference functions
(projection, SH, tile intersection; its compositing needs CUDA) where it finishes in
reasonable time (its tile intersection is a Python loop over Gaussians).
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from renderers.gaussian import rasterize_gaussians  # noqa: E402


def scene(n: int, seed: int = 0):
    """Gaussians filling the view of a 512x512 camera, 1.5-2.5 m away, some overlapping."""
    g = torch.Generator().manual_seed(seed)
    xy = (torch.rand(n, 2, generator=g) - 0.5) * 1.6
    z = 1.5 + torch.rand(n, 1, generator=g)
    means = torch.cat([xy * z / 2.0, z], -1)
    quats = torch.randn(n, 4, generator=g)
    scales = torch.rand(n, 3, generator=g) * 0.012 + 0.003
    opac = torch.rand(n, generator=g) * 0.9 + 0.05
    sh = torch.randn(n, 16, 3, generator=g) * 0.3
    return means, quats, scales, opac, sh


def timed(fn, repeat):
    fn()
    best = math.inf
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--size", type=int, default=512)
    args = ap.parse_args()
    S = args.size
    vm = torch.eye(4)[None]
    K = torch.tensor([[S * 1.0, 0, S / 2], [0, S * 1.0, S / 2], [0, 0, 1]])[None]
    print(f"{S}x{S}, SH degree 3, torch {torch.__version__} with {torch.get_num_threads()} threads (best of runs)")
    for n in args.sizes:
        inputs = [x.requires_grad_() for x in scene(n)]
        res = {}
        for backend in ("reference", "cpu"):
            def fwd():
                with torch.no_grad():
                    return rasterize_gaussians(*inputs, vm, K, S, S, sh_degree=3, backend=backend)

            def fwd_bwd():
                out = rasterize_gaussians(*inputs, vm, K, S, S, sh_degree=3, backend=backend)
                (out.colors.square().mean() + out.alphas.mean() + out.depths.mean()).backward()

            rep = args.repeat if backend == "cpu" else 1
            res[backend] = (timed(fwd, rep), timed(fwd_bwd, rep))
        with torch.no_grad():
            out = rasterize_gaussians(*inputs, vm, K, S, S, sh_degree=3, backend="cpu")
        print(f"\nN={n}: mean alpha {float(out.alphas.mean()):.2f}, {len(out.tiles.ids)} tile entries")
        print(f"  {'':18s}{'reference':>12s}{'fast cpu':>12s}{'ratio':>9s}")
        for k, name in enumerate(("forward", "forward+backward")):
            r, f = res["reference"][k], res["cpu"][k]
            print(f"  {name:18s}{r:11.3f}s{f:11.3f}s{r / f:8.1f}x")
        peer(inputs, vm, K, S, n)


def peer(inputs, vm, K, S, n):
    try:
        from gsplat.cuda import _torch_impl as ti
    except ImportError:
        print("  gsplat peer: not installed (pip install gsplat)")
        return
    means, quats, scales, opac, sh = (x.detach() for x in inputs)
    t = time.perf_counter()
    covars, _ = ti._quat_scale_to_covar_preci(quats, scales, compute_preci=False)
    radii, means2d, depths, conics, _ = ti._fully_fused_projection(means, covars, vm, K, S, S)
    ti._spherical_harmonics(3, means[None] - torch.zeros(1, 1, 3), sh[None])
    t_proj = time.perf_counter() - t
    if n > 20_000:
        print(f"  gsplat peer: projection + SH {t_proj:.3f}s; tile intersection (a Python loop over "
              f"Gaussians) and compositing (CUDA only) not run at this size")
        return
    t = time.perf_counter()
    tw = th = math.ceil(S / 16)
    ti._isect_tiles(means2d, radii, depths, 16, tw, th)
    t_isect = time.perf_counter() - t
    print(f"  gsplat peer: projection + SH {t_proj:.3f}s, tile intersection {t_isect:.1f}s "
          f"(its compositing needs CUDA; the tests composite its lists with a plain loop)")


if __name__ == "__main__":
    main()
