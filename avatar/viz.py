"""Pictures people look at: previews of a model, landmark overlays, contact sheets.

The preview renderer here is a painter's-algorithm drawing (PIL polygons sorted by
depth, Lambert shading): fast and dependency-free, not differentiable and not exact
where triangles intersect. Images that must be correct come from ``renderers``.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

from .facemodel.model import FaceModel

SKIN = np.array([0.80, 0.66, 0.58])
REGION_COLOURS = {
    "mouth_interior": np.array([0.45, 0.12, 0.14]),
    "teeth": np.array([0.93, 0.92, 0.86]),
    "eyes": np.array([0.92, 0.92, 0.92]),
    "iris": np.array([0.25, 0.17, 0.10]),
    "lips": np.array([0.72, 0.40, 0.40]),
}


def vertex_colours(model: FaceModel) -> np.ndarray:  # [V, 3]
    """A plain albedo per vertex for previews, coloured by the model's regions."""
    col = np.tile(SKIN, (model.num_vertices, 1))
    for name, c in REGION_COLOURS.items():
        if name in model.regions:
            col[model.regions[name].numpy()] = c
    return col


def look_from_front(
    vertices: np.ndarray,  # [V, 3]
    size: int,
    yaw_degrees: float = 0.0,
    fov_degrees: float = 20.0,
    fill: float = 0.8,
    centre: np.ndarray | None = None,
    extent: float | None = None,
) -> tuple[np.ndarray, np.ndarray]:  # pixels [V, 2], depth [V]
    """Perspective projection of a model-space head from a camera in front of it (+z)."""
    v = np.asarray(vertices, float)
    if centre is None:
        centre = (v.min(0) + v.max(0)) / 2
    if extent is None:
        extent = float((v.max(0) - v.min(0))[:2].max())
    a = math.radians(yaw_degrees)
    R = np.array([[math.cos(a), 0, math.sin(a)], [0, 1, 0], [-math.sin(a), 0, math.cos(a)]])
    p = (v - centre) @ R.T
    f = 0.5 * size / math.tan(math.radians(fov_degrees) / 2)
    dist = extent / fill * f / size
    z = dist - p[:, 2]  # camera on +z looking toward -z
    x = size / 2 + f * p[:, 0] / z
    y = size / 2 - f * p[:, 1] / z
    return np.stack([x, y], 1), z


def render_preview(
    vertices: np.ndarray | torch.Tensor,  # [V, 3]
    faces: np.ndarray | torch.Tensor,  # [F, 3]
    colours: np.ndarray,  # [V, 3] in 0..1
    size: int = 256,
    yaw_degrees: float = 0.0,
    light: tuple[float, float, float] = (0.3, 0.4, 1.0),
    background: tuple[int, int, int] = (40, 40, 46),
    centre: np.ndarray | None = None,
    extent: float | None = None,
) -> Image.Image:
    """Shaded preview of a mesh seen from the front (back faces culled)."""
    v = torch.as_tensor(vertices).detach().cpu().numpy().astype(float)
    f = torch.as_tensor(faces).cpu().numpy()
    px, depth = look_from_front(v, size, yaw_degrees, centre=centre, extent=extent)
    a, b, c = px[f[:, 0]], px[f[:, 1]], px[f[:, 2]]
    cross = (b[:, 0] - a[:, 0]) * (c[:, 1] - a[:, 1]) - (b[:, 1] - a[:, 1]) * (c[:, 0] - a[:, 0])
    front = cross < 0  # counter-clockwise in model space is clockwise with y down
    ang = math.radians(yaw_degrees)
    Ry = np.array([[math.cos(ang), 0, math.sin(ang)], [0, 1, 0], [-math.sin(ang), 0, math.cos(ang)]])
    n = np.cross(v[f[:, 1]] - v[f[:, 0]], v[f[:, 2]] - v[f[:, 0]]) @ Ry.T
    n /= np.linalg.norm(n, axis=1, keepdims=True) + 1e-12
    L = np.asarray(light, float)
    L /= np.linalg.norm(L)
    shade = 0.25 + 0.75 * np.clip(n @ L, 0, 1)
    col = colours[f].mean(1) * shade[:, None]
    order = np.argsort(-depth[f].mean(1))
    img = Image.new("RGB", (size, size), background)
    draw = ImageDraw.Draw(img)
    for i in order:
        if not front[i]:
            continue
        rgb = tuple(int(x) for x in np.clip(col[i] * 255, 0, 255))
        draw.polygon([tuple(a[i]), tuple(b[i]), tuple(c[i])], fill=rgb)
    return img


def model_preview(model: FaceModel, vertices: torch.Tensor | None = None, size: int = 256, **kw) -> Image.Image:
    verts = model.template if vertices is None else vertices
    return render_preview(verts, model.faces, vertex_colours(model), size=size, **kw)


def draw_landmarks(
    image: Image.Image,
    pixels: np.ndarray,  # [L, 2]
    colour: tuple[int, int, int] = (60, 230, 90),
    radius: float = 2.0,
    numbers: bool = False,
) -> Image.Image:
    img = image.copy()
    draw = ImageDraw.Draw(img)
    for i, (x, y) in enumerate(np.asarray(pixels)):
        draw.ellipse([x - radius, y - radius, x + radius, y + radius], fill=colour)
        if numbers:
            draw.text((x + 2, y - 2), str(i), fill=(255, 255, 0))
    return img


def landmark_figure(model: FaceModel, size: int = 512, scheme: str = "ibug68") -> Image.Image:
    """The model's neutral head with a landmark scheme drawn on it (numbered for iBUG-68)."""
    verts = model.template.numpy()
    img = model_preview(model, size=size)
    pts = model.landmarks_3d(model.template, scheme).numpy()
    px, _ = look_from_front(pts, size, centre=(verts.min(0) + verts.max(0)) / 2,
                            extent=float((verts.max(0) - verts.min(0))[:2].max()))
    img = draw_landmarks(img, px, radius=2.5 if scheme == "ibug68" else 1.2, numbers=scheme == "ibug68" and size >= 512)
    return label(img, f"{model.name}: {scheme} ({len(pts)} points)")


def label(img: Image.Image, text: str) -> Image.Image:
    draw = ImageDraw.Draw(img)
    font = ImageFont.load_default()
    draw.rectangle([0, 0, img.width, 14], fill=(0, 0, 0))
    draw.text((3, 1), text, fill=(255, 255, 255), font=font)
    return img


def contact_sheet(tiles: list[Image.Image], columns: int) -> Image.Image:
    w, h = tiles[0].size
    rows = math.ceil(len(tiles) / columns)
    sheet = Image.new("RGB", (columns * w, rows * h), (20, 20, 20))
    for i, t in enumerate(tiles):
        sheet.paste(t, ((i % columns) * w, (i // columns) * h))
    return sheet


def expression_sheet(model: FaceModel, names: list[str] | None = None, size: int = 200,
                     weight: float = 1.0) -> Image.Image:
    """One tile per expression at ``weight``; half-profile tiles where depth is the point."""
    names = list(names or model.expression_names[:52])
    verts0 = model.template.numpy()
    centre = (verts0.min(0) + verts0.max(0)) / 2
    extent = float((verts0.max(0) - verts0.min(0))[:2].max())
    side_view = {"jawForward", "mouthFunnel", "mouthPucker", "tongueOut", "cheekPuff", "mouthRollLower",
                 "mouthRollUpper"}
    # Shapes that ARKit only uses together with an open jaw are shown with it.
    with_jaw = {"mouthClose": 1.0, "tongueOut": 0.6}
    tiles = []
    for name in names:
        e = torch.zeros(model.num_expression)
        e[model.expression_index(name)] = weight
        if name in with_jaw and "jawOpen" in model.expression_names:
            e[model.expression_index("jawOpen")] = with_jaw[name]
            name = f"{name} (+jawOpen {with_jaw[name]:g})"
        v = model.vertices(expression=e)
        yaw = 35.0 if name.split(" ")[0] in side_view else 0.0
        img = render_preview(v, model.faces, vertex_colours(model), size=size, yaw_degrees=yaw,
                             centre=centre, extent=extent * 0.8)
        tiles.append(label(img, name))
    return contact_sheet(tiles, columns=8)
