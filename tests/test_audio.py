import numpy as np
import pytest
import soundfile
import torch

from sepbook import audio
from sepbook.audio import STFT

SR = 8000


def tone(freq, seconds=0.25, sr=SR, channels=1):
    t = np.arange(int(seconds * sr)) / sr
    return np.repeat(np.sin(2 * np.pi * freq * t)[None], channels, axis=0).astype(np.float32)


def test_save_then_load_gives_the_same_float32_samples(tmp_path):
    stereo = np.stack([tone(220)[0], 0.5 * tone(330)[0]])
    path = audio.save(tmp_path / "nested" / "tone.wav", stereo, SR)
    loaded, sr = audio.load(path)
    assert sr == SR and loaded.dtype == np.float32 and loaded.shape == (2, stereo.shape[1])
    np.testing.assert_array_equal(loaded, stereo)


def test_save_accepts_torch_and_one_dimensional_audio(tmp_path):
    path = audio.save(tmp_path / "mono.wav", torch.from_numpy(tone(220)[0]), SR)
    loaded, _ = audio.load(path)
    assert loaded.shape == (1, int(0.25 * SR))


def test_load_mono_and_resample(tmp_path):
    path = audio.save(tmp_path / "stereo.wav", np.stack([tone(220)[0], -tone(220)[0] * 0.5]), SR)
    mono, _ = audio.load(path, mono=True)
    np.testing.assert_allclose(mono[0], 0.25 * tone(220)[0], atol=1e-6)
    resampled, sr = audio.load(path, sr=16000)
    assert sr == 16000 and resampled.shape == (2, 2 * int(0.25 * SR)) and resampled.dtype == np.float32


def test_to_mono_numpy_and_torch():
    x = np.arange(12, dtype=np.float32).reshape(2, 3, 2)
    assert audio.to_mono(x).shape == (2, 1, 2)
    torch.testing.assert_close(audio.to_mono(torch.from_numpy(x)), torch.from_numpy(x.mean(axis=1, keepdims=True)))
    assert audio.to_mono(np.zeros(5)).shape == (1, 5)


def test_resample_keeps_pitch_dtype_and_device():
    x = torch.from_numpy(tone(500, seconds=0.5)).double()
    y = audio.resample(x, SR, 16000)
    assert isinstance(y, torch.Tensor) and y.dtype == torch.float64 and y.device == x.device
    assert y.shape == (1, 8000)
    peak_hz = np.argmax(np.abs(np.fft.rfft(y[0].numpy()))) * 16000 / 8000
    assert abs(peak_hz - 500) <= 2
    same = tone(500)
    assert audio.resample(same, SR, SR) is same


@pytest.mark.parametrize("shape", [(1000,), (2, 1000), (2, 3, 1001)])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_stft_round_trip_is_exact(shape, dtype):
    x = torch.randn(*shape, generator=torch.Generator().manual_seed(0), dtype=dtype)
    transform = STFT(n_fft=256, hop=64)
    spec = transform(x)
    assert spec.shape == (*shape[:-1], transform.n_freq, 1 + shape[-1] // 64) and spec.is_complex()
    assert (transform.inverse(spec, shape[-1]) - x).abs().max() < 1e-5


def test_functional_forms_match_the_class_and_short_signals_work():
    x = torch.randn(2, 500)
    torch.testing.assert_close(audio.stft(x, 128, 32), STFT(128, 32)(x))
    torch.testing.assert_close(audio.istft(audio.stft(x, 128, 32), 128, 32, length=500), x, atol=1e-5, rtol=0)
    short = torch.tensor([0.5, -0.25])
    torch.testing.assert_close(audio.istft(audio.stft(short, 1024, 256), 1024, 256, length=2), short)


def test_window_is_cached_per_dtype():
    transform = STFT(64, 16)
    transform(torch.randn(100))
    transform(torch.randn(100))
    transform(torch.randn(100, dtype=torch.float64))
    assert len(transform._windows) == 2


def test_magphase_polar_and_resynthesise_with_the_true_magnitude():
    transform = STFT(128, 32)
    mixture = torch.randn(2, 400)
    spec = transform(mixture)
    magnitude, phase = audio.magphase(spec)
    torch.testing.assert_close(audio.polar(magnitude, phase), spec)
    torch.testing.assert_close(audio.resynthesise(magnitude, spec, transform, 400), mixture, atol=1e-5, rtol=0)
    halves = torch.stack([magnitude / 2, magnitude / 2], dim=-3)  # two sources, each half the mixture
    assert audio.resynthesise(halves, spec, transform, 400).shape == (2, 2, 400)


def write_bytes(path, data):
    path.write_bytes(data)
    return path


def write_float_wav(path, samples):
    soundfile.write(str(path), samples, SR, subtype="FLOAT")
    return path


BAD_FILES = {
    "missing": (lambda d: d / "nope.wav", FileNotFoundError, "nope.wav"),
    "corrupt": (lambda d: write_bytes(d / "bad.wav", np.random.default_rng(0).bytes(2000)), ValueError, "as audio"),
    "zero bytes": (lambda d: write_bytes(d / "zero.wav", b""), ValueError, "could not read"),
    "no samples": (lambda d: write_float_wav(d / "empty.wav", np.zeros((0, 1))), ValueError, "empty"),
    "nan": (lambda d: write_float_wav(d / "nan.wav", np.array([0.0, np.nan, 0.1])), ValueError, "NaN"),
    "inf": (lambda d: write_float_wav(d / "inf.wav", np.array([0.0, np.inf, 0.1])), ValueError, "infinite"),
}


@pytest.mark.parametrize("case", BAD_FILES, ids=list(BAD_FILES))
def test_load_rejects_bad_files_naming_them(tmp_path, case):
    make, error, words = BAD_FILES[case]
    path = make(tmp_path)
    with pytest.raises(error, match=words) as info:
        audio.load(path)
    assert path.name in str(info.value)


BAD_CALLS = {
    "save nan": (lambda: audio.save("never_written.wav", np.array([0.0, np.nan]), SR), "audio"),
    "save time-major": (lambda: audio.save("never_written.wav", np.zeros((100, 2)), SR), "audio"),
    "save bad sr": (lambda: audio.save("never_written.wav", np.zeros(10), 0), "sr"),
    "load bad sr": (lambda: audio.load("never_read.wav", sr=-8000), "sr"),
    "resample bad rate": (lambda: audio.resample(np.zeros(10), SR, -1), "target_sr"),
    "resample fractional rate": (lambda: audio.resample(np.zeros(10), 44100.5, SR), "orig_sr"),
    "resample inf": (lambda: audio.resample(np.array([0.0, np.inf]), SR, 16000), "x"),
    "hop above n_fft": (lambda: STFT(n_fft=256, hop=512), "hop"),
    "zero n_fft": (lambda: STFT(n_fft=0), "n_fft"),
    "float hop": (lambda: STFT(n_fft=256, hop=64.0), "hop"),
    "unknown window": (lambda: STFT(window="triangle-ish"), "window"),
    "one sample": (lambda: STFT(64, 16)(torch.zeros(1)), "at least 2"),
    "empty": (lambda: STFT(64, 16)(torch.zeros(2, 0)), "empty"),
    "nan audio": (lambda: STFT(64, 16)(torch.tensor([0.0, float("nan"), 1.0])), "NaN"),
    "complex audio": (lambda: STFT(64, 16)(torch.zeros(10, dtype=torch.complex64)), "complex"),
    "real spectrogram": (lambda: STFT(64, 16).inverse(torch.zeros(33, 4)), "spec"),
    "wrong bin count": (lambda: STFT(64, 16).inverse(torch.zeros(20, 4, dtype=torch.complex64)), "33 frequency"),
    "non-invertible hop": (lambda: STFT(64, 64).inverse(STFT(64, 64)(torch.randn(300)), 300), "hop"),
    "resynthesise shape": (
        lambda: audio.resynthesise(torch.ones(33, 5), STFT(64, 16)(torch.randn(100)), STFT(64, 16), 100),
        "magnitude",
    ),
}


@pytest.mark.parametrize("case", BAD_CALLS, ids=list(BAD_CALLS))
def test_bad_input_raises_value_error_naming_it(case):
    call, words = BAD_CALLS[case]
    with pytest.raises(ValueError, match=words):
        call()
