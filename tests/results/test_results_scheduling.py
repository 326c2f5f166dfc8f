"""`make results` trains a run only after the runs it starts from (a recipe's requires), and hands them over."""
import types

import pytest
import torch

from sepbook import results

ORDER: list[tuple[str, int]] = []


def _fake_recipe(requires):
    module = types.ModuleType("fake_recipe")
    module.VARIANTS = ("a", "b")
    module.requires = lambda cfg, variant: tuple(requires.get(variant, ()))
    module.reference_rows = lambda cfg, tracks: []
    module.config = lambda profile=None, **overrides: {"profile": profile or "tiny", "seeds": (0, 1)} | overrides
    module.data = lambda cfg: types.SimpleNamespace(test=["song"])
    # b's runs first: the scheduler, not the list, must order them
    module.runs = lambda cfg: [(v, s) for v in ("b", "a") for s in cfg["seeds"]]
    module.build = lambda cfg, variant: torch.nn.Linear(2, 1)

    def train(cfg, data, variant, seed, *, prerequisites=None, **options):
        ORDER.append((variant, seed))
        model = torch.nn.Linear(2, 1)
        if variant == "b":
            a = prerequisites["a"]
            with torch.no_grad():
                model.weight.copy_(a.weight * 2)
        else:
            assert prerequisites is None
            with torch.no_grad():
                model.weight.fill_(0.25 + seed)
        return model, {"step": [1], "loss": [0.0], "valid_step": [], "valid": []}

    module.train = train
    module.evaluate = lambda cfg, models, tracks: [
        {"variant": v, "seed": s, "song": "song", "domain": "", "source": "x", "metric": "w",
         "value": float(m.weight.detach().sum())} for (v, s), m in models.items()]
    return module


@pytest.fixture
def fake(monkeypatch, tmp_path):
    monkeypatch.setenv("SEPBOOK_DATA", str(tmp_path / "data"))
    ORDER.clear()

    def install(requires):
        module = _fake_recipe(requires)
        monkeypatch.setitem(results.RECIPES, "fake", module)
        return module
    return install


def test_runs_wait_for_what_they_start_from_and_receive_it(fake, tmp_path):
    fake({"b": ("a",)})
    out = results.produce("fake", "tiny", workers=1, out=tmp_path / "out")
    assert sorted(ORDER) == [("a", 0), ("a", 1), ("b", 0), ("b", 1)]
    for seed in (0, 1):
        assert ORDER.index(("a", seed)) < ORDER.index(("b", seed))
    rows = (out / "metrics.csv").read_text().splitlines()
    # b started from a's float16 weights of its own seed: twice a's
    b1 = next(r for r in rows if r.startswith("b,1,"))
    assert float(b1.rsplit(",", 1)[1]) == pytest.approx(2 * 2 * 1.25)


def test_requires_and_prerequisites(fake, tmp_path):
    module = fake({"b": ("a",)})
    assert results.requires(module, "b") == ("a",) and results.requires(module, "a") == ()
    with pytest.raises(FileNotFoundError, match="'a'"):
        results.prerequisites("fake", module.config("tiny"), "b", 0, tmp_path)


def test_a_requirement_that_is_no_variant_is_refused(fake, tmp_path):
    fake({"b": ("c",)})
    with pytest.raises(ValueError, match="requires\\(\\) names \\['c'\\]"):
        results.produce("fake", "tiny", workers=1, out=tmp_path / "out")
