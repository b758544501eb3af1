"""Benchmark protocols (munet.metrics.protocols) against independent references: a numpy Umeyama
and scipy's Procrustes disparity for PA-MPJPE, hand-built joints with known errors for PCK/AUC,
joint names for the index maps, and regressor files written with numpy."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.spatial import procrustes
from scipy.spatial.transform import Rotation

from munet.metrics import (
    AUC_THRESHOLDS_MM,
    H36M17_NAMES,
    H36M_TO_LSP14,
    H36M_TO_MPI3DHP17,
    JOINT_SETS,
    LSP14_NAMES,
    MPI3DHP17_NAMES,
    PROTOCOLS,
    load_joint_regressor,
    lsp14_errors,
    lsp14_from_h36m,
    mpi3dhp_errors,
    mpi17_from_h36m,
    regress_h36m,
)

# Names of the LSP / 3DHP joints in the regressor's vocabulary (H36M17_NAMES).
_LSP_TO_H36M_NAME = {"neck": "thorax"}
_MPI_TO_H36M_NAME = {"neck": "thorax", "head": "neck_nose"}


def _umeyama_np(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Reference similarity alignment of src (N, 3) onto dst (N, 3), no reflection; returns aligned src."""
    mu_s, mu_d = src.mean(0), dst.mean(0)
    xs, xd = src - mu_s, dst - mu_d
    cov = xd.T @ xs / len(src)
    u, d, vt = np.linalg.svd(cov)
    s = np.eye(3)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        s[2, 2] = -1
    rot = u @ s @ vt
    scale = np.trace(np.diag(d) @ s) / (xs**2).sum(1).mean()
    return scale * xs @ rot.T + mu_d


def _random_joints(rng: np.random.Generator, batch: int, joints: int) -> np.ndarray:
    return rng.normal(scale=0.3, size=(batch, joints, 3))


def test_lsp14_map_derived_from_names():
    derived = tuple(H36M17_NAMES.index(_LSP_TO_H36M_NAME.get(n, n)) for n in LSP14_NAMES)
    assert derived == H36M_TO_LSP14
    # SPIN's constants.H36M_TO_J14 (H36M_TO_J17[:14]).
    assert H36M_TO_LSP14 == (6, 5, 4, 1, 2, 3, 16, 15, 14, 11, 12, 13, 8, 10)


def test_mpi17_map_derived_from_names():
    derived = tuple(H36M17_NAMES.index(_MPI_TO_H36M_NAME.get(n, n)) for n in MPI3DHP17_NAMES)
    assert derived == H36M_TO_MPI3DHP17
    assert sorted(H36M_TO_MPI3DHP17) == list(range(17))  # a permutation
    assert MPI3DHP17_NAMES[14] == "pelvis"


def test_lsp14_from_h36m_puts_named_joints_in_place():
    # Joint j of the regressor order sits at (j, 10 j, -j) metres: every position is distinct.
    h36m = torch.tensor([[[float(j), 10.0 * j, -float(j)] for j in range(17)]], dtype=torch.float64)
    lsp = lsp14_from_h36m(h36m)
    assert lsp.shape == (1, 14, 3)
    expected = {
        "right_ankle": "right_ankle",
        "left_hip": "left_hip",
        "right_wrist": "right_wrist",
        "left_shoulder": "left_shoulder",
        "neck": "thorax",
        "head_top": "head_top",
    }
    for lsp_name, h36m_name in expected.items():
        j = H36M17_NAMES.index(h36m_name)
        assert lsp[0, LSP14_NAMES.index(lsp_name)].tolist() == [j, 10.0 * j, -j]
    # Pelvis, spine and neck/nose (0, 7, 9) are not LSP joints.
    assert set(lsp[0, :, 0].tolist()) == set(range(17)) - {0, 7, 9}


def test_mpi17_from_h36m_puts_named_joints_in_place():
    h36m = torch.arange(17, dtype=torch.float32)[None, :, None].expand(2, 17, 3).contiguous()
    mpi = mpi17_from_h36m(h36m)
    assert mpi.shape == (2, 17, 3)
    assert mpi[0, MPI3DHP17_NAMES.index("pelvis"), 0] == H36M17_NAMES.index("pelvis")
    assert mpi[0, MPI3DHP17_NAMES.index("head_top"), 0] == H36M17_NAMES.index("head_top")
    assert mpi[0, MPI3DHP17_NAMES.index("head"), 0] == H36M17_NAMES.index("neck_nose")
    assert mpi[0, MPI3DHP17_NAMES.index("right_knee"), 0] == H36M17_NAMES.index("right_knee")
    with pytest.raises(ValueError, match=r"\(B, 17, 3\)"):
        mpi17_from_h36m(torch.zeros(1, 14, 3))


def test_regress_h36m_matches_numpy():
    rng = np.random.default_rng(0)
    vertices = rng.normal(size=(3, 50, 3))
    regressor = rng.uniform(size=(17, 50))
    regressor /= regressor.sum(1, keepdims=True)
    joints = regress_h36m(torch.from_numpy(vertices), torch.from_numpy(regressor).float())
    assert joints.shape == (3, 17, 3) and joints.dtype == torch.float64
    expected = np.stack([regressor @ v for v in vertices])
    np.testing.assert_allclose(joints.numpy(), expected, atol=1e-6)
    with pytest.raises(ValueError, match="6890"):
        regress_h36m(torch.from_numpy(vertices), torch.zeros(17, 49))


def test_lsp14_pa_mpjpe_matches_numpy_umeyama_and_scipy():
    rng = np.random.default_rng(1)
    gt = _random_joints(rng, 4, 14)
    pred = gt + rng.normal(scale=0.05, size=gt.shape)
    errors = lsp14_errors(torch.from_numpy(pred), torch.from_numpy(gt))
    for b in range(4):
        aligned = _umeyama_np(pred[b], gt[b])
        reference = np.linalg.norm(aligned - gt[b], axis=1).mean() * 1000.0
        assert errors["pa_mpjpe_mm"][b].item() == pytest.approx(reference, rel=1e-9)
        # scipy normalises both sides to unit Frobenius norm after centring; its disparity is the
        # squared residual of the aligned prediction, measured in the units of the normalised gt.
        _, _, disparity = procrustes(gt[b], pred[b])
        gt_norm = np.linalg.norm(gt[b] - gt[b].mean(0))
        assert ((aligned - gt[b]) ** 2).sum() == pytest.approx(disparity * gt_norm**2, rel=1e-9)


def test_lsp14_mpjpe_aligns_on_hip_midpoint():
    rng = np.random.default_rng(2)
    gt = _random_joints(rng, 2, 14)
    pred = gt.copy()
    pred[:, 0] += [0.0, 0.1, 0.0]  # right ankle 100 mm off
    pred += [1.0, -2.0, 3.0]  # global shift: removed by the root alignment
    errors = lsp14_errors(torch.from_numpy(pred), torch.from_numpy(gt))
    np.testing.assert_allclose(errors["mpjpe_mm"].numpy(), 100.0 / 14, rtol=1e-9)
    # A hip moved by 140 mm moves the root by 70 mm: 13 joints 70 mm off, the moved hip 70 mm.
    pred = gt.copy()
    pred[:, 2] += [0.14, 0.0, 0.0]
    errors = lsp14_errors(torch.from_numpy(pred), torch.from_numpy(gt))
    np.testing.assert_allclose(errors["mpjpe_mm"].numpy(), 70.0, rtol=1e-9)


def test_similarity_copy_has_zero_pa_mpjpe_but_not_mpjpe():
    rng = np.random.default_rng(3)
    gt = _random_joints(rng, 3, 14)
    rotation = Rotation.from_euler("xyz", [30, -50, 70], degrees=True).as_matrix()
    pred = 1.3 * gt @ rotation.T + [0.2, -0.1, 2.0]
    errors = lsp14_errors(torch.from_numpy(pred), torch.from_numpy(gt))
    assert (errors["pa_mpjpe_mm"] < 1e-6).all()
    assert (errors["mpjpe_mm"] > 10.0).all()
    gt17 = _random_joints(rng, 3, 17)
    mpi = mpi3dhp_errors(torch.from_numpy(0.8 * gt17 @ rotation + 1.0), torch.from_numpy(gt17))
    assert (mpi["pa_mpjpe_mm"] < 1e-6).all() and (mpi["mpjpe_mm"] > 10.0).all()


def test_mpi3dhp_pck_auc_on_known_errors():
    rng = np.random.default_rng(4)
    gt = _random_joints(rng, 1, 17)
    pred = gt.copy()
    pred[0, 0] += [0.102, 0.0, 0.0]  # head top: 102 mm (off the 5 mm grid of thresholds)
    pred[0, 9] += [0.0, 0.0, -0.2]  # right knee: 200 mm
    pred[0, 16] += [0.0, 0.3, 0.0]  # head (not counted by PCK/AUC): 300 mm
    pred += [0.5, 0.5, 0.5]  # removed by the pelvis alignment
    errors = mpi3dhp_errors(torch.from_numpy(pred), torch.from_numpy(gt))
    assert errors["mpjpe_mm"].item() == pytest.approx(602.0 / 17)
    # PCK@150 on 14 joints: all but the knee.
    assert errors["pck150"].item() == pytest.approx(100.0 * 13 / 14)
    # AUC: 12 exact joints are correct at every threshold but 0 (strict <): 30 of 31; the 102 mm
    # joint is correct from 105 mm on: 10 of 31 (105..150); the 200 mm joint never.
    thresholds = np.array(AUC_THRESHOLDS_MM)
    assert len(thresholds) == 31
    per_joint = [np.mean(thresholds > 0.0)] * 12 + [np.mean(thresholds > 102.0), 0.0]
    assert per_joint[12] == pytest.approx(10 / 31)
    assert errors["auc"].item() == pytest.approx(100.0 * np.mean(per_joint))
    assert errors["auc"].item() == pytest.approx(100.0 * (12 * 30 + 10) / (14 * 31))


def test_mpi3dhp_pck_threshold_is_strict():
    gt = torch.zeros(1, 17, 3, dtype=torch.float64)
    pred = gt.clone()
    pred[0, 3, 0] = 0.150  # exactly 150 mm: not within (the 3DHP script counts error < threshold)
    assert mpi3dhp_errors(pred, gt)["pck150"].item() == pytest.approx(100.0 * 13 / 14)
    pred[0, 3, 0] = 0.1499
    assert mpi3dhp_errors(pred, gt)["pck150"].item() == pytest.approx(100.0)


def test_errors_check_shapes():
    with pytest.raises(ValueError, match=r"\(B, 14, 3\)"):
        lsp14_errors(torch.zeros(1, 17, 3), torch.zeros(1, 17, 3))
    with pytest.raises(ValueError, match="same shape"):
        mpi3dhp_errors(torch.zeros(1, 17, 3), torch.zeros(2, 17, 3))


def test_load_joint_regressor_npy_and_npz(tmp_path):
    array = np.random.default_rng(5).uniform(size=(17, 30))
    np.save(tmp_path / "J_regressor_h36m.npy", array)
    loaded = load_joint_regressor(tmp_path / "J_regressor_h36m.npy", num_vertices=30)
    assert loaded.dtype == torch.float32 and loaded.shape == (17, 30)
    np.testing.assert_allclose(loaded.numpy(), array, rtol=1e-6)
    np.savez(tmp_path / "one.npz", regressor=array)
    assert torch.equal(load_joint_regressor(str(tmp_path / "one.npz"), 30), loaded)


@pytest.mark.parametrize(
    ("name", "array", "num_vertices", "message"),
    [
        ("flat.npy", np.zeros(17 * 30), 30, "not 2-D"),
        ("rows.npy", np.zeros((24, 30)), 30, "24 rows .* not 17"),
        ("cols.npy", np.zeros((17, 30)), 31, "30 columns"),
        ("nan.npy", np.full((17, 30), np.nan), 30, "NaN/inf"),
        ("text.npy", np.array([["a"] * 30] * 17), 30, "dtype"),
    ],
)
def test_load_joint_regressor_rejects_bad_arrays(tmp_path, name, array, num_vertices, message):
    np.save(tmp_path / name, array)
    with pytest.raises(ValueError, match=message) as info:
        load_joint_regressor(tmp_path / name, num_vertices)
    assert name in str(info.value)


def test_load_joint_regressor_says_to_use_smpl(tmp_path):
    np.save(tmp_path / "J_regressor_h36m.npy", np.zeros((17, 6890)))
    with pytest.raises(ValueError, match="body.backend=smplx body.model_type=smpl") as info:
        load_joint_regressor(tmp_path / "J_regressor_h36m.npy", num_vertices=14000)
    assert "14000 vertices" in str(info.value) and "J_regressor_h36m.npy" in str(info.value)


def test_load_joint_regressor_refuses_pickles_and_missing_files(tmp_path):
    objects = np.empty((17, 30), dtype=object)
    objects[:] = 0.0
    np.save(tmp_path / "pickled.npy", objects, allow_pickle=True)
    with pytest.raises(ValueError, match="pickled.npy") as info:
        load_joint_regressor(tmp_path / "pickled.npy", 30)
    assert "cannot be read" in str(info.value)
    np.savez(tmp_path / "two.npz", a=np.zeros((17, 30)), b=np.zeros((17, 30)))
    with pytest.raises(ValueError, match="two.npz.*exactly one"):
        load_joint_regressor(tmp_path / "two.npz", 30)
    (tmp_path / "broken.npy").write_bytes(b"not numpy")
    with pytest.raises(ValueError, match="broken.npy"):
        load_joint_regressor(tmp_path / "broken.npy", 30)
    with pytest.raises(FileNotFoundError, match="missing.npy.*no such file.*\\(17, 30\\)"):
        load_joint_regressor(tmp_path / "missing.npy", 30)
    (tmp_path / "regressor.pkl").write_bytes(b"")
    with pytest.raises(ValueError, match="regressor.pkl.*unknown file type"):
        load_joint_regressor(tmp_path / "regressor.pkl", 30)


def test_protocol_registry_end_to_end():
    rng = np.random.default_rng(6)
    vertices = torch.from_numpy(rng.normal(scale=0.3, size=(2, 40, 3)))
    regressor = torch.from_numpy(rng.dirichlet(np.ones(40), size=17)).float()
    assert set(PROTOCOLS) == {"h36m-p2", "3dpw", "3dhp"}
    for key, protocol in PROTOCOLS.items():
        assert protocol.name == key and protocol.frames
        joints = protocol.joints_from_mesh(vertices, regressor)
        assert joints.shape == (2, len(JOINT_SETS[protocol.joint_set]), 3)
        assert protocol.joint_names == JOINT_SETS[protocol.joint_set]
        errors = protocol.errors(joints, joints)
        assert all(value.shape == (2,) for value in errors.values())
        assert errors["mpjpe_mm"].abs().max() < 1e-9 and errors["pa_mpjpe_mm"].abs().max() < 1e-4
    assert PROTOCOLS["h36m-p2"].joint_set == PROTOCOLS["3dpw"].joint_set == "lsp14"
    assert PROTOCOLS["3dpw"].gt_from_mesh and not PROTOCOLS["h36m-p2"].gt_from_mesh
    assert PROTOCOLS["3dhp"].joint_set == "mpi3dhp17"
    assert "S9" in PROTOCOLS["h36m-p2"].frames and "60457274" in PROTOCOLS["h36m-p2"].frames
    assert "campose_valid" in PROTOCOLS["3dpw"].frames and "univ_annot3" in PROTOCOLS["3dhp"].frames
    perfect = PROTOCOLS["3dhp"].errors(*(PROTOCOLS["3dhp"].joints_from_mesh(vertices, regressor),) * 2)
    assert torch.allclose(perfect["pck150"], torch.full((2,), 100.0, dtype=torch.float64))
    assert torch.allclose(perfect["auc"], torch.full((2,), 100.0 * 30 / 31, dtype=torch.float64))
    with pytest.raises(AttributeError):
        PROTOCOLS["3dpw"].name = "other"  # type: ignore[misc]
