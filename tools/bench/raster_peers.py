"""Non-differentiable rasterization peers, for benchmarks only.

    python tools/bench/raster_peers.py            # self-check + timings

Each peer renders the same input as our differentiable CPU rasterizer and returns
what it returns in its forward pass, so the two can be compared on the same mesh
and resolution against "the practical limit":

* ``moderngl_raster``: OpenGL on Mesa llvmpipe (CPU) through a headless EGL
  context; the triangle index is written by the fragment shader
  (``gl_PrimitiveID + 1`` into an R32I target) and camera z into an R32F target.
* ``open3d_raster``: Open3D's ``RaycastingScene`` (Embree), one ray per pixel centre.

Conventions (shared by both peers):

* ``verts_cam`` [V,3]: camera-space OpenCV coordinates (x right, y down, z forward,
  metres). ``faces`` [F,3] integer vertex indices.
* ``K`` [3,3]: pinhole intrinsics; pixel (col i, row j) has its centre at continuous
  image coordinates (i + 0.5, j + 0.5), i.e. pixel i covers [i, i+1).
* Output row 0 is the top of the image (smallest v), column 0 the left.
* ``face_index`` [H,W] int64: triangle index into ``faces``, -1 for background.
  ``depth`` [H,W] float32: camera z of the visible surface, +inf for background.
* ``seconds_per_frame``: mean over ``repeat`` frames after warm-up frames. A frame
  is what a per-frame animated mesh costs: moderngl uploads the vertex buffer, draws,
  and reads both targets back (glFinish); Open3D rebuilds its BVH from the vertices
  and casts the rays. Context creation / shader compilation / ray generation are
  one-off costs and are excluded.

Install (see tools/bench/README.md): ``apt-get install libegl1 libegl-mesa0
libgl1-mesa-dri libgbm1 libusb-1.0-0`` and ``pip install moderngl glcontext open3d``.
"""

from __future__ import annotations

import time

import numpy as np

_APT = "apt-get install -y libegl1 libegl-mesa0 libgl1-mesa-dri libgbm1"
_MODERNGL_INSTALL = f"pip install moderngl glcontext  (and: {_APT})"
_OPEN3D_INSTALL = "pip install open3d  (and: apt-get install -y libusb-1.0-0)"

# --------------------------------------------------------------------------- helpers


def _check_inputs(verts_cam, faces, K, width, height):
    verts_cam = np.ascontiguousarray(verts_cam, dtype=np.float32)
    faces = np.asarray(faces)
    K = np.asarray(K, dtype=np.float64)
    if verts_cam.ndim != 2 or verts_cam.shape[1] != 3:
        raise ValueError(f"verts_cam must be [V,3], got {verts_cam.shape}")
    if faces.ndim != 2 or faces.shape[1] != 3:
        raise ValueError(f"faces must be [F,3], got {faces.shape}")
    if K.shape != (3, 3):
        raise ValueError(f"K must be [3,3], got {K.shape}")
    if len(faces) and (faces.min() < 0 or faces.max() >= len(verts_cam)):
        raise ValueError("faces index out of range")
    if int(width) <= 0 or int(height) <= 0:
        raise ValueError("width and height must be positive")
    return verts_cam, faces, K, int(width), int(height)


def _near_far(verts_cam: np.ndarray) -> tuple[float, float]:
    """Clip planes bracketing the mesh (vertices at z <= near are clipped away,
    as they are behind / at the camera for the ray caster too)."""
    z = verts_cam[:, 2]
    zpos = z[z > 0]
    if zpos.size == 0:
        return 1e-3, 1.0
    near = max(float(zpos.min()) * 0.5, 1e-4)
    far = max(float(zpos.max()) * 2.0, near * 10.0)
    return near, far


def projection_from_K(K: np.ndarray, width: int, height: int, near: float, far: float) -> np.ndarray:
    """OpenGL clip matrix (row-major, acts on column vectors) for OpenCV camera coords.

    Pixel coordinates u = (K @ X)[0] / z, v = (K @ X)[1] / z are mapped linearly to
    NDC with u in [0, W] -> x_ndc in [-1, 1] and v in [0, H] -> y_ndc in [-1, 1]
    *without* a y flip, so GL window row j (counted from the bottom of the GL
    framebuffer, which is the first row that glReadPixels returns) holds v in [j, j+1):
    the read-back array's row 0 is the top of the OpenCV image. GL samples at window
    coordinates (i + 0.5, j + 0.5), i.e. at the OpenCV pixel centres. The y mapping
    mirrors winding, so face culling must stay off (it is).
    """
    fx, s, cx = K[0]
    fy, cy = K[1, 1], K[1, 2]
    W, H = float(width), float(height)
    P = np.zeros((4, 4), dtype=np.float64)
    P[0, 0] = 2.0 * fx / W
    P[0, 1] = 2.0 * s / W
    P[0, 2] = 2.0 * cx / W - 1.0
    P[1, 1] = 2.0 * fy / H
    P[1, 2] = 2.0 * cy / H - 1.0
    P[2, 2] = (far + near) / (far - near)
    P[2, 3] = -2.0 * far * near / (far - near)
    P[3, 2] = 1.0
    return P


def pixel_rays(K: np.ndarray, width: int, height: int) -> np.ndarray:
    """[H,W,3] camera-space ray directions through the pixel centres, scaled to z = 1."""
    u = np.arange(width, dtype=np.float64) + 0.5
    v = np.arange(height, dtype=np.float64) + 0.5
    uu, vv = np.meshgrid(u, v)  # [H,W], row = v
    pix = np.stack([uu, vv, np.ones_like(uu)], axis=-1)
    d = pix @ np.linalg.inv(np.asarray(K, dtype=np.float64)).T
    return d / d[..., 2:3]


# --------------------------------------------------------------------------- moderngl

_VS = """
#version 330
uniform mat4 P;
in vec3 in_pos;
out float v_z;
void main() {
    gl_Position = P * vec4(in_pos, 1.0);
    v_z = in_pos.z;
}
"""

_FS = """
#version 330
in float v_z;
layout(location = 0) out int out_id;
layout(location = 1) out float out_z;
void main() {
    out_id = gl_PrimitiveID + 1;   // 0 = background
    out_z = v_z;                   // perspective-correct, so exact camera z
}
"""

_GL: dict = {}


def _gl():
    """The cached headless EGL context and program (created once per process)."""
    if "ctx" not in _GL:
        import moderngl

        try:
            ctx = moderngl.create_standalone_context(backend="egl", require=330)
        except TypeError:  # older signature
            ctx = moderngl.create_context(standalone=True, backend="egl", require=330)
        prog = ctx.program(vertex_shader=_VS, fragment_shader=_FS)
        _GL.update(ctx=ctx, prog=prog, renderer=ctx.info.get("GL_RENDERER", "?"))
    return _GL


def moderngl_raster(
    verts_cam: np.ndarray,
    faces: np.ndarray,
    K: np.ndarray,
    width: int,
    height: int,
    repeat: int = 10,
    near: float | None = None,
    far: float | None = None,
) -> tuple[np.ndarray, np.ndarray, float]:
    """Rasterize with OpenGL (Mesa llvmpipe via headless EGL). See the module doc."""
    verts_cam, faces, K, W, H = _check_inputs(verts_cam, faces, K, width, height)
    g = _gl()
    ctx, prog = g["ctx"], g["prog"]
    if near is None or far is None:
        n0, f0 = _near_far(verts_cam)
        near = n0 if near is None else near
        far = f0 if far is None else far
    prog["P"].write(projection_from_K(K, W, H, near, far).T.astype("f4").tobytes())

    ids_tex = ctx.renderbuffer((W, H), components=1, dtype="i4")
    z_tex = ctx.renderbuffer((W, H), components=1, dtype="f4")
    depth_rb = ctx.depth_renderbuffer((W, H))
    fbo = ctx.framebuffer(color_attachments=[ids_tex, z_tex], depth_attachment=depth_rb)
    vbo = ctx.buffer(reserve=verts_cam.nbytes)
    ibo = ctx.buffer(np.ascontiguousarray(faces, dtype=np.uint32).tobytes())
    vao = ctx.vertex_array(prog, [(vbo, "3f", "in_pos")], index_buffer=ibo, index_element_size=4)
    ids_buf = bytearray(W * H * 4)
    z_buf = bytearray(W * H * 4)

    def frame():
        vbo.write(verts_cam)  # per-frame upload, as for an animated mesh
        fbo.use()
        ctx.disable(ctx.CULL_FACE | ctx.BLEND)
        ctx.enable(ctx.DEPTH_TEST)
        ctx.depth_func = "<"
        fbo.clear(0.0, 0.0, 0.0, 0.0, depth=1.0)
        vao.render(ctx.TRIANGLES)
        fbo.read_into(ids_buf, components=1, attachment=0, dtype="i4")
        fbo.read_into(z_buf, components=1, attachment=1, dtype="f4")
        ctx.finish()

    try:
        for _ in range(3):  # warm-up: llvmpipe JIT-compiles shader variants over the first draws
            frame()
        n = max(int(repeat), 1)
        t0 = time.perf_counter()
        for _ in range(n):
            frame()
        spf = (time.perf_counter() - t0) / n
        ids = np.frombuffer(ids_buf, dtype=np.int32).reshape(H, W).astype(np.int64) - 1
        depth = np.frombuffer(z_buf, dtype=np.float32).reshape(H, W).copy()
    finally:
        for obj in (vao, vbo, ibo, fbo, ids_tex, z_tex, depth_rb):
            obj.release()
    depth[ids < 0] = np.inf
    return ids, depth, spf


# --------------------------------------------------------------------------- open3d


def open3d_raster(
    verts_cam: np.ndarray,
    faces: np.ndarray,
    K: np.ndarray,
    width: int,
    height: int,
    repeat: int = 10,
) -> tuple[np.ndarray, np.ndarray, float]:
    """Ray-cast with Open3D's RaycastingScene (Embree), one ray per pixel centre."""
    import open3d as o3d

    verts_cam, faces, K, W, H = _check_inputs(verts_cam, faces, K, width, height)
    tri = np.ascontiguousarray(faces, dtype=np.uint32)
    d = pixel_rays(K, W, H).astype(np.float32)  # z component 1 -> t_hit == camera z
    rays_np = np.concatenate([np.zeros_like(d), d], axis=-1)
    rays = o3d.core.Tensor(np.ascontiguousarray(rays_np))
    tri_t = o3d.core.Tensor(tri)

    out = {}

    def frame():
        scene = o3d.t.geometry.RaycastingScene()
        scene.add_triangles(o3d.core.Tensor(verts_cam), tri_t)  # BVH rebuilt per frame
        out["r"] = scene.cast_rays(rays)

    frame()  # warm-up
    n = max(int(repeat), 1)
    t0 = time.perf_counter()
    for _ in range(n):
        frame()
    spf = (time.perf_counter() - t0) / n

    r = out["r"]
    prim = r["primitive_ids"].numpy().astype(np.int64)
    t = r["t_hit"].numpy().astype(np.float32)
    invalid = prim == int(o3d.t.geometry.RaycastingScene.INVALID_ID)
    invalid |= ~np.isfinite(t)
    prim[invalid] = -1
    depth = t * d[..., 2]  # d_z == 1, kept explicit
    depth[invalid] = np.inf
    return prim, depth.astype(np.float32), spf


# --------------------------------------------------------------------------- probe


def available_peers() -> dict[str, str]:
    """name -> "ok", or why the peer cannot run here and how to install it."""
    res: dict[str, str] = {}
    try:
        import moderngl  # noqa: F401
    except Exception as e:  # ImportError, or a missing shared library
        res["moderngl"] = f"cannot import moderngl ({type(e).__name__}: {e}); install: {_MODERNGL_INSTALL}"
    else:
        try:
            _gl()
            res["moderngl"] = "ok"
        except Exception as e:
            res["moderngl"] = (
                f"no headless EGL OpenGL 3.3 context ({type(e).__name__}: {e}); install: {_MODERNGL_INSTALL}"
            )
    try:
        import open3d as o3d

        o3d.t.geometry.RaycastingScene()
        res["open3d"] = "ok"
    except Exception as e:
        res["open3d"] = f"cannot use open3d ({type(e).__name__}: {e}); install: {_OPEN3D_INSTALL}"
    return res


PEERS = {"moderngl": moderngl_raster, "open3d": open3d_raster}


# --------------------------------------------------------------------------- self-check


def uv_sphere(n_lat: int, n_lon: int, radius: float, centre) -> tuple[np.ndarray, np.ndarray]:
    """UV sphere with 2*n_lon*(n_lat-1) triangles."""
    th = np.linspace(0.0, np.pi, n_lat + 1)[1:-1]
    ph = np.linspace(0.0, 2 * np.pi, n_lon, endpoint=False)
    T, Ph = np.meshgrid(th, ph, indexing="ij")
    ring = np.stack([np.sin(T) * np.cos(Ph), np.cos(T), np.sin(T) * np.sin(Ph)], -1).reshape(-1, 3)
    v = np.concatenate([[[0, 1, 0]], ring, [[0, -1, 0]]]) * radius + np.asarray(centre)
    top, bot = 0, len(v) - 1
    f = []
    j = np.arange(n_lon)
    jn = (j + 1) % n_lon
    f.append(np.stack([np.full(n_lon, top), 1 + jn, 1 + j], -1))
    for i in range(n_lat - 2):
        a, b = 1 + i * n_lon, 1 + (i + 1) * n_lon
        f.append(np.stack([a + j, a + jn, b + j], -1))
        f.append(np.stack([a + jn, b + jn, b + j], -1))
    last = 1 + (n_lat - 2) * n_lon
    f.append(np.stack([last + j, last + jn, np.full(n_lon, bot)], -1))
    return v.astype(np.float32), np.concatenate(f).astype(np.int64)


def _reference_single_triangle(tri_cam, K, W, H):
    """Exact coverage of one triangle at the pixel centres, and the edge-distance
    margin (in pixels) of each pixel centre (to skip ambiguous edge pixels)."""
    p = tri_cam @ K.T
    p = p[:, :2] / p[:, 2:3]
    u = np.arange(W) + 0.5
    v = np.arange(H) + 0.5
    uu, vv = np.meshgrid(u, v)
    ds = []
    for a, b in ((0, 1), (1, 2), (2, 0)):
        e = p[b] - p[a]
        ds.append((e[0] * (vv - p[a, 1]) - e[1] * (uu - p[a, 0])) / np.hypot(*e))
    ds = np.stack(ds)
    inside = np.all(ds >= 0, 0) | np.all(ds <= 0, 0)
    return inside, np.abs(ds).min(0)


def _self_check() -> int:
    peers = available_peers()
    print("peers:")
    for k, v in peers.items():
        print(f"  {k}: {v}")
    ok = [k for k, v in peers.items() if v == "ok"]
    if "moderngl" in ok:
        print(f"  moderngl renderer: {_GL['renderer']}")
    failures = 0

    # 1. orientation + exact K: one triangle in the upper-left quadrant of a
    #    non-square image with an off-centre principal point and a slanted depth.
    W, H = 320, 240
    K = np.array([[300.0, 0.0, 150.3], [0.0, 310.0, 125.7], [0.0, 0.0, 1.0]])
    tri = np.array([[-0.30, -0.25, 1.0], [-0.05, -0.22, 1.2], [-0.20, -0.05, 1.1]], np.float32)
    ref, margin = _reference_single_triangle(tri.astype(np.float64), K, W, H)
    rows, cols = np.nonzero(ref)
    print(f"\norientation: reference triangle covers {ref.sum()} px, rows {rows.min()}-{rows.max()}, "
          f"cols {cols.min()}-{cols.max()} (of {H}x{W})")
    n = np.array([0, 0, 0.0])
    n = np.cross(tri[1] - tri[0], tri[2] - tri[0]).astype(np.float64)
    d_ref = pixel_rays(K, W, H)
    t_ref = (n @ tri[0]) / (d_ref @ n)  # plane intersection with z=1 rays -> camera z
    for name in ok:
        fi, dep, _ = PEERS[name](tri, np.array([[0, 1, 2]]), K, W, H, repeat=1)
        hit = fi == 0
        r, c = np.nonzero(hit)
        sure = margin > 1e-2
        mism = int(((hit != ref) & sure).sum())
        upper_left = r.size and r.max() < H / 2 and c.max() < W / 2
        derr = float(np.abs(dep[hit & sure] - t_ref[hit & sure]).max()) if hit.any() else np.inf
        good = upper_left and mism == 0 and derr < 1e-4 and np.all(np.isinf(dep[~hit]))
        failures += not good
        print(f"  {name}: {hit.sum()} px, rows {r.min()}-{r.max()}, cols {c.min()}-{c.max()}, "
              f"mismatches vs reference (off-edge) {mism}, max |z err| {derr:.2e} m -> "
              f"{'OK' if good else 'FAIL'}")

    # 2. a ~50k-triangle sphere 0.5 m in front of the camera at 512x512.
    W = H = 512
    K = np.array([[600.0, 0.0, W / 2], [0.0, 600.0, H / 2], [0.0, 0.0, 1.0]])
    v, f = uv_sphere(126, 200, 0.15, (0.0, 0.0, 0.5))
    print(f"\nsphere: {len(v)} verts, {len(f)} triangles, {W}x{H}")
    res = {}
    for name in ok:
        fi, dep, spf = PEERS[name](v, f, K, W, H, repeat=20)
        res[name] = (fi, dep)
        print(f"  {name}: {spf * 1e3:.2f} ms/frame, {(fi >= 0).sum()} px covered, "
              f"z {dep[fi >= 0].min():.4f}-{dep[fi >= 0].max():.4f} m")
    if "open3d" in ok:
        import open3d as o3d

        scene = o3d.t.geometry.RaycastingScene()
        scene.add_triangles(o3d.core.Tensor(v), o3d.core.Tensor(f.astype(np.uint32)))
        rays = o3d.core.Tensor(np.concatenate([np.zeros((H, W, 3)), pixel_rays(K, W, H)], -1).astype(np.float32))
        t0 = time.perf_counter()
        for _ in range(20):
            scene.cast_rays(rays)
        print(f"  open3d cast only (static BVH, not rebuilt): {(time.perf_counter() - t0) / 20 * 1e3:.2f} ms/frame")
    if len(res) == 2:
        (a, da), (b, db) = res["moderngl"], res["open3d"]
        agree = float((a == b).mean())
        both = (a >= 0) & (b >= 0)
        zerr = float(np.abs(da[both] - db[both]).max())
        good = agree > 0.99 and zerr < 1e-3
        failures += not good
        print(f"  face index agreement moderngl vs open3d: {agree * 100:.3f}% of pixels "
              f"({int((a != b).sum())} differ), max |z diff| {zerr:.2e} m -> {'OK' if good else 'FAIL'}")
    elif len(res) < 2:
        print("  (agreement check needs both peers)")
    print(f"\n{'all checks passed' if failures == 0 else f'{failures} check(s) FAILED'}")
    return 1 if failures or not ok else 0


if __name__ == "__main__":
    raise SystemExit(_self_check())
