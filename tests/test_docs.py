"""The documentation site: every public name has an API entry, and the site builds.

The public names are read from the source with `ast` (each module's `__all__`,
or, for a module without one, the names it defines at top level that do not
start with `_`), so this test imports neither keras_fried nor mkdocs and needs
no network. The API pages are `docs/api/*.md`; an entry is a mkdocstrings line
`::: identifier`.
"""

import ast
import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
API_PAGES = ROOT / "docs" / "api"

# The modules whose public names must each have an entry: the package, the
# modules the issue names, and the other public submodules in its `__all__`.
MODULES = (
    "keras_fried",
    "keras_fried.layers",
    "keras_fried.ops",
    "keras_fried.tflite",
    "keras_fried.tuning",
    "keras_fried.datasets",
    "keras_fried.surgery",
    "keras_fried.pruning",
)

_ENTRY = re.compile(r"^:::\s+([\w.]+)\s*$")


def _source(module):
    path = ROOT.joinpath(*module.split("."))
    return path / "__init__.py" if path.is_dir() else path.with_suffix(".py")


def _tree(module):
    return ast.parse(_source(module).read_text(encoding="utf-8"))


def _all(tree):
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
            isinstance(target, ast.Name) and target.id == "__all__" for target in node.targets
        ):
            return list(ast.literal_eval(node.value))
    return None


def public_names(module):
    """`module.__all__`, or the top-level names it defines that do not start with `_`."""
    tree = _tree(module)
    names = _all(tree)
    if names is not None:
        return names
    names = []
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.append(node.name)
        elif isinstance(node, ast.Assign):
            names += [t.id for t in node.targets if isinstance(t, ast.Name)]
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.append(node.target.id)
    return [name for name in names if not name.startswith("_")]


def shadowed_submodules(module):
    """Names `n` bound by `from module.n import n`: at run time `module.n` is that
    object, while static readers (mkdocstrings' griffe) see the submodule, so
    the entry must name the object in its submodule: `::: module.n.n`."""
    return {
        alias.asname or alias.name
        for node in ast.walk(_tree(module))  # imports under `if` too (keras_fried.ops picks a backend)
        if isinstance(node, ast.ImportFrom)
        for alias in node.names
        if node.module == f"{module}.{alias.asname or alias.name}"
    }


def api_entries():
    entries = set()
    for page in sorted(API_PAGES.glob("*.md")):
        for line in page.read_text(encoding="utf-8").splitlines():
            match = _ENTRY.match(line)
            if match:
                entries.add(match.group(1))
    return entries


def expected_entries(module):
    shadowed = shadowed_submodules(module)
    return [
        f"{module}.{name}.{name}" if name in shadowed else f"{module}.{name}"
        for name in public_names(module)
    ]


def test_public_names_are_read_from_the_source():
    assert "AdaptiveFastfood" in public_names("keras_fried.layers")
    assert "fwht" in public_names("keras_fried.ops")
    assert "convert" in public_names("keras_fried.tflite")  # no __all__: its definitions
    assert "_layer_of" not in public_names("keras_fried.tflite")
    assert "FriedHyperModel" in public_names("keras_fried.tuning")
    assert "prune" not in shadowed_submodules("keras_fried")  # the module is `pruning`
    assert "summary" not in shadowed_submodules("keras_fried")  # the module is `model_summary`
    assert "keras_fried.summary" in expected_entries("keras_fried")


def test_every_public_name_has_an_api_entry():
    entries = api_entries()
    missing = []
    for module in MODULES:
        if module != "keras_fried" and module not in entries:
            missing.append(module)  # the module itself: its docstring heads its page
        missing += [entry for entry in expected_entries(module) if entry not in entries]
    assert not missing, (
        "Public names without an API entry (add a line '::: <name>' to a page in "
        f"{API_PAGES.relative_to(ROOT)}/):\n  " + "\n  ".join(missing)
    )


@pytest.mark.skipif(importlib.util.find_spec("mkdocs") is None,
                    reason="mkdocs is not installed (pip install -e '.[docs]')")
def test_site_builds_strict(tmp_path):
    # --strict: a docstring griffe cannot parse, an unknown argument name in
    # one, or a link to a missing page or heading fails the build.
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},  # no end-of-life banner
    )
    assert result.returncode == 0, result.stdout + result.stderr
