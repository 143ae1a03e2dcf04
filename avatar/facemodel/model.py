"""The one face-model type of the engine, and the stateless math it evaluates.

Conventions (see README "Conventions"): metres; model space +x toward the subject's
left, +y up, +z out of the face; triangles wind counter-clockwise seen from outside;
expression weights are ARKit-named; identity coefficients are in units of the mode's
standard deviation where the source model defines one.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor

REGION_NAMES = ("face", "lips", "eyes", "scalp", "neck")


def blend_shapes(
    template: Tensor,  # [V, 3]
    basis: Tensor,  # [V, 3, K]
    weights: Tensor,  # [..., K]
) -> Tensor:  # [..., V, 3]
    """Linear blend shapes: ``template + basis @ weights``.

    Args:
        template: [V, 3] rest vertices.
        basis: [V, 3, K] offsets per unit weight.
        weights: [..., K] weights, any leading dims.

    Returns:
        [..., V, 3] vertices.
    """
    if template.ndim != 2 or template.shape[-1] != 3:
        raise ValueError(f"expected template [V, 3]; got {tuple(template.shape)}")
    if basis.shape[:2] != template.shape or weights.shape[-1] != basis.shape[-1]:
        raise ValueError(
            f"expected basis [V, 3, K] matching template {tuple(template.shape)} and weights [..., K]; "
            f"got {tuple(basis.shape)}, {tuple(weights.shape)}"
        )
    # out[..., v, c] = template[v, c] + sum_k basis[v, c, k] * weights[..., k]
    flat = basis.reshape(-1, basis.shape[-1])  # [V*3, K], a view when basis is contiguous
    offsets = torch.matmul(weights, flat.T)  # [..., V*3]
    return template + offsets.reshape(*weights.shape[:-1], *template.shape)


def barycentric_points(
    vertices: Tensor,  # [..., V, 3]
    faces: Tensor,  # [F, 3]
    face_index: Tensor,  # [L]
    bary: Tensor,  # [L, 3]
) -> Tensor:  # [..., L, 3]
    """Points on the surface given as (triangle, barycentric weights), for any leading dims."""
    if vertices.shape[-1] != 3 or faces.ndim != 2 or faces.shape[-1] != 3:
        raise ValueError(f"expected vertices [..., V, 3] and faces [F, 3]; got {tuple(vertices.shape)}, "
                         f"{tuple(faces.shape)}")
    if face_index.ndim != 1 or bary.shape != (face_index.shape[0], 3):
        raise ValueError(f"expected face_index [L] and bary [L, 3]; got {tuple(face_index.shape)}, "
                         f"{tuple(bary.shape)}")
    corners = vertices[..., faces[face_index], :]  # [..., L, 3, 3]
    return (corners * bary.to(vertices.dtype)[..., None]).sum(-2)


@dataclass(frozen=True, eq=False)
class LandmarkEmbedding:
    """Landmarks as points on the surface: triangle index and barycentric weights.

    Attributes:
        face_index: [L] long, triangle of each landmark.
        bary: [L, 3] barycentric weights (sum to 1).
        name: the landmark scheme (``ibug68``, ``mediapipe478``; FLAME files may add
            ``ibug51``, iBUG points 17-67 without the jaw line).
    """

    face_index: Tensor  # [L]
    bary: Tensor  # [L, 3]
    name: str

    def __len__(self) -> int:
        return int(self.face_index.shape[0])


@dataclass(frozen=True, eq=False)
class Skinning:
    """Linear blend skinning data (FLAME-style: global/neck, jaw, eyes).

    Attributes:
        joint_regressor: [J, V] joints = regressor @ shaped vertices.
        parents: [J] long, parent of each joint (-1 for the root).
        weights: [V, J] skinning weights.
        pose_basis: [V, 3, P] pose-corrective offsets, P = 9 * (J - 1), driven by
            the flattened (R - I) of every non-root joint, as in SMPL/FLAME.
        joint_names: names of the J joints.
    """

    joint_regressor: Tensor  # [J, V]
    parents: Tensor  # [J]
    weights: Tensor  # [V, J]
    pose_basis: Tensor  # [V, 3, P]
    joint_names: tuple[str, ...]


@dataclass(frozen=True, eq=False)
class FaceModel:
    """A morphable head: template, identity and expression bases, masks and landmarks.

    Attributes:
        name: short name (``builtin``, ``ict``, ``flame``).
        template: [V, 3] mean/neutral vertices in metres.
        faces: [F, 3] long triangles (quads of the source are split; vertex topology kept).
        identity_basis: [V, 3, S] offsets per identity coefficient.
        expression_basis: [V, 3, E] offsets per unit expression weight.
        expression_names: E names; the first 52 are ARKit's, in ARKit order, when
            ``arkit`` is true.
        uvs: [U, 2] texture coordinates (u right, v up, OBJ convention), or None.
        face_uvs: [F, 3] long indices into ``uvs`` per triangle corner, or None.
            UV seams live here, so vertices are never split.
        rigid_mask: [V] bool, vertices that move only with the skull.
        regions: name -> [V] bool masks: ``face``, ``lips``, ``eyes``, ``scalp``, ``neck``.
        landmarks: scheme name -> LandmarkEmbedding (``ibug68``, ``mediapipe478``).
        skinning: LBS data for models with joints (FLAME), else None.
        source: where the model was loaded from (path or ``package``).
        licence: the licence of the source data.
    """

    name: str
    template: Tensor  # [V, 3]
    faces: Tensor  # [F, 3]
    identity_basis: Tensor  # [V, 3, S]
    expression_basis: Tensor  # [V, 3, E]
    expression_names: tuple[str, ...]
    uvs: Tensor | None = None  # [U, 2]
    face_uvs: Tensor | None = None  # [F, 3]
    rigid_mask: Tensor | None = None  # [V]
    regions: dict[str, Tensor] = field(default_factory=dict)  # name -> [V] bool
    landmarks: dict[str, LandmarkEmbedding] = field(default_factory=dict)
    skinning: Skinning | None = None
    source: str = ""
    licence: str = ""
    units: str = "metres"

    def __post_init__(self) -> None:
        V = self.template.shape[0]
        if self.template.shape != (V, 3):
            raise ValueError(f"template must be [V, 3]; got {tuple(self.template.shape)}")
        if self.faces.ndim != 2 or self.faces.shape[1] != 3:
            raise ValueError(f"faces must be [F, 3]; got {tuple(self.faces.shape)}")
        if self.identity_basis.shape[:2] != (V, 3):
            raise ValueError(f"identity_basis must be [V, 3, S] with V={V}; got {tuple(self.identity_basis.shape)}")
        if self.expression_basis.shape[:2] != (V, 3):
            raise ValueError(
                f"expression_basis must be [V, 3, E] with V={V}; got {tuple(self.expression_basis.shape)}"
            )
        if len(self.expression_names) != self.expression_basis.shape[2]:
            raise ValueError(
                f"{len(self.expression_names)} expression names for {self.expression_basis.shape[2]} shapes"
            )
        if self.rigid_mask is not None and self.rigid_mask.shape != (V,):
            raise ValueError(f"rigid_mask must be [V={V}]; got {tuple(self.rigid_mask.shape)}")
        for name, mask in self.regions.items():
            if mask.shape != (V,) or mask.dtype != torch.bool:
                raise ValueError(f"region {name!r} must be a bool [V={V}] mask; got {mask.dtype} {tuple(mask.shape)}")
        F = self.faces.shape[0]
        for name, emb in self.landmarks.items():
            if emb.bary.shape != (len(emb), 3) or (len(emb) and int(emb.face_index.max()) >= F):
                raise ValueError(f"landmarks {name!r} must index the model's {F} triangles with [L, 3] weights")
        if (self.uvs is None) != (self.face_uvs is None):
            raise ValueError("uvs [U, 2] and face_uvs [F, 3] come together, or neither")
        if self.skinning is not None:
            from .skinning import check_skinning

            check_skinning(self.skinning, V)

    # ------------------------------------------------------------------ sizes
    @property
    def num_vertices(self) -> int:
        return int(self.template.shape[0])

    @property
    def num_identity(self) -> int:
        return int(self.identity_basis.shape[2])

    @property
    def num_expression(self) -> int:
        return int(self.expression_basis.shape[2])

    @property
    def arkit(self) -> bool:
        """True when the first 52 expressions are the ARKit shapes in ARKit order."""
        from .arkit import ARKIT_NAMES

        return tuple(self.expression_names[:52]) == ARKIT_NAMES

    def expression_index(self, name: str) -> int:
        try:
            return self.expression_names.index(name)
        except ValueError:
            raise KeyError(f"model {self.name!r} has no expression {name!r}") from None

    # ------------------------------------------------------------ evaluation
    def vertices(
        self,
        identity: Tensor | None = None,  # [..., S]
        expression: Tensor | None = None,  # [..., E]
        joint_rotations: Tensor | None = None,  # [..., J, 3] axis-angle
    ) -> Tensor:  # [..., V, 3]
        """Vertices in model space (metres) for identity, expression and joint pose.

        Pure torch, differentiable in every argument, batched over any leading dims
        (leading dims of the arguments broadcast against each other).

        Args:
            identity: [..., S] identity coefficients, or None for the mean head.
            expression: [..., E] expression weights, or None for neutral (for models
                whose ``arkit`` is true the first 52 are ARKit weights in 0..1). Fewer
                than E columns are zero-padded.
            joint_rotations: [..., J, 3] axis-angle per joint (models with ``skinning``
                only; joint 0 is the global/neck root); None for the rest pose.

        Returns:
            [..., V, 3] vertices.
        """
        dtype = self.template.dtype
        lead: list[torch.Size] = []
        if identity is not None:
            if identity.shape[-1] > self.num_identity:
                raise ValueError(f"identity has {identity.shape[-1]} coefficients; model has {self.num_identity}")
            lead.append(identity.shape[:-1])
        if expression is not None:
            if expression.shape[-1] > self.num_expression:
                raise ValueError(
                    f"expression has {expression.shape[-1]} weights; model has {self.num_expression}"
                )
            lead.append(expression.shape[:-1])
        if joint_rotations is not None:
            if self.skinning is None:
                raise ValueError(f"model {self.name!r} has no joints; pass joint_rotations=None")
            J = self.skinning.parents.shape[0]
            if joint_rotations.shape[-2:] != (J, 3):
                raise ValueError(f"expected joint_rotations [..., {J}, 3]; got {tuple(joint_rotations.shape)}")
            lead.append(joint_rotations.shape[:-2])
        try:
            shape = torch.broadcast_shapes(*lead) if lead else torch.Size()
        except RuntimeError:
            raise ValueError(f"leading dims of identity/expression/joint_rotations do not broadcast: "
                             f"{[tuple(s) for s in lead]}") from None

        # One flat accumulation: template + identity part + expression part, [..., V*3].
        # Short coefficient vectors are zero-padded (cheaper than slicing the basis,
        # which would copy it on every call).
        flat = self.template.reshape(-1)
        if identity is not None:
            ident = torch.nn.functional.pad(identity.to(dtype), (0, self.num_identity - identity.shape[-1]))
            flat = flat + torch.matmul(ident, self.identity_basis.reshape(-1, self.num_identity).T)
        if expression is not None:
            expr = torch.nn.functional.pad(expression.to(dtype), (0, self.num_expression - expression.shape[-1]))
            flat = flat + torch.matmul(expr, self.expression_basis.reshape(-1, self.num_expression).T)
        verts = flat.reshape(*flat.shape[:-1], *self.template.shape).expand(*shape, *self.template.shape)
        if joint_rotations is not None:
            from .skinning import skin_vertices

            verts = skin_vertices(verts, joint_rotations.to(dtype), self.skinning)
        return verts

    def landmarks_3d(
        self,
        vertices: Tensor,  # [..., V, 3]
        scheme: str = "ibug68",
    ) -> Tensor:  # [..., L, 3]
        """3D landmark positions of a scheme (``ibug68``, ``mediapipe478``) on given vertices."""
        if scheme not in self.landmarks:
            raise KeyError(f"model {self.name!r} has no {scheme!r} landmarks; it has {sorted(self.landmarks)}")
        emb = self.landmarks[scheme]
        return barycentric_points(vertices, self.faces, emb.face_index, emb.bary)

    def to(self, dtype: torch.dtype) -> "FaceModel":
        """A copy with floating tensors cast to ``dtype``."""
        from dataclasses import replace

        cast = lambda t: t.to(dtype) if (t is not None and t.is_floating_point()) else t  # noqa: E731
        skin = self.skinning
        if skin is not None:
            skin = replace(skin, joint_regressor=cast(skin.joint_regressor), weights=cast(skin.weights),
                           pose_basis=cast(skin.pose_basis))
        return replace(
            self, template=cast(self.template), identity_basis=cast(self.identity_basis),
            expression_basis=cast(self.expression_basis), uvs=cast(self.uvs), skinning=skin,
            landmarks={k: replace(v, bary=cast(v.bary)) for k, v in self.landmarks.items()},
        )
