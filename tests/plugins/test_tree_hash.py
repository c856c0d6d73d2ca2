from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

from tests.conftest import REPO_ROOT


def load_lookup() -> ModuleType:
    path = REPO_ROOT / "plugins" / "lookup" / "tree_hash.py"
    spec = importlib.util.spec_from_file_location("tree_hash", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["tree_hash"] = module
    spec.loader.exec_module(module)
    return module


def test_digest_follows_content_and_names_but_not_build_artifacts(tmp_path: Path) -> None:
    tree_digest = load_lookup().tree_digest
    source = tmp_path / "pkg"
    (source / "src").mkdir(parents=True)
    (source / "src" / "mod.py").write_text("x = 1\n")
    first = tree_digest([source], [])
    for artifact in ("src/pkg.egg-info/PKG-INFO", "build/lib/mod.py", "src/__pycache__/m.pyc"):
        (source / artifact).parent.mkdir(parents=True, exist_ok=True)
        (source / artifact).write_text("generated")
    assert tree_digest([source], []) == first
    (source / "src" / "mod.py").write_text("x = 2\n")
    assert tree_digest([source], []) != first
    assert tree_digest([source], ["arg"]) != tree_digest([source], [])
