import matplotlib

matplotlib.use("Agg")
import numpy as np
import pytest
import torch

from sepbook import exercises, listen, plot


def test_plots_draw_on_given_axes():
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 4)
    spec = torch.rand(1, 65, 40, dtype=torch.complex64)
    assert plot.spectrogram(spec, sr=8000, hop=64, ax=axes[0]) is axes[0]
    plot.mask(torch.rand(65, 40), sr=8000, hop=64, ax=axes[1])
    roll = np.zeros((40, 128), bool)
    roll[5:20, 60] = True
    ax = plot.piano_roll_overlay(spec[0], roll, sr=8000, hop=64, frame_rate=125, ax=axes[2])
    assert len(ax.collections) == 1 and len(ax.collections[0].get_offsets()) == 15
    plot.training_curve({"step": [1, 2, 3], "loss": [3.0, 2.0, 1.0], "valid_step": [3], "valid": [{"m": 1.0}]},
                        ax=axes[3])
    plt.close(fig)


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
