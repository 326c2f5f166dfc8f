"""Audio players for mixture, estimates and references.

In a live notebook :func:`compare` shows an ipywidgets switcher (one player, buttons to change the
source); in the static HTML, where widgets have no kernel behind them, it shows plain players.

Chapter: foundations/first_separator
"""
from __future__ import annotations

import base64
import html
import io
from typing import Any, Mapping

import numpy as np
import soundfile as sf

from sepbook.book import static_build
from sepbook.checks import check_audio


def _mono(audio: Any, name: str) -> np.ndarray:
    if hasattr(audio, "detach"):
        audio = audio.detach().cpu().float().numpy()
    x = np.asarray(audio, dtype=np.float32)
    while x.ndim > 1:
        x = x.mean(axis=0) if x.shape[0] <= 2 and x.ndim == 2 else x[0]
    check_audio(x, name)
    return x


def _wav_base64(x: np.ndarray, sr: int) -> str:
    buffer = io.BytesIO()
    sf.write(buffer, x, sr, format="WAV", subtype="PCM_16")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _joint_scale(tracks: Mapping[str, np.ndarray]) -> float:
    # one gain for all players so that relative loudness (e.g. leakage) stays audible
    peak = max(float(np.abs(x).max()) for x in tracks.values())
    return 0.9 / peak if peak > 0 else 1.0


def players(tracks: Mapping[str, Any], sr: int):
    """Plain HTML audio players, one per named track (mono mix of ``(channels, time)`` or ``(time,)``)."""
    from IPython.display import HTML

    if not tracks:
        raise ValueError("tracks: expected at least one named audio track")
    mono = {name: _mono(audio, f"tracks[{name!r}]") for name, audio in tracks.items()}
    gain = _joint_scale(mono)
    rows = "".join(
        f'<tr><td style="padding-right:1em"><b>{html.escape(name)}</b></td>'
        f'<td><audio controls preload="none" aria-label="{html.escape(name, quote=True)}" src="data:audio/wav;base64,{_wav_base64(np.clip(x * gain, -1, 1), sr)}">'
        f"</audio></td></tr>"
        for name, x in mono.items()
    )
    return HTML(f"<table>{rows}</table>")


def switcher(tracks: Mapping[str, Any], sr: int):
    """An ipywidgets source switcher: toggle buttons choose which track the single player plays."""
    import ipywidgets as widgets
    from IPython.display import Audio, display

    if not tracks:
        raise ValueError("tracks: expected at least one named audio track")
    mono = {name: _mono(audio, f"tracks[{name!r}]") for name, audio in tracks.items()}
    gain = _joint_scale(mono)
    buttons = widgets.ToggleButtons(options=list(mono))
    output = widgets.Output()

    def play(change=None):
        output.clear_output(wait=True)
        with output:
            display(Audio(np.clip(mono[buttons.value] * gain, -1, 1), rate=sr, normalize=False))

    buttons.observe(play, names="value")
    play()
    return widgets.VBox([buttons, output])


def compare(tracks: Mapping[str, Any], sr: int):
    """The switcher in a live notebook; plain players in the static HTML or without ipywidgets."""
    if static_build():
        return players(tracks, sr)
    try:
        return switcher(tracks, sr)
    except ImportError:
        return players(tracks, sr)
