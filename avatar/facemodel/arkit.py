"""The 52 ARKit blend-shape names (Apple's ``ARFaceAnchor.BlendShapeLocation``), in
Apple's documented order, which is also the column order of Live Link Face CSV files.

Names are camelCase (``eyeBlinkLeft``); ``Left``/``Right`` are the *subject's* sides.
In model space (+x toward the subject's left, +y up, +z out of the face) a ``...Left``
shape moves vertices at x > 0.
"""

from __future__ import annotations

ARKIT_NAMES: tuple[str, ...] = (
    "eyeBlinkLeft", "eyeLookDownLeft", "eyeLookInLeft", "eyeLookOutLeft", "eyeLookUpLeft",
    "eyeSquintLeft", "eyeWideLeft",
    "eyeBlinkRight", "eyeLookDownRight", "eyeLookInRight", "eyeLookOutRight", "eyeLookUpRight",
    "eyeSquintRight", "eyeWideRight",
    "jawForward", "jawLeft", "jawRight", "jawOpen",
    "mouthClose", "mouthFunnel", "mouthPucker", "mouthLeft", "mouthRight",
    "mouthSmileLeft", "mouthSmileRight", "mouthFrownLeft", "mouthFrownRight",
    "mouthDimpleLeft", "mouthDimpleRight", "mouthStretchLeft", "mouthStretchRight",
    "mouthRollLower", "mouthRollUpper", "mouthShrugLower", "mouthShrugUpper",
    "mouthPressLeft", "mouthPressRight", "mouthLowerDownLeft", "mouthLowerDownRight",
    "mouthUpperUpLeft", "mouthUpperUpRight",
    "browDownLeft", "browDownRight", "browInnerUp", "browOuterUpLeft", "browOuterUpRight",
    "cheekPuff", "cheekSquintLeft", "cheekSquintRight",
    "noseSneerLeft", "noseSneerRight",
    "tongueOut",
)
assert len(ARKIT_NAMES) == 52 and len(set(ARKIT_NAMES)) == 52

ARKIT_INDEX: dict[str, int] = {name: i for i, name in enumerate(ARKIT_NAMES)}


def to_pascal_case(name: str) -> str:
    """``eyeBlinkLeft`` -> ``EyeBlinkLeft`` (Live Link Face CSV header spelling)."""
    return name[:1].upper() + name[1:]


def from_pascal_case(name: str) -> str:
    """``EyeBlinkLeft`` -> ``eyeBlinkLeft``."""
    return name[:1].lower() + name[1:]


def from_side_suffix(name: str) -> str:
    """ICT-style ``eyeBlink_L`` -> ARKit ``eyeBlinkLeft`` (names without a suffix unchanged)."""
    if name.endswith("_L"):
        return name[:-2] + "Left"
    if name.endswith("_R"):
        return name[:-2] + "Right"
    return name
