"""The bad-input table: each kind of bad input fails early with an error naming what is wrong."""
import numpy as np
import pytest
import soundfile as sf
import torch

from sepbook import audio, masks, metrics
from sepbook.checks import check_audio
from sepbook.data import layouts
from sepbook.data.datasets import SongDataset


def _musdb_without_bass(root):
    from sepbook.data.synth import synthesize_song

    layouts.write_musdb(root, [synthesize_song(1, seconds=1.0, sr=8000)], sr=8000)
    next(root.glob("train/*/bass.wav")).unlink()
    return root


def _corrupt_wav(path):
    path.write_bytes(b"RIFF\x00\x00garbage" * 50)
    return path


def _wav(path, samples, sr=8000):
    sf.write(path, samples, sr, subtype="FLOAT")
    return path


CASES = {
    "wrong sample rate": (lambda d: check_audio(np.zeros((1, 100)), "mixture", sr=8000, expected_sr=16000),
                          ValueError, r"mixture: sample rate is 8000 Hz, expected 16000"),
    "wrong channel count": (lambda d: check_audio(np.zeros((2, 100)), "mixture", channels=1),
                            ValueError, r"mixture: expected 1 channel"),
    "NaN samples": (lambda d: metrics.si_sdr(torch.tensor([1.0, float("nan")]), torch.ones(2)),
                    ValueError, "NaN"),
    "Inf samples in a file": (lambda d: audio.load(_wav(d / "inf.wav", np.array([0.1, np.inf, 0.2]))),
                              ValueError, "inf.wav"),
    "empty audio": (lambda d: audio.STFT(256, 64)(torch.zeros(1, 0)), ValueError, "empty"),
    "too-short audio": (lambda d: check_audio(np.zeros(10), "segment", min_samples=256), ValueError,
                        "segment: audio is too short: 10 samples"),
    "mismatched source lengths": (lambda d: masks.oracle_separation(np.zeros((1, 1000)), np.zeros((2, 1, 900))),
                                  ValueError, "1000|900"),
    "missing stem file": (lambda d: layouts.open_musdb(_musdb_without_bass(d / "musdb")), FileNotFoundError,
                          "bass.wav"),
    "corrupt WAV": (lambda d: audio.load(_corrupt_wav(d / "broken.wav")), ValueError, "broken.wav"),
    "empty dataset folder": (lambda d: layouts.open_musdb(d), (ValueError, FileNotFoundError), str),
    "empty song list": (lambda d: SongDataset([], ["vocals"], 8000), ValueError, "tracks"),
}


@pytest.mark.parametrize("case", CASES, ids=list(CASES))
def test_bad_input_is_rejected_with_a_clear_message(case, tmp_path):
    call, error, match = CASES[case]
    with pytest.raises(error) as raised:
        call(tmp_path)
    pattern = str(tmp_path.name) if match is str else match
    assert raised.match(pattern), f"{case}: message {raised.value!s:.200} does not name {pattern!r}"
