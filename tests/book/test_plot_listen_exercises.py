import matplotlib

matplotlib.use("Agg")
import numpy as np
import pytest
import torch

from sepbook.book import listen, plot
from sepbook.classroom import exercises


@pytest.fixture
def axes():
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2)
    yield axes
    plt.close(fig)


def test_spectrogram_draws_the_db_magnitude_of_its_input(axes):
    spec = torch.complex(torch.randn(1, 65, 40), torch.randn(1, 65, 40))
    spec[0, 3, 4] = 0  # a silent bin is floored, not -inf
    ax = plot.spectrogram(spec, sr=8000, hop=64, ax=axes[0], db_range=60.0)
    assert ax is axes[0]
    (image,) = ax.images
    expected = 20 * np.log10(np.maximum(spec[0].abs().numpy(), 1e-8))
    np.testing.assert_allclose(image.get_array(), expected, rtol=1e-5)
    assert image.get_clim() == pytest.approx((expected.max() - 60.0, expected.max()))
    assert image.get_extent() == pytest.approx([0, 40 * 64 / 8000, 0, 4000])


def test_mask_draws_its_values_on_a_zero_to_one_scale(axes):
    values = torch.rand(65, 40)
    (image,) = plot.mask(values, sr=8000, hop=64, ax=axes[0]).images
    np.testing.assert_array_equal(image.get_array(), values.numpy())
    assert image.get_clim() == (0, 1)


def test_piano_roll_overlay_marks_each_active_note_at_its_pitch(axes):
    roll = np.zeros((40, 128), bool)
    roll[5:20, 69] = True  # A4 for 15 frames
    roll[30, 57] = True    # A3 for one frame
    ax = plot.piano_roll_overlay(torch.rand(65, 40), roll, sr=8000, hop=64, frame_rate=125, ax=axes[0])
    (points,) = ax.collections
    offsets = np.asarray(points.get_offsets())
    expected = sorted([(f / 125, 440.0) for f in range(5, 20)] + [(30 / 125, 220.0)])
    np.testing.assert_allclose(sorted(map(tuple, offsets)), expected)


def test_training_curve_draws_the_loss_its_smoothed_version_and_validation(axes):
    loss = [4.0, 1.0, 3.0, 0.5, 2.0, 0.25]
    history = {"step": list(range(1, 7)), "loss": loss, "valid_step": [3, 6],
               "valid": [{"SI-SDRi": 1.5, "other": 9.0}, {"SI-SDRi": 2.5, "other": 8.0}]}
    ax = plot.training_curve(history, ax=axes[0], smooth=2, metric="SI-SDRi")
    raw, smooth = ax.lines
    np.testing.assert_array_equal(raw.get_ydata(), loss)
    np.testing.assert_allclose(smooth.get_ydata(), [4.0, 2.5, 2.0, 1.75, 1.25, 1.125])
    np.testing.assert_array_equal(smooth.get_xdata(), history["step"])
    (twin,) = [other for other in ax.figure.axes if other is not ax and other.bbox.bounds == ax.bbox.bounds]
    (valid,) = twin.lines
    assert list(valid.get_xdata()) == [3, 6] and list(valid.get_ydata()) == [1.5, 2.5]


def test_waveform_draws_the_first_channel_against_seconds(axes):
    audio = np.stack([np.linspace(-1, 1, 80), np.zeros(80)])
    (line,) = plot.waveform(audio, sr=8000, ax=axes[0]).lines
    np.testing.assert_allclose(line.get_xdata(), np.arange(80) / 8000)
    np.testing.assert_array_equal(line.get_ydata(), audio[0])


@pytest.mark.parametrize("call, match", [
    (lambda: plot.spectrogram(np.zeros((2, 3, 4, 5)), sr=8000, hop=64), "spec"),
    (lambda: plot.piano_roll_overlay(np.ones((5, 4)), np.zeros((4, 100)), sr=8000, hop=64, frame_rate=10), "roll"),
    (lambda: plot.training_curve({"step": [], "loss": []}), "history"),
    (lambda: plot.results_table([]), "rows"),
])
def test_plot_bad_inputs(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_players_embed_one_audio_element_per_track():
    html = listen.players({"a": np.sin(np.arange(800) / 5), "b <x>": torch.zeros(1, 800)}, 8000).data
    assert html.count("<audio") == 2 and "b &lt;x&gt;" in html


def test_compare_is_static_in_the_book_build(monkeypatch):
    monkeypatch.setenv("SEPBOOK_STATIC_HTML", "1")
    shown = listen.compare({"a": np.ones(100) * 0.1}, 8000)
    assert "<audio" in shown.data
    monkeypatch.setenv("SEPBOOK_STATIC_HTML", "0")
    widget = listen.compare({"a": np.ones(100) * 0.1, "b": np.zeros(100)}, 8000)
    assert type(widget).__name__ == "VBox"


@pytest.mark.parametrize("tracks, match", [({}, "tracks"), ({"a": np.array([np.nan, 1.0])}, "a")])
def test_listen_bad_inputs(tracks, match):
    with pytest.raises(ValueError, match=match):
        listen.players(tracks, 8000)


def test_check_ratio_mask_accepts_the_right_answer_and_explains_wrong_ones():
    def good(specs, eps=1e-8):
        m = specs.abs()
        return m / (m.sum(0, keepdim=True) + eps)

    assert "correct" in exercises.check_ratio_mask(good)
    with pytest.raises(AssertionError, match="NaN"):
        exercises.check_ratio_mask(lambda s: s.abs() / s.abs().sum(0, keepdim=True))
    with pytest.raises(AssertionError, match="Wiener"):
        exercises.check_ratio_mask(lambda s: s.abs() ** 2 / (s.abs().pow(2).sum(0, keepdim=True) + 1e-8))
    with pytest.raises(AssertionError, match="raised NotImplementedError"):
        exercises.check_ratio_mask(lambda s: (_ for _ in ()).throw(NotImplementedError()))


def test_check_si_sdr():
    from sepbook.metrics import si_sdr

    assert "correct" in exercises.check_si_sdr(lambda e, r: si_sdr(e, r))
    with pytest.raises(AssertionError, match="scaling"):
        exercises.check_si_sdr(lambda e, r: 10 * torch.log10(r.pow(2).sum(-1) / (r - e).pow(2).sum(-1)))
    with pytest.raises(AssertionError, match="factor of 2"):
        exercises.check_si_sdr(lambda e, r: si_sdr(e, r) / 2)


def test_live_curve_is_silent_outside_a_notebook():
    curve = plot.LiveCurve()
    assert curve.enabled is False
    curve.update({"step": [1], "loss": [1.0]})
    assert curve.handle is None


def test_smoothed_is_a_moving_average_that_keeps_the_length():
    out = plot.smoothed([1.0, 3.0, 5.0, 7.0], 2)
    assert out.tolist() == [1.0, 2.0, 4.0, 6.0]
    assert plot.smoothed([], 5).size == 0
