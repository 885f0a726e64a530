"""The repo's verl/ recipe folder never shadows the installed verl package."""

from __future__ import annotations

import subprocess
import sys

from helpers import REPO_ROOT


def test_recipe_folder_is_not_a_package() -> None:
    assert not (REPO_ROOT / "verl" / "__init__.py").exists()


def test_import_verl_from_repo_root_is_the_installed_one() -> None:
    # `python -c` puts the current directory first on sys.path, the worst case.
    code = "import verl, sys; print(verl.__file__); print(verl.__version__)"
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, check=True
    ).stdout.splitlines()
    assert "site-packages" in out[0], out
    assert not out[0].startswith(str(REPO_ROOT / "verl")), out
    assert out[1].startswith("0.9."), out
