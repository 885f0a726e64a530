"""The package's layout: production never imports the toy stand-ins, and verl/ never shadows verl."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

from helpers import REPO_ROOT

PACKAGE = REPO_ROOT / "src" / "proxy_grm"
TOY_USERS = ("toy", "demo")  # proxy_grm.toy itself and the CPU demo, which runs on it


def imported_modules(source: str, path: Path) -> set[str]:
    """Every module the source of ``path`` (a file of the package) imports, relative imports resolved."""
    package = ["proxy_grm", *path.relative_to(PACKAGE).parent.parts]
    names = set()
    for node in ast.walk(ast.parse(source, str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package[:len(package) - node.level + 1] if node.level else []
            module = ".".join([*base, *([node.module] if node.module else [])])
            names.add(module)
            names.update(f"{module}.{alias.name}" for alias in node.names)
    return names


def is_toy(module: str) -> bool:
    return module == "proxy_grm.toy" or module.startswith("proxy_grm.toy.")


def test_production_never_imports_the_toy_package() -> None:
    production = [path for path in sorted(PACKAGE.rglob("*.py")) if path.relative_to(PACKAGE).parts[0] not in TOY_USERS]
    assert len(production) > 20, production  # the walk found the package
    offenders = {str(path.relative_to(REPO_ROOT)): sorted(filter(is_toy, imported_modules(path.read_text(), path)))
                 for path in production}
    assert not {path: names for path, names in offenders.items() if names}


def test_every_form_of_import_is_seen() -> None:
    # the check above is only as good as this reading of a file's imports
    source = "\n".join(["import proxy_grm.toy.servers", "from proxy_grm import toy", "from ..toy import colour_task",
                        "from . import modes"])
    names = imported_modules(source, PACKAGE / "reward" / "fake.py")
    assert set(filter(is_toy, names)) == {"proxy_grm.toy.servers", "proxy_grm.toy", "proxy_grm.toy.colour_task"}, names
    assert "proxy_grm.reward.modes" in names, names


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
