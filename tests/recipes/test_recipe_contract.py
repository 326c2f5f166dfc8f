"""Every chapter's recipe keeps the one contract, :class:`sepbook.recipes.Recipe`."""
import inspect
from pathlib import Path

import pytest
import torch

from sepbook.recipes import Paper, Recipe
from sepbook.results import RECIPES

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(params=sorted(RECIPES), scope="module")
def recipe(request):
    return RECIPES[request.param]


def test_every_recipe_keeps_the_contract(recipe):
    assert isinstance(recipe, Recipe), [n for n in Recipe.__protocol_attrs__ if not hasattr(recipe, n)]
    assert list((ROOT / "chapters" / recipe.CHAPTER).glob("*.ipynb")), recipe.CHAPTER
    assert isinstance(recipe.PAPER, Paper) and recipe.PAPER.source.strip()
    assert isinstance(recipe.VARIANTS, tuple) and all(isinstance(v, str) for v in recipe.VARIANTS)
    for name in ("config", "data", "test_tracks", "runs", "requires", "build", "train", "separate", "evaluate",
                 "reference_rows"):
        expected = list(inspect.signature(getattr(Recipe, name)).parameters)[1:]
        found = inspect.signature(getattr(recipe, name)).parameters
        required = [p for p in found.values() if p.default is p.empty and p.kind in (p.POSITIONAL_ONLY,
                                                                                   p.POSITIONAL_OR_KEYWORD)]
        assert len(required) <= len([e for e in expected if e not in ("overrides", "options")]), (name, list(found))
        if name == "separate":
            assert len(found) == 2, f"separate takes (model, mixture); options belong in cfg: {list(found)}"


@pytest.mark.parametrize("profile", ["tiny", "book"])
def test_runs_come_after_what_they_require_and_cover_the_page(recipe, profile):
    cfg = recipe.config(profile)
    runs = recipe.runs(cfg)
    assert len(runs) == len(set(runs)) and runs, runs
    seen = set()
    for variant, seed in runs:
        missing = [r for r in recipe.requires(cfg, variant) if (r, seed) not in seen]
        assert not missing, f"{variant} seed {seed} is listed before {missing}"
        seen.add((variant, seed))
    trained = {variant for variant, _ in runs}
    assert set(recipe.VARIANTS) <= trained, set(recipe.VARIANTS) - trained
    for variant in trained:
        assert set(recipe.requires(cfg, variant)) <= trained


@pytest.mark.parametrize("channels", [1, 2])
def test_separate_maps_channels_by_time_to_sources_by_channels_by_time(recipe, channels):
    cfg = recipe.config("tiny")
    torch.manual_seed(0)
    model = recipe.build(cfg, recipe.VARIANTS[0]).eval()
    mixture = 0.1 * torch.randn(channels, int(cfg["sr"] if "sr" in cfg else 8000))
    estimates = recipe.separate(model, mixture)
    assert estimates.dim() == 3 and estimates.shape[1:] == mixture.shape, tuple(estimates.shape)
    assert torch.isfinite(estimates).all()


def test_each_channel_separates_every_channel_and_names_a_bad_mixture():
    from sepbook.recipes import each_channel

    mixture = torch.arange(6.0).reshape(2, 3)
    estimates = each_channel(lambda wave: torch.stack([wave, 2 * wave]), mixture)
    assert estimates.shape == (2, 2, 3) and torch.equal(estimates[1, 1], 2 * mixture[1])
    with pytest.raises(ValueError, match=r"mixture: expected \(channels, time\)"):
        each_channel(lambda wave: wave[None], torch.zeros(3))
