"""The package's shape: its layers hold, no module name is used twice, and the README lists every module."""
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "sepbook"
RECIPES = PACKAGE / "recipes"


def modules() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if p.name not in ("__init__.py", "__main__.py"))


def test_the_layers_and_the_independence_of_the_chapters_hold():
    lint = Path(sys.executable).with_name("lint-imports")
    done = subprocess.run([str(lint), "--no-cache", "--config", str(ROOT / "pyproject.toml")], cwd=ROOT,
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert "2 kept, 0 broken" in done.stdout


def test_the_layers_contract_can_fail(tmp_path):
    """A science module that imports the training loop breaks the contract (a copy of the package)."""
    import shutil

    shutil.copytree(PACKAGE, tmp_path / "sepbook", ignore=shutil.ignore_patterns("__pycache__"))
    (tmp_path / "sepbook" / "metrics.py").write_text((PACKAGE / "metrics.py").read_text()
                                                     + "\nfrom sepbook.experiments import train  # noqa\n")
    lint = Path(sys.executable).with_name("lint-imports")
    done = subprocess.run([str(lint), "--no-cache", "--config", str(ROOT / "pyproject.toml")], cwd=tmp_path,
                          capture_output=True, text=True, env={"PYTHONPATH": str(tmp_path), "PATH": ""})
    assert done.returncode != 0 and "sepbook.metrics -> sepbook.experiments.train" in done.stdout


def test_outside_the_recipes_no_two_modules_share_a_name():
    names: dict[str, list[str]] = {}
    for path in modules():
        if RECIPES not in path.parents:
            names.setdefault(path.stem, []).append(str(path.relative_to(ROOT)))
    for package in PACKAGE.iterdir():
        if package.is_dir() and (package / "__init__.py").is_file():
            names.setdefault(package.name, []).append(str(package.relative_to(ROOT)) + "/")
    assert {name: where for name, where in names.items() if len(where) > 1} == {}


def test_the_readme_layout_table_names_every_module_and_no_other():
    text = (ROOT / "README.md").read_text()
    table = text[text.index("### The package, highest layer first"):]
    table = table[:table.index("\n\n", table.index("| --- |"))]
    named = set(re.findall(r"`(\w+)`", table))
    expected = {p.stem for p in modules() if RECIPES not in p.parents}
    expected |= {p.name for p in RECIPES.iterdir() if p.is_dir() and p.name != "__pycache__"} | {"foundations"}
    expected |= {p.stem for p in (RECIPES / "activity").glob("*.py") if p.stem != "__init__"}
    missing = expected - named
    assert not missing, f"the README's layout table does not name {sorted(missing)}"
    layers = re.findall(r"^\| `sepbook/(\w*)/?` \|", table, re.M)
    packages = {p.name for p in PACKAGE.iterdir() if (p / "__init__.py").is_file() and p.name not in ("models", "losses")}
    assert set(layers) - {""} == packages
