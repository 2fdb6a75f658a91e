"""The package's layers import only downwards (docs/architecture.md):

    kernel/ -> engine/ -> service/ ;  kernel/, engine/ -> history/ ;  all of them -> api/

and only the top-level modules (the composition root ``app``, the build's ``manpages`` and
``completion``) see both the command line and the API. Every import counts: at module
level, deferred inside a function, or for type checking only.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "pyirqbalance"

#: What each layer must never import (the top-level modules are "app" and friends).
FORBIDDEN = {
    "kernel": {"engine", "service", "history", "api", "top"},
    "engine": {"service", "history", "api", "top"},
    "history": {"service", "api", "top"},
    "service": {"history", "api", "top"},
    "api": {"top"},
}
#: Top-level modules that only sit below everything (errors, the thread supervisor).
SHARED = {"errors", "supervise", "__init__"}


LAYERS = {"kernel", "engine", "service", "history", "api"}


def _layer(parts: list[str]) -> str:
    """The layer of a module given as parts inside the package (``["api", "ctl"]``)."""
    if parts[0] in LAYERS:
        return parts[0]
    if parts[0] in SHARED or not (PACKAGE / f"{parts[0]}.py").is_file():
        return "shared"  # errors, supervise, or a name of the package's __init__ (__version__)
    return "top"


def _imports(path: Path) -> list[tuple[int, list[str]]]:
    """(line, target module as parts inside the package) of every import of the package."""
    here = list(path.relative_to(PACKAGE).with_suffix("").parts)
    out = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = here[:-node.level] if node.level <= len(here) else []
                target = base + (node.module.split(".") if node.module else [])
                names = [] if node.module else [a.name for a in node.names]
            elif node.module and node.module.split(".")[0] == "pyirqbalance":
                target, names = node.module.split(".")[1:], []
            else:
                continue
            if names:  # "from . import cli": each name is a module of that package
                out += [(node.lineno, target + [n]) for n in names]
            elif target:
                out.append((node.lineno, target))
        elif isinstance(node, ast.Import):
            out += [(node.lineno, a.name.split(".")[1:]) for a in node.names
                    if a.name.split(".")[0] == "pyirqbalance" and "." in a.name]
    return out


def _violations() -> list[str]:
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        layer = _layer(list(path.relative_to(PACKAGE).parts))
        for line, target in _imports(path):
            if _layer(target) in FORBIDDEN.get(layer, set()):
                found.append(f"{path.relative_to(PACKAGE.parent)}:{line} imports "
                             f"pyirqbalance.{'.'.join(target)}")
    return found


def test_every_layer_imports_only_downwards():
    assert _violations() == []


def test_the_check_sees_relative_deferred_and_type_only_imports(tmp_path, monkeypatch):
    """The checker itself, on a planted package: each kind of upward import is found."""
    pkg = tmp_path / "pyirqbalance"
    for d in ("kernel", "engine", "service", "api"):
        (pkg / d).mkdir(parents=True)
    (pkg / "__init__.py").write_text("__version__ = '0'\n")
    (pkg / "app.py").write_text("from .service import cli\nfrom .api import ctl\n")
    (pkg / "kernel" / "a.py").write_text("from ..engine import model\n")
    (pkg / "engine" / "b.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from ..service.cli import X\n")
    (pkg / "service" / "c.py").write_text("def f():\n    from ..api.server import S\n")
    (pkg / "service" / "d.py").write_text("import pyirqbalance.api.ctl\n")
    (pkg / "api" / "e.py").write_text("from .. import app\n")
    (pkg / "api" / "ok.py").write_text(
        "from ..service import cli\nfrom ..errors import E\nfrom .. import __version__\n")
    (pkg / "engine" / "ok.py").write_text("from .. import kernel\nfrom ..kernel import sysfs\n")
    monkeypatch.setattr(__import__(__name__, fromlist=["PACKAGE"]), "PACKAGE", pkg)
    assert _violations() == [
        "pyirqbalance/api/e.py:1 imports pyirqbalance.app",
        "pyirqbalance/engine/b.py:3 imports pyirqbalance.service.cli",
        "pyirqbalance/kernel/a.py:1 imports pyirqbalance.engine",
        "pyirqbalance/service/c.py:2 imports pyirqbalance.api.server",
        "pyirqbalance/service/d.py:1 imports pyirqbalance.api.ctl",
    ]
