"""Synthetic clothed humans: bodies, poses, garments and the clothed surface (real Anny model).

Independent checks: trimesh for watertightness, orientation and components; a corner graph
for vertex-manifoldness; the exact generalised winding number (solid angles, numpy) for "the body
is inside the clothed surface" (the generator itself never evaluates inside/outside on a mesh).
"""

from __future__ import annotations

import numpy as np
import pytest
import trimesh
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from munet.data.synth.collisions import CapsuleBody
from munet.data.synth.garments import GARMENT_LABELS, GARMENT_TYPES, ClothLabel, sample_outfit
from munet.data.synth.human import ClothedHumanSampler, SynthSettings
from munet.data.synth.poses import JOINTS, POSE_FAMILIES, BodySampler, pose_bodies

DEFAULT_SEEDS = (0, 1, 2)
FORCED_OUTFITS = (
    ("tshirt", "shorts", "short_hair", "shoes"),
    ("long_sleeve", "skirt", "long_hair"),
    ("jacket", "trousers"),
    ("coat",),
    ("dress",),
)


@pytest.fixture(scope="module")
def humans(anny_body):
    """Clothed humans: default settings for DEFAULT_SEEDS, then one per forced outfit."""
    sampler = ClothedHumanSampler(anny_body)
    made = {("default", seed): sampler(np.random.default_rng(seed)) for seed in DEFAULT_SEEDS}
    for index, outfit in enumerate(FORCED_OUTFITS):
        forced = ClothedHumanSampler(anny_body, SynthSettings(garments=outfit))
        made[("forced", outfit)] = forced(np.random.default_rng(100 + index))
    return made


@pytest.fixture(scope="module")
def body_sampler(anny_body):
    return BodySampler(anny_body)


def _dot(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    return np.einsum("...i,...i->...", x, y)


def winding_numbers(vertices: np.ndarray, faces: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Generalised winding numbers of points w.r.t. a triangle mesh (Van Oosterom-Strackee)."""
    corners = vertices[faces].astype(np.float64)
    out = np.empty(len(points))
    for start in range(0, len(points), 16):
        chunk = points[start : start + 16, None, :].astype(np.float64)
        a, b, c = (corners[None, :, i] - chunk for i in range(3))
        la, lb, lc = (np.linalg.norm(x, axis=-1) for x in (a, b, c))
        den = la * lb * lc + _dot(a, b) * lc + _dot(b, c) * la + _dot(c, a) * lb
        out[start : start + 16] = np.arctan2(_dot(a, np.cross(b, c)), den).sum(axis=1) / (2 * np.pi)
    return out


def fans_per_vertex(faces: np.ndarray) -> np.ndarray:
    """Number of separate fans of faces around each vertex (1 everywhere on a 2-manifold).

    Nodes are face corners; two corners of one vertex are joined when their faces share an edge
    through that vertex.
    """
    mesh = trimesh.Trimesh(np.zeros((faces.max() + 1, 3)), faces, process=False)
    pairs, edges = mesh.face_adjacency, mesh.face_adjacency_edges

    def corner(face: np.ndarray, vertex: np.ndarray) -> np.ndarray:
        return 3 * face + np.argmax(faces[face] == vertex[:, None], axis=1)

    rows = np.concatenate([corner(pairs[:, 0], edges[:, k]) for k in (0, 1)])
    cols = np.concatenate([corner(pairs[:, 1], edges[:, k]) for k in (0, 1)])
    graph = coo_matrix((np.ones(len(rows)), (rows, cols)), shape=(3 * len(faces),) * 2)
    _, component = connected_components(graph, directed=False)
    vertex = faces.reshape(-1)
    unique_pairs = np.unique(np.stack([vertex, component], axis=1), axis=0)
    return np.bincount(unique_pairs[:, 0])


@pytest.mark.parametrize("key", [("default", s) for s in DEFAULT_SEEDS] + [("forced", o) for o in FORCED_OUTFITS])
def test_clothed_surface_is_one_closed_outward_two_manifold(humans, key):
    human = humans[key]
    mesh = trimesh.Trimesh(human.cloth_vertices, human.cloth_faces, process=False)
    assert human.cloth_faces.dtype == np.int32 and human.cloth_vertices.dtype == np.float32
    assert mesh.is_watertight and mesh.is_winding_consistent
    assert mesh.volume > 0.02  # outward faces; a person is tens of litres
    assert len(mesh.split(only_watertight=False)) == 1
    assert (fans_per_vertex(human.cloth_faces) == 1).all()
    assert mesh.area_faces.min() > 0


@pytest.mark.parametrize("seed", DEFAULT_SEEDS)
def test_body_is_inside_the_clothed_surface(humans, seed):
    human = humans[("default", seed)]
    probes = human.body_vertices[::60]  # 223 vertices spread over the whole body
    inside = winding_numbers(human.cloth_vertices, human.cloth_faces, probes) > 0.5
    assert inside.mean() >= 0.99


def test_every_garment_type_is_made_and_labelled(humans):
    made = set()
    for outfit in FORCED_OUTFITS:
        human = humans[("forced", outfit)]
        assert sorted(human.garments) == sorted(outfit)
        labels = human.cloth_face_labels
        for kind in outfit:
            share = np.mean(labels == GARMENT_LABELS[kind])
            assert share > 0.01, f"{kind} covers only {share:.1%} of the faces"
        made |= set(human.garments)
    assert made == set(GARMENT_TYPES)


def test_default_outfits_use_every_garment_type():
    seen = set()
    for seed in range(300):
        seen |= {g.kind for g in sample_outfit(np.random.default_rng(seed))}
    assert seen == set(GARMENT_TYPES)


@pytest.mark.parametrize("key", [("default", s) for s in DEFAULT_SEEDS])
def test_labels_and_colours_cover_the_surface(humans, key):
    human = humans[key]
    faces, labels = human.cloth_faces, human.cloth_face_labels
    assert labels.shape == (len(faces),) and labels.dtype == np.uint8
    allowed = {ClothLabel.SKIN} | {GARMENT_LABELS[k] for k in human.garments}
    assert set(np.unique(labels).tolist()) <= {int(a) for a in allowed}
    colors = human.cloth_vertex_colors
    assert colors.shape == human.cloth_vertices.shape and colors.dtype == np.float32
    assert colors.min() >= 0 and colors.max() <= 1 and colors.std() > 0.01
    assert human.body_vertices.shape == (13348, 3) and human.body_joints.shape == (17, 3)
    assert human.pose.shape == (312,) and human.shape.shape == (6,)


def test_same_seed_same_human_different_seed_different_human(anny_body, humans):
    again = ClothedHumanSampler(anny_body)(np.random.default_rng(DEFAULT_SEEDS[0]))
    first, second = humans[("default", DEFAULT_SEEDS[0])], humans[("default", DEFAULT_SEEDS[1])]
    for name in (
        "pose",
        "shape",
        "body_vertices",
        "cloth_vertices",
        "cloth_faces",
        "cloth_face_labels",
        "cloth_vertex_colors",
    ):
        assert np.array_equal(getattr(again, name), getattr(first, name)), name
    assert not np.allclose(first.pose, second.pose)
    assert not np.allclose(first.shape, second.shape)
    assert first.cloth_vertices.shape != second.cloth_vertices.shape or not np.allclose(
        first.cloth_vertices, second.cloth_vertices
    )


def test_pose_family_intervals_lie_within_the_joint_limits():
    for family, joints in POSE_FAMILIES.items():
        for joint, intervals in joints.items():
            spec = JOINTS[joint.split(".")[0]]
            for axis, (chosen, limit) in enumerate(zip(intervals, spec.limits)):
                low, high = chosen if chosen is not None else spec.relaxed[axis]
                assert limit[0] <= low <= high <= limit[1], (family, joint, axis)
    for spec in JOINTS.values():
        assert all(lim[0] <= rel[0] <= rel[1] <= lim[1] for lim, rel in zip(spec.limits, spec.relaxed))
        assert -90 < spec.limits[1][0] and spec.limits[1][1] < 90  # unique Euler angles


def _angle(u: np.ndarray, v: np.ndarray) -> float:
    cosine = u @ v / np.linalg.norm(u) / np.linalg.norm(v)
    return float(np.degrees(np.arccos(np.clip(cosine, -1, 1))))


def test_poses_respect_joint_limits_and_pass_the_collision_test(anny_body, body_sampler):
    labels = body_sampler.bone_labels
    head = {name: labels.index(name) for name in ("upperleg01.L", "lowerleg01.L", "foot.L")}
    for family in POSE_FAMILIES:
        for seed in range(2):
            sample = body_sampler.sample(np.random.default_rng(seed), family)
            assert np.all(sample.pose[:3] == 0), "the root rotation must stay zero"
            angles = body_sampler.pose_model.angles_from_pose(sample.pose)
            for joint, values in angles.items():
                limits = np.array(JOINTS[joint.split(".")[0]].limits)
                inside = (values >= limits[:, 0] - 1e-3) & (values <= limits[:, 1] + 1e-3)
                assert inside.all(), f"{family}: {joint} angles {values} outside {limits.tolist()}"
            if sample.family != "reference":
                heads = sample.reference.bone_poses[:, :3, 3]
                capsules = CapsuleBody(sample.regions, heads, labels)
                assert capsules.penetrations(sample.posed.bone_poses[:, :3, 3]).max() <= 0.01
            # Independent geometry: the knee bend measured on the posed skeleton changes by at
            # most the knee's rotation angle (flexion + twist).
            h, k, a = (sample.posed.bone_poses[head[n], :3, 3] for n in head)
            r_h, r_k, r_a = (sample.reference.bone_poses[head[n], :3, 3] for n in head)
            knee = np.abs(JOINTS["knee"].limits).max(axis=1)
            assert _angle(k - h, a - k) <= _angle(r_k - r_h, r_a - r_k) + knee[0] + knee[2] + 1.0


def test_collision_test_rejects_a_hand_through_the_chest(anny_body, body_sampler):
    sample = body_sampler.sample(np.random.default_rng(0), "a_pose")
    labels = body_sampler.bone_labels
    capsules = CapsuleBody(sample.regions, sample.reference.bone_poses[:, :3, 3], labels)
    faces = anny_body.faces.numpy()
    wrist = labels.index("wrist.L")
    through = body_sampler.pose_model.pose_from_angles(
        {"shoulder.L": np.array([-35.0, 10.0, 90.0]), "elbow.L": np.array([90.0, 0.0, 0.0])}
    )
    posed_bodies = pose_bodies(anny_body, np.stack([sample.pose, through]), sample.shape)
    for posed, intersecting in zip(posed_bodies, (False, True)):
        depth = capsules.penetrations(posed.bone_poses[:, :3, 3]).max()
        # The wrist joint is inside its own forearm (winding 1); inside the chest too, it is 2.
        winding = winding_numbers(posed.vertices, faces, posed.bone_poses[wrist, None, :3, 3])[0]
        assert (depth > 0.01) == intersecting
        assert (winding > 1.5) == intersecting


def test_phenotypes_are_valid_and_reproducible(body_sampler):
    shapes = np.stack([body_sampler.phenotypes.sample(np.random.default_rng(s)) for s in range(50)])
    assert shapes.dtype == np.float32 and shapes.min() >= 0 and shapes.max() <= 1
    assert shapes.std(axis=0).min() > 0.02  # every phenotype varies
    again = body_sampler.phenotypes.sample(np.random.default_rng(3))
    assert np.array_equal(again, shapes[3])


def test_the_independent_fan_count_sees_a_pinched_vertex():
    faces = np.array([[0, 2, 1], [0, 1, 3], [0, 3, 2], [1, 2, 3]])
    assert (fans_per_vertex(faces) == 1).all()
    # Two tetrahedra sharing one vertex: closed and edge-manifold, pinched at the vertex.
    pinched = np.concatenate([faces, np.where(faces == 0, 0, faces + 3)])
    assert fans_per_vertex(pinched).tolist() == [2, 1, 1, 1, 1, 1, 1]


def test_settings_reject_a_skin_offset_that_could_leak(anny_body):
    with pytest.raises(ValueError, match="half the voxel"):
        ClothedHumanSampler(anny_body, SynthSettings(voxel=0.03, skin_offset=0.01))
