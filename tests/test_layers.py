"""The layers' arrows point down only: storage knows nothing of SQL, SQL nothing of HTTP."""
from __future__ import annotations

import ast
from pathlib import Path

import helios

ROOT = Path(helios.__file__).parent

# layer -> import prefixes it must never use
FORBIDDEN = {
    "storage": ("helios.sql", "helios.api", "helios.embedded", "helios.tap", "helios.service", "lark",
                "twisted", "klein"),
    "sql": ("helios.api", "helios.embedded", "helios.tap", "helios.service", "twisted", "klein"),
    "sync": ("helios.api", "helios.sql", "helios.storage", "twisted", "klein"),
}
ONLY_API_USES = ("klein", "twisted.web")


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    package = ".".join(path.relative_to(ROOT.parent).with_suffix("").parts[:-1])
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                names.add(".".join(base + ([node.module] if node.module else [])))
            else:
                names.add(node.module or "")
    return names


def _modules(layer: str | None = None):
    base = ROOT / layer if layer else ROOT
    return sorted(p for p in base.rglob("*.py"))


def test_lower_layers_never_import_upwards():
    bad = []
    for layer, forbidden in FORBIDDEN.items():
        for path in _modules(layer):
            for name in _imports(path):
                if any(name == f or name.startswith(f + ".") for f in forbidden):
                    bad.append(f"{path.relative_to(ROOT)} imports {name}")
    assert not bad, "\n".join(bad)


def test_only_the_api_layer_speaks_http():
    bad = []
    for path in _modules():
        rel = path.relative_to(ROOT)
        if rel.parts[0] == "api":
            continue
        for name in _imports(path):
            if any(name == f or name.startswith(f + ".") for f in ONLY_API_USES):
                bad.append(f"{rel} imports {name}")
    assert not bad, "\n".join(bad)


def test_the_checker_sees_imports():
    assert "helios.errors" in _imports(ROOT / "storage" / "store.py")
    assert "klein" in _imports(ROOT / "api" / "app.py")
