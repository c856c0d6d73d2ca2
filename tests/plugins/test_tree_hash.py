from __future__ import annotations

from pathlib import Path

from tests.conftest import load_source

tree_hash = load_source("plugins/lookup/tree_hash.py")


def test_digest_follows_content_and_names_but_not_build_artifacts(tmp_path: Path) -> None:
    tree_digest = tree_hash.tree_digest
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
