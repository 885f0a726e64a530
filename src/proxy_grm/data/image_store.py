"""Images of the prepared pairs, written once under ``OUT/images/`` named by content hash.

Rows sharing an image share one file, and a rerun rewrites nothing.
"""

from __future__ import annotations

import hashlib
import io
import os
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from proxy_grm.data.records import SkipRow


@dataclass(frozen=True)
class StoredImage:
    path: Path
    digest: str
    width: int
    height: int


class ImageStore:
    """Writes each distinct image once, as ``root/<2 hex>/<digest>.<ext>`` (atomic rename)."""

    def __init__(self, root: Path):
        self.root = root

    @staticmethod
    def read(image: bytes | str, bases: tuple[Path, ...]) -> bytes:
        """The image's bytes; ``SkipRow("missing_image")`` when a path resolves to no file."""
        if isinstance(image, bytes):
            return image
        ref = image[len("file://"):] if image.startswith("file://") else image
        candidates = [Path(ref)] if os.path.isabs(ref) else [base / ref for base in bases]
        for candidate in candidates:
            if candidate.is_file():
                return candidate.read_bytes()
        raise SkipRow("missing_image")

    def put(self, data: bytes) -> StoredImage:
        """Store the bytes (unless already stored); ``SkipRow("quality:unreadable_image")`` if not an image."""
        try:
            with Image.open(io.BytesIO(data)) as image:
                fmt, (width, height) = (image.format or "png").lower(), image.size
        except (UnidentifiedImageError, OSError, Image.DecompressionBombError):
            raise SkipRow("quality:unreadable_image") from None
        digest = hashlib.sha1(data).hexdigest()[:20]
        path = self.root / digest[:2] / f"{digest}.{'jpg' if fmt == 'jpeg' else fmt}"
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            partial = path.with_name(f".{path.name}.{os.getpid()}.part")
            partial.write_bytes(data)
            partial.replace(path)
        return StoredImage(path, digest, width, height)
