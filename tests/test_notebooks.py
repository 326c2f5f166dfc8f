"""The book's notebooks: committed without outputs, set up on Colab from the configured repository."""
from pathlib import Path

import nbformat
import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "chapters").rglob("*.ipynb"))


def _toc_files(entries):
    for entry in entries:
        if "file" in entry:
            yield entry["file"]
        yield from _toc_files(entry.get("chapters", []) + entry.get("sections", []))


def test_every_notebook_is_in_the_toc():
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    listed = {toc["root"], *(_toc_files([c for part in toc["parts"] for c in part["chapters"]]))}
    for notebook in NOTEBOOKS:
        assert str(notebook.relative_to(ROOT).with_suffix("")) in listed, notebook


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_has_no_outputs_and_a_colab_setup_cell(path):
    notebook = nbformat.read(path, as_version=4)
    nbformat.validate(notebook)
    for cell in notebook.cells:
        if cell.cell_type == "code":
            assert not cell.outputs and cell.execution_count is None, f"{path.name} has committed outputs"
    url = yaml.safe_load((ROOT / "_config.yml").read_text())["repository"]["url"]
    setup = next(c for c in notebook.cells if c.cell_type == "code").source
    assert f"git+{url}" in setup and "import sepbook" in setup, f"{path.name}: first code cell must install from {url}"
