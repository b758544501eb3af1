"""Write a small, random SMPL model file in the real on-disk format (a latin-1 pickle of numpy
arrays and a scipy sparse joint regressor), so the ``smplx`` backend is exercised without the
licensed model."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import scipy.sparse

NUM_VERTICES = 6890  # SMPL's count: the keypoint vertex ids of smplx index into it
NUM_JOINTS = 24
SMPL_PARENTS = [-1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19, 20, 21]


def write_fake_smpl(folder: Path, seed: int = 0) -> dict[str, np.ndarray]:
    """Write ``folder/SMPL_NEUTRAL.pkl`` and return the arrays it holds."""
    rng = np.random.default_rng(seed)
    v_template = rng.normal(scale=0.3, size=(NUM_VERTICES, 3))
    weights = rng.random((NUM_VERTICES, NUM_JOINTS)) ** 4
    weights /= weights.sum(axis=1, keepdims=True)
    j_dense = rng.random((NUM_JOINTS, NUM_VERTICES)) * (rng.random((NUM_JOINTS, NUM_VERTICES)) < 0.01)
    j_dense /= j_dense.sum(axis=1, keepdims=True)
    kintree = np.array([[2**32 - 1 if p < 0 else p for p in SMPL_PARENTS], range(NUM_JOINTS)], dtype=np.int64)
    faces = np.stack([np.arange(NUM_VERTICES - 2), np.arange(1, NUM_VERTICES - 1), np.arange(2, NUM_VERTICES)], 1)
    data = {
        "v_template": v_template,
        "shapedirs": rng.normal(scale=0.01, size=(NUM_VERTICES, 3, 10)),
        "posedirs": rng.normal(scale=0.001, size=(NUM_VERTICES, 3, 207)),
        "J_regressor": scipy.sparse.csc_matrix(j_dense),
        "weights": weights,
        "kintree_table": kintree,
        "f": faces.astype(np.uint32),
    }
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "SMPL_NEUTRAL.pkl", "wb") as handle:
        pickle.dump(data, handle, protocol=2)
    data["J_regressor"] = j_dense
    return data


SMPLX_VERTICES = 10475  # SMPL-X's count: smplx's keypoint vertex ids index into it
SMPLX_JOINTS = 55


def write_fake_smplx(folder: Path, extra: dict[str, np.ndarray] | None = None, seed: int = 0) -> Path:
    """Write ``folder/SMPLX_NEUTRAL.npz``: random SMPL-X arrays of the real shapes (plain arrays,
    plus ``extra`` members such as the object arrays of the real files), and return its path."""
    rng = np.random.default_rng(seed)
    weights = rng.random((SMPLX_VERTICES, SMPLX_JOINTS), dtype=np.float32) ** 4
    weights /= weights.sum(axis=1, keepdims=True)
    j_regressor = np.zeros((SMPLX_JOINTS, SMPLX_VERTICES), np.float32)
    j_regressor[np.arange(SMPLX_JOINTS), rng.choice(SMPLX_VERTICES, SMPLX_JOINTS, replace=False)] = 1.0
    parents = [-1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19]
    parents += [15, 15, 15] + [20] * 15 + [21] * 15  # jaw, eyes, then the hands
    kintree = np.array([[2**32 - 1 if p < 0 else p for p in parents], range(SMPLX_JOINTS)], dtype=np.int64)
    faces = np.stack([np.arange(SMPLX_VERTICES - 2), np.arange(1, SMPLX_VERTICES - 1), np.arange(2, SMPLX_VERTICES)], 1)
    data = {
        "v_template": rng.normal(scale=0.3, size=(SMPLX_VERTICES, 3)).astype(np.float32),
        "shapedirs": rng.normal(scale=0.01, size=(SMPLX_VERTICES, 3, 20)).astype(np.float32),
        "posedirs": np.zeros((SMPLX_VERTICES, 3, 9 * (SMPLX_JOINTS - 1)), np.float32),
        "J_regressor": j_regressor,
        "weights": weights,
        "kintree_table": kintree,
        "f": faces.astype(np.int32),
        "hands_componentsl": np.eye(45, dtype=np.float32),
        "hands_componentsr": np.eye(45, dtype=np.float32),
        "hands_meanl": np.zeros(45, np.float32),
        "hands_meanr": np.zeros(45, np.float32),
        "lmk_faces_idx": np.arange(51, dtype=np.int64),
        "lmk_bary_coords": np.full((51, 3), 1 / 3, np.float32),
        **(extra or {}),
    }
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "SMPLX_NEUTRAL.npz"
    np.savez(path, **data)
    return path


# A crude T-pose skeleton of SMPL's 24 joints (x: the person's left, y: up, metres), symmetric
# through x = 0: joint positions of the body-shaped fake model.
_SKELETON = {
    0: (0.0, 0.0, 0.0),
    1: (0.08, -0.08, 0.0),
    2: (-0.08, -0.08, 0.0),
    3: (0.0, 0.1, 0.0),
    4: (0.09, -0.45, 0.0),
    5: (-0.09, -0.45, 0.0),
    6: (0.0, 0.22, 0.0),
    7: (0.09, -0.82, 0.0),
    8: (-0.09, -0.82, 0.0),
    9: (0.0, 0.32, 0.0),
    10: (0.1, -0.9, 0.06),
    11: (-0.1, -0.9, 0.06),
    12: (0.0, 0.45, 0.0),
    13: (0.07, 0.4, 0.0),
    14: (-0.07, 0.4, 0.0),
    15: (0.0, 0.58, 0.0),
    16: (0.16, 0.4, 0.0),
    17: (-0.16, 0.4, 0.0),
    18: (0.2, 0.2, 0.0),
    19: (-0.2, 0.2, 0.0),
    20: (0.22, 0.0, 0.0),
    21: (-0.22, 0.0, 0.0),
    22: (0.23, -0.05, 0.0),
    23: (-0.23, -0.05, 0.0),
}


def write_body_shaped_smpl(folder: Path, filename: str = "SMPL_NEUTRAL.pkl", seed: int = 0) -> dict[str, np.ndarray]:
    """Write a fake SMPL model whose mesh is a closed, left/right-symmetric, person-sized surface
    (an ellipsoid of 6,890 vertices: 82 rings of 84 plus the poles, so 13,776 faces like SMPL),
    with smooth skinning weights and a joint regressor around :data:`_SKELETON`; real format.
    The network's graph hierarchy can be built on it (:func:`munet.model.build_templates`)."""
    rng = np.random.default_rng(seed)
    rings, segments = 82, 84
    polar = np.pi * (np.arange(1, rings + 1) / (rings + 1))
    azimuth = 2 * np.pi * np.arange(segments) / segments
    ring_y, ring_r = np.cos(polar), np.sin(polar)
    x = np.outer(ring_r, np.cos(azimuth)).ravel()
    z = np.outer(ring_r, np.sin(azimuth)).ravel()
    y = np.repeat(ring_y, segments)
    unit = np.concatenate([[[0.0, 1.0, 0.0]], np.stack([x, y, z], 1), [[0.0, -1.0, 0.0]]])
    v_template = unit * [0.25, 0.85, 0.15] + [0.0, -0.2, 0.0]
    faces = []
    top, bottom = 0, NUM_VERTICES - 1
    index = lambda ring, seg: 1 + ring * segments + seg % segments  # noqa: E731
    for seg in range(segments):
        faces.append((top, index(0, seg + 1), index(0, seg)))
        faces.append((bottom, index(rings - 1, seg), index(rings - 1, seg + 1)))
        for ring in range(rings - 1):
            a, b = index(ring, seg), index(ring, seg + 1)
            c, d = index(ring + 1, seg), index(ring + 1, seg + 1)
            faces += [(a, b, d), (a, d, c)]
    joints = np.array([_SKELETON[j] for j in range(NUM_JOINTS)])
    distance2 = ((v_template[:, None] - joints[None]) ** 2).sum(-1)  # (V, J)
    weights = np.exp(-distance2 / 0.02)
    weights /= weights.sum(axis=1, keepdims=True)
    regressor = np.exp(-distance2.T / 0.005)
    regressor /= regressor.sum(axis=1, keepdims=True)
    kintree = np.array([[2**32 - 1 if p < 0 else p for p in SMPL_PARENTS], range(NUM_JOINTS)], dtype=np.int64)
    data = {
        "v_template": v_template,
        "shapedirs": rng.normal(scale=0.005, size=(NUM_VERTICES, 3, 10)),
        "posedirs": np.zeros((NUM_VERTICES, 3, 207)),
        "J_regressor": scipy.sparse.csc_matrix(regressor),
        "weights": weights,
        "kintree_table": kintree,
        "f": np.array(faces, dtype=np.uint32),
    }
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / filename, "wb") as handle:
        pickle.dump(data, handle, protocol=2)
    data["J_regressor"] = regressor
    return data
