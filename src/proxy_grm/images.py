"""The one image loader: local paths and base64 data URIs, with an optional root jail.

Every consumer (proxy service, generation backends, eval) loads images here, so a
bad reference fails the same way everywhere: one ``ImageLoadError`` whose message
names the field and what is wrong.

http(s) URLs are refused on purpose: the proxy runs next to the trainer, often on
nodes without internet access, and fetching arbitrary URLs from a reward server
would let any client make it issue requests. Download images beforehand and pass
paths (or data URIs) instead.
"""

from __future__ import annotations

import base64
import binascii
import io
import mimetypes
from pathlib import Path

from PIL import Image, UnidentifiedImageError

DATA_URI_PREFIX = "data:image/"
_FRAME_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp"}


class ImageLoadError(ValueError):
    """An image reference that cannot be loaded; ``field`` names where it came from."""

    def __init__(self, field: str, reason: str):
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


def _decode_data_uri(ref: str, field: str) -> bytes:
    header, sep, payload = ref.partition(",")
    if not sep or not header.endswith(";base64"):
        raise ImageLoadError(field, "data URI must look like 'data:image/<type>;base64,<data>'")
    try:
        return base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError) as error:
        raise ImageLoadError(field, f"invalid base64 in data URI ({error})") from None


def resolve_image_path(ref: str, image_root: Path | None = None, field: str = "image") -> Path:
    """The absolute path of a local image reference, checked against ``image_root``.

    Symlinks and ``..`` are resolved before the check, so neither escapes the root.
    A relative path is taken relative to ``image_root`` when one is given.
    """
    path = Path(ref[len("file://"):] if ref.startswith("file://") else ref).expanduser()
    if image_root is not None:
        root = image_root.resolve()
        resolved = (root / path).resolve()
        if not resolved.is_relative_to(root):
            raise ImageLoadError(field, f"path {ref!r} is outside the image root {str(root)!r}")
    else:
        resolved = path.resolve()
    if not resolved.is_file():
        raise ImageLoadError(field, f"no such file: {ref!r}")
    return resolved


def load_image(ref: str, image_root: Path | None = None, field: str = "image") -> Image.Image:
    """Load an RGB image from a local path (optionally ``file://``) or a base64 data URI.

    With ``image_root``, local paths must resolve inside it. Raises ``ImageLoadError``
    for an empty reference, an http(s) URL, a missing file, bad base64, a path outside
    the root, or bytes that are not an image.

    >>> load_image("https://example.com/a.png")
    Traceback (most recent call last):
    ...
    proxy_grm.images.ImageLoadError: image: http(s) URLs are not supported; pass a local path or a data URI
    """
    if not isinstance(ref, str) or not ref.strip():
        raise ImageLoadError(field, "empty image reference")
    if ref.startswith(("http://", "https://")):
        raise ImageLoadError(field, "http(s) URLs are not supported; pass a local path or a data URI")
    if ref.startswith("data:"):
        if not ref.startswith(DATA_URI_PREFIX):
            raise ImageLoadError(field, "data URI must have an image/* media type")
        source: Path | io.BytesIO = io.BytesIO(_decode_data_uri(ref, field))
        what = "data URI"
    else:
        source = resolve_image_path(ref, image_root, field)
        what = repr(ref)
    try:
        with Image.open(source) as image:
            image.load()
            return image.convert("RGB")
    except (UnidentifiedImageError, OSError, Image.DecompressionBombError) as error:
        raise ImageLoadError(field, f"{what} is not a readable image ({type(error).__name__})") from None


def image_to_data_uri(image: Image.Image, fmt: str = "PNG") -> str:
    """Encode an image as a base64 data URI (the inverse of ``load_image`` for data URIs)."""
    buffer = io.BytesIO()
    image.save(buffer, format=fmt)
    return f"data:image/{fmt.lower()};base64,{base64.b64encode(buffer.getvalue()).decode()}"


def sample_video_frames(folder: Path, n: int = 32) -> list[str]:
    """``n`` frame files evenly spaced over a folder's sorted image files.

    As the release's MM-RLHF eval: frames sorted by name, indices
    ``numpy.linspace(0, count - 1, n, dtype=int)`` (so a folder with fewer than
    ``n`` frames repeats some).
    """
    import numpy as np

    if not folder.is_dir():
        raise ImageLoadError("video", f"no such frame folder: {str(folder)!r}")
    frames = sorted(str(p) for p in folder.iterdir() if p.suffix.lower() in _FRAME_SUFFIXES)
    if not frames:
        raise ImageLoadError("video", f"no image frames in {str(folder)!r}")
    return [frames[i] for i in np.linspace(0, len(frames) - 1, n, dtype=int)]


def file_to_data_uri(path: str | Path) -> str:
    """A local image file as ``data:image/<type>;base64,...`` (the bytes as stored, not re-encoded)."""
    path = Path(path)
    mime = mimetypes.guess_type(path.name)[0] or "image/png"
    if not mime.startswith("image/"):
        raise ValueError(f"{path}: not an image file name")
    return f"data:{mime};base64,{base64.b64encode(path.read_bytes()).decode()}"
