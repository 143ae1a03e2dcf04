"""File I/O of the engine's data (CONVENTIONS 1: files are read and written only here).

``mesh``: OBJ, PLY and GLB meshes that keep the file's vertex topology.
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
