"""Checks of the project's setup files: pins, install order, CI entry, import rules."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PIN = re.compile(r"^(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)\s*==\s*(?P<version>[A-Za-z0-9.+!_-]+)$")


def _requirement_lines(name: str) -> list[str]:
    lines = []
    for raw in (ROOT / name).read_text(encoding="utf-8").splitlines():
        line = raw.split("#", 1)[0].strip()
        if line:
            lines.append(line)
    return lines


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _pins(name: str) -> dict[str, str]:
    """Package -> version of a requirements file; every line must be an exact pin."""
    pins: dict[str, str] = {}
    for line in _requirement_lines(name):
        match = PIN.match(line)
        assert match, f"{name}: {line!r} is not an exact `name==version` pin"
        key = _canonical(match["name"])
        assert key not in pins, f"{name}: {match['name']} pinned twice"
        pins[key] = match["version"]
    return pins


@pytest.mark.parametrize("name", ["requirements.txt", "requirements-gpu.txt",
                                  "requirements-torch.txt"])
def test_requirements_are_exact_pins(name: str) -> None:
    assert _pins(name), f"{name} pins nothing"


def test_gpu_requirements_swap_only_onnxruntime() -> None:
    cpu, gpu = _pins("requirements.txt"), _pins("requirements-gpu.txt")
    assert "onnxruntime" in cpu and "onnxruntime-gpu" not in cpu
    assert "onnxruntime-gpu" in gpu and "onnxruntime" not in gpu, (
        "onnxruntime and onnxruntime-gpu share one folder: the GPU file must carry only the "
        "GPU package"
    )
    same_cpu = {k: v for k, v in cpu.items() if k != "onnxruntime"}
    same_gpu = {k: v for k, v in gpu.items() if k != "onnxruntime-gpu"}
    assert same_cpu == same_gpu
    assert cpu["onnxruntime"] == gpu["onnxruntime-gpu"]  # one runtime version on CPU and GPU
    # No `-r requirements.txt` or other includes: the GPU file is a full list.
    assert not any(line.startswith("-") for line in _requirement_lines("requirements-gpu.txt"))


def test_torch_pinned_only_in_its_own_file() -> None:
    assert _pins("requirements-torch.txt") == {"torch": "2.13.0"}
    for name in ("requirements.txt", "requirements-gpu.txt"):
        assert "torch" not in _pins(name), f"{name} must not pin torch"


def test_pyproject_lists_no_dependencies() -> None:
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    assert project["name"] == "vdwgen"
    assert project.get("dependencies", []) == []
    assert project["scripts"]["vdwgen"] == "vdwgen.cli:main"


def _recipe(makefile: str, target: str) -> list[str]:
    """The recipe lines of ``target`` in a Makefile's text."""
    lines = makefile.splitlines()
    for i, line in enumerate(lines):
        if re.match(rf"^{re.escape(target)}\s*:(?!=)", line):
            recipe = []
            for body in lines[i + 1:]:
                if body.startswith("\t"):
                    recipe.append(body.strip())
                elif body.strip() and not body.startswith("#"):
                    break
            return recipe
    raise AssertionError(f"no target {target!r} in the Makefile")


def test_makefile_installs_torch_before_the_pins() -> None:
    recipe = _recipe((ROOT / "Makefile").read_text(encoding="utf-8"), "$(STAMP)")

    def position(fragment: str) -> int:
        found = [i for i, line in enumerate(recipe) if fragment in line]
        assert found, f"the install recipe never runs {fragment!r}"
        return found[0]

    torch = position("-r requirements-torch.txt")
    pins = position("-r requirements.txt")
    project = position("--no-deps -e .")
    assert torch < pins < project


def test_makefile_targets() -> None:
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    phony = re.search(r"^\.PHONY:(.*)$", makefile, re.M)
    assert phony, "no .PHONY line"
    for target in ("venv", "app", "test", "dataset", "clean", "distclean"):
        assert target in phony[1].split()
        _recipe(makefile, target)
    assert any("streamlit run webapp/app.py" in line for line in _recipe(makefile, "app"))
    assert any("-m pytest" in line for line in _recipe(makefile, "test"))


def test_ci_runs_make_test() -> None:
    script = ROOT / ".ci" / "run"
    text = script.read_text(encoding="utf-8")
    assert text.startswith("#!/usr/bin/env bash")
    assert "set -euo pipefail" in text
    assert re.search(r"^\s*make test\b", text, re.M)
    assert script.stat().st_mode & 0o111, ".ci/run must be executable"


def _imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    modules: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            modules.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            modules.add(node.module)
        elif (isinstance(node, ast.Call) and node.args
              and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)
              and ((isinstance(node.func, ast.Name) and node.func.id == "__import__")
                   or (isinstance(node.func, ast.Attribute)
                       and node.func.attr == "import_module"))):
            modules.add(node.args[0].value)
    return modules


LAYERS: tuple[tuple[str, ...], ...] = (
    ("core",),
    ("oracle",),
    ("scoring",),
    ("design",),
    ("serving",),
    ("store",),
    ("training",),
    ("export",),
    ("services",),
    ("vdwgen", "webapp"),
)
"""The data flow, bottom first: a package may import its own modules and those of lower rows only
(two packages on one row never import each other). Scripts under ``bench/`` may import anything."""
RANK = {package: rank for rank, row in enumerate(LAYERS) for package in row}
SERVING_SIDE = ("core", "oracle", "scoring", "design", "serving", "store", "services", "vdwgen", "webapp")
"""Packages of the app and the CLI's serving commands: never ``training`` (and, below it, nothing imports
``training`` by position anyway; ``vdwgen`` imports it lazily, only in training commands)."""


def _top(module: str) -> str:
    return module.split(".", 1)[0]


def test_every_project_package_has_a_layer() -> None:
    packages = {p.parent.name for p in ROOT.glob("*/__init__.py")}
    assert packages == set(RANK), f"packages without a layer or layers without a package: {packages ^ set(RANK)}"


@pytest.mark.parametrize("package", [p for row in LAYERS for p in row])
def test_imports_point_down(package: str) -> None:
    sources = sorted((ROOT / package).rglob("*.py"))
    assert sources, f"no Python source under {package}/"
    for path in sources:
        for module in sorted(_imported_modules(path)):
            other = _top(module)
            if other == package or other not in RANK:
                continue
            assert RANK[other] < RANK[package], (
                f"{path.relative_to(ROOT)} imports {module}: {other}/ is not below {package}/ in the data flow "
                f"({' < '.join('/'.join(row) for row in LAYERS)})")


@pytest.mark.parametrize("package", [p for p in SERVING_SIDE if p != "vdwgen"])
def test_serving_side_never_imports_training(package: str) -> None:
    for path in sorted((ROOT / package).rglob("*.py")):
        bad = sorted(m for m in _imported_modules(path) if _top(m) == "training")
        assert not bad, f"{path.relative_to(ROOT)} imports {bad}"


def test_no_test_imports_another_test_file() -> None:
    for path in sorted((ROOT / "tests").rglob("*.py")):
        bad = sorted(m for m in _imported_modules(path) if _top(m) == "tests")
        assert not bad, f"{path.relative_to(ROOT)} imports {bad}: shared helpers belong in tests/conftest.py"


def test_tests_mirror_the_code_layout() -> None:
    for folder in sorted(p for p in (ROOT / "tests").rglob("*") if p.is_dir() and p.name != "__pycache__"):
        relative = folder.relative_to(ROOT / "tests")
        assert (ROOT / relative).is_dir(), f"tests/{relative} has no code folder {relative}/ to mirror"


def _prerequisites(makefile: str, target: str) -> list[str]:
    match = re.search(rf"^{re.escape(target)}\s*:(?!=)([^\n#]*)", makefile, re.M)
    assert match, f"no target {target!r} in the Makefile"
    return match[1].split()


def test_make_test_installs_chromium_for_the_browser_test() -> None:
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    assert "browser" in _prerequisites(makefile, "test")
    recipe = " ".join(_recipe(makefile, "browser"))
    assert "apt-get install" in recipe and "--no-install-recommends chromium" in recipe
    assert "id -u" in recipe, "apt-get only as root; others get a one-line hint"
    # Under CI a missing chromium fails the browser test instead of skipping it.
    assert re.search(r'^export CI="\$\{CI:-true\}"', (ROOT / ".ci" / "run").read_text(encoding="utf-8"), re.M)


def test_ci_runs_ruff_from_the_pins() -> None:
    import tomllib

    for name in ("requirements.txt", "requirements-gpu.txt"):
        assert "ruff" in _pins(name), f"{name} must pin ruff (make lint runs it from .venv)"
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    assert "venv" in _prerequisites(makefile, "lint")
    assert any(line.startswith("$(VENV)/bin/ruff check .") for line in _recipe(makefile, "lint"))
    script = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    test_at = re.search(r"^\s*make test\b", script, re.M)
    lint_at = re.search(r"^\s*make lint\b", script, re.M)
    assert test_at and lint_at and test_at.start() < lint_at.start(), ".ci/run must run `make lint` after `make test`"
    ruff = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["ruff"]
    assert ruff["line-length"] == 120 and ruff["target-version"] == "py311"
    assert ruff["lint"]["select"], "an explicit rule selection"
