"""Sampled instruments: a song's parts played through a General-MIDI SoundFont, as Slakh2100 was made.

A SoundFont holds recordings of real instruments, one set per General-MIDI program, with the
envelopes and loops that make them playable at any pitch and velocity. :func:`render_part`
plays one part's notes through one font with TinySoundFont, offline and deterministically,
and returns its stem. The book uses three free fonts that Debian packages (and Colab installs
the same way): it trains on two and keeps the third unheard, to measure how far what a model
learns carries past the instruments it was trained on.

Chapter: foundations/synthesiser
"""
from __future__ import annotations

import functools
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np

#: Font name -> (Debian package, file inside /usr/share/sounds).
FONTS: dict[str, tuple[str, str]] = {
    "FluidR3_GM": ("fluid-soundfont-gm", "sf2/FluidR3_GM.sf2"),
    "MuseScore_General": ("musescore-general-soundfont", "sf3/MuseScore_General.sf3"),
    "TimGM6mb": ("timgm6mb-soundfont", "sf2/TimGM6mb.sf2"),
}
#: The fonts the book's corpora are played by (each part draws one), and the one no model hears.
TRAINING_FONTS: tuple[str, ...] = ("FluidR3_GM", "MuseScore_General")
HELD_OUT_FONT = "TimGM6mb"
#: General-MIDI programs (0-based) each instrument may be played with; a part draws one. Bass,
#: guitar and piano take their whole General-MIDI family (as Slakh2100's instrument classes do):
#: a separator that hears eight sounds per instrument carries over to a font it never heard far
#: better than one that hears four (``python benchmarks/run.py carryover``).
PROGRAMS: dict[str, tuple[int, ...]] = {
    "bass": tuple(range(32, 40)), "guitar": tuple(range(24, 32)), "piano": tuple(range(0, 8)),
    "electric_guitar": (29, 30), "acoustic_guitar": (24, 25), "violin": (40,),
    "clarinet": (71,), "saxophone": (64, 65, 66), "bassoon": (70,),
}
#: General-MIDI drum kits (bank 128 presets); a font without a kit falls back to the standard one.
DRUM_KITS: tuple[int, ...] = (0, 8, 16, 24, 25, 32, 40, 48)
SEARCH_ENV = "SEPBOOK_SOUNDFONTS"


def path(font: str) -> Path:
    """The file of ``font``: in ``$SEPBOOK_SOUNDFONTS`` if set, else where Debian installs it."""
    if font not in FONTS:
        raise ValueError(f"font: unknown SoundFont {font!r}; choose one of {sorted(FONTS)}")
    package, relative = FONTS[font]
    roots = [Path(os.environ[SEARCH_ENV])] if os.environ.get(SEARCH_ENV) else []
    roots += [Path("/usr/share/sounds"), Path(sys.prefix) / "share" / "sounds"]
    for root in roots:
        for candidate in (root / relative, root / Path(relative).name):
            if candidate.is_file():
                return candidate
    raise FileNotFoundError(
        f"SoundFont {font!r} ({Path(relative).name}) not found in {[str(r) for r in roots]}: install it "
        f"with 'sudo apt-get install {package}' (make setup does this as root), or put the file in "
        f"${SEARCH_ENV}")


def missing() -> list[str]:
    """The Debian packages still to install for every font, and ``tinysoundfont`` if it is absent."""
    packages = []
    for font, (package, _) in FONTS.items():
        try:
            path(font)
        except FileNotFoundError:
            packages.append(package)
    try:
        import tinysoundfont  # noqa: F401
    except ImportError:
        packages.append("tinysoundfont")
    return packages


def install() -> None:
    """Install what :func:`missing` lists, as root with apt-get and pip (Colab; ``make setup``).

    ``tinysoundfont`` is installed without its declared ``pyaudio``, which it needs only for live
    playback. Elsewhere this raises with the commands to run.
    """
    needed = missing()
    if "tinysoundfont" in needed:
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "tinysoundfont"],
                       check=True)
    packages = [p for p in needed if p != "tinysoundfont"]
    if packages:
        if os.geteuid() != 0 or not shutil.which("apt-get"):
            raise RuntimeError(f"SoundFonts missing: run 'sudo apt-get install {' '.join(packages)}'")
        print(f"installing {' '.join(packages)} with apt-get")
        subprocess.run(["apt-get", "update", "-qq"], check=True, stdout=subprocess.DEVNULL)
        subprocess.run(["apt-get", "install", "-y", "-qq", *packages], check=True, stdout=subprocess.DEVNULL,
                       env=dict(os.environ, DEBIAN_FRONTEND="noninteractive"))


def ensure() -> None:
    """Install what is missing where that is possible (as root with apt-get, as on Colab; pip for
    ``tinysoundfont``); otherwise print what to install. A chapter page's set-up calls this."""
    if not missing():
        return
    try:
        install()
    except (RuntimeError, subprocess.CalledProcessError) as error:
        print(f"Sampled instruments unavailable: {error}")


@functools.lru_cache(maxsize=None)
def _loaded(font: str):
    """One synth per font: reading a font takes seconds, so a process does it once."""
    import tinysoundfont

    synth = tinysoundfont.Synth()
    return synth, synth.sfload(str(path(font)))


def _synth(font: str, sr: int):
    """``font``'s synth, playing at ``sr``. Switching the output rate of a loaded font gives the same
    samples as loading it at that rate (``tests/data/test_soundfonts.py``)."""
    from tinysoundfont import _tinysoundfont

    synth, font_id = _loaded(font)
    if synth.samplerate != sr:
        synth.samplerate = sr
        synth.soundfonts[font_id].set_output(_tinysoundfont.OutputMode.StereoInterleaved, sr, synth.gain)
    return synth, font_id


def _silence(synth, block: int = 1024, limit: int = 1000) -> None:
    """Stop every voice and play on until the synth is silent: a stopped voice still fades out."""
    synth.sounds_off()
    for _ in range(limit):
        if not np.any(np.frombuffer(synth.generate_simple(block), np.float32)):
            return
    raise RuntimeError("the SoundFont synth did not fall silent after sounds_off()")


def _events(notes: np.ndarray, sr: int) -> list[tuple[int, int, int, int]]:
    """Notes ``(n, 4)`` -> ``(sample, order, pitch, velocity)`` sorted, note-offs before note-ons."""
    events = []
    for onset, offset, pitch, velocity in np.asarray(notes, dtype=np.float64).reshape(-1, 4):
        start = int(round(onset * sr))
        events.append((start, 1, int(pitch), int(np.clip(velocity, 1, 127))))
        events.append((max(int(round(offset * sr)), start + 1), 0, int(pitch), 0))
    return sorted(events)


def render_part(notes: np.ndarray, program: int, *, drums: bool = False, font: str = TRAINING_FONTS[0],
                sr: int = 16000, n_samples: int) -> np.ndarray:
    """Play ``notes`` ``(n, 4)`` (onset_s, offset_s, MIDI pitch, velocity) on General-MIDI
    ``program`` of ``font``; -> float32 ``(n_samples,)``, the left and right channels averaged.

    ``drums=True`` plays drum kit ``program`` on the percussion channel. Every call starts from
    silence, so a stem never hears another's release; the same arguments give the same samples.
    """
    synth, font_id = _synth(font, int(sr))
    channel = 9 if drums else 0
    _silence(synth)
    try:
        synth.program_select(channel, font_id, 0, int(program), is_drums=drums)
    except RuntimeError:                                  # this font has no such kit or program
        synth.program_select(channel, font_id, 0, 0, is_drums=drums)
    stereo = np.zeros((n_samples, 2), np.float32)
    position = 0
    for sample, is_on, pitch, velocity in _events(notes, sr) + [(n_samples, 0, -1, 0)]:
        sample = min(sample, n_samples)
        if sample > position:
            block = synth.generate_simple(sample - position)
            stereo[position:sample] = np.frombuffer(block, np.float32).reshape(-1, 2)
            position = sample
        if pitch < 0 or position >= n_samples:
            break
        if is_on:
            synth.noteon(channel, pitch, velocity)
        else:
            synth.noteoff(channel, pitch)
    _silence(synth)
    return stereo.mean(axis=1)
