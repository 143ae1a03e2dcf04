"""Front-to-back alpha compositing of projected Gaussians, tile by tile (the 3DGS rules):

    sigma = 0.5 (a dx^2 + c dy^2) + b dx dy,  d = pixel centre - mean2d
    alpha = min(0.999, opacity exp(-sigma)); skipped when sigma < 0 or alpha < 1/255
    a Gaussian whose inclusion would bring the transmittance T to 1e-4 or below ends
    the pixel and is not included (early termination)
    colour = sum_k alpha_k T_k c_k + T_final background,  alpha_out = 1 - T_final

``composite_reference`` writes this with PyTorch tensors (autograd gives the
gradients); ``composite_cpu`` runs numba kernels with the hand-written 3DGS backward.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from ._project import Tiles

ALPHA_MIN = 1.0 / 255.0
ALPHA_MAX = 0.999
T_MIN = 1e-4
PAIRS_PER_CHUNK = 4_000_000  # (pixel, Gaussian) pairs evaluated at once by the reference


def _tile_pixels(tile_size: int) -> Tensor:
    """Pixel offsets inside a tile: [S*S, 2] (x, y)."""
    r = torch.arange(tile_size)
    yy, xx = torch.meshgrid(r, r, indexing="ij")
    return torch.stack([xx.reshape(-1), yy.reshape(-1)], -1)


def composite_reference(
    means2d: Tensor,  # [C, N, 2]
    conics: Tensor,  # [C, N, 3]
    colors: Tensor,  # [C, N, D]
    opacities: Tensor,  # [C, N]
    tiles: Tiles,
    width: int,
    height: int,
    tile_size: int,
    background: Tensor,  # [C, D]
) -> tuple[Tensor, Tensor]:  # image [C, H, W, D], alpha [C, H, W]
    C, N, D = colors.shape
    _, th, tw = tiles.offsets.shape
    dtype = colors.dtype
    m2 = means2d.reshape(C * N, 2)
    cn = conics.reshape(C * N, 3)
    co = colors.reshape(C * N, D)
    op = opacities.reshape(C * N)
    local = _tile_pixels(tile_size)  # [P, 2]
    out_img = torch.zeros(C, th * tile_size, tw * tile_size, D, dtype=dtype)
    out_T = torch.ones(C, th * tile_size, tw * tile_size, dtype=dtype)
    counts = tiles.counts.reshape(-1)
    offsets = tiles.offsets.reshape(-1)
    busy = torch.nonzero(counts > 0).squeeze(1)
    busy = busy[torch.argsort(counts[busy])]  # similar lengths together: less padding
    img_rows = []
    start = 0
    while start < len(busy):
        # Tiles are sorted by length, so the chunk's padded cost is (tiles) x (pixels) x (last length).
        rest = counts[busy[start:]]
        cost = torch.arange(1, len(rest) + 1) * tile_size * tile_size * rest
        step = max(1, int((cost <= PAIRS_PER_CHUNK).sum()))
        tid = busy[start:start + step]  # [G] flat tile ids (camera, ty, tx)
        start += step
        n = counts[tid]
        L = int(n.max())
        slot = torch.arange(L)
        valid = slot[None] < n[:, None]  # [G, L]
        gid = tiles.ids[(offsets[tid, None] + slot[None]).clamp_max(len(tiles.ids) - 1)]  # [G, L]
        tx = tid % tw
        ty = (tid // tw) % th
        pix = torch.stack([tx * tile_size, ty * tile_size], -1)[:, None] + local[None]  # [G, P, 2]
        centre = pix.to(dtype) + 0.5
        d = centre[:, :, None, :] - m2[gid][:, None]  # [G, P, L, 2]
        c = cn[gid][:, None]  # [G, 1, L, 3]
        sigma = 0.5 * (c[..., 0] * d[..., 0] ** 2 + c[..., 2] * d[..., 1] ** 2) + c[..., 1] * d[..., 0] * d[..., 1]
        alpha = torch.clamp_max(op[gid][:, None] * torch.exp(-sigma), ALPHA_MAX)  # [G, P, L]
        used = valid[:, None] & (sigma >= 0) & (alpha >= ALPHA_MIN)
        alpha = torch.where(used, alpha, torch.zeros_like(alpha))
        T_incl = torch.cumprod(1 - alpha, -1)
        alive = T_incl > T_MIN  # monotone: once a pixel terminates, later Gaussians stay out
        alpha = torch.where(alive, alpha, torch.zeros_like(alpha))
        T_after = torch.cumprod(1 - alpha, -1)
        T_before = torch.cat([torch.ones_like(T_after[..., :1]), T_after[..., :-1]], -1)
        w = alpha * T_before  # [G, P, L]
        img_rows.append((tid, pix, (w[..., None] * co[gid][:, None]).sum(-2), T_after[..., -1]))
    for tid, pix, img, T in img_rows:
        cam = tid // (th * tw)
        cam = cam[:, None].expand(-1, pix.shape[1])
        out_img = out_img.index_put((cam, pix[..., 1], pix[..., 0]), img)
        out_T = out_T.index_put((cam, pix[..., 1], pix[..., 0]), T)
    out_img = out_img[:, :height, :width]
    out_T = out_T[:, :height, :width]
    image = out_img + out_T[..., None] * background[:, None, None, :].to(dtype)
    return image, 1 - out_T


# ------------------------------------------------------------------------ numba path
_kernels = None


def _compile():
    global _kernels
    if _kernels is not None:
        return _kernels
    import numba as nb

    # Gaussian-major inside each tile: every Gaussian, front to back, visits only the
    # pixels of its screen box (centre +- radius), which are the only ones where its
    # alpha can reach 1/255 (radius >= 3.33 sigma per axis, and exp(-3.33^2 / 2) < 1/255).
    # Per pixel the order and the arithmetic are those of the reference.
    @nb.njit(parallel=True, cache=True, nogil=True)
    def forward(m2, cn, co, op, rad, offsets, counts, ids, tw, th, S, W, H, bg, out_img, out_T,
                out_last):  # pragma: no cover
        n_tiles = counts.shape[0]
        for t in nb.prange(n_tiles):
            n = counts[t]
            cam = t // (th * tw)
            ty = (t // tw) % th
            tx = t % tw
            x0, y0 = tx * S, ty * S
            x1, y1 = min(x0 + S, W), min(y0 + S, H)
            T = np.ones(S * S)
            acc = np.zeros((S * S, 4))
            last = np.zeros(S * S, np.int64)
            done = np.zeros(S * S, np.bool_)
            for k in range(n):
                g = ids[offsets[t] + k]
                mx, my = m2[g, 0], m2[g, 1]
                gx0 = max(x0, int(np.floor(mx - rad[g, 0] - 0.5)))
                gx1 = min(x1, int(np.ceil(mx + rad[g, 0] - 0.5)) + 1)
                gy0 = max(y0, int(np.floor(my - rad[g, 1] - 0.5)))
                gy1 = min(y1, int(np.ceil(my + rad[g, 1] - 0.5)) + 1)
                ca, cb, cc, o = cn[g, 0], cn[g, 1], cn[g, 2], op[g]
                for py in range(gy0, gy1):
                    dy = py + 0.5 - my
                    for px in range(gx0, gx1):
                        p = (py - y0) * S + (px - x0)
                        if done[p]:
                            continue
                        dx = px + 0.5 - mx
                        sigma = 0.5 * (ca * dx * dx + cc * dy * dy) + cb * dx * dy
                        if sigma < 0.0:
                            continue
                        alpha = min(0.999, o * np.exp(-sigma))
                        if alpha < 1.0 / 255.0:
                            continue
                        nT = T[p] * (1.0 - alpha)
                        if nT <= 1e-4:
                            done[p] = True
                            continue
                        w = alpha * T[p]
                        acc[p, 0] += w * co[g, 0]
                        acc[p, 1] += w * co[g, 1]
                        acc[p, 2] += w * co[g, 2]
                        acc[p, 3] += w * co[g, 3]
                        T[p] = nT
                        last[p] = k + 1
            for py in range(y0, y1):
                for px in range(x0, x1):
                    p = (py - y0) * S + (px - x0)
                    for d in range(4):
                        out_img[cam, py, px, d] = acc[p, d] + T[p] * bg[cam, d]
                    out_T[cam, py, px] = T[p]
                    out_last[cam, py, px] = last[p]

    @nb.njit(parallel=True, cache=True, nogil=True)
    def backward(m2, cn, co, op, rad, offsets, counts, ids, tw, th, S, W, H, bg, out_T, out_last, g_img, g_alpha,
                 g_m2, g_cn, g_co, g_op):  # pragma: no cover
        n_tiles = counts.shape[0]
        for t in nb.prange(n_tiles):
            tid = nb.get_thread_id()
            cam = t // (th * tw)
            ty = (t // tw) % th
            tx = t % tw
            x0, y0 = tx * S, ty * S
            x1, y1 = min(x0 + S, W), min(y0 + S, H)
            T = np.ones(S * S)  # transmittance in front of the current Gaussian, per pixel
            after = np.zeros((S * S, 4))  # colour of everything behind it, per pixel
            Tf = np.ones(S * S)
            last = np.zeros(S * S, np.int64)
            kmax = 0
            for py in range(y0, y1):
                for px in range(x0, x1):
                    p = (py - y0) * S + (px - x0)
                    Tf[p] = out_T[cam, py, px]
                    T[p] = Tf[p]
                    last[p] = out_last[cam, py, px]
                    kmax = max(kmax, last[p])
                    for d in range(4):
                        after[p, d] = Tf[p] * bg[cam, d]
            for k in range(kmax - 1, -1, -1):
                g = ids[offsets[t] + k]
                mx, my = m2[g, 0], m2[g, 1]
                gx0 = max(x0, int(np.floor(mx - rad[g, 0] - 0.5)))
                gx1 = min(x1, int(np.ceil(mx + rad[g, 0] - 0.5)) + 1)
                gy0 = max(y0, int(np.floor(my - rad[g, 1] - 0.5)))
                gy1 = min(y1, int(np.ceil(my + rad[g, 1] - 0.5)) + 1)
                ca, cb, cc, o = cn[g, 0], cn[g, 1], cn[g, 2], op[g]
                c0, c1, c2, c3 = co[g, 0], co[g, 1], co[g, 2], co[g, 3]
                # This Gaussian's gradients, summed over its pixels, written once below.
                gc0 = gc1 = gc2 = gc3 = go = ga_ = gb_ = gc_ = gmx = gmy = 0.0
                for py in range(gy0, gy1):
                    dy = py + 0.5 - my
                    for px in range(gx0, gx1):
                        p = (py - y0) * S + (px - x0)
                        if k >= last[p]:
                            continue
                        dx = px + 0.5 - mx
                        sigma = 0.5 * (ca * dx * dx + cc * dy * dy) + cb * dx * dy
                        if sigma < 0.0:
                            continue
                        e = np.exp(-sigma)
                        raw = o * e
                        alpha = min(0.999, raw)
                        if alpha < 1.0 / 255.0:
                            continue
                        one_minus = 1.0 - alpha
                        T[p] = T[p] / one_minus
                        w = alpha * T[p]
                        gi0, gi1 = g_img[cam, py, px, 0], g_img[cam, py, px, 1]
                        gi2, gi3 = g_img[cam, py, px, 2], g_img[cam, py, px, 3]
                        gc0 += w * gi0
                        gc1 += w * gi1
                        gc2 += w * gi2
                        gc3 += w * gi3
                        dL = g_alpha[cam, py, px] * Tf[p] / one_minus
                        dL += gi0 * (T[p] * c0 - after[p, 0] / one_minus) + gi1 * (T[p] * c1 - after[p, 1] / one_minus)
                        dL += gi2 * (T[p] * c2 - after[p, 2] / one_minus) + gi3 * (T[p] * c3 - after[p, 3] / one_minus)
                        after[p, 0] += w * c0
                        after[p, 1] += w * c1
                        after[p, 2] += w * c2
                        after[p, 3] += w * c3
                        if raw < 0.999:
                            go += dL * e
                            dsig = -dL * raw
                            ga_ += dsig * 0.5 * dx * dx
                            gb_ += dsig * dx * dy
                            gc_ += dsig * 0.5 * dy * dy
                            gmx += -dsig * (ca * dx + cb * dy)
                            gmy += -dsig * (cc * dy + cb * dx)
                g_co[tid, g, 0] += gc0
                g_co[tid, g, 1] += gc1
                g_co[tid, g, 2] += gc2
                g_co[tid, g, 3] += gc3
                g_op[tid, g] += go
                g_cn[tid, g, 0] += ga_
                g_cn[tid, g, 1] += gb_
                g_cn[tid, g, 2] += gc_
                g_m2[tid, g, 0] += gmx
                g_m2[tid, g, 1] += gmy

    _kernels = (forward, backward)
    return _kernels


class _CompositeCPU(torch.autograd.Function):
    """Numba compositing of exactly four channels (RGB + depth, as rasterize_gaussians
    sends them)."""

    @staticmethod
    def forward(ctx, m2, cn, co, op, bg, radii, tiles_offsets, tiles_counts, ids, width, height, tile_size):
        forward_kernel, _ = _compile()
        C, N, D = co.shape
        if D != 4:
            raise ValueError(f"the CPU compositor takes 4 channels (RGB + depth); got {D}")
        _, th, tw = tiles_offsets.shape
        # Kernels run in the inputs' precision (float32 or float64; numba compiles each).
        dt = co.dtype
        args = [x.detach().to(dt).reshape(C * N, -1).contiguous().numpy() for x in (m2, cn, co)]
        opn = op.detach().to(dt).reshape(C * N).contiguous().numpy()
        off = tiles_offsets.reshape(-1).numpy().astype(np.int64)
        cnt = tiles_counts.reshape(-1).numpy().astype(np.int64)
        idn = ids.numpy().astype(np.int64)
        bgn = bg.detach().to(dt).contiguous().numpy()
        rad = radii.reshape(C * N, 2).to(dt).contiguous().numpy()
        npdt = args[0].dtype
        img = np.empty((C, height, width, D), npdt)
        T = np.empty((C, height, width), npdt)
        last = np.empty((C, height, width), np.int64)
        forward_kernel(args[0], args[1], args[2], opn, rad, off, cnt, idn, tw, th, tile_size, width, height, bgn,
                       img, T, last)
        ctx.saved = (args, opn, rad, off, cnt, idn, bgn, T, last, tw, th, tile_size, width, height, C, N, D)
        ctx.dtypes = co.dtype
        return torch.from_numpy(img).to(co.dtype), torch.from_numpy(1 - T).to(co.dtype)

    @staticmethod
    def backward(ctx, g_img, g_alpha):
        _, backward_kernel = _compile()
        args, opn, rad, off, cnt, idn, bgn, T, last, tw, th, S, W, H, C, N, D = ctx.saved
        import numba

        threads = numba.get_num_threads()
        npdt = args[0].dtype
        g_m2 = np.zeros((threads, C * N, 2), npdt)
        g_cn = np.zeros((threads, C * N, 3), npdt)
        g_co = np.zeros((threads, C * N, D), npdt)
        g_op = np.zeros((threads, C * N), npdt)
        tdt = torch.from_numpy(args[0][:0]).dtype
        gi = (g_img if g_img is not None else torch.zeros(C, H, W, D)).to(tdt).contiguous().numpy()
        ga = (g_alpha if g_alpha is not None else torch.zeros(C, H, W)).to(tdt).contiguous().numpy()
        backward_kernel(args[0], args[1], args[2], opn, rad, off, cnt, idn, tw, th, S, W, H, bgn, T, last, gi, ga,
                        g_m2, g_cn, g_co, g_op)
        dt = ctx.dtypes

        def out(a, *shape):
            return torch.from_numpy(a.sum(0)).to(dt).reshape(*shape)

        # d colour / d background = T_final
        g_bg = (torch.from_numpy(T)[..., None] * torch.from_numpy(gi)).sum((1, 2)).to(dt)
        return (out(g_m2, C, N, 2), out(g_cn, C, N, 3), out(g_co, C, N, D), out(g_op, C, N), g_bg,
                None, None, None, None, None, None, None)


def composite_cpu(
    radii: Tensor,  # [C, N, 2] screen radii: pixels outside centre +- radius are not visited
    means2d: Tensor,  # [C, N, 2]
    conics: Tensor,  # [C, N, 3]
    colors: Tensor,  # [C, N, D]
    opacities: Tensor,  # [C, N]
    tiles: Tiles,
    width: int,
    height: int,
    tile_size: int,
    background: Tensor,  # [C, D]
) -> tuple[Tensor, Tensor]:
    return _CompositeCPU.apply(means2d, conics, colors, opacities, background, radii, tiles.offsets,
                               tiles.counts, tiles.ids, width, height, tile_size)


def numba_available() -> tuple[bool, str]:
    try:
        import numba  # noqa: F401
    except ImportError:
        return False, "numba is not installed (pip install numba)"
    return True, "numba"
