"""Morphable face models: one :class:`FaceModel` type, loaders for the built-in model,
ICT-FaceKit and FLAME, ARKit naming and landmark embeddings.

``load(name_or_path)``:

- ``"builtin"``: the model shipped in the package (no download).
- ``"ict"``: ICT-FaceKit from ``$AVATAR_ICT_DIR`` or the user's model directory, or a
  path to its ``FaceXModel`` folder (or a clone containing it).
- a path to a FLAME ``.pkl`` (``generic_model.pkl``, FLAME 2020/2023), read through
  a restricted unpickler.
"""

from __future__ import annotations

import os
from pathlib import Path

from .arkit import ARKIT_NAMES
from .model import FaceModel, LandmarkEmbedding, Skinning, barycentric_points, blend_shapes

__all__ = ["ARKIT_NAMES", "FaceModel", "LandmarkEmbedding", "Skinning", "barycentric_points", "blend_shapes",
           "load", "available_models"]


def load(name_or_path: str | os.PathLike = "builtin", cache_dir: str | os.PathLike | None = None) -> FaceModel:
    """Load a face model by name (``builtin``, ``ict``, ``flame``) or path.

    Args:
        name_or_path: see the module docstring.
        cache_dir: where compiled models are cached (ICT); default the user cache.
    """
    key = str(name_or_path)
    if key == "builtin":
        from .builtin import load_builtin

        return load_builtin()
    if key == "ict":
        from .ict import load_ict

        return load_ict(None, cache_dir=cache_dir)
    if key == "flame":
        from ..paths import model_dir

        path = model_dir() / "flame" / "generic_model.pkl"
        if not path.exists():
            raise FileNotFoundError(
                f"FLAME not found at {path}. FLAME cannot be redistributed: register at "
                f"https://flame.is.tue.mpg.de, download it and pass the .pkl path or put it there"
            )
        key = str(path)
    path = Path(key)
    if not path.exists():
        raise FileNotFoundError(
            f"no face model {key!r}: use 'builtin', 'ict', 'flame', an ICT FaceXModel folder or a FLAME .pkl"
        )
    if path.is_dir():
        from .ict import load_ict

        return load_ict(path, cache_dir=cache_dir)
    if path.suffix == ".pkl":
        from .flame import load_flame

        return load_flame(path)
    raise ValueError(f"{path} is not a face model this engine reads (an ICT FaceXModel folder or a FLAME .pkl)")


def available_models() -> dict[str, str]:
    """Which models can be loaded here, and from where (for ``avatar doctor``)."""
    out = {"builtin": "shipped in the package"}
    try:
        from .ict import find_ict_dir

        out["ict"] = str(find_ict_dir())
    except FileNotFoundError as exc:
        out["ict"] = f"not found ({str(exc).split('(')[1].split(')')[0]})"
    from ..paths import model_dir

    flame = model_dir() / "flame" / "generic_model.pkl"
    out["flame"] = str(flame) if flame.exists() else f"not found (put generic_model.pkl at {flame})"
    return out
