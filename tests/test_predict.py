"""``munet predict``: image reading, person crop and intrinsics, the command's files, bad inputs.

The model is real: a small MuNet fitted for a few seconds to four renders of the synthetic data
engine (tiny network and crops, one CPU thread), so that "the predicted body lies on the person"
is checked on those renders through the whole command line. A photograph bundled with
scikit-image is predicted too, with no accuracy claim.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import trimesh

from munet.__main__ import main as munet_main
from munet.body import COCO17_NAMES
from munet.checkpoint.load import load_trained_model
from munet.checkpoint.state import save_checkpoint
from munet.config import MuNetConfig, load_config
from munet.data.camera import resize_intrinsics
from munet.data.decode import decode_sample
from munet.data.generate import GenerationSettings, SampleGenerator
from munet.data.schema import SampleRecord, encode_sample
from munet.geometry import project
from munet.model import MuNet
from munet.predict import cli
from munet.predict.crop import PERSON_FILL, image_intrinsics, mask_box, person_crop
from munet.predict.images import ImageError, read_image
from munet.predict.obj import obj_bytes
from munet.predict.outputs import write_outputs
from munet.predict.predictor import Predictor
from munet.predict.run import DISPLAY_SIZE, predict_files
from munet.predict.segment import grabcut_mask, whole_image_box
from munet.train.local import train_local

RENDER_SIZE = 128
NUM_RENDERS = 4
FIT_STEPS = 80
TINY_MODEL = [
    "data.image_size=64",
    "model.image_size=64",
    "data.cloth_points=256",
    "model.body_channels=32",
    "model.body_blocks=2",
    "model.cloth_channels=16",
    "model.cloth_blocks=1",
    "graph.cloth_subdivisions=0",
    "train.lr=0.001",
    "train.lr_warmup=5",
    "train.log_every=1000",
    "data.augment=false",  # fitted to the four renders as they are
]
PANEL = 384
JSON_KEYS = {
    "input",
    "image_size",
    "crop_box",
    "crop_source",
    "input_size",
    "K",
    "K_image",
    "focal_source",
    "weak_camera",
    "translation",
    "joint_names",
    "joints_3d",
    "joints_2d",
    "joints_2d_image",
    "frame",
    "checkpoint",
    "step",
    "timings_ms",
    "fit",
}
ON_PERSON = 0.85
"""Least fraction of the predicted body that must land on the person's mask after fitting."""


def _write_rgb(path: Path, rgb: np.ndarray) -> Path:
    assert cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    return path


def inside_fraction(pixels: np.ndarray, mask: np.ndarray) -> float:
    """Fraction of pixel positions (N, 2) that fall on a true pixel of ``mask`` (H, W)."""
    cols, rows = np.round(pixels).astype(int).T
    valid = (cols >= 0) & (cols < mask.shape[1]) & (rows >= 0) & (rows < mask.shape[0])
    hits = np.zeros(len(pixels), bool)
    hits[valid] = mask[rows[valid], cols[valid]]
    return float(hits.mean())


@dataclass
class Fitted:
    checkpoint: Path
    config: MuNetConfig
    records: list[SampleRecord]
    renders: Path


@pytest.fixture(scope="module")
def fitted(tmp_path_factory) -> Fitted:
    """A MuNet fitted to four synthetic renders, its checkpoint, and the renders as PNG files."""
    root = tmp_path_factory.mktemp("fitted")
    generator = SampleGenerator(GenerationSettings(num_samples=NUM_RENDERS, image_size=RENDER_SIZE, cloth_points=256))
    try:
        records = [generator.record(i) for i in range(NUM_RENDERS)]
    finally:
        generator.close()
    config = load_config("cpu", TINY_MODEL)
    samples = [
        decode_sample({"__key__": r.key, **encode_sample(r, "png")}, config.data.image_size, config.data.cloth_points)
        for r in records
    ]
    batch = {key: np.stack([s[key] for s in samples]) for key in samples[0]}
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # two threads spin-wait for each other on a busy 2-core machine
    try:
        train_local(config, [batch], FIT_STEPS, root / "checkpoint", body=generator.body)
    finally:
        torch.set_num_threads(threads)
    renders = root / "renders"
    renders.mkdir()
    for i, record in enumerate(records):
        _write_rgb(renders / f"render_{i}.png", record.image)
    cv2.imwrite(str(renders / "render_2_mask.png"), records[2].mask.astype(np.uint8) * 255)
    return Fitted(root / "checkpoint", config, records, renders)


@dataclass
class CliRun:
    result: subprocess.CompletedProcess
    out: Path
    inputs: dict[str, Path]


@pytest.fixture(scope="module")
def cli_run(fitted, tmp_path_factory) -> CliRun:
    """One ``python -m munet predict`` over the renders, a photo, odd formats and a broken file."""
    from skimage import data

    folder = tmp_path_factory.mktemp("inputs")
    render, mask = fitted.records[0].image, fitted.records[1].mask
    huge = np.full((3000, 4200, 3), 90, np.uint8)
    huge[:, 600:3600] = cv2.resize(render, (3000, 3000), interpolation=cv2.INTER_LINEAR)
    inputs = {
        "photo": _write_rgb(folder / "astronaut.png", data.astronaut()),
        "broken": folder / "broken.jpg",
        "grey": folder / "grey.png",
        "cutout": folder / "cutout.png",
        "deep": folder / "deep.png",
        "huge": _write_rgb(folder / "huge.png", huge),
    }
    inputs["broken"].write_text("this is not a JPEG\n")
    cv2.imwrite(str(inputs["grey"]), cv2.cvtColor(render, cv2.COLOR_RGB2GRAY))
    bgra = cv2.cvtColor(fitted.records[1].image, cv2.COLOR_RGB2BGRA)
    bgra[..., 3] = np.where(mask, 255, 0)
    cv2.imwrite(str(inputs["cutout"]), bgra)
    cv2.imwrite(str(inputs["deep"]), cv2.cvtColor(render, cv2.COLOR_RGB2BGR).astype(np.uint16) * 257)
    out = tmp_path_factory.mktemp("predictions")
    command = [
        sys.executable,
        "-m",
        "munet",
        "predict",
        str(fitted.renders),
        *map(str, inputs.values()),
        "--checkpoint",
        str(fitted.checkpoint),
        "--out",
        str(out),
        "--batch-size",
        "3",
        "--no-progress",
    ]
    result = subprocess.run(
        command, capture_output=True, text=True, timeout=900, env={**os.environ, "OMP_NUM_THREADS": "1"}
    )
    return CliRun(result, out, inputs)


def _python_obj(vertices: np.ndarray, faces: np.ndarray) -> bytes:
    """The OBJ text as Python's own formatting prints it, number by number (the reference)."""
    v, f = np.asarray(vertices, dtype=np.float64), np.asarray(faces, dtype=np.int64) + 1
    header = "# MuNet prediction; camera frame (OpenCV: x right, y down, z forward), metres\n"
    lines = [f"v {x:.6f} {y:.6f} {z:.6f}\n" for x, y, z in v.tolist()] + [f"f {a} {b} {c}\n" for a, b, c in f.tolist()]
    return (header + "".join(lines)).encode()


def test_obj_numbers_are_exactly_pythons_fixed_point_formatting():
    rng = np.random.default_rng(0)
    # float32 coordinates over 17 orders of magnitude, and the hard cases: exact ties at the sixth
    # decimal (1/128 = 0.0078125 rounds to even), signed zeros, negatives that round to -0.000000,
    # carries into the integer part.
    wide = rng.standard_normal((3000, 3)) * 10.0 ** rng.uniform(-9, 8, (3000, 3))
    hard = [0.0, -0.0, 1 / 128, -1 / 128, 3 / 128, 5e-7, -5e-7, -1e-9, 0.9999996, -0.9999996, 999999.9, 12.5]
    vertices = np.concatenate([wide.reshape(-1), hard]).astype(np.float32)
    vertices = np.resize(vertices, (len(vertices) // 3 + 1, 3))
    faces = rng.integers(0, len(vertices), (5000, 3))
    faces[0] = [0, 9, 99]
    assert obj_bytes(vertices, faces) == _python_obj(vertices, faces)
    # float64 coordinates that float32 does not hold, non-finite ones, negative indices: Python formats them.
    fine = vertices.astype(np.float64) + 1e-12
    odd = np.array([[np.nan, np.inf, -np.inf], [2e12, -3e15, 0.5]])
    assert obj_bytes(fine, faces) == _python_obj(fine, faces)
    assert obj_bytes(odd, [[-3, 0, 1]]) == _python_obj(odd, [[-3, 0, 1]])
    assert obj_bytes(np.zeros((0, 3)), np.zeros((0, 3), int)) == _python_obj(np.zeros((0, 3)), np.zeros((0, 3), int))


def _same_outputs(a: Path, b: Path) -> None:
    """Output folders ``a`` and ``b`` hold byte-identical files but for the measured times."""
    names = sorted(p.name for p in a.iterdir())
    assert (
        names
        == sorted(p.name for p in b.iterdir())
        == sorted(["body.obj", "clothed.obj", "scene.glb", "overlay.png", "prediction.json"])
    )
    for name in names:
        if name == "prediction.json":
            records = [json.loads((folder / name).read_text()) for folder in (a, b)]
            for record in records:
                assert record.pop("timings_ms")["export"] > 0
                if record["fit"] is not None:
                    record["fit"].pop("milliseconds")
            assert records[0] == records[1], name
        else:
            assert (a / name).read_bytes() == (b / name).read_bytes(), f"{a / name} differs"


def test_writer_threads_write_what_one_thread_writes(fitted, tmp_path):
    """Outputs written on worker threads while the next batch is predicted are byte for byte those
    written by calling write_outputs for each image in turn (the run without writer threads)."""
    from munet.data.render import Renderer
    from munet.fit import FitSettings

    paths = sorted(fitted.renders.glob("render_?.png"))  # render_2 has a mask: it is fitted
    predictor = Predictor.from_checkpoint(fitted.checkpoint, fit=FitSettings(steps=5))
    summary = predict_files(paths, predictor, tmp_path / "threads", batch_size=2, writers=3, progress=False)
    assert summary.failed == [] and [f.name for f in summary.written] == [p.stem for p in paths]
    assert len(summary.fits) == 1 and summary.timings_ms["export"] > 0
    with Renderer(DISPLAY_SIZE) as renderer:
        for batch in (paths[:2], paths[2:]):
            crops = [person_crop(p, predictor.input_size, DISPLAY_SIZE) for p in batch]
            predictions = predictor(
                np.stack([c.image for c in crops]), np.stack([c.K for c in crops]), [c.mask for c in crops]
            )
            for path, crop, prediction in zip(batch, crops, predictions, strict=True):
                info = {"checkpoint": None, "step": predictor.step, "focal_given": False, "timings_ms": {}}
                write_outputs(tmp_path / "direct" / path.stem, path, crop, prediction, renderer, info)
    for path in paths:
        _same_outputs(tmp_path / "threads" / path.stem, tmp_path / "direct" / path.stem)


def test_overlay_blends_only_where_the_mesh_is(fitted):
    """overlay_mesh blends the rendered mesh over the image where its mask is and keeps the image
    elsewhere, exactly as the blend of whole images does."""
    from munet.data.render import Renderer
    from munet.eval.overlay import _FRONT_LIGHT, BODY_COLOR, overlay_mesh

    predictor = Predictor.from_checkpoint(fitted.checkpoint)
    crop = person_crop(fitted.renders / "render_0.png", predictor.input_size, DISPLAY_SIZE)
    prediction = predictor(crop.image[None], crop.K[None])[0]
    K = resize_intrinsics(crop.K, DISPLAY_SIZE / predictor.input_size)  # as overlay_picture draws
    vertices, faces = prediction.body_vertices, prediction.body_faces
    with Renderer(DISPLAY_SIZE) as renderer:
        colors = np.tile(BODY_COLOR, (len(vertices), 1))
        picture, mask = renderer.render_picture(vertices, faces, colors, K, _FRONT_LIGHT, crop.display)
        for alpha in (0.7, 1.0):
            whole = alpha * picture.astype(np.float32) + (1 - alpha) * crop.display.astype(np.float32)
            expected = np.where(mask[..., None], whole, crop.display).astype(np.uint8)
            shown = overlay_mesh(renderer, crop.display, vertices, faces, K, BODY_COLOR, alpha=alpha)
            assert 0.02 < mask.mean() < 0.9 and np.array_equal(shown, expected)


def _prediction(folder: Path) -> dict:
    return json.loads((folder / "prediction.json").read_text())


def _check_outputs(folder: Path) -> tuple[trimesh.Trimesh, trimesh.Trimesh, dict]:
    """The meshes and JSON of one output folder, checked for what every prediction must satisfy."""
    body, clothed = (trimesh.load(folder / name, force="mesh") for name in ("body.obj", "clothed.obj"))
    assert body.is_watertight and clothed.is_watertight
    assert len(body.vertices) == 13_348
    record = _prediction(folder)
    assert set(record) == JSON_KEYS
    assert record["joint_names"] == list(COCO17_NAMES)
    joints = np.array(record["joints_3d"])
    assert joints.shape == (17, 3) and np.isfinite(joints).all() and (joints[:, 2] > 0).all()
    # 2D joints are the 3D ones through each camera; the body's pelvis is the translation.
    np.testing.assert_allclose(record["joints_2d"], project(joints, np.array(record["K"])), atol=2e-3)
    np.testing.assert_allclose(record["joints_2d_image"], project(joints, np.array(record["K_image"])), atol=2e-3)
    np.testing.assert_allclose(joints[[11, 12]].mean(axis=0), record["translation"], atol=1e-4)
    assert set(record["timings_ms"]) == {"crop", "inference", "fit", "batch_size", "export"}
    scene = trimesh.load(folder / "scene.glb")
    assert isinstance(scene, trimesh.Scene) and set(scene.geometry) == {"body", "clothed"}
    np.testing.assert_allclose(scene.geometry["body"].vertices, body.vertices * [1, -1, -1], atol=1e-5)
    overlay = cv2.imread(str(folder / "overlay.png"))
    assert overlay.shape == (PANEL, 5 * PANEL, 3)
    return body, clothed, record


def test_obj_round_trips_through_trimesh():
    sphere = trimesh.creation.icosphere(subdivisions=2)
    vertices = sphere.vertices + [0.1, -0.2, 2.5]
    stream = trimesh.util.wrap_as_stream(obj_bytes(vertices, sphere.faces))
    loaded = trimesh.load(stream, file_type="obj", process=False)
    assert np.array_equal(loaded.faces, sphere.faces)  # same numbering and winding
    np.testing.assert_allclose(loaded.vertices, vertices, atol=6e-7)
    assert loaded.is_watertight


def _overlay_on_mask(folder: Path, display_mask: np.ndarray) -> float:
    """Fraction of the pixels the body panel of ``overlay.png`` changed that lie on the mask."""
    overlay = cv2.imread(str(folder / "overlay.png")).astype(np.int16)
    changed = np.abs(overlay[:, PANEL : 2 * PANEL] - overlay[:, :PANEL]).max(axis=2) > 40
    changed[:24] = False  # the panel's label
    assert changed.sum() > 500
    return float(display_mask[changed].mean())


@pytest.mark.parametrize(
    ("name", "index", "source"), [("cutout", 1, "alpha channel"), ("render_2", 2, "render_2_mask.png")]
)
def test_predicted_body_lies_on_the_person(fitted, cli_run, name, index, source):
    """With a mask (RGBA cut-out or mask file) the body is fitted to it: its vertices, drawn through
    the original image's camera, and the overlay's body pixels land on the person."""
    folder = cli_run.out / name
    body, _, prediction = _check_outputs(folder)
    fit = prediction["fit"]
    assert fit["mask"] == source and prediction["crop_source"] == source
    assert fit["on_mask_after"] >= ON_PERSON and fit["on_mask_after"] >= fit["on_mask_before"]
    # The clothed outline (a secondary term of the fit) may not drift by more than a tenth of its
    # gap plus a quarter pixel. (This tiny network, fitted to four renders, moves by tenths of a
    # pixel with a change as small as the uint8 rounding of its training images or the summation
    # order of a loss: a bound in absolute pixels alone broke on such changes twice.)
    assert fit["outline_gap_after"] <= 1.1 * fit["outline_gap_before"] + 0.25
    mask = fitted.records[index].mask
    assert inside_fraction(project(body.vertices, np.array(prediction["K_image"])), mask) >= ON_PERSON
    path = cli_run.inputs["cutout"] if name == "cutout" else fitted.renders / f"{name}.png"
    display_mask = person_crop(path, fitted.config.data.image_size, PANEL).mask
    assert _overlay_on_mask(folder, display_mask) >= ON_PERSON


def test_without_a_mask_or_with_no_fit_the_network_meshes_are_kept(fitted, cli_run, tmp_path):
    for name in ("render_0", "render_1", "astronaut"):
        assert _prediction(cli_run.out / name)["fit"] is None
    out = tmp_path / "out"
    assert (
        cli.main(
            [
                str(cli_run.inputs["cutout"]),
                "--checkpoint",
                str(fitted.checkpoint),
                "--out",
                str(out),
                "--no-fit",
                "--no-progress",
            ]
        )
        == 0
    )
    plain, fitted_run = _prediction(out / "cutout"), _prediction(cli_run.out / "cutout")
    assert plain["fit"] is None
    body = trimesh.load(out / "cutout" / "body.obj", force="mesh")
    on_mask = inside_fraction(project(body.vertices, np.array(plain["K_image"])), fitted.records[1].mask)
    # The unfitted body is the network's: what the fit started from.
    assert on_mask == pytest.approx(fitted_run["fit"]["on_mask_before"], abs=0.03)


def test_grabcut_segments_renders(fitted):
    """GrabCut finds the person in renders whose background differs from the clothes in colour
    (the fourth render's dark green checkerboard matches its sweater, and GrabCut leaks into it:
    why segmentation is opt-in)."""
    for record in fitted.records[:3]:
        height, width = record.mask.shape
        for box in (whole_image_box(width, height), mask_box(record.mask)):
            mask = grabcut_mask(record.image, box)
            iou = (mask & record.mask).sum() / (mask | record.mask).sum()
            assert iou >= 0.85, (record.key, box, iou)
    record = fitted.records[0]
    height, width = record.mask.shape
    with pytest.raises(ValueError, match="no background"):
        grabcut_mask(record.image, (0, 0, width, height))
    with pytest.raises(ValueError, match="too small"):
        grabcut_mask(record.image, (10, 10, 12, 30))


def test_segment_option_fits_photos_without_a_mask(fitted, tmp_path):
    """``--segment``: GrabCut gives the mask, the crop frames it, the body is fitted to it."""
    out = tmp_path / "out"
    image = _write_rgb(tmp_path / "render_2.png", fitted.records[2].image)  # without its mask file
    assert (
        cli.main([str(image), "--checkpoint", str(fitted.checkpoint), "--out", str(out), "--segment", "--no-progress"])
        == 0
    )
    body, _, prediction = _check_outputs(out / "render_2")
    assert prediction["crop_source"] == "GrabCut" and prediction["fit"]["mask"] == "GrabCut"
    on_mask = inside_fraction(project(body.vertices, np.array(prediction["K_image"])), fitted.records[2].mask)
    assert on_mask >= ON_PERSON and on_mask > prediction["fit"]["on_mask_before"]


def test_photo_from_scikit_image(cli_run):
    _, _, prediction = _check_outputs(cli_run.out / "astronaut")
    assert prediction["image_size"] == [512, 512] and prediction["crop_source"] == "whole image"
    expected_focal = 256 / np.tan(np.radians(55) / 2)
    np.testing.assert_allclose(np.array(prediction["K_image"])[0, 0], expected_focal, rtol=1e-5)


def test_broken_file_is_reported_and_the_batch_goes_on(fitted, cli_run):
    result = cli_run.result
    assert result.returncode == 1, result.stderr
    good = NUM_RENDERS + len(cli_run.inputs) - 1
    assert f"predicted {good} of {good + 1} images" in result.stdout
    assert "fitted 2 image(s) to their person masks: body on the mask" in result.stdout  # cut-out, mask file
    assert f"{good - 2} image(s) had no person mask" in result.stdout
    failures = [line for line in result.stderr.splitlines() if line.startswith("FAILED")]
    assert failures == [
        f"FAILED {cli_run.inputs['broken']}: not an image file (or a corrupt one): use JPEG, PNG, BMP, TIFF or WebP"
    ]
    assert not (cli_run.out / "broken").exists()
    assert sorted(p.name for p in cli_run.out.iterdir()) == sorted(
        [f"render_{i}" for i in range(NUM_RENDERS)] + [n.stem for k, n in cli_run.inputs.items() if k != "broken"]
    )


def test_grey_cutout_16_bit_and_huge_images(fitted, cli_run):
    for name in ("grey", "cutout", "deep", "huge"):
        _check_outputs(cli_run.out / cli_run.inputs[name].stem)
    # 16 bits holding the same 8-bit values: the same prediction as the 8-bit render.
    deep, plain = _prediction(cli_run.out / "deep"), _prediction(cli_run.out / "render_0")
    np.testing.assert_allclose(deep["joints_3d"], plain["joints_3d"], atol=1e-4)
    # RGBA: the alpha channel is the mask; the crop frames it like the training crops.
    cutout = _prediction(cli_run.out / "cutout")
    rows, cols = np.nonzero(fitted.records[1].mask)
    centre = np.array([cols.min() + cols.max() + 1, rows.min() + rows.max() + 1]) / 2
    side = max(cols.max() + 1 - cols.min(), rows.max() + 1 - rows.min()) / PERSON_FILL
    left, top, right, bottom = cutout["crop_box"]
    assert cutout["crop_source"] == "alpha channel"
    np.testing.assert_allclose([(left + right) / 2, (top + bottom) / 2, right - left], [*centre, side], atol=1.0)
    # Above 4096 px the image is downscaled, but geometry stays in the file's pixels.
    huge = _prediction(cli_run.out / "huge")
    assert huge["image_size"] == [4200, 3000]
    np.testing.assert_allclose(huge["crop_box"], [0, -600, 4200, 3600], atol=2.0)
    np.testing.assert_allclose(np.array(huge["K_image"])[:2, 2], [4199 / 2, 2999 / 2], atol=1e-6)


def test_empty_folder_is_a_clear_error(tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    code = cli.main([str(empty), "--checkpoint", str(tmp_path / "none"), "--out", str(tmp_path / "out")])
    assert code == 2
    lines = capsys.readouterr().err.splitlines()
    assert lines[0].startswith(f"FAILED {empty}: the folder holds no images (looked for .jpg")
    assert lines[-1] == "error: no images to predict"


def test_unusable_checkpoints_are_clear_errors(fitted, tmp_path, capsys):
    image = str(fitted.renders / "render_0.png")
    model, config, _ = load_trained_model(fitted.checkpoint)
    other = dataclasses.replace(config, model=dataclasses.replace(config.model, body_channels=16))
    save_checkpoint(tmp_path / "mismatch", step=1, model=model, config=other)
    for checkpoint, expected in (
        (tmp_path / "mismatch", "does not fit the model its configuration describes"),
        (tmp_path / "missing", "No checkpoint at"),
    ):
        assert cli.main([image, "--checkpoint", str(checkpoint), "--out", str(tmp_path / "out")]) == 2
        errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error")]
        assert len(errors) == 1 and expected in errors[0]
    assert not (tmp_path / "out").exists()


def test_a_checkpoint_that_predicts_nan_fails_each_image_clearly(fitted, tmp_path, capsys):
    model, config, _ = load_trained_model(fitted.checkpoint)
    with torch.no_grad():
        model.body_gcn.global_head.bias.fill_(float("nan"))
    save_checkpoint(tmp_path / "nan", step=1, model=model, config=config)
    cutout = tmp_path / "cutout.png"  # with a mask, so that the fit meets the NaN too
    bgra = cv2.cvtColor(fitted.records[1].image, cv2.COLOR_RGB2BGRA)
    bgra[..., 3] = np.where(fitted.records[1].mask, 255, 0)
    cv2.imwrite(str(cutout), bgra)
    inputs = [str(fitted.renders / "render_0.png"), str(cutout)]
    code = cli.main([*inputs, "--checkpoint", str(tmp_path / "nan"), "--out", str(tmp_path / "out"), "--no-progress"])
    assert code == 1
    failures = [line for line in capsys.readouterr().err.splitlines() if line.startswith("FAILED")]
    assert len(failures) == 2 and all("NaN or infinite values" in line for line in failures)
    assert not (tmp_path / "out" / "render_0").exists() and not (tmp_path / "out" / "cutout").exists()


def test_read_image_formats(tmp_path):
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (20, 30, 3), dtype=np.uint8)
    _write_rgb(tmp_path / "rgb.png", rgb)
    cv2.imwrite(str(tmp_path / "grey.png"), rgb[..., 0])
    loaded = read_image(tmp_path / "grey.png")
    assert loaded.rgb.shape == (20, 30, 3) and (loaded.rgb == rgb[..., :1]).all() and loaded.mask is None
    wide = rng.integers(0, 65536, (20, 30, 3), dtype=np.uint16)
    cv2.imwrite(str(tmp_path / "wide.png"), wide)
    expected = np.round(wide[..., ::-1] / 257.0)
    np.testing.assert_array_equal(read_image(tmp_path / "wide.png").rgb, expected)
    alpha = np.zeros((20, 30), np.uint8)
    alpha[5:15, 10:20] = 255
    alpha[5, 10] = 100
    cv2.imwrite(str(tmp_path / "rgba.png"), np.dstack([rgb[..., ::-1], alpha]))
    loaded = read_image(tmp_path / "rgba.png")
    assert loaded.mask_source == "alpha channel" and (loaded.mask == (alpha >= 128)).all()
    weight = alpha[..., None] / 255.0
    np.testing.assert_allclose(loaded.rgb, rgb * weight + 128 * (1 - weight), atol=0.51)
    big = read_image(tmp_path / "rgb.png", max_side=15)
    assert big.rgb.shape == (10, 15, 3) and big.original_size == (30, 20) and big.scale == 0.5


def test_exif_orientation_matches_pillow(tmp_path):
    from PIL import Image, ImageOps

    rgb = np.random.default_rng(1).integers(0, 256, (6, 9, 3), dtype=np.uint8)
    for orientation in range(1, 9):
        path = tmp_path / f"o{orientation}.png"
        exif = Image.Exif()
        exif[0x0112] = orientation
        Image.fromarray(rgb).save(path, exif=exif)
        with Image.open(path) as image:
            expected = np.asarray(ImageOps.exif_transpose(image).convert("RGB"))
        np.testing.assert_array_equal(read_image(path).rgb, expected, err_msg=f"orientation {orientation}")


@pytest.mark.parametrize("max_side", [4096, 150])
def test_crop_intrinsics_follow_the_pixels(tmp_path, max_side):
    """A 3D point drawn as a dot in a photo lands in the crop where the crop's ``K`` projects it."""
    width, height = 300, 200
    K_image = image_intrinsics(width, height)
    dot = (240, 30)  # pixel (column, row) of the dot's centre
    point = 2.0 * np.linalg.solve(K_image, [*dot, 1.0])  # the 3D point 2 m away that projects there
    image = np.zeros((height, width, 3), np.uint8)
    image[dot[1] - 2 : dot[1] + 3, dot[0] - 2 : dot[0] + 3] = 255
    path = _write_rgb(tmp_path / "dot.png", image)
    crop = person_crop(path, 64, 128, box=(150.0, -20.0, 290.0, 110.0), max_side=max_side)  # partly outside
    assert crop.source == "box" and crop.original_size == (width, height)
    weights = crop.image[..., 0].astype(np.float64)
    rows, cols = np.mgrid[: weights.shape[0], : weights.shape[1]]
    centroid = np.array([(cols * weights).sum(), (rows * weights).sum()]) / weights.sum()
    np.testing.assert_allclose(centroid, project(point[None], crop.K)[0], atol=0.3)
    left, top, right, bottom = crop.box
    pixel = max(1.0, width / max_side)  # the crop is cut on whole pixels of the (downscaled) image
    np.testing.assert_allclose(
        [(left + right) / 2, (top + bottom) / 2, right - left], [220, 45, 140 / PERSON_FILL], atol=pixel
    )


def test_mask_file_beside_the_image(tmp_path):
    image = _write_rgb(tmp_path / "person.jpg", np.full((100, 80, 3), 200, np.uint8))
    mask = np.zeros((100, 80), np.uint8)
    mask[20:60, 30:50] = 255
    cv2.imwrite(str(tmp_path / "person_mask.png"), mask)
    crop = person_crop(image, 32, 64)
    assert crop.source == "person_mask.png"
    left, top, right, bottom = crop.box
    np.testing.assert_allclose(
        [(left + right) / 2, (top + bottom) / 2, right - left], [40, 40, 40 / PERSON_FILL], atol=1.0
    )
    files, problems = cli.collect_inputs([str(tmp_path)])
    assert files == [image] and problems == []


def test_munet_command_dispatches_subcommands(capsys):
    assert munet_main([]) == 2
    assert "predict" in capsys.readouterr().err
    assert munet_main(["--help"]) == 0
    assert "predict" in capsys.readouterr().out
    assert munet_main(["nonsense"]) == 2
    with pytest.raises(SystemExit) as exit_info:
        munet_main(["predict", "--help"])
    assert exit_info.value.code == 0 and "--checkpoint" in capsys.readouterr().out


# --- Untrusted inputs (issue #15): checkpoints that name files, odd names, huge images, bad --out ---


@dataclass
class Untrained:
    checkpoint: Path
    hostile: Path
    marker: Path


def _marker_pickle(path: Path, marker: Path) -> None:
    """A pickle whose unpickling creates ``marker`` (what a hostile file would do instead)."""
    import pickle

    class Plant:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    path.write_bytes(pickle.dumps({"v_template": Plant()}, protocol=2))


@pytest.fixture(scope="module")
def untrained(anny_body, tmp_path_factory) -> Untrained:
    """An untrained tiny MuNet's checkpoint, and a copy whose stored config names files beside it
    (an SMPL body model folder and encoder weights) that would create a marker file when unpickled."""
    root = tmp_path_factory.mktemp("untrained")
    config = load_config("cpu", [*TINY_MODEL, "model.encoder_norm=frozen_batch"])
    torch.manual_seed(0)
    model = MuNet(config, anny_body)
    save_checkpoint(root / "checkpoint", step=0, model=model, config=config)
    hostile, marker = root / "hostile", root / "MARKER"
    hostile.mkdir()
    _marker_pickle(hostile / "SMPL_NEUTRAL.pkl", marker)
    _marker_pickle(hostile / "encoder.pt", marker)
    named = dataclasses.replace(
        config,
        body=dataclasses.replace(config.body, backend="smplx", model_type="smpl", model_dir=str(hostile)),
        model=dataclasses.replace(config.model, encoder_norm="auto", encoder_weights=str(hostile / "encoder.pt")),
    )
    save_checkpoint(hostile, step=0, model=model, config=named)
    return Untrained(root / "checkpoint", hostile, marker)


def _small_image(path: Path, seed: int = 0) -> Path:
    return _write_rgb(path, np.random.default_rng(seed).integers(0, 256, (72, 56, 3), dtype=np.uint8))


def _tree(folder: Path) -> dict[str, int]:
    """Every file under ``folder`` (relative path → size)."""
    return {str(p.relative_to(folder)): p.stat().st_size for p in sorted(folder.rglob("*")) if p.is_file()}


def test_a_checkpoint_config_never_chooses_files_to_load(untrained, tmp_path, capsys):
    """A checkpoint whose config names a body model folder holding a .pkl, and encoder weights,
    both of which would plant a marker when unpickled: predict reads neither and works."""
    image = _small_image(tmp_path / "person.png")
    out = tmp_path / "out"
    code = cli.main(
        [str(image), "--checkpoint", str(untrained.hostile), "--out", str(out), "--no-fit", "--no-progress"]
    )
    assert code == 0, capsys.readouterr().err
    assert not untrained.marker.exists()
    assert (out / "person" / "prediction.json").is_file()
    _, config, _ = load_trained_model(untrained.hostile)
    assert config.body.model_dir is None and config.model.encoder_weights is None
    assert config.model.encoder_norm == "frozen_batch"  # what `auto` meant with the stored weights file


def test_output_folders_are_safe_and_distinct(untrained, tmp_path, capsys):
    """``...jpg`` and ``..png`` write neither beside ``--out`` nor into it; ``a-2.jpg a.jpg a.png``
    get three folders; every image's outputs are kept."""
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    names = ["...jpg", "..png", "a-2.jpg", "a.jpg", "a.png"]
    for seed, name in enumerate(names):
        _small_image(inputs / name, seed)
    before = _tree(inputs)
    out = tmp_path / "out"
    code = cli.main(
        [str(inputs), "--checkpoint", str(untrained.checkpoint), "--out", str(out), "--no-fit", "--no-progress"]
    )
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert f"predicted {len(names)} of {len(names)} images" in captured.out
    assert f"{inputs / '...jpg'} -> image, {inputs / '..png'} -> image-2, {inputs / 'a.png'} -> a-3" in captured.out
    assert sorted(p.name for p in tmp_path.iterdir()) == ["inputs", "out"] and _tree(inputs) == before
    assert all(p.is_dir() for p in out.iterdir())  # nothing written into --out itself
    folders = {p.name: json.loads((p / "prediction.json").read_text())["input"] for p in out.iterdir()}
    expected = dict(zip(["image", "image-2", "a-2", "a", "a-3"], names, strict=True))
    assert folders == {folder: str(inputs / name) for folder, name in expected.items()}
    for folder in expected:
        assert {p.name for p in (out / folder).iterdir()} == {
            "body.obj",
            "clothed.obj",
            "scene.glb",
            "overlay.png",
            "prediction.json",
        }


def test_output_folder_names(tmp_path):
    from munet.predict.run import folder_name, output_folders

    assert folder_name(Path(".hidden.png")) == "hidden"
    assert folder_name(Path(" . .jpg")) == "image"
    assert folder_name(Path("tab\there\n.png")) == "tab_here_"
    assert len(folder_name(Path("é" * 300 + ".png")).encode()) <= 200
    paths = [Path(n) for n in ("x/A.jpg", "y/a.png", "a-2.jpg", "z/a.jpg", "A-3.bmp")]
    assert [f.name for f in output_folders(paths, tmp_path)] == ["A", "a-2", "a-2-2", "a-3", "A-3-2"]


def _png_header_only(path: Path, width: int, height: int) -> Path:
    """A valid grey 8-bit PNG of ``width × height`` black pixels, written a few rows at a time (the
    file is small; decoding it would take ``width × height`` bytes)."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    compressor = zlib.compressobj(1)
    rows = bytes(width + 1) * 500
    body = b"".join(compressor.compress(rows) for _ in range(height // 500))
    body += compressor.compress(bytes(width + 1) * (height % 500)) + compressor.flush()
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", body) + chunk(b"IEND", b""))
    return path


def test_a_huge_image_fails_alone_before_decoding(untrained, tmp_path, capsys):
    """A 14000² PNG among good images: a clear error naming it, its size and the limit; the good
    images are written; the exit code says something failed."""
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    good = [_small_image(inputs / "good_1.png", 1), _small_image(inputs / "good_2.jpg", 2)]
    huge = _png_header_only(inputs / "huge.png", 14_000, 14_000)
    assert huge.stat().st_size < 2_000_000
    out = tmp_path / "out"
    code = cli.main(
        [
            str(good[0]),
            str(huge),
            str(good[1]),
            "--checkpoint",
            str(untrained.checkpoint),
            "--out",
            str(out),
            "--no-fit",
            "--no-progress",
        ]
    )
    captured = capsys.readouterr()
    assert code == 1
    assert "predicted 2 of 3 images" in captured.out
    failures = [line for line in captured.err.splitlines() if line.startswith("FAILED")]
    assert failures == [
        f"FAILED {huge}: the image is 14000×14000 px (196.0 megapixels), more than the limit of "
        "120 megapixels (max_pixels=120000000); downscale the file first, or raise the limit "
        "(munet predict --max-pixels, at most 1073741824)"
    ]
    assert f"1 input(s) failed:\n  {huge}: the image is 14000×14000 px" in captured.err
    assert sorted(p.name for p in out.iterdir()) == ["good_1", "good_2"]
    assert all((out / name / "prediction.json").is_file() for name in ("good_1", "good_2"))


def test_max_pixels_is_configurable_and_checks_mask_files(tmp_path):
    image = _small_image(tmp_path / "person.png")  # 56 × 72 = 4032 pixels
    assert read_image(image, max_pixels=4032).rgb.shape == (72, 56, 3)
    with pytest.raises(ImageError, match=r"person.png: the image is 56×72 px \(0.0 megapixels\), more than the limit"):
        read_image(image, max_pixels=4031)
    mask = np.zeros((72, 56), np.uint8)
    mask[10:60, 10:40] = 255
    cv2.imwrite(str(tmp_path / "person_mask.png"), mask)
    assert read_image(image, max_pixels=4032).mask_source == "person_mask.png"
    big_mask = _png_header_only(tmp_path / "other_mask.png", 100, 50)
    _small_image(tmp_path / "other.png")
    with pytest.raises(ImageError, match=r"other_mask.png: the image is 100×50 px") as error:
        read_image(tmp_path / "other.png", max_pixels=4032)
    assert error.value.path == big_mask
    with pytest.raises(SystemExit) as exit_info:
        cli.main([str(image), "--checkpoint", "x", "--out", str(tmp_path / "out"), "--max-pixels", "0"])
    assert exit_info.value.code == 2 and not (tmp_path / "out").exists()


def _unwritable_folder(tmp_path: Path) -> Path:
    """A folder this process cannot create files in: a read-only folder, or (root ignores
    permission bits) ``/proc``, where no process may create files."""
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    if not os.access(locked, os.W_OK):
        return locked
    locked.chmod(0o700)
    return Path("/proc")


def test_unusable_out_is_a_usage_error_before_any_work(tmp_path, capsys):
    """``--out`` a file, under a file, or not writable: exit 2 with a clear message, before the
    checkpoint is even looked at (it does not exist here), and nothing is written."""
    image = _small_image(tmp_path / "person.png")
    a_file = tmp_path / "a_file"
    a_file.write_text("keep me\n")
    unwritable = _unwritable_folder(tmp_path)
    cases = [
        (a_file, f"--out {a_file} is a file, not a folder"),
        (a_file / "sub", f"--out {a_file / 'sub'} cannot be created: {a_file} is a file, not a folder"),
        (unwritable / "out", f"--out {unwritable / 'out'} is not writable: creating a file in {unwritable} failed"),
    ]
    before = _tree(tmp_path)
    for out, message in cases:
        with pytest.raises(SystemExit) as exit_info:
            cli.main([str(image), "--checkpoint", str(tmp_path / "missing"), "--out", str(out), "--no-progress"])
        err = capsys.readouterr().err
        assert exit_info.value.code == 2
        assert message in err and "checkpoint" not in err.split("error:")[-1]
    assert _tree(tmp_path) == before and a_file.read_text() == "keep me\n"
    assert not (unwritable / "out").exists()
    (tmp_path / "locked").chmod(0o700)
