"""Pictures people look at: previews of a model, landmark overlays, contact sheets.

Renders go through the engine's own mesh rasterizer (``renderers.mesh``): SH lighting,
antialiased silhouettes, sRGB output.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

from .camera import Camera, look_at
from .facemodel.model import FaceModel

# Linear-RGB albedos for previews (rendered images are sRGB-encoded).
SKIN = np.array([0.50, 0.33, 0.25])
REGION_COLOURS = {
    "mouth_interior": np.array([0.20, 0.03, 0.04]),
    "teeth": np.array([0.80, 0.78, 0.70]),
    "eyes": np.array([0.80, 0.80, 0.78]),
    "iris": np.array([0.06, 0.035, 0.02]),
    "lips": np.array([0.45, 0.16, 0.15]),
}


def vertex_colours(model: FaceModel) -> np.ndarray:  # [V, 3]
    """A plain albedo per vertex for previews, coloured by the model's regions."""
    col = np.tile(SKIN, (model.num_vertices, 1))
    for name, c in REGION_COLOURS.items():
        if name in model.regions:
            col[model.regions[name].numpy()] = c
    return col


def orbit_camera(
    centre: np.ndarray,  # [3] the point looked at (model space)
    extent: float,  # size of what must fit in the image (metres)
    size: int,
    yaw_degrees: float = 0.0,
    pitch_degrees: float = 0.0,
    fov_degrees: float = 20.0,
    fill: float = 0.85,
) -> Camera:
    """A camera in front of the head (+z), orbiting it by yaw (toward the subject's
    left for positive angles) and pitch (from above for positive angles)."""
    yaw, pitch = math.radians(yaw_degrees), math.radians(pitch_degrees)
    distance = extent / fill / (2 * math.tan(math.radians(fov_degrees) / 2))
    direction = np.array([math.sin(yaw) * math.cos(pitch), math.sin(pitch), math.cos(yaw) * math.cos(pitch)])
    eye = torch.tensor(np.asarray(centre) + distance * direction, dtype=torch.float32)
    w2c = look_at(eye, torch.tensor(np.asarray(centre), dtype=torch.float32), torch.tensor([0.0, 1.0, 0.0]))
    return Camera.from_fov(fov_degrees, size, size, w2c)


def framing(vertices: np.ndarray) -> tuple[np.ndarray, float]:
    """Centre and extent that frame a head (its bounding box)."""
    v = np.asarray(vertices, float)
    return (v.min(0) + v.max(0)) / 2, float((v.max(0) - v.min(0))[:2].max())


def model_framing(model: FaceModel) -> tuple[np.ndarray, float]:
    """Frame the face: the box of its iBUG-68 landmarks, grown 1.6x (every model has them)."""
    if "ibug68" in model.landmarks:
        pts = model.landmarks_3d(model.template, "ibug68").numpy()
        centre, extent = framing(pts)
        return centre + np.array([0.0, 0.12 * extent, 0.0]), extent * 1.6
    return framing(model.template.numpy())


def to_image(linear: torch.Tensor) -> Image.Image:  # [H, W, 3] linear RGB -> sRGB PIL image
    x = linear.detach().clamp(0, 1)
    srgb = torch.where(x <= 0.0031308, 12.92 * x, 1.055 * x.pow(1 / 2.4) - 0.055)
    return Image.fromarray((srgb * 255 + 0.5).byte().cpu().numpy())


def render_preview(
    vertices: np.ndarray | torch.Tensor,  # [V, 3]
    faces: np.ndarray | torch.Tensor,  # [F, 3]
    colours: np.ndarray,  # [V, 3] albedo in 0..1 (linear)
    size: int = 256,
    yaw_degrees: float = 0.0,
    lighting: str = "studio",
    background: tuple[float, float, float] = (0.02, 0.02, 0.025),
    centre: np.ndarray | None = None,
    extent: float | None = None,
    specular: float = 0.15,
) -> Image.Image:
    """A lit, antialiased render of a mesh seen from the front (the mesh rasterizer)."""
    from renderers.mesh import named_lighting, render_mesh

    v = torch.as_tensor(vertices).detach().float()
    if centre is None or extent is None:
        c, e = framing(v.numpy())
        centre = c if centre is None else centre
        extent = e if extent is None else extent
    cam = orbit_camera(centre, extent, size, yaw_degrees)
    out = render_mesh(v, torch.as_tensor(faces).long(), cam, vertex_colors=torch.as_tensor(colours).float(),
                      sh=named_lighting(lighting), specular=specular, background=background)
    return to_image(out.image[0])


def model_preview(model: FaceModel, vertices: torch.Tensor | None = None, size: int = 256, **kw) -> Image.Image:
    verts = model.template if vertices is None else vertices
    return render_preview(verts, model.faces, vertex_colours(model), size=size, **kw)


def lighting_figure(model: FaceModel, size: int = 384) -> Image.Image:
    """The neutral head under the three preview lightings, side by side."""
    centre, extent = model_framing(model)
    tiles = [label(model_preview(model, size=size, lighting=name, centre=centre, extent=extent * 1.3),
                   f"{model.name}: {name} light")
             for name in ("front", "studio", "side")]
    return contact_sheet(tiles, columns=3)


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
    from .camera import project

    centre, extent = model_framing(model)
    img = model_preview(model, size=size, centre=centre, extent=extent)
    cam = orbit_camera(centre, extent, size)
    pts = model.landmarks_3d(model.template, scheme)
    px = project(pts, cam).pixels.numpy()
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
    centre, extent = model_framing(model)
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
                             centre=centre, extent=extent)
        tiles.append(label(img, name))
    return contact_sheet(tiles, columns=8)
