"""Random Anny bodies: calibrated phenotypes and plausible poses without gross self-intersection.

**Pose vector.** Anny's pose holds one axis-angle rotation (3 values, radians) per bone in its
``local-ref`` parameterisation: the rotation of a bone relative to its parent, expressed in the
world-aligned axes of the reference pose (the zero pose, an A-pose; X left, Y back, Z up). The root
rotation stays zero (the camera provides the view), so the body keeps Anny's placement: pelvis
near the origin, soles near z = -0.87 m when standing.

**Joints.** An anatomical joint drives one or more consecutive bones (the spine's four vertebra
bones share its rotation equally). Each joint has a right-handed frame ``F`` of three axes
(columns, world coordinates in the reference pose) and three angles ``a``; its rotation is
``F @ Rx(a1) @ Ry(a2) @ Rz(a3) @ F.T`` (intrinsic X-Y-Z Euler angles in the frame). Angles are
in degrees, 0 is the reference pose, and :data:`JOINTS` lists the frame axes and the limits.
Every middle angle stays within +-90 degrees, so the angles of a pose are unique.
Right-side joints are the mirror images of the left ones (same angles, rotation mirrored through
the YZ plane), so one table serves both sides.

**Families.** A pose is drawn from a family (standing, walking, reaching, arms up, sitting,
crouching, arms crossed, A-pose, T-pose): uniform angles in per-joint intervals (a family's own,
else the joint's relaxed interval), then the whole pose is mirrored left/right with probability
1/2.

**Self-intersection.** A pose is redrawn while the capsule test of
:mod:`munet.data.synth.collisions` finds limbs through each other.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import torch
from anny.shape_distribution import SimpleShapeDistribution
from scipy.spatial.transform import Rotation

from munet.body.anny_backend import AnnyBody
from munet.data.synth.collisions import CapsuleBody
from munet.data.synth.regions import BodyRegions, mirror_bone

Interval = tuple[float, float]


@dataclass(frozen=True)
class JointSpec:
    """One anatomical joint (left or centre side).

    Attributes:
        bones: Anny bones that share the joint's rotation equally.
        axes: names of the three frame axes (what a positive angle does).
        limits: (3,) (min, max) degrees per axis: every sampled pose stays inside.
        relaxed: (3,) (min, max) degrees per axis: the interval of a relaxed standing pose.
    """

    bones: tuple[str, ...]
    axes: tuple[str, str, str]
    limits: tuple[Interval, Interval, Interval]
    relaxed: tuple[Interval, Interval, Interval]


_FIXED = (0.0, 0.0)

JOINTS: dict[str, JointSpec] = {
    "spine": JointSpec(
        ("spine04", "spine03", "spine02", "spine01"),
        ("bend forward (+X)", "bend left (+Y)", "turn left (+Z)"),
        ((-20, 45), (-25, 25), (-35, 35)),
        ((-5, 10), (-5, 5), (-10, 10)),
    ),
    "neck": JointSpec(
        ("neck01", "neck02", "neck03", "head"),
        ("nod forward (+X)", "tilt left (+Y)", "turn left (+Z)"),
        ((-35, 45), (-30, 30), (-60, 60)),
        ((-10, 15), (-10, 10), (-25, 25)),
    ),
    "shoulder": JointSpec(
        ("upperarm01",),
        ("raise sideways (about -Y)", "swing forward", "twist (about the upper arm)"),
        ((-35, 120), (-45, 85), (-60, 60)),
        ((-30, 0), (-10, 15), (-20, 20)),
    ),
    "elbow": JointSpec(
        ("lowerarm01",),
        ("flex (hinge)", "fixed", "fixed"),
        ((-45, 100), _FIXED, _FIXED),
        ((-35, 10), _FIXED, _FIXED),
    ),
    "wrist": JointSpec(
        ("wrist",),
        ("flex (elbow hinge axis)", "twist (about the forearm)", "deviate"),
        ((-45, 45), (-30, 30), (-20, 30)),
        ((-15, 15), (-10, 10), (-10, 10)),
    ),
    "hip": JointSpec(
        ("upperleg01",),
        ("flex forward (-X)", "abduct outward (-Y)", "rotate outward (+Z)"),
        ((-25, 115), (-20, 45), (-35, 40)),
        ((-5, 10), (-5, 8), (-10, 10)),
    ),
    "knee": JointSpec(
        ("lowerleg01",),
        ("flex (+X)", "fixed", "twist (+Z)"),
        ((0, 140), _FIXED, (-10, 10)),
        ((0, 10), _FIXED, (-3, 3)),
    ),
    "ankle": JointSpec(
        ("foot",),
        ("toes up (-X)", "invert (-Y)", "turn outward (+Z)"),
        ((-35, 25), (-15, 15), (-15, 15)),
        ((-5, 5), (-3, 3), (-5, 5)),
    ),
}
"""The joints, keyed by kind. Sided kinds (their bones end in ``.L``) exist as ``kind.L`` and
``kind.R``; :func:`joint_names` lists the instances."""

_SIDED = ("shoulder", "elbow", "wrist", "hip", "knee", "ankle")


def joint_names() -> list[str]:
    """Names of every joint instance: ``spine``, ``neck``, ``shoulder.L``, ``shoulder.R``, ..."""
    names = []
    for kind in JOINTS:
        names += [f"{kind}.L", f"{kind}.R"] if kind in _SIDED else [kind]
    return names


def _kind(joint: str) -> str:
    return joint.split(".")[0]


def _bones(joint: str) -> tuple[str, ...]:
    suffix = joint[-2:] if joint.endswith((".L", ".R")) else ""
    return tuple(bone + suffix for bone in JOINTS[_kind(joint)].bones)


# Family intervals per joint instance (as written for the left side; mirrored at random): one
# (min, max) in degrees per frame axis.
_RELAXED = None  # this axis samples the joint's relaxed interval
POSE_FAMILIES: dict[str, dict[str, tuple]] = {
    "standing": {},
    "a_pose": {
        "shoulder.L": ((-8, 8), (-5, 5), (-10, 10)),
        "shoulder.R": ((-8, 8), (-5, 5), (-10, 10)),
        "elbow.L": ((-30, 0), _RELAXED, _RELAXED),
        "elbow.R": ((-30, 0), _RELAXED, _RELAXED),
    },
    "t_pose": {
        "shoulder.L": ((40, 50), (-5, 5), (-10, 10)),
        "shoulder.R": ((40, 50), (-5, 5), (-10, 10)),
        "elbow.L": ((-45, -30), _RELAXED, _RELAXED),
        "elbow.R": ((-45, -30), _RELAXED, _RELAXED),
    },
    "walking": {
        "spine": (_RELAXED, _RELAXED, (-8, 8)),
        "hip.L": ((15, 35), _RELAXED, _RELAXED),
        "hip.R": ((-20, -5), _RELAXED, _RELAXED),
        "knee.L": ((0, 20), _RELAXED, _RELAXED),
        "knee.R": ((15, 50), _RELAXED, _RELAXED),
        "ankle.L": ((-5, 15), _RELAXED, _RELAXED),
        "ankle.R": ((-25, 0), _RELAXED, _RELAXED),
        "shoulder.L": ((-30, -10), (-30, -5), _RELAXED),
        "shoulder.R": ((-30, -10), (5, 35), _RELAXED),
        "elbow.L": ((-30, 10), _RELAXED, _RELAXED),
        "elbow.R": ((-20, 30), _RELAXED, _RELAXED),
    },
    "reaching": {
        "spine": ((0, 20), (-10, 10), (-20, 20)),
        "shoulder.L": ((20, 110), (20, 85), (-30, 30)),
        "elbow.L": ((-40, 20), _RELAXED, _RELAXED),
        "wrist.L": ((-30, 30), _RELAXED, _RELAXED),
    },
    "arms_up": {
        "neck": ((-30, 5), _RELAXED, _RELAXED),
        "shoulder.L": ((80, 120), (-10, 40), (-30, 30)),
        "shoulder.R": ((80, 120), (-10, 40), (-30, 30)),
        "elbow.L": ((-40, 30), _RELAXED, _RELAXED),
        "elbow.R": ((-40, 30), _RELAXED, _RELAXED),
    },
    "sitting": {
        "spine": ((0, 20), _RELAXED, _RELAXED),
        "hip.L": ((70, 100), (0, 20), _RELAXED),
        "hip.R": ((70, 100), (0, 20), _RELAXED),
        "knee.L": ((70, 110), _RELAXED, _RELAXED),
        "knee.R": ((70, 110), _RELAXED, _RELAXED),
        "ankle.L": ((-10, 15), _RELAXED, _RELAXED),
        "ankle.R": ((-10, 15), _RELAXED, _RELAXED),
        "shoulder.L": ((-20, 0), (10, 45), _RELAXED),
        "shoulder.R": ((-20, 0), (10, 45), _RELAXED),
        "elbow.L": ((30, 80), _RELAXED, _RELAXED),
        "elbow.R": ((30, 80), _RELAXED, _RELAXED),
    },
    "crouching": {
        "spine": ((15, 40), _RELAXED, _RELAXED),
        "neck": ((-30, 0), _RELAXED, _RELAXED),
        "hip.L": ((90, 115), (5, 25), _RELAXED),
        "hip.R": ((90, 115), (5, 25), _RELAXED),
        "knee.L": ((105, 135), _RELAXED, _RELAXED),
        "knee.R": ((105, 135), _RELAXED, _RELAXED),
        "ankle.L": ((5, 25), _RELAXED, _RELAXED),
        "ankle.R": ((5, 25), _RELAXED, _RELAXED),
        "shoulder.L": ((-10, 10), (30, 70), _RELAXED),
        "shoulder.R": ((-10, 10), (30, 70), _RELAXED),
        "elbow.L": ((10, 60), _RELAXED, _RELAXED),
        "elbow.R": ((10, 60), _RELAXED, _RELAXED),
    },
    "arms_crossed": {
        "shoulder.L": ((-15, 5), (35, 55), (30, 50)),
        "shoulder.R": ((-15, 5), (25, 45), (30, 50)),
        "elbow.L": ((70, 95), _RELAXED, _RELAXED),
        "elbow.R": ((70, 95), _RELAXED, _RELAXED),
    },
}
"""Pose families: per-joint sampling intervals (degrees, frame axes of :data:`JOINTS`)."""

DEFAULT_FAMILY_WEIGHTS: dict[str, float] = {
    "standing": 3.0,
    "a_pose": 0.5,
    "t_pose": 0.5,
    "walking": 2.0,
    "reaching": 1.5,
    "arms_up": 0.75,
    "sitting": 1.0,
    "crouching": 0.75,
    "arms_crossed": 0.75,
}
"""Relative frequency of the pose families."""


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v)


def joint_frames(heads: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The (3, 3) frame (axes as columns) of each joint kind, from reference-pose bone heads.

    Spine, neck and knee use the world axes; hip and ankle the world axes turned half a turn
    about Z (so that positive angles flex forward and abduct outward on the left); shoulder, elbow
    and wrist follow the left arm of the given skeleton (shoulder: sideways-raise axis, forward
    swing axis, upper-arm axis; elbow and wrist: elbow hinge, forearm axis, their cross product).
    """
    x, y, z = np.eye(3)
    upper = _unit(heads["lowerarm01.L"] - heads["upperarm01.L"])
    fore = _unit(heads["wrist.L"] - heads["lowerarm01.L"])
    raise_axis = _unit(-y + (y @ upper) * upper)
    hinge = _unit(np.cross(upper, fore))
    world = np.eye(3)
    turned = np.stack([-x, -y, z], axis=1)
    forearm = np.stack([hinge, fore, np.cross(hinge, fore)], axis=1)
    return {
        "spine": world,
        "neck": world,
        "shoulder": np.stack([raise_axis, np.cross(upper, raise_axis), upper], axis=1),
        "elbow": forearm,
        "wrist": forearm,
        "hip": turned,
        "knee": world,
        "ankle": turned,
    }


def mirror_rotvec(rotvec: np.ndarray) -> np.ndarray:
    """Mirror axis-angle rotations (..., 3) through the YZ plane (left <-> right)."""
    return rotvec * np.array([1.0, -1.0, -1.0], dtype=rotvec.dtype)


class PoseModel:
    """Converts between joint angles and Anny's 312-value pose vector, and samples poses.

    Args:
        bone_labels: the rig's bones in pose-vector order (``AnnyBody.bone_labels()``).
        reference_heads: reference-pose bone heads by label, for the arm frames.
    """

    def __init__(self, bone_labels: list[str], reference_heads: Mapping[str, np.ndarray]):
        self.bone_labels = list(bone_labels)
        self._index = {label: i for i, label in enumerate(self.bone_labels)}
        self.frames = joint_frames(reference_heads)

    @property
    def pose_dim(self) -> int:
        """Length of the pose vector (3 per bone)."""
        return 3 * len(self.bone_labels)

    def pose_from_angles(self, angles: Mapping[str, np.ndarray]) -> np.ndarray:
        """The pose vector (312,) float32 for joint angles (degrees, (3,) per joint instance).

        Joints not given stay at the reference pose.
        """
        rotvecs = np.zeros((len(self.bone_labels), 3), dtype=np.float64)
        if not angles:
            return rotvecs.reshape(-1).astype(np.float32)
        joints = list(angles)
        frames = np.stack([self.frames[_kind(joint)] for joint in joints])
        local = Rotation.from_euler("XYZ", np.stack([angles[j] for j in joints]), degrees=True)
        world = frames @ local.as_matrix() @ frames.transpose(0, 2, 1)
        for joint, rotvec in zip(joints, Rotation.from_matrix(world).as_rotvec()):
            if joint.endswith(".R"):
                rotvec = mirror_rotvec(rotvec)
            bones = _bones(joint)
            rotvecs[[self._index[bone] for bone in bones]] = rotvec / len(bones)
        return rotvecs.reshape(-1).astype(np.float32)

    def angles_from_pose(self, pose: np.ndarray) -> dict[str, np.ndarray]:
        """Joint angles (degrees, (3,) each) of a pose made by :meth:`pose_from_angles`.

        Raises:
            ValueError: the bones of a joint do not share one rotation (not such a pose).
        """
        rotvecs = np.asarray(pose, dtype=np.float64).reshape(-1, 3)
        out = {}
        for joint in joint_names():
            bones = [self._index[b] for b in _bones(joint)]
            if not np.allclose(rotvecs[bones], rotvecs[bones[0]], atol=1e-5):
                raise ValueError(f"the bones of joint {joint} do not share one rotation")
            rotvec = rotvecs[bones[0]] * len(bones)
            if joint.endswith(".R"):
                rotvec = mirror_rotvec(rotvec)
            frame = self.frames[_kind(joint)]
            local = frame.T @ Rotation.from_rotvec(rotvec).as_matrix() @ frame
            out[joint] = Rotation.from_matrix(local).as_euler("XYZ", degrees=True)
        return out

    def sample_angles(self, rng: np.random.Generator, family: str) -> dict[str, np.ndarray]:
        """Uniform joint angles (degrees) in the intervals of a pose family, randomly mirrored.

        Raises:
            KeyError: unknown family (the message lists them).
        """
        if family not in POSE_FAMILIES:
            raise KeyError(f"unknown pose family {family!r}; choose from {list(POSE_FAMILIES)}")
        intervals = POSE_FAMILIES[family]
        swap = rng.random() < 0.5
        angles = {}
        for joint in joint_names():
            source = joint
            if swap and joint.endswith((".L", ".R")):
                source = mirror_bone(joint)
            spec = JOINTS[_kind(joint)]
            chosen = intervals.get(source, (None, None, None))
            bounds = np.array([c if c is not None else r for c, r in zip(chosen, spec.relaxed)])
            angles[joint] = rng.uniform(bounds[:, 0], bounds[:, 1])
        return angles


@dataclass
class PosedBody:
    """One Anny forward pass (batch 1), as numpy float32.

    Attributes:
        vertices: (V, 3) posed vertices, metres.
        bone_poses: (J, 4, 4) posed bone frames (their translation is the bone head).
    """

    vertices: np.ndarray
    bone_poses: np.ndarray

    def bone_heads(self, labels: list[str]) -> dict[str, np.ndarray]:
        """Bone heads (3,) by label (``labels`` in rig order)."""
        return dict(zip(labels, self.bone_poses[:, :3, 3]))

    def transforms_from(self, other: PosedBody) -> np.ndarray:
        """(J, 4, 4) rigid maps that carry each bone of ``other`` onto this pose."""
        return self.bone_poses @ np.linalg.inv(other.bone_poses)


def pose_bodies(body: AnnyBody, poses: np.ndarray, shape: np.ndarray) -> list[PosedBody]:
    """Run Anny on poses (B, 312) of one body shape (phenotypes (6,)), in one batch."""
    poses = torch.as_tensor(np.asarray(poses), dtype=torch.float32)
    phenotypes = torch.as_tensor(shape, dtype=torch.float32).expand(len(poses), -1)
    with torch.no_grad():
        out = body.model(pose_parameters=body.bone_transforms(poses), phenotype_kwargs=phenotypes)
    return [PosedBody(v, b) for v, b in zip(out["vertices"].numpy(), out["bone_poses"].numpy())]


class PhenotypeSampler:
    """Anny's calibrated phenotype distribution, drawn with a numpy ``Generator``.

    Uses the tables of ``anny.shape_distribution.SimpleShapeDistribution`` (height, weight,
    muscle and proportions given age and sex, calibrated on WHO growth data): a morphological age
    uniform in ``age_range`` years, a gender uniform in [0, 1] (<= 0.5 uses the male tables, as
    Anny does), then each phenotype from its Beta distribution.
    """

    def __init__(self, body: AnnyBody, age_range: tuple[float, float] = (12.0, 80.0)):
        if not 0 <= age_range[0] <= age_range[1] <= 110:
            raise ValueError(f"age_range must be (low, high) years with 0 <= low <= high <= 110, got {age_range}")
        self._tables = SimpleShapeDistribution(body.model)
        self.labels = tuple(body.phenotype_labels)
        self.age_range = age_range

    def sample(self, rng: np.random.Generator) -> np.ndarray:
        """One phenotype vector (6,) float32 in [0, 1], ordered as ``body.phenotype_labels``."""
        years = torch.tensor([rng.uniform(*self.age_range)], dtype=torch.float32)
        age = self._tables.morphological_age_mapping.morphological_to_anny_age(years)
        gender = rng.random()
        sex = "boys" if gender <= 0.5 else "girls"
        values = {"age": float(age[0]), "gender": gender}
        for key in ("height", "weight", "muscle", "proportions"):
            table = getattr(self._tables, f"{sex}_conditional_{key}_distribution")
            alpha, beta = table.get_distribution_params(age)
            values[key] = rng.beta(float(alpha[0]), float(beta[0]))
        return np.array([values.get(k, rng.random()) for k in self.labels], dtype=np.float32)


@dataclass
class BodySample:
    """A sampled body.

    Attributes:
        shape: (6,) float32 phenotypes. pose: (312,) float32 axis-angle pose.
        family: the pose family. posed: the body in that pose. reference: the same body in the
        reference pose (zero pose), on which ``regions`` were measured.
        rejected: poses rejected for self-intersection before this one.
    """

    shape: np.ndarray
    pose: np.ndarray
    family: str
    posed: PosedBody
    reference: PosedBody
    regions: BodyRegions
    rejected: int


class BodySampler:
    """Draws phenotypes and collision-free poses of an Anny body.

    Args:
        body: the Anny body model.
        family_weights: relative frequency per pose family (default :data:`DEFAULT_FAMILY_WEIGHTS`).
        age_range: morphological ages in years (see :class:`PhenotypeSampler`).
        max_retries: poses redrawn after a self-intersecting one; when all intersect, the body
            keeps the reference A-pose (family ``"reference"``).
        tolerance: capsule overlap (metres) allowed before a pose counts as self-intersecting.
    """

    def __init__(
        self,
        body: AnnyBody,
        family_weights: Mapping[str, float] | None = None,
        age_range: tuple[float, float] = (12.0, 80.0),
        max_retries: int = 20,
        tolerance: float = 0.01,
    ):
        weights = dict(family_weights or DEFAULT_FAMILY_WEIGHTS)
        unknown = sorted(set(weights) - set(POSE_FAMILIES))
        if unknown or not weights or min(weights.values()) < 0 or sum(weights.values()) <= 0:
            raise ValueError(
                f"family_weights must give non-negative weights (not all zero) to families of "
                f"{list(POSE_FAMILIES)}; got {weights}"
            )
        self.body = body
        self.families = list(weights)
        self.probabilities = np.array([weights[f] for f in self.families]) / sum(weights.values())
        self.max_retries = max_retries
        self.tolerance = tolerance
        self.phenotypes = PhenotypeSampler(body, age_range)
        self.bone_labels = body.bone_labels()
        (reference,) = pose_bodies(body, np.zeros((1, body.pose_dim)), body.neutral_shape(1)[0])
        self.pose_model = PoseModel(self.bone_labels, reference.bone_heads(self.bone_labels))
        self._vertex_bone = body.model.vertex_bone_indices[:, 0].numpy()

    def sample(self, rng: np.random.Generator, family: str | None = None) -> BodySample:
        """A random body; ``family`` forces a pose family instead of drawing one."""
        shape = self.phenotypes.sample(rng)
        family = family or self.families[rng.choice(len(self.families), p=self.probabilities)]
        zero = np.zeros(self.pose_model.pose_dim, dtype=np.float32)
        first = self.pose_model.pose_from_angles(self.pose_model.sample_angles(rng, family))
        reference, posed = pose_bodies(self.body, np.stack([zero, first]), shape)
        regions = BodyRegions.measure(
            reference.vertices,
            reference.bone_heads(self.bone_labels),
            self._vertex_bone,
            self.bone_labels,
        )
        capsules = CapsuleBody(regions, reference.bone_poses[:, :3, 3], self.bone_labels)
        pose = first
        for attempt in range(self.max_retries + 1):
            if attempt > 0:
                pose = self.pose_model.pose_from_angles(self.pose_model.sample_angles(rng, family))
                (posed,) = pose_bodies(self.body, pose[None], shape)
            if capsules.penetrations(posed.bone_poses[:, :3, 3]).max() <= self.tolerance:
                return BodySample(shape, pose, family, posed, reference, regions, attempt)
        return BodySample(shape, zero, "reference", reference, reference, regions, attempt + 1)
