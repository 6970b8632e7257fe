"""docs/architecture.md names every module of the packages, and no module that does not exist; the tree keeps its
shape (at most 12 modules a folder, 400 lines a module)."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("explainers", "metrics", "tuner", "studies", "registry")


def _modules() -> set[str]:
    return {
        path.relative_to(ROOT).as_posix()
        for package in PACKAGES
        for path in (ROOT / package).rglob("*.py")
        if path.name != "__init__.py"
    }


def test_architecture_names_every_module_and_no_other():
    text = (ROOT / "docs/architecture.md").read_text()
    named = set(re.findall(rf"`((?:{'|'.join(PACKAGES)})/[\w/]+\.py)`", text))
    modules = _modules()
    assert len(modules) > 50  # the packages were found
    assert sorted(modules - named) == [], "modules docs/architecture.md does not name"
    assert sorted(named - modules) == [], "docs/architecture.md names modules that do not exist"


def test_folders_and_modules_stay_small():
    for package in PACKAGES:
        for folder in [ROOT / package, *(p for p in (ROOT / package).rglob("*") if p.is_dir())]:
            if folder.name == "__pycache__":
                continue
            count = len(list(folder.glob("*.py")))
            assert count <= 12, f"{folder.relative_to(ROOT)} holds {count} modules"
    for module in _modules():
        lines = len((ROOT / module).read_text().splitlines())
        assert lines <= 400, f"{module} has {lines} lines"
