"""Tests of munet.graph: mesh graphs, sampling hierarchy, subdivision and graph convolutions."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import trimesh

from munet.geometry import manifold_defects
from munet.graph import (
    GraphConv,
    GraphResBlock,
    MeshGraph,
    SamplingMatrices,
    SparseOperator,
    build_sampling_matrices,
    closest_point_weights,
    hierarchy_cache_path,
    load_or_build_hierarchy,
    normalized_adjacency,
    sparse_bmm,
    subdivide,
    subdivide_face_labels,
)

REPO = Path(__file__).resolve().parents[1]

FINE_TOPOLOGY = "anny-noeyes-notongue"
COARSE_TOPOLOGY = "notoes_collapse10pc"


def _anny_rest_mesh(topology: str) -> MeshGraph:
    import anny

    model = anny.Anny(topology=topology)
    with torch.no_grad():
        vertices = model()["vertices"][0]
    return MeshGraph.from_arrays(vertices, model.get_triangular_faces())


@pytest.fixture(scope="module")
def fine() -> MeshGraph:
    return _anny_rest_mesh(FINE_TOPOLOGY)


@pytest.fixture(scope="module")
def coarse() -> MeshGraph:
    return _anny_rest_mesh(COARSE_TOPOLOGY)


@pytest.fixture(scope="module")
def sampling(fine: MeshGraph, coarse: MeshGraph) -> SamplingMatrices:
    return build_sampling_matrices(fine, coarse)


def _icosphere(subdivisions: int = 2) -> MeshGraph:
    sphere = trimesh.creation.icosphere(subdivisions=subdivisions)
    return MeshGraph.from_arrays(sphere.vertices, sphere.faces)


def _trimesh(graph: MeshGraph) -> trimesh.Trimesh:
    return trimesh.Trimesh(graph.vertices.numpy(), graph.faces.numpy(), process=False)


def _row_sums(matrix: torch.Tensor) -> torch.Tensor:
    return torch.sparse.sum(matrix, dim=1).to_dense()


# ---------------------------------------------------------------------------------------------
# MeshGraph


def test_edges_and_face_edges_match_faces() -> None:
    graph = _icosphere(1)
    # Independent: the set of sorted vertex pairs of every face side, built with Python sets.
    expected = sorted({tuple(sorted((int(f[k]), int(f[(k + 1) % 3])))) for f in graph.faces for k in range(3)})
    assert graph.edges.tolist() == [list(e) for e in expected]
    for k in range(3):
        sides = torch.stack([graph.faces[:, k], graph.faces[:, (k + 1) % 3]], dim=1).sort(dim=1).values
        assert torch.equal(graph.edges[graph.face_edges[:, k]], sides)


def test_from_arrays_casts_and_validates() -> None:
    graph = MeshGraph.from_arrays(np.eye(3, dtype=np.float64), np.array([[0, 1, 2]], dtype=np.int32))
    assert graph.vertices.dtype == torch.float32 and graph.faces.dtype == torch.long
    with pytest.raises(ValueError, match="face indices"):
        MeshGraph.from_arrays(np.eye(3), np.array([[0, 1, 3]]))
    with pytest.raises(ValueError, match=r"\(V, 3\) float32"):
        MeshGraph(torch.eye(3, dtype=torch.float64), torch.tensor([[0, 1, 2]]))


def test_normalized_adjacency_on_a_path_graph() -> None:
    edges = torch.tensor([[0, 1], [1, 2], [2, 3]])
    row = normalized_adjacency(edges, 4, "row").to_dense()
    expected_row = torch.tensor(
        [
            [1 / 2, 1 / 2, 0, 0],
            [1 / 3, 1 / 3, 1 / 3, 0],
            [0, 1 / 3, 1 / 3, 1 / 3],
            [0, 0, 1 / 2, 1 / 2],
        ]
    )
    torch.testing.assert_close(row, expected_row)
    degree = torch.tensor([2.0, 3.0, 3.0, 2.0])
    a_plus_i = (expected_row > 0).float()
    expected_symmetric = a_plus_i / torch.sqrt(degree[:, None] * degree[None, :])
    torch.testing.assert_close(normalized_adjacency(edges, 4, "symmetric").to_dense(), expected_symmetric)
    with pytest.raises(ValueError, match="normalization"):
        normalized_adjacency(edges, 4, "mean")  # type: ignore[arg-type]


def test_anny_templates_are_closed_oriented_manifolds(fine: MeshGraph, coarse: MeshGraph) -> None:
    for graph in (fine, coarse):
        reference = _trimesh(graph)
        assert reference.is_watertight and reference.is_winding_consistent
        assert manifold_defects(graph.faces, graph.num_vertices) == []
        assert graph.euler_characteristic() == reference.euler_number == 2


# ---------------------------------------------------------------------------------------------
# Sampling hierarchy (real Anny meshes in the same rest pose)


def test_sampling_rows_are_convex_combinations(sampling: SamplingMatrices, fine: MeshGraph, coarse: MeshGraph) -> None:
    assert sampling.up.shape == (fine.num_vertices, coarse.num_vertices)
    assert sampling.down.shape == (coarse.num_vertices, fine.num_vertices)
    for matrix in (sampling.up, sampling.down):
        torch.testing.assert_close(_row_sums(matrix), torch.ones(matrix.shape[0]), atol=1e-6, rtol=0)
        assert (matrix.values() >= 0).all()
        assert torch.bincount(matrix.indices()[0], minlength=matrix.shape[0]).max() <= 3


@pytest.mark.parametrize(
    "field",
    [
        lambda p: p[:, 0] + 2 * p[:, 1] - p[:, 2],
        lambda p: torch.sin(3 * p[:, 0]) + torch.cos(2 * p[:, 2]) + p[:, 1],
    ],
    ids=["linear", "sine"],
)
def test_coarse_fine_coarse_round_trip(sampling: SamplingMatrices, fine: MeshGraph, coarse: MeshGraph, field) -> None:
    on_coarse = field(coarse.vertices)[None, :, None]
    on_fine = sparse_bmm(sampling.up, on_coarse)
    back = sparse_bmm(sampling.down, on_fine)
    # Measured: 2.8e-3 (linear and sine): the surfaces are about 1.5 mm apart on average.
    assert (back - on_coarse).norm() / on_coarse.norm() < 1e-2
    exact_on_fine = field(fine.vertices)
    assert (on_fine[0, :, 0] - exact_on_fine).norm() / exact_on_fine.norm() < 1e-2


def test_upsampled_coarse_positions_lie_near_the_fine_surface(
    sampling: SamplingMatrices, fine: MeshGraph, coarse: MeshGraph
) -> None:
    upsampled = sparse_bmm(sampling.up, coarse.vertices[None])[0].numpy()
    _, distance, _ = trimesh.proximity.closest_point(_trimesh(fine), upsampled)
    # Measured: mean 1.2 mm, 99th percentile 5.3 mm, max 10.1 mm (upper back, where the coarse
    # mesh cuts across the curved shoulder blades).
    assert distance.mean() < 3e-3
    assert np.percentile(distance, 99) < 8e-3
    assert distance.max() < 15e-3


def test_closest_point_weights_of_own_vertices_are_the_identity(coarse: MeshGraph) -> None:
    weights = closest_point_weights(coarse.vertices, coarse).to_dense()
    torch.testing.assert_close(weights, torch.eye(coarse.num_vertices), atol=1e-5, rtol=0)


def test_closest_point_on_a_degenerate_triangle_snaps_to_its_nearest_corner() -> None:
    # Face 0 is a zero-area segment along x; the query's closest surface point is (0.9, 0, 0).
    mesh = MeshGraph.from_arrays(
        [[0, 0, 0], [1, 0, 0], [2, 0, 0], [0, 5, 5], [1, 5, 5], [0, 6, 5]], [[0, 1, 2], [3, 4, 5]]
    )
    weights = closest_point_weights(torch.tensor([[0.9, 1.0, 0.0]]), mesh).to_dense()
    assert torch.equal(weights, torch.tensor([[0.0, 1.0, 0.0, 0.0, 0.0, 0.0]]))


def test_hierarchy_cache_is_reused_and_keyed_by_both_meshes(
    tmp_path, fine: MeshGraph, coarse: MeshGraph, sampling: SamplingMatrices
) -> None:
    first = load_or_build_hierarchy(fine, coarse, tmp_path)
    path = hierarchy_cache_path(tmp_path, fine, coarse)
    assert path.is_file()
    stamp = os.stat(path)
    second = load_or_build_hierarchy(fine, coarse, tmp_path)
    after = os.stat(path)
    assert (after.st_ino, after.st_mtime_ns) == (
        stamp.st_ino,
        stamp.st_mtime_ns,
    )  # read, not rewritten
    for matrix in ("up", "down"):
        for result in (first, second):
            assert torch.equal(getattr(result, matrix).indices(), getattr(sampling, matrix).indices())
            assert torch.equal(getattr(result, matrix).values(), getattr(sampling, matrix).values())
    assert second.matches(fine, coarse)

    moved = MeshGraph(coarse.vertices + torch.tensor([0.0, 0.0, 1e-3]), coarse.faces)
    other_path = hierarchy_cache_path(tmp_path, fine, moved)
    assert other_path != path
    # A stale file under the new name (wrong meshes inside) is detected and rebuilt.
    other_path.write_bytes(path.read_bytes())
    rebuilt = load_or_build_hierarchy(fine, moved, tmp_path)
    assert rebuilt.matches(fine, moved) and not rebuilt.matches(fine, coarse)
    assert SamplingMatrices.load(other_path).matches(fine, moved)


# ---------------------------------------------------------------------------------------------
# Subdivision


@pytest.mark.parametrize("source", ["icosphere", "anny_coarse"])
def test_subdivision_keeps_a_closed_oriented_manifold(source: str, coarse: MeshGraph) -> None:
    graph = _icosphere(1) if source == "icosphere" else coarse
    refined, up = subdivide(graph)
    assert refined.num_vertices == graph.num_vertices + graph.num_edges
    assert refined.num_faces == 4 * graph.num_faces
    assert refined.euler_characteristic() == graph.euler_characteristic()
    assert manifold_defects(refined.faces, refined.num_vertices) == []
    reference = _trimesh(refined)
    assert reference.is_watertight and reference.is_winding_consistent
    # Same enclosed volume sign as the parent: orientation kept outward.
    assert np.sign(reference.volume) == np.sign(_trimesh(graph).volume) == 1

    # New vertices are edge midpoints: compare the vertex set with trimesh's own subdivision.
    theirs, their_faces = trimesh.remesh.subdivide(graph.vertices.numpy(), graph.faces.numpy())
    assert len(their_faces) == refined.num_faces
    np.testing.assert_allclose(
        np.unique(np.round(refined.vertices.numpy(), 5), axis=0),
        np.unique(np.round(theirs.astype(np.float32), 5), axis=0),
        atol=2e-5,
    )
    assert up.shape == (refined.num_vertices, graph.num_vertices)
    torch.testing.assert_close(_row_sums(up), torch.ones(refined.num_vertices))
    torch.testing.assert_close(torch.sparse.mm(up, graph.vertices), refined.vertices)


def test_repeated_subdivision_composes_up_matrices() -> None:
    graph = _icosphere(0)
    once, up_once = subdivide(graph)
    twice, up_twice = subdivide(graph, times=2)
    again, up_again = subdivide(once)
    assert torch.equal(twice.faces, again.faces)
    torch.testing.assert_close(up_twice.to_dense(), torch.sparse.mm(up_again, up_once.to_dense()), atol=1e-7, rtol=0)
    torch.testing.assert_close(torch.sparse.mm(up_twice, graph.vertices), twice.vertices)
    same, identity = subdivide(graph, times=0)
    assert same is graph and torch.equal(identity.to_dense(), torch.eye(graph.num_vertices))


def test_child_faces_inherit_their_parent_label() -> None:
    graph = _icosphere(1)
    labels = torch.arange(graph.num_faces) % 5
    for times in (1, 2):
        refined, up = subdivide(graph, times)
        child_labels = subdivide_face_labels(labels, times)
        assert child_labels.shape == (refined.num_faces,)
        # Every vertex of a child face depends only on the corners of the face its label names.
        dense = up.to_dense()
        parent_of_child = torch.arange(refined.num_faces) // 4**times
        for child in range(0, refined.num_faces, 7):
            parent = int(parent_of_child[child])
            assert child_labels[child] == labels[parent]
            support = dense[refined.faces[child]].nonzero()[:, 1].unique()
            assert set(support.tolist()) <= set(graph.faces[parent].tolist())


# ---------------------------------------------------------------------------------------------
# Graph convolutions

PATH_EDGES = torch.tensor([[0, 1], [1, 2], [2, 3]])
PATH_NEIGHBOURS = {0: [0, 1], 1: [0, 1, 2], 2: [1, 2, 3], 3: [2, 3]}  # closed one-rings


@pytest.mark.parametrize("channels", [(3, 5), (5, 2)], ids=["widen", "narrow"])
def test_graph_conv_matches_a_hand_computation_and_its_gradient(channels: tuple[int, int]) -> None:
    torch.manual_seed(0)
    in_channels, out_channels = channels
    conv = GraphConv(in_channels, out_channels, normalized_adjacency(PATH_EDGES, 4, "row"))
    x = torch.randn(2, 4, in_channels, requires_grad=True)
    y = conv(x)

    w_self, bias = conv.self_linear.weight, conv.self_linear.bias
    w_neighbour = conv.neighbour_linear.weight
    expected = torch.stack(
        [
            torch.stack(
                [w_self @ x[b, i] + bias + w_neighbour @ x[b, PATH_NEIGHBOURS[i]].mean(dim=0) for i in range(4)]
            )
            for b in range(2)
        ]
    )
    torch.testing.assert_close(y, expected)

    weights = torch.randn_like(y)
    (grad_sparse,) = torch.autograd.grad((y * weights).sum(), x, retain_graph=True)
    (grad_manual,) = torch.autograd.grad((expected * weights).sum(), x)
    torch.testing.assert_close(grad_sparse, grad_manual)
    (y * weights).sum().backward()
    for name, parameter in conv.named_parameters():
        assert parameter.grad is not None and parameter.grad.abs().sum() > 0, name


def test_graph_res_block_shapes_determinism_and_errors() -> None:
    graph = _icosphere(1)
    adjacency = graph.adjacency()
    torch.manual_seed(0)
    widen = GraphResBlock(16, 32, adjacency, groups=4)
    keep = GraphResBlock(32, 32, adjacency, groups=4)
    x = torch.randn(3, graph.num_vertices, 16, requires_grad=True)
    runs = []
    for _ in range(2):
        x.grad = None
        y = keep(widen(x))
        y.square().mean().backward()
        runs.append((y.detach(), x.grad.clone()))
    assert runs[0][0].shape == (3, graph.num_vertices, 32)
    assert torch.equal(runs[0][0], runs[1][0]) and torch.equal(runs[0][1], runs[1][1])
    assert runs[0][1].abs().sum() > 0
    with pytest.raises(ValueError, match="divisible by groups"):
        GraphResBlock(16, 30, adjacency, groups=4)
    with pytest.raises(ValueError, match="vertices"):
        keep(torch.randn(1, graph.num_vertices + 1, 32))


def test_sparse_buffers_survive_state_dict_device_moves_and_ddp(tmp_path) -> None:
    graph = _icosphere(1)
    block = GraphResBlock(8, 8, graph.adjacency(), groups=2)
    state = block.state_dict()
    assert any(key.endswith("adjacency.indices") for key in state)
    clone = GraphResBlock(8, 8, graph.adjacency("symmetric"), groups=2)
    clone.load_state_dict(state)
    x = torch.randn(2, graph.num_vertices, 8)
    torch.testing.assert_close(clone(x), block(x))

    as_double = SparseOperator(graph.adjacency()).to(torch.float64)
    assert as_double.values.dtype == torch.float64 and as_double.indices.dtype == torch.long
    assert as_double(x.double()).dtype == torch.float64

    # A real one-process gloo group: DDP broadcasts buffers at construction, which fails for
    # sparse-tensor buffers. In a child process that exits without destroying the group: torch's
    # gloo teardown can deadlock (its destructor joins a worker thread that waits for the GIL).
    script = """
import os, sys, torch, torch.distributed as dist
from munet.graph import GraphResBlock
from tests.test_graph import _icosphere
graph = _icosphere(1)
block = GraphResBlock(8, 8, graph.adjacency(), groups=2)
dist.init_process_group("gloo", init_method="file://" + sys.argv[1], rank=0, world_size=1)
model = torch.nn.parallel.DistributedDataParallel(block)
model(torch.randn(2, graph.num_vertices, 8)).sum().backward()
print("grad", block.layers[2].weight.grad is not None, flush=True)
os._exit(0)
"""
    done = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path / "store")], cwd=REPO, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip().splitlines()[-1] == "grad True"
