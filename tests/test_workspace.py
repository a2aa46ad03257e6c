"""The workspace's layering: what each package may import.

The projects (data, train, clean) share code only through the toolbox
and results only through files: a project imports its own package and
the toolbox packages its ``pyproject.toml`` declares, never another
project. The pipeline (``deepclean``) runs the projects' command lines
and imports none of them.
"""

import ast
import re
import tomllib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PROJECTS = {"deepclean_data", "deepclean_train", "deepclean_clean"}
MEMBERS = sorted(
    path.parent
    for path in (
        REPO / "pyproject.toml",
        *REPO.glob("projects/*/pyproject.toml"),
        *REPO.glob("toolbox/*/pyproject.toml"),
    )
)


def module_name(requirement: str) -> str:
    """Import name of a requirement, e.g. ``deepclean-io>=1`` ->
    ``deepclean_io``."""
    return re.match(r"[\w.-]+", requirement)[0].replace("-", "_")


def declared(member: Path) -> tuple[str, set[str]]:
    """The member's own import name and those of its dependencies."""
    project = tomllib.loads((member / "pyproject.toml").read_text())
    project = project["project"]
    return module_name(project["name"]), {
        module_name(requirement) for requirement in project["dependencies"]
    }


def first_party_imports(
    package: Path, root: Path = REPO
) -> dict[str, list[str]]:
    """``deepclean`` and ``deepclean_*`` modules imported anywhere in a
    package (inside functions too), with ``file:line`` of each import."""
    found: dict[str, list[str]] = {}
    for path in sorted(package.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                if top == "deepclean" or top.startswith("deepclean_"):
                    where = f"{path.relative_to(root)}:{node.lineno}"
                    found.setdefault(top, []).append(where)
    return found


@pytest.mark.parametrize(
    "member", MEMBERS, ids=lambda path: str(path.relative_to(REPO)) or "."
)
def test_packages_import_only_what_they_declare(member: Path) -> None:
    name, dependencies = declared(member)
    imports = first_party_imports(member / name)
    undeclared = {
        module: places
        for module, places in imports.items()
        if module != name and module not in dependencies
    }
    assert not undeclared, (
        f"{name} imports packages its pyproject.toml does not declare: "
        f"{undeclared}"
    )
    assert not dependencies & (PROJECTS - {name}), (
        f"{name} depends on another project; projects share code through "
        "the toolbox and results through files"
    )


def test_imports_inside_functions_are_seen(tmp_path: Path) -> None:
    package = tmp_path / "deepclean_clean"
    package.mkdir()
    (package / "truth.py").write_text(
        "import numpy\n"
        "from . import wiener\n\n"
        "def read():\n"
        "    from deepclean_data.simulate import truth_paths\n"
    )
    imports = first_party_imports(package, root=tmp_path)
    assert imports == {"deepclean_data": ["deepclean_clean/truth.py:5"]}
