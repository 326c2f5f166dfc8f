import numpy as np
import pytest
import torch

from sepbook import masks
from sepbook.metrics import si_sdr

SR = 8000


def two_distant_tones(seconds=0.5, channels=1):
    """Sources (2, channels, time) that never share a time-frequency bin: 300 Hz and 2500 Hz."""
    t = np.arange(int(seconds * SR)) / SR
    low, high = np.sin(2 * np.pi * 300 * t), 0.5 * np.sin(2 * np.pi * 2500 * t + 1.0)
    sources = np.stack([low, high])[:, None].repeat(channels, axis=1).astype(np.float32)
    return sources.sum(axis=0), sources


def random_specs(*shape, seed=0):
    generator = torch.Generator().manual_seed(seed)
    return torch.complex(torch.randn(*shape, generator=generator), torch.randn(*shape, generator=generator))


def test_binary_mask_gives_each_bin_to_exactly_one_loudest_source():
    specs = random_specs(2, 3, 5, 7)
    mask = masks.ideal_binary_mask(specs)
    assert mask.shape == specs.shape
    assert set(mask.unique().tolist()) <= {0.0, 1.0}
    torch.testing.assert_close(mask.sum(dim=-3), torch.ones(2, 5, 7))
    loudest = specs.abs().argmax(dim=-3)
    assert torch.equal(mask.argmax(dim=-3), loudest)


@pytest.mark.parametrize("mask_fn", [masks.ideal_ratio_mask, masks.wiener_mask])
def test_ratio_masks_sum_to_one_even_where_everything_is_silent(mask_fn):
    specs = random_specs(3, 5, 7)
    specs[:, 0, 0] = 0
    mask = mask_fn(specs)
    assert torch.isfinite(mask).all() and (mask >= 0).all() and (mask <= 1).all()
    torch.testing.assert_close(mask.sum(dim=-3), torch.ones(5, 7))
    torch.testing.assert_close(mask[:, 0, 0], torch.full((3,), 1 / 3))


def test_wiener_is_the_power_two_ratio_mask_and_magnitudes_work_too():
    specs = random_specs(2, 4, 6)
    torch.testing.assert_close(masks.wiener_mask(specs), masks.ideal_ratio_mask(specs.abs(), power=2))
    power = specs.abs() ** 2
    torch.testing.assert_close(masks.wiener_mask(specs), power / power.sum(dim=0))


def test_phase_sensitive_mask_matches_its_formula_and_clips():
    specs = random_specs(2, 4, 6)
    mixture = specs.sum(dim=0)
    raw = masks.phase_sensitive_mask(specs, mixture, clip=None)
    expected = specs.abs() / mixture.abs() * torch.cos(specs.angle() - mixture.angle())
    torch.testing.assert_close(raw, expected, atol=1e-5, rtol=1e-4)
    # The sources add up to the mixture, so the unclipped masks add up to one.
    torch.testing.assert_close(raw.sum(dim=0), torch.ones(4, 6), atol=1e-5, rtol=0)
    clipped = masks.phase_sensitive_mask(specs, mixture)
    assert clipped.min() >= 0 and clipped.max() <= 1
    silent_mixture = masks.phase_sensitive_mask(specs, torch.zeros_like(mixture))
    assert torch.equal(silent_mixture, torch.zeros_like(silent_mixture))


def test_apply_mask_broadcasts_over_sources():
    mixture = random_specs(3, 4, 6)
    mask = torch.rand(3, 2, 4, 6)
    out = masks.apply_mask(mask, mixture)
    assert out.shape == (3, 2, 4, 6) and out.is_complex()
    torch.testing.assert_close(out[:, 1], mask[:, 1] * mixture)


@pytest.mark.parametrize("kind", masks.ORACLE_KINDS)
def test_oracle_recovers_sources_that_never_overlap(kind):
    mixture, sources = two_distant_tones()
    estimates = masks.oracle_separation(mixture, sources, kind=kind, n_fft=256, hop=64)
    assert isinstance(estimates, np.ndarray) and estimates.shape == sources.shape and estimates.dtype == np.float32
    assert (si_sdr(estimates, sources) > 30).all()


def test_oracle_on_a_stereo_batch_of_tensors():
    mixture, sources = two_distant_tones(seconds=0.25, channels=2)
    batch_mixture = torch.from_numpy(np.stack([mixture, 0.5 * mixture]))
    batch_sources = torch.from_numpy(np.stack([sources, 0.5 * sources]))
    estimates = masks.oracle_separation(batch_mixture, batch_sources, kind="irm", n_fft=256, hop=64)
    assert isinstance(estimates, torch.Tensor) and estimates.shape == (2, 2, 2, int(0.25 * SR))
    assert (si_sdr(estimates, batch_sources) > 30).all()


def test_oracle_masks_cannot_undo_overlap():
    """Two noises share every bin, so even the oracle leaves some of the other source in."""
    generator = torch.Generator().manual_seed(0)
    sources = torch.randn(2, 1, 4000, generator=generator)
    estimates = masks.oracle_separation(sources.sum(dim=0), sources, kind="irm", n_fft=256, hop=64)
    scores = si_sdr(estimates, sources)
    assert (scores > 3).all() and (scores < 30).all()


spec = random_specs(2, 5, 7)
mixture_wave, sources_wave = two_distant_tones(seconds=0.1)

BAD_CALLS = {
    "ibm without source axis": (lambda: masks.ideal_binary_mask(random_specs(5, 7)), "source_specs"),
    "irm from numpy": (lambda: masks.ideal_ratio_mask(np.ones((2, 5, 7))), "source_specs"),
    "irm zero power": (lambda: masks.ideal_ratio_mask(spec, power=0), "power"),
    "psm magnitude sources": (lambda: masks.phase_sensitive_mask(spec.abs(), spec[0]), "source_specs"),
    "psm wrong mixture shape": (lambda: masks.phase_sensitive_mask(spec, spec[0, :4]), "mixture_spec"),
    "apply real mixture": (lambda: masks.apply_mask(torch.ones(2, 5, 7), spec[0].abs()), "mixture_spec"),
    "apply without source axis": (lambda: masks.apply_mask(torch.ones(5, 7), spec[0]), "mask"),
    "apply wrong bins": (lambda: masks.apply_mask(torch.ones(2, 4, 7), spec[0]), "mask"),
    "unknown kind": (lambda: masks.oracle_separation(mixture_wave, sources_wave, kind="magic"), "kind"),
    "missing channel axis": (lambda: masks.oracle_separation(mixture_wave[0], sources_wave[:, 0]), "sources"),
    "channel count": (lambda: masks.oracle_separation(np.repeat(mixture_wave, 2, 0), sources_wave), "channel"),
    "batch mismatch": (
        lambda: masks.oracle_separation(np.stack([mixture_wave] * 3), np.stack([sources_wave] * 2)),
        "sources",
    ),
    "length mismatch": (lambda: masks.oracle_separation(mixture_wave[:, :-1], sources_wave), "mixture=799"),
    "nan mixture": (lambda: masks.oracle_separation(mixture_wave * np.nan, sources_wave), "mixture"),
    "one sample": (lambda: masks.oracle_separation(mixture_wave[:, :1], sources_wave[..., :1]), "mixture"),
    "hop above n_fft": (lambda: masks.oracle_separation(mixture_wave, sources_wave, n_fft=64, hop=128), "hop"),
}


@pytest.mark.parametrize("case", BAD_CALLS, ids=list(BAD_CALLS))
def test_bad_input_raises_value_error_naming_it(case):
    call, words = BAD_CALLS[case]
    with pytest.raises(ValueError, match=words):
        call()


# ----------------------------------------------------------------------------- Wiener filtering of estimates


def test_wiener_filter_without_rounds_puts_the_mixture_phase_on_the_magnitudes():
    sources = random_specs(3, 33, 40)
    mixture = sources.sum(0)
    out = masks.wiener_filter(sources.abs() * 0.5, mixture, iterations=0)
    torch.testing.assert_close(out.abs(), sources.abs() * 0.5)
    torch.testing.assert_close(out.angle().cos(), mixture.angle().expand_as(out).cos(), atol=1e-5, rtol=0)


def test_a_round_of_wiener_filtering_makes_the_estimates_add_up_to_the_mixture():
    sources = random_specs(3, 33, 40, seed=1)
    mixture = sources.sum(0)
    noisy = sources.abs() * torch.exp(0.5 * torch.randn(sources.shape, generator=torch.Generator().manual_seed(2)))
    plain = masks.wiener_filter(noisy, mixture, iterations=0)
    filtered = masks.wiener_filter(noisy, mixture, iterations=1)
    assert (plain.sum(0) - mixture).abs().mean() > 0.1 * mixture.abs().mean()  # without it they do not
    torch.testing.assert_close(filtered.sum(0), mixture, atol=1e-4, rtol=1e-4)


def test_the_share_follows_power_so_a_louder_estimate_takes_more_of_the_mixture():
    sources = random_specs(2, 33, 40, seed=3)
    mixture = sources.sum(0)
    base = masks.wiener_filter(sources.abs(), mixture, iterations=1)
    louder = sources.abs().clone()
    louder[0] *= 2  # source 0's estimate doubled: its share must grow, source 1's shrink
    boosted = masks.wiener_filter(louder, mixture, iterations=1)
    assert (boosted[0].abs() >= base[0].abs() - 1e-6).all() and (boosted[1].abs() <= base[1].abs() + 1e-6).all()
    assert (boosted[0].abs() > base[0].abs() + 1e-3).float().mean() > 0.9


def test_with_exact_magnitudes_wiener_filtering_beats_the_mixture_phase_alone():
    sources = random_specs(3, 33, 40, seed=4)
    mixture = sources.sum(0)
    err = lambda est: float((est - sources).abs().pow(2).sum())
    assert err(masks.wiener_filter(sources.abs(), mixture, 1)) < err(masks.wiener_filter(sources.abs(), mixture, 0))


def test_wiener_filter_names_bad_input():
    with pytest.raises(ValueError, match="magnitudes: expected"):
        masks.wiener_filter(torch.rand(3, 5, 7), torch.zeros(5, 8, dtype=torch.complex64))
    with pytest.raises(ValueError, match="iterations"):
        masks.wiener_filter(torch.rand(3, 5, 7), torch.zeros(5, 7, dtype=torch.complex64), iterations=-1)
