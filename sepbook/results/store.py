"""The vocabulary of committed results: the recipes, where results live, how weights are stored,
and what a run records about the code and machine that trained it.

Chapter: preface
"""
from __future__ import annotations

import hashlib
import platform
import subprocess
from pathlib import Path
from types import ModuleType
from typing import Any

import torch

from sepbook.data import profiles
from sepbook.recipes import activity, adversarial, foundations, metatasnet, transcription, transfer
from sepbook.results.fetch import committed_results

#: Every chapter with committed results, and the recipe that produces them.
RECIPES: dict[str, ModuleType] = {"foundations": foundations, "adversarial": adversarial,
                                  "transcription": transcription, "activity": activity,
                                  "metatasnet": metatasnet, "transfer": transfer}

ROOT = Path(__file__).resolve().parents[2]

TOLERANCE_DB = 0.05

HISTORY_STRIDE = 10

class ResultsMismatch(RuntimeError):
    """Committed results that their own checkpoints no longer reproduce."""

def recipe(chapter: str) -> ModuleType:
    """The recipe module of ``chapter``."""
    if chapter not in RECIPES:
        raise ValueError(f"chapter: expected one of {sorted(RECIPES)}, got {chapter!r}")
    return RECIPES[chapter]

def results_dir(chapter: str, profile: str = "book") -> Path:
    """``chapters/<chapter>/results/<profile>/`` of the checkout, or of the repository's archive when
    sepbook is installed without one (:func:`committed_results`)."""
    root = ROOT if (ROOT / "chapters").is_dir() else committed_results()
    return root / "chapters" / chapter / "results" / profile

def command(chapter: str) -> str:
    """The command that (re)generates ``chapter``'s committed results."""
    return f"make results CHAPTER={chapter}"

def torchrun_command(chapter: str, profile: str = "paper", gpus: int | str = "N") -> str:
    """The command that trains ``chapter``'s ``profile`` runs on ``gpus`` GPUs of one machine."""
    return f"torchrun --nproc_per_node={gpus} -m sepbook.results {chapter} --profile {profile}"

def plain(value: Any) -> Any:
    """Settings as JSON keeps them (tuples become lists)."""
    if isinstance(value, (tuple, list)):
        return [plain(v) for v in value]
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    return value

def half_weights(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The model's state dict with floating-point tensors stored as float16 (on the CPU)."""
    return {k: v.detach().cpu().half() if v.is_floating_point() else v.detach().cpu()
            for k, v in model.state_dict().items()}

def load_half(model: torch.nn.Module, weights: dict[str, torch.Tensor]) -> torch.nn.Module:
    """Load float16 weights into ``model`` as float32; -> the model in eval mode."""
    model.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in weights.items()})
    return model.eval()

_DATA: dict[tuple[str, str], Any] = {}

def _data(chapter: str, cfg: dict):
    key = (chapter, profiles.digest(cfg))
    if key not in _DATA:
        _DATA[key] = recipe(chapter).data(cfg)
    return _DATA[key]

def requires(module: ModuleType, variant: str, cfg: dict | None = None) -> tuple[str, ...]:
    """The runs (same seed) ``variant`` starts from or chooses among: the recipe's ``requires``."""
    return tuple(module.requires(cfg, variant))

def code_digest() -> str:
    """A SHA-256 of the package's source (every ``sepbook/**/*.py``, by path and content): the code that
    trained a run, whatever the commit says about uncommitted changes."""
    digest = hashlib.sha256()
    package = ROOT / "sepbook"
    for path in sorted(package.rglob("*.py")):
        digest.update(path.relative_to(package).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]

def cpu_kind() -> str:
    """The kind of CPU a run trains on, as far as its arithmetic goes: the vendor, the architecture and the
    vector instructions PyTorch uses (``AVX512``, ``AVX2``, ...). Training is deterministic on one kind;
    on another, the same code rounds differently and a retrained run drifts."""
    vendor = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("vendor_id"):
                vendor = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{vendor} {platform.machine()} {torch.backends.cpu.get_cpu_capability()}"

def _commit() -> str:
    """The commit the code was checked out at, with ``+changes`` if ``sepbook/`` differs from it."""
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=True).stdout.strip()

    try:
        return git("rev-parse", "HEAD") + ("+changes" if git("status", "--porcelain", "sepbook") else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"

def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    found = {"python": platform.python_version()}
    for name in ("sepbook", "torch", "numpy", "scipy", "museval", "mir_eval", "librosa", "soxr", "musdb",
                 "pandas", "pretty_midi"):
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = "not installed"
    return found
