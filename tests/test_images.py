"""The image loader: accepted references, the root jail, and one error type naming the problem."""

from __future__ import annotations

import base64
import os
from pathlib import Path

import pytest
from PIL import Image

from proxy_grm.images import ImageLoadError, image_to_data_uri, load_image, resolve_image_path, sample_video_frames


@pytest.fixture
def image_dir(tmp_path: Path) -> Path:
    root = tmp_path / "root"
    root.mkdir()
    Image.new("RGB", (40, 30), (255, 0, 0)).save(root / "red.png")
    Image.new("L", (20, 10), 128).save(root / "gray.jpg")
    (root / "notes.txt").write_text("not an image")
    Image.new("RGB", (8, 8)).save(tmp_path / "outside.png")
    return root


def test_loads_local_paths_as_rgb(image_dir: Path) -> None:
    image = load_image(str(image_dir / "gray.jpg"))
    assert image.mode == "RGB" and image.size == (20, 10)
    assert load_image(f"file://{image_dir / 'red.png'}").getpixel((0, 0)) == (255, 0, 0)


def test_loads_base64_data_uri() -> None:
    uri = image_to_data_uri(Image.new("RGB", (12, 7), (0, 0, 255)))
    image = load_image(uri)
    assert image.size == (12, 7) and image.getpixel((3, 3)) == (0, 0, 255)


def test_relative_path_is_resolved_under_root(image_dir: Path) -> None:
    assert load_image("red.png", image_root=image_dir).size == (40, 30)


@pytest.mark.parametrize(
    ("ref", "reason"),
    [
        ("", "empty image reference"),
        ("https://example.com/cat.png", "http(s) URLs are not supported"),
        ("/no/such/file.png", "no such file"),
        ("data:image/png;base64,!!!notbase64!!!", "invalid base64"),
        ("data:image/png,rawbytes", "data URI must look like"),
        ("data:text/plain;base64,aGVsbG8=", "image/* media type"),
        ("data:image/png;base64," + base64.b64encode(b"hello").decode(), "data URI is not a readable image"),
    ],
)
def test_bad_references_raise_one_error_type(ref: str, reason: str) -> None:
    with pytest.raises(ImageLoadError, match="^image: .*") as error:
        load_image(ref)
    assert reason in str(error.value)
    assert error.value.field == "image"


def test_non_image_file_is_named(image_dir: Path) -> None:
    with pytest.raises(ImageLoadError, match="notes.txt.*is not a readable image"):
        load_image(str(image_dir / "notes.txt"), field="items[3].image")


@pytest.mark.parametrize("escape", ["../outside.png", "{outside}", "{link}"])
def test_paths_outside_the_root_are_refused(image_dir: Path, escape: str) -> None:
    outside = image_dir.parent / "outside.png"
    link = image_dir / "link.png"
    os.symlink(outside, link)
    ref = escape.format(outside=outside, link=link)
    assert load_image(str(link)).size == (8, 8)  # loadable without a root
    with pytest.raises(ImageLoadError, match="outside the image root"):
        load_image(ref, image_root=image_dir)


def test_resolve_image_path_keeps_inside_paths(image_dir: Path) -> None:
    assert resolve_image_path(str(image_dir / "sub" / ".." / "red.png"), image_dir) == (image_dir / "red.png").resolve()


def test_sample_video_frames_matches_linspace(tmp_path: Path) -> None:
    import numpy as np

    for i in range(100):
        (tmp_path / f"frame_{i:03d}.jpg").write_bytes(b"")
    (tmp_path / "meta.json").write_text("{}")
    frames = sample_video_frames(tmp_path, n=32)
    expected = [f"frame_{i:03d}.jpg" for i in np.linspace(0, 99, 32, dtype=int)]
    assert [Path(f).name for f in frames] == expected
    assert frames[0].endswith("frame_000.jpg") and frames[-1].endswith("frame_099.jpg")


def test_sample_video_frames_errors(tmp_path: Path) -> None:
    with pytest.raises(ImageLoadError, match="no such frame folder"):
        sample_video_frames(tmp_path / "missing")
    with pytest.raises(ImageLoadError, match="no image frames"):
        sample_video_frames(tmp_path)
