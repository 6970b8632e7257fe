"""``--masks DIR``: one mask PNG per image of ``--data DIR``, brought to the input's pixels by the image's own resize
and crop; a missing, mis-sized or empty mask stops the run in one line before any study exists."""

import numpy as np
import pytest
import torch
from PIL import Image

from studies.loading._preprocessing import Preprocessing, load_images
from tuner import cli
from tuner.cli import command_line


def _folder(tmp_path, size=(200, 100), n=8, mode="RGB"):
    """An image folder of two classes and its masks: each mask marks the left half of its image."""
    rng = np.random.default_rng(0)
    images, masks = tmp_path / "images", tmp_path / "masks"
    for index in range(n):
        name = f"class{index % 2}/{index}"
        shape = (size[1], size[0], 3) if mode == "RGB" else (size[1], size[0])
        (images / name).parent.mkdir(parents=True, exist_ok=True)
        (masks / name).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 255, shape, dtype=np.uint8), mode=mode).save(images / f"{name}.jpg")
        mask = np.zeros((size[1], size[0]), dtype=np.uint8)
        mask[:, : size[0] // 2] = 255
        Image.fromarray(mask, mode="L").save(masks / f"{name}.png")
    return images, masks


def test_masks_are_resized_and_cropped_as_their_images(tmp_path):
    images, masks = _folder(tmp_path)
    # 200x100 -> shorter side 64: 128x64; centre crop 56 keeps columns 36..91 of 128: the left half (< 64) is 28
    preprocessing = Preprocessing(resize=64, crop=56)
    inputs, labels, loaded = load_images(preprocessing, images, None, masks)
    assert inputs.shape == (8, 3, 56, 56) and loaded.shape == (8, 56, 56) and loaded.dtype == torch.bool
    assert loaded[:, :, :28].all() and not loaded[:, :, 28:].any()
    assert labels.tolist() == [0, 0, 0, 0, 1, 1, 1, 1]


def _run(tmp_path, images, masks, capsys, **options):
    argv = command_line(
        "run",
        model="digits",
        weights="none",
        data=images,
        masks=masks,
        n_trials=2,
        n_samples=4,
        explainers="epsilon_plus",
        storage=f"sqlite:///{tmp_path / 's.db'}",
        out=tmp_path / "out",
        no_progress=True,
        **options,
    )[3:]
    code = cli.main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def test_a_run_with_masks_ends_with_the_known_evidence_line(tmp_path, capsys):
    images, masks = _folder(tmp_path, size=(16, 16), mode="L")
    code, out, err = _run(tmp_path, images, masks, capsys, no_panel=True, no_baselines=True)
    assert code == 0, err
    assert "known evidence (relevance mass" in out and "4 held-out samples" in out
    assert (tmp_path / "out" / "known_evidence.csv").exists()


@pytest.mark.parametrize(
    "spoil, message",
    [
        (lambda masks: (masks / "class1" / "3.png").unlink(), "no mask for image"),
        (
            lambda masks: Image.new("L", (8, 8), 255).save(masks / "class0" / "2.png"),
            "a mask must have its image's size",
        ),
        (lambda masks: Image.new("L", (16, 16), 0).save(masks / "class0" / "0.png"), "has no true pixel"),
    ],
)
def test_a_bad_mask_is_one_line_before_any_study(spoil, message, tmp_path, capsys):
    images, masks = _folder(tmp_path, size=(16, 16), mode="L")
    spoil(masks)
    code, out, err = _run(tmp_path, images, masks, capsys)
    assert code == 2 and message in err and "Traceback" not in err
    assert len([line for line in err.splitlines() if line.startswith("error")]) == 1
    assert not (tmp_path / "s.db").exists()


def test_masks_need_a_data_folder(tmp_path, capsys):
    code = cli.main(["run", "--masks", str(tmp_path), "--storage", f"sqlite:///{tmp_path / 's.db'}"])
    assert code == 2 and "pass --data DIR with it" in capsys.readouterr().err
