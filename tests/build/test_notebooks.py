"""The book's notebooks: committed without outputs, set up alike on Colab and locally, using only the package's API."""
import ast
import importlib
import re
from pathlib import Path

import nbformat
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = sorted((ROOT / "chapters").rglob("*.ipynb"))
URL = yaml.safe_load((ROOT / "_config.yml").read_text())["repository"]["url"]


def _toc_files(entries):
    for entry in entries:
        if "file" in entry:
            yield entry["file"]
        yield from _toc_files(entry.get("chapters", []) + entry.get("sections", []))


def _code_cells(path):
    notebook = nbformat.read(path, as_version=4)
    return [cell for cell in notebook.cells if cell.cell_type == "code"]


def test_there_are_notebooks_and_every_one_is_in_the_toc():
    assert NOTEBOOKS
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    listed = {toc["root"], *(_toc_files([c for part in toc["parts"] for c in part["chapters"]]))}
    for notebook in NOTEBOOKS:
        assert str(notebook.relative_to(ROOT).with_suffix("")) in listed, notebook


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_is_valid_and_has_no_outputs(path):
    notebook = nbformat.read(path, as_version=4)
    nbformat.validate(notebook)
    for cell in notebook.cells:
        if cell.cell_type == "code":
            assert not cell.outputs and cell.execution_count is None, f"{path.name} has committed outputs"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_first_code_cell_installs_sepbook_if_missing_then_calls_setup(path):
    first = _code_cells(path)[0].source
    guard = re.search(r"^try:\n\s+import sepbook\nexcept ImportError:\n(\s+.*\n)*?\s+%pip install .*\n", first + "\n",
                      re.MULTILINE)
    assert guard, f"{path.name}: the first code cell must import sepbook and %pip install it on ImportError"
    assert f'"sepbook @ git+{URL}"' in guard.group(0), f"{path.name}: install from {URL}"
    assert re.search(r"^from sepbook\.book import setup$", first, re.MULTILINE), path.name
    assert re.search(r"^(\w+ = )?setup\(\)$", first, re.MULTILINE), f"{path.name}: the first code cell must call setup()"


def _python(source: str) -> str:
    """A cell's source without IPython magics and shell escapes, which are not Python."""
    lines = source.splitlines()
    return "\n".join(line[:len(line) - len(line.lstrip())] + "pass" if line.lstrip().startswith(("%", "!")) else line
                     for line in lines)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_uses_only_names_the_package_has(path):
    """Every ``from sepbook... import name`` and ``module.name`` of an imported sepbook module exists.

    A static check, so a renamed or removed function fails here in seconds rather than in the book build.
    """
    modules: dict[str, object] = {}
    missing = []
    for cell in _code_cells(path):
        tree = ast.parse(_python(cell.source))
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "sepbook":
                try:
                    module = importlib.import_module(node.module)
                except ImportError:
                    missing.append(node.module)
                    continue
                for alias in node.names:
                    if not hasattr(module, alias.name):
                        try:
                            value = importlib.import_module(f"{node.module}.{alias.name}")
                        except ImportError:
                            missing.append(f"{node.module}.{alias.name}")
                            continue
                    else:
                        value = getattr(module, alias.name)
                    if hasattr(value, "__file__"):  # a module: check what the notebook takes from it
                        modules[alias.asname or alias.name] = value
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name.split(".")[0] == "sepbook":
                        try:
                            modules[alias.asname or alias.name] = importlib.import_module(alias.name)
                        except ImportError:
                            missing.append(alias.name)
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in modules:
                if not hasattr(modules[node.value.id], node.attr):
                    missing.append(f"{node.value.id}.{node.attr}")
    assert not missing, f"{path.name} uses names sepbook does not have: {sorted(set(missing))}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_code_cells_fit_the_page_column(path):
    """The built page shows code in a column of 84 characters; wider lines scroll sideways."""
    wide = [line for cell in _code_cells(path) for line in cell.source.splitlines() if len(line) > 84]
    assert not wide, f"{path.name}: {len(wide)} code lines wider than 84 characters, e.g. {wide[0]!r}"


def _markdown_as_html(source: str) -> str:
    """A markdown cell as MyST renders it with the book's extensions (``_config.yml``)."""
    from markdown_it.renderer import RendererHTML
    from myst_parser.config.main import MdParserConfig
    from myst_parser.parsers.mdit import create_md_parser

    extensions = yaml.safe_load((ROOT / "_config.yml").read_text())["parse"]["myst_enable_extensions"]
    return create_md_parser(MdParserConfig(enable_extensions=set(extensions)), RendererHTML).render(source)


def _stray_math(html: str) -> str | None:
    """Text outside math and code that still holds a TeX delimiter, or None."""
    text = re.sub(r'<(span|div) class="math[^"]*">.*?</\1>', "", html, flags=re.S)
    text = re.sub(r"<code[^>]*>.*?</code>|<pre>.*?</pre>", "", text, flags=re.S)
    found = re.search(r"\$|\\\(|\\\[", text)
    return None if found is None else text[max(0, found.start() - 80):found.start() + 80]


def test_a_display_formula_glued_to_its_sentence_is_caught():
    assert _stray_math(_markdown_as_html("- the weights are\n  $$W = G e,$$\n  where e is")) is not None
    assert _stray_math(_markdown_as_html("- the weights are\n\n  $$W = G e,$$\n\n  where $e$ is")) is None


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_every_formula_is_parsed_as_math(path):
    """MyST reads ``$$ ... $$`` as a display formula only as a block of its own: glued to the
    sentence before it (as in a list item), it leaves stray dollars in the page."""
    for index, cell in enumerate(nbformat.read(path, as_version=4).cells):
        if cell.cell_type == "markdown":
            stray = _stray_math(_markdown_as_html(cell.source))
            assert stray is None, f"{path.name}, cell {index}: a formula is not parsed as math: {stray!r}"


def _shown_sources(path):
    """``(expression, text)`` of every ``show_source(...)`` call of a notebook, as the page shows it:
    the objects are found through the notebook's own imports."""
    from sepbook import book

    namespace, calls = {}, []
    for cell in _code_cells(path):
        try:
            tree = ast.parse(cell.source)
        except SyntaxError:  # the set-up cell's %pip line
            continue
        for node in ast.walk(tree):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                exec(compile(ast.Module([node], []), path.name, "exec"), namespace)
            elif isinstance(node, ast.Call) and getattr(node.func, "id", None) == "show_source":
                calls.append(node)
    for node in calls:
        text = book.source(eval(ast.unparse(node.args[0]), namespace))
        if any(k.arg == "docstring" and getattr(k.value, "value", True) is False for k in node.keywords):
            text = book._strip_docstring(text)
        yield ast.unparse(node.args[0]), text


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_the_package_source_a_page_shows_fits_the_column(path):
    """``show_source`` prints the package's own code into the page: it is held to the same
    84-character column as the notebook's cells, or its lines run past the page's edge."""
    wide = [(name, line) for name, text in _shown_sources(path) for line in text.splitlines() if len(line) > 84]
    assert not wide, f"{path.name}: shown source wider than 84 characters: {wide[:3]}"
