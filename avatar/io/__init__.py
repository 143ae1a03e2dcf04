"""File I/O of the engine's data (CONVENTIONS 1: files are read and written only here).

``mesh``: OBJ, PLY and GLB meshes that keep the file's vertex topology.
``gaussians``: 3D Gaussian splats in the 3DGS PLY layout and glTF with KHR_gaussian_splatting.
"""

from avatar.io.mesh import (
    Mesh,
    Polygons,
    Triangles,
    read_glb,
    read_mesh,
    read_obj,
    read_ply,
    write_glb,
    write_mesh,
    write_obj,
    write_ply,
)

__all__ = [
    "Mesh",
    "Polygons",
    "Triangles",
    "read_glb",
    "read_mesh",
    "read_obj",
    "read_ply",
    "write_glb",
    "write_mesh",
    "write_obj",
    "write_ply",
]

# Gaussian splats: the format-specific functions stay in the module (``gaussians.read_ply``
# reads splats, while ``read_ply`` above reads meshes).
from avatar.io import gaussians  # noqa: E402
from avatar.io.gaussians import Gaussians, read_gaussians, write_gaussians  # noqa: E402

__all__ += ["Gaussians", "gaussians", "read_gaussians", "write_gaussians"]
