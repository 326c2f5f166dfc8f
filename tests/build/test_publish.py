"""The workflow that publishes the book: valid for the repository host, and building the book the
way ``make book`` does. It cannot run here, so a linter (the host's workflow schema, as
``check-jsonschema`` vendors it) and these reads of it stand in."""
import subprocess
import sys
from pathlib import Path

import yaml

from sepbook.data import soundfonts

ROOT = Path(__file__).resolve().parents[2]
WORKFLOW = ROOT / ".github" / "workflows" / "publish.yml"


def _lint(path: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.github-workflows",
                           str(path)], capture_output=True, text=True)


def test_the_publish_workflow_passes_its_linter():
    done = _lint(WORKFLOW)
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_linter_rejects_a_workflow_without_a_runner(tmp_path):
    broken = yaml.safe_load(WORKFLOW.read_text())
    del broken["jobs"]["build"]["runs-on"]
    (tmp_path / "broken.yml").write_text(yaml.safe_dump(broken))
    assert _lint(tmp_path / "broken.yml").returncode != 0


def test_the_workflow_builds_like_make_book_and_publishes_the_html():
    workflow = yaml.safe_load(WORKFLOW.read_text())
    steps = workflow["jobs"]["build"]["steps"]
    runs = "\n".join(step.get("run", "") for step in steps)
    assert "make book" in runs
    for package in ["ffmpeg", *(package for package, _ in soundfonts.FONTS.values())]:
        assert package in runs, f"the runner must install {package}, as make setup does"
    cache = next(step for step in steps if str(step.get("uses", "")).startswith("actions/cache"))
    assert cache["with"]["path"] == ".jupyter_cache" and cache["with"]["restore-keys"]
    upload = next(step for step in steps if str(step.get("uses", "")).startswith("actions/upload-pages-artifact"))
    assert upload["with"]["path"] == "_build/html"
    deploy = workflow["jobs"]["deploy"]
    assert deploy["needs"] == "build"
    assert any(str(step.get("uses", "")).startswith("actions/deploy-pages") for step in deploy["steps"])
