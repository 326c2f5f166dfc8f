"""Reading, writing and reshaping audio, and the short-time Fourier transform used throughout.

Audio is shaped ``(channels, time)`` for one signal or ``(batch, channels, time)`` for a batch;
spectrograms add a frequency axis before the frame axis: ``(..., freq, frames)``.

Chapter: foundations/stft_and_masks
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import librosa
import numpy as np
import soundfile
import torch

from sepbook.checks import check_audio, check_sample_rate

# One sample has no time structure to analyse; refuse it rather than return a lone, meaningless frame.
MIN_STFT_SAMPLES = 2


def load(path: str | Path, *, sr: int | None = None, mono: bool = False) -> tuple[np.ndarray, int]:
    """Read an audio file as float32 ``(channels, time)``, resampled to ``sr`` when given.

    Returns ``(audio, sample_rate)``; with ``mono=True`` the channels are averaged to ``(1, time)``.
    Raises ``FileNotFoundError`` for a missing file and ``ValueError`` naming the file when it is not
    audio, is empty, or holds NaN/infinite samples.
    Chapter: foundations/stft_and_masks
    """
    if sr is not None:
        check_sample_rate(sr, "sr")
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"audio file not found: {path}")
    try:
        samples, file_sr = soundfile.read(str(path), dtype="float32", always_2d=True)
    except (soundfile.SoundFileError, RuntimeError) as err:
        raise ValueError(f"could not read {path} as audio: {err}") from None
    audio = np.ascontiguousarray(samples.T)
    check_audio(audio, str(path))
    if mono:
        audio = to_mono(audio)
    if sr is not None and int(sr) != int(file_sr):
        audio = resample(audio, file_sr, sr)
        file_sr = sr
    return audio, int(file_sr)


def save(path: str | Path, audio: Any, sr: int) -> Path:
    """Write ``audio`` shaped ``(channels, time)`` or ``(time,)`` to ``path``; returns the path.

    WAV files are written as 32-bit float so that nothing is clipped or quantised; parent folders
    are created. Accepts numpy arrays or torch tensors.
    Chapter: foundations/stft_and_masks
    """
    check_sample_rate(sr, "sr")
    array = audio.detach().cpu().numpy() if isinstance(audio, torch.Tensor) else np.asarray(audio)
    check_audio(array, "audio")
    if array.ndim == 1:
        array = array[None]
    if array.ndim != 2 or array.shape[0] > array.shape[1]:
        raise ValueError(
            f"audio: expected shape (channels, time) or (time,), got {tuple(array.shape)}"
            " (more channels than samples suggests (time, channels); transpose it)"
        )
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    subtype = "FLOAT" if path.suffix.lower() == ".wav" else None
    soundfile.write(str(path), array.T.astype(np.float32), int(sr), subtype=subtype)
    return path


def to_mono(x: Any) -> Any:
    """Average the channels: ``(..., channels, time) -> (..., 1, time)``; ``(time,)`` becomes ``(1, time)``.

    Works on numpy arrays and torch tensors alike.
    Chapter: foundations/stft_and_masks
    """
    if x.ndim == 1:
        return x[None]
    if isinstance(x, torch.Tensor):
        return x.mean(dim=-2, keepdim=True)
    return np.asarray(x).mean(axis=-2, keepdims=True)


def resample(x: Any, orig_sr: int, target_sr: int) -> Any:
    """Resample along the last (time) axis from ``orig_sr`` to ``target_sr`` with librosa (soxr_hq).

    Shapes ``(..., time) -> (..., time * target_sr / orig_sr)``. Torch tensors come back as tensors
    with the same dtype and device, but the operation is not differentiable.
    Chapter: foundations/stft_and_masks
    """
    check_sample_rate(orig_sr, "orig_sr")
    check_sample_rate(target_sr, "target_sr")
    check_audio(x, "x")
    if int(orig_sr) == int(target_sr):
        return x
    if isinstance(x, torch.Tensor):
        array = x.detach().cpu().numpy()
        out = librosa.resample(array, orig_sr=int(orig_sr), target_sr=int(target_sr), res_type="soxr_hq")
        return torch.from_numpy(np.ascontiguousarray(out)).to(device=x.device, dtype=x.dtype)
    array = np.asarray(x)
    dtype = array.dtype if np.issubdtype(array.dtype, np.floating) else np.float32
    out = librosa.resample(array.astype(dtype), orig_sr=int(orig_sr), target_sr=int(target_sr), res_type="soxr_hq")
    return out.astype(dtype, copy=False)


class STFT:
    """Short-time Fourier transform and its inverse, ``(..., time) <-> complex (..., freq, frames)``.

    ``freq = n_fft // 2 + 1`` and, with ``center=True`` (the default), ``frames = 1 + time // hop``:
    frames are centred on multiples of ``hop`` with zero padding at both ends, so any signal of two or
    more samples can be analysed and ``inverse(forward(x), length)`` gives ``x`` back.
    Chapter: foundations/stft_and_masks
    """

    def __init__(self, n_fft: int = 1024, hop: int = 256, window: str = "hann", center: bool = True):
        for value, name in ((n_fft, "n_fft"), (hop, "hop")):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
                raise ValueError(f"{name}: expected a positive integer, got {value!r}")
        if hop > n_fft:
            raise ValueError(f"hop: expected hop <= n_fft ({n_fft}) so that frames overlap or touch, got {hop}")
        if not hasattr(torch, f"{window}_window"):
            raise ValueError(f"window: expected a torch window name such as 'hann' or 'hamming', got {window!r}")
        self.n_fft, self.hop, self.window, self.center = int(n_fft), int(hop), window, bool(center)
        self._windows: dict[tuple[torch.device, torch.dtype], torch.Tensor] = {}

    @property
    def n_freq(self) -> int:
        """Number of frequency bins, ``n_fft // 2 + 1``."""
        return self.n_fft // 2 + 1

    def __repr__(self) -> str:
        return f"STFT(n_fft={self.n_fft}, hop={self.hop}, window={self.window!r}, center={self.center})"

    def _window(self, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
        key = (device, dtype)
        if key not in self._windows:
            self._windows[key] = getattr(torch, f"{self.window}_window")(self.n_fft, device=device, dtype=dtype)
        return self._windows[key]

    def forward(self, x: Any) -> torch.Tensor:
        """Complex spectrogram of real audio.

        ``(..., time) -> (..., freq, frames)``.
        """
        x = torch.as_tensor(x)
        if x.is_complex():
            raise ValueError("x: expected real audio samples, got a complex tensor")
        if not x.is_floating_point():
            x = x.float()
        check_audio(x, "x", min_samples=MIN_STFT_SAMPLES)
        lead, length = x.shape[:-1], x.shape[-1]
        # zero padding (as librosa does) rather than reflection, which fails on
        # short signals
        spec = torch.stft(
            x.reshape(-1, length), self.n_fft, self.hop,
            window=self._window(x.device, x.dtype),
            center=self.center, pad_mode="constant", return_complex=True,
        )
        return spec.reshape(*lead, *spec.shape[-2:])

    __call__ = forward

    def inverse(self, spec: torch.Tensor, length: int | None = None) -> torch.Tensor:
        """Audio from a complex spectrogram: ``(..., freq, frames) -> (..., length)``.

        Pass the original ``length``; without it the output length is ``hop * (frames - 1)``.
        """
        if not isinstance(spec, torch.Tensor) or not spec.is_complex() or spec.ndim < 2:
            raise ValueError("spec: expected a complex tensor shaped (..., freq, frames)")
        if spec.shape[-2] != self.n_freq:
            raise ValueError(
                f"spec: expected {self.n_freq} frequency bins for n_fft={self.n_fft}, got {spec.shape[-2]}"
            )
        if length is not None and (not isinstance(length, (int, np.integer)) or length < 1):
            raise ValueError(f"length: expected a positive integer, got {length!r}")
        lead = spec.shape[:-2]
        window = self._window(spec.device, spec.real.dtype)
        try:
            audio = torch.istft(
                spec.reshape(-1, *spec.shape[-2:]), self.n_fft, self.hop, window=window,
                center=self.center, length=None if length is None else int(length),
            )
        except RuntimeError as err:
            if "overlap add" not in str(err):
                raise
            raise ValueError(
                f"hop: the {self.window} window with hop={self.hop} leaves gaps that cannot be inverted;"
                f" use hop <= n_fft // 2 ({self.n_fft // 2})"
            ) from None
        return audio.reshape(*lead, audio.shape[-1])


def stft(x: Any, n_fft: int, hop: int, window: str = "hann") -> torch.Tensor:
    """Functional form of :class:`STFT`: ``(..., time) -> complex (..., freq, frames)``.

    Chapter: foundations/stft_and_masks
    """
    return STFT(n_fft, hop, window).forward(x)


def istft(
    spec: torch.Tensor, n_fft: int, hop: int, length: int | None = None, window: str = "hann"
) -> torch.Tensor:
    """Functional form of :meth:`STFT.inverse`: ``complex (..., freq, frames) -> (..., length)``.

    Chapter: foundations/stft_and_masks
    """
    return STFT(n_fft, hop, window).inverse(spec, length)


def magphase(spec: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Split a complex spectrogram into magnitude and phase angle (radians), both ``(..., freq, frames)``.

    Chapter: foundations/stft_and_masks
    """
    if not isinstance(spec, torch.Tensor) or not spec.is_complex():
        raise ValueError("spec: expected a complex tensor")
    return spec.abs(), spec.angle()


def polar(magnitude: torch.Tensor, phase: torch.Tensor) -> torch.Tensor:
    """Complex spectrogram from magnitude and phase angle (broadcasting): the inverse of :func:`magphase`.

    Chapter: foundations/stft_and_masks
    """
    magnitude, phase = torch.broadcast_tensors(magnitude, phase.to(magnitude.dtype))
    return torch.polar(magnitude, phase)


def resynthesise(magnitude: torch.Tensor, mixture_spec: torch.Tensor, stft: STFT, length: int) -> torch.Tensor:
    """Waveform from an estimated magnitude, borrowing the mixture's phase.

    ``magnitude`` is ``(..., freq, frames)`` or ``(..., K, freq, frames)`` for K sources, with
    ``mixture_spec`` shaped ``(..., freq, frames)``; returns ``(..., time)`` or ``(..., K, time)``.
    Chapter: foundations/stft_and_masks
    """
    if not isinstance(mixture_spec, torch.Tensor) or not mixture_spec.is_complex():
        raise ValueError("mixture_spec: expected a complex spectrogram (..., freq, frames)")
    if magnitude.shape[-2:] != mixture_spec.shape[-2:]:
        raise ValueError(
            f"magnitude: expected (freq, frames) = {tuple(mixture_spec.shape[-2:])} like mixture_spec,"
            f" got {tuple(magnitude.shape[-2:])}"
        )
    phase = mixture_spec.angle()
    if magnitude.ndim == mixture_spec.ndim + 1:
        phase = phase.unsqueeze(-3)
    return stft.inverse(polar(magnitude, phase), length)


# ----------------------------------------------------------------------------- the spectrogram chapters' front end
# The adversarial, activity and transcription chapters feed their U-Nets log-compressed linear
# magnitudes of one STFT, with the Nyquist bin dropped so that the bins halve evenly.


def front_end(cfg: Mapping[str, Any]) -> STFT:
    """The STFT of a chapter's settings (the adversarial paper: 512-point FFT, hop 256 at 8192 Hz)."""
    return STFT(cfg["n_fft"], cfg["hop"])


def n_bins(cfg: Mapping[str, Any]) -> int:
    """Frequency bins the networks see: ``n_fft // 2``, the Nyquist bin dropped (257 -> 256 in the paper)."""
    return cfg["n_fft"] // 2


def magnitudes(cfg: Mapping[str, Any], waves: torch.Tensor) -> torch.Tensor:
    """Linear STFT magnitudes of ``(..., time)`` waveforms without the Nyquist bin: ``(..., n_fft // 2, frames)``."""
    return front_end(cfg)(torch.as_tensor(waves))[..., : n_bins(cfg), :].abs()


def log_magnitude(magnitude: torch.Tensor) -> torch.Tensor:
    """Log-normalise magnitudes, ``x -> log(1 + x)`` (Stoller et al. 2018, Sec. 4.3.1).

    Any shape; values must be >= 0.
    """
    _check_magnitude(magnitude)
    return torch.log1p(magnitude)


def inverse_log_magnitude(log_mag: torch.Tensor) -> torch.Tensor:
    """Undo :func:`log_magnitude`, ``y -> exp(y) - 1``; any shape."""
    return torch.expm1(log_mag)


def _check_magnitude(magnitude) -> None:
    if not isinstance(magnitude, torch.Tensor):
        raise ValueError(
            f"magnitude: expected a torch tensor, got {type(magnitude).__name__}"
        )
    if magnitude.is_complex():
        raise ValueError(
            "magnitude: got a complex spectrogram; take its magnitude (abs) first"
        )
    if bool((magnitude < 0).any()):
        raise ValueError("magnitude: magnitudes must be non-negative")
