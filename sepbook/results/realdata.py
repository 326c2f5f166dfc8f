"""The real datasets the ``paper`` profile reads: where each chapter finds them, and miniatures of them.

:data:`SOURCES` says, per chapter, what to download, the environment variable that points the book
at it and the layout the loaders expect (the page "Run it on the real data" shows it). The
``write_*`` functions write a few seconds of made-up audio per song in exactly those layouts, with
the quirks of the real sets: 16-bit stereo WAV at 44.1 kHz, MUSDB's own validation song names,
Slakh's ``metadata.yaml`` grouped by ``inst_class`` with unrendered stems, two stems of one class,
FLAC audio, MIDI with a tempo change and a mix that is not the sum of its stems, an instrumental
song among the vocal ones. The tests run every chapter's ``paper`` configuration on them
(``tests/data/test_paper_profile.py``), and :func:`measure` times the paper configurations on them.

Chapter: real_data/run_on_real_data
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import soundfile

#: The real sets' sample rate.
SR = 44100


@dataclass(frozen=True)
class RealData:
    """What one chapter's ``paper`` profile reads."""

    datasets: str
    download: str
    variables: tuple[str, ...]
    layout: str


SOURCES: dict[str, RealData] = {
    "foundations": RealData(
        "MUSDB18-HQ", "https://zenodo.org/records/3338373 (the WAV release)", ("MUSDB_PATH",),
        "$MUSDB_PATH/{train,test}/<song>/{mixture,vocals,drums,bass,other}.wav; musdb's own 14 "
        "validation songs are held out of train/"),
    "adversarial": RealData(
        "DSD100, MedleyDB, CCMixter, iKala", "DSD100: https://sigsep.github.io/datasets/dsd100.html; "
        "MedleyDB: https://medleydb.weebly.com; CCMixter and iKala: from their authors",
        ("SEPBOOK_ADVERSARIAL_DATA",),
        "$SEPBOOK_ADVERSARIAL_DATA/{DSD100/train,DSD100/test,MedleyDB,CCMixter,iKala}/<song>/"
        "{vocals,accompaniment}.wav (convert each set once; instrumental songs are skipped)"),
    "transcription": RealData(
        "Slakh2100 (redux)", "https://zenodo.org/records/4599666", ("SLAKH_PATH",),
        "$SLAKH_PATH/{train,validation,test}/TrackNNNNN/ with metadata.yaml, stems/SNN.flac, "
        "MIDI/SNN.mid and mix.flac, as released"),
    "activity": RealData(
        "MUSDB18-HQ and MedleyDB (or Mixing Secrets) stems", "https://zenodo.org/records/3338373 and "
        "https://medleydb.weebly.com", ("MUSDB_PATH", "SEPBOOK_MEDLEY_PATH"),
        "$MUSDB_PATH as for Foundations; $SEPBOOK_MEDLEY_PATH/{train,test}/<song>/<instrument>.wav for "
        "vocals, bass, drums, piano, electric_guitar and acoustic_guitar, each the sum of the song's "
        "stems of that class (an instrument a song lacks is left out)"),
    "metatasnet": RealData(
        "MUSDB18-HQ", "https://zenodo.org/records/3338373 (the WAV release)", ("MUSDB_PATH",),
        "as for Foundations"),
    "transfer": RealData(
        "MUSDB18-HQ, Slakh2100, Bach10, Dagstuhl ChoirSet, Remixpacks",
        "each from its authors (the paper's Table 1)", ("TRANSFER_DATA",),
        "$TRANSFER_DATA/<set>/{train,test,valid}/<song>/<source>.wav for the sets musdb, slakh, "
        "musdb+slakh, bach10, dagstuhl and remixpacks, each holding the sources of the paper's Table 1"),
}

#: MUSDB18's validation songs (``musdb``'s list), two of which the miniature puts in train/.
MUSDB_VALIDATION = ("Actions - One Minute Smile", "Triviul - Angelsaint")
MUSDB_STEMS = ("vocals", "drums", "bass", "other")


# --------------------------------------------------------------------------------------------
# made-up audio: a tone per note, noise bursts for drums
# --------------------------------------------------------------------------------------------


def _notes(rng: np.random.Generator, seconds: float, low: int, high: int) -> np.ndarray:
    """``(n, 3)`` onset, offset (seconds) and MIDI pitch: one note every 0.25-0.5 s."""
    rows, t = [], 0.0
    while t < seconds - 0.2:
        length = float(rng.uniform(0.25, 0.5))
        rows.append([t, min(t + length * 0.9, seconds), int(rng.integers(low, high + 1))])
        t += length
    return np.array(rows, dtype=np.float64).reshape(-1, 3)


def _render(notes: np.ndarray, seconds: float, sr: int, brightness: float) -> np.ndarray:
    """A plucked harmonic tone for every note, mono float32 ``(time,)``."""
    out = np.zeros(int(round(seconds * sr)), np.float32)
    for onset, offset, pitch in notes:
        start, stop = int(onset * sr), int(offset * sr)
        t = np.arange(stop - start) / sr
        f0 = 440.0 * 2 ** ((pitch - 69) / 12)
        harmonics = [h for h in range(1, 8) if h * f0 < sr / 2]
        tone = sum(brightness ** (h - 1) * np.sin(2 * np.pi * h * f0 * t) for h in harmonics)
        out[start:stop] += (0.2 * np.exp(-3 * t) * tone).astype(np.float32)
    return out


def _drums(rng: np.random.Generator, seconds: float, sr: int) -> np.ndarray:
    out = np.zeros(int(round(seconds * sr)), np.float32)
    hit = int(0.05 * sr)
    for onset in np.arange(0.0, seconds - 0.06, 0.25):
        start = int(onset * sr)
        out[start:start + hit] += (0.3 * rng.standard_normal(hit) * np.exp(-np.arange(hit) / (0.01 * sr)))
    return out


#: Pitch range and brightness of each made-up instrument.
_VOICES = {"vocals": (55, 76, 0.5), "bass": (28, 45, 0.3), "other": (48, 72, 0.7), "piano": (40, 84, 0.6),
           "guitar": (40, 76, 0.8), "violin": (55, 88, 0.7), "saxophone": (49, 80, 0.6),
           "bassoon": (34, 65, 0.5), "clarinet": (50, 84, 0.4)}


def stem(name: str, seconds: float, sr: int = SR, seed: int = 0) -> np.ndarray:
    """A few seconds of made-up audio for a stem called ``name``, mono float32 ``(time,)``."""
    rng = np.random.default_rng([seed, sum(map(ord, name))])
    if any(word in name for word in ("drum", "kick", "snare", "cymbal")):
        return _drums(rng, seconds, sr)
    low, high, brightness = next((v for k, v in _VOICES.items() if k in name), (45, 80, 0.6))
    return _render(_notes(rng, seconds, low, high), seconds, sr, brightness)


def _write(path: Path, audio: np.ndarray, sr: int = SR, channels: int = 2, subtype: str = "PCM_16") -> None:
    """``audio`` ``(time,)`` as a file of ``channels`` identical channels (soundfile: time first)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    soundfile.write(str(path), np.repeat(np.clip(audio, -1, 1)[:, None], channels, axis=1), sr, subtype=subtype)


def _stem_song(folder: Path, names: Sequence[str], seconds: float, seed: int, silent: Sequence[str] = ()) -> None:
    for name in names:
        audio = stem(name, seconds, seed=seed)
        _write(folder / f"{name}.wav", audio * 0 if name in silent else audio)


# --------------------------------------------------------------------------------------------
# the layouts
# --------------------------------------------------------------------------------------------


def write_musdb18hq(root: str | Path, n_train: int = 4, n_test: int = 2, seconds: float = 3.0) -> Path:
    """MUSDB18-HQ in miniature: ``root/{train,test}/<song>/`` with ``mixture.wav`` and the four stems,
    16-bit stereo at 44.1 kHz; the mixture is the stems' sum, clipped and quantised as the release is.
    The last two training songs carry names from ``musdb``'s validation list. -> ``root``."""
    root = Path(root)
    names = {"train": [f"Artist {i} - Song {i}" for i in range(n_train - len(MUSDB_VALIDATION))]
             + list(MUSDB_VALIDATION), "test": [f"Band {i} - Tune {i}" for i in range(n_test)]}
    for subset, songs in names.items():
        for seed, song in enumerate(songs):
            stems = {name: stem(name, seconds, seed=seed + 100 * (subset == "test")) for name in MUSDB_STEMS}
            for name, audio in stems.items():
                _write(root / subset / song / f"{name}.wav", audio)
            _write(root / subset / song / "mixture.wav", sum(stems.values()))
    return root


#: Slakh2100's stems of a track in the miniature: (inst_class, program_num, is_drum, rendered).
#: Two guitars (grouped into one Guitar source), a drum kit numbered 128, an unrendered string part.
SLAKH_STEMS = (("Bass", 33, False, True), ("Guitar", 25, False, True), ("Guitar", 29, False, True),
               ("Piano", 0, False, True), ("Drums", 128, True, True), ("Strings (continued)", 48, False, False))
#: The miniature's MIDI: 120 bpm for its first two seconds, then 90 bpm.
SLAKH_TEMPI = ((0.0, 120.0), (2.0, 90.0))


def write_slakh2100(root: str | Path, tracks: dict[str, int] | None = None, seconds: float = 5.0) -> Path:
    """Slakh2100 (redux) in miniature: ``root/{train,validation,test}/TrackNNNNN/`` with
    ``metadata.yaml`` as the release writes it (no stem names: ``inst_class``, ``program_num``,
    ``is_drum``, ``audio_rendered``, ...), mono 16-bit FLAC stems at 44.1 kHz (none for an unrendered
    stem), ``MIDI/SNN.mid`` with a tempo change and ``mix.flac`` normalised as a whole, so not the sum
    of the stems. ``tracks`` gives the number of tracks per split. -> ``root``."""
    import yaml

    root = Path(root)
    number = 1
    for split, count in (tracks or {"train": 4, "validation": 1, "test": 2}).items():
        for _ in range(count):
            folder = root / split / f"Track{number:05d}"
            rng = np.random.default_rng(number)
            entries, rendered = {}, []
            for index, (inst_class, program, is_drum, has_audio) in enumerate(SLAKH_STEMS):
                stem_id = f"S{index:02d}"
                low, high, brightness = _VOICES.get(inst_class.lower(), (48, 72, 0.6))
                notes = _notes(rng, seconds, 35 if is_drum else low, 50 if is_drum else high)
                _write_midi(folder / "MIDI" / f"{stem_id}.mid", notes, program, is_drum)
                if has_audio:
                    audio = _drums(rng, seconds, SR) if is_drum else _render(notes, seconds, SR, brightness)
                    _write(folder / "stems" / f"{stem_id}.flac", audio, channels=1)
                    rendered.append(audio)
                entries[stem_id] = {"audio_rendered": has_audio, "inst_class": inst_class,
                                    "integrated_loudness": float(round(rng.uniform(-20, -12), 2)),
                                    "is_drum": is_drum, "midi_program_name": inst_class, "midi_saved": True,
                                    "plugin_name": f"{inst_class.split()[0].lower()}.nkm", "program_num": program}
            mix = sum(rendered)
            _write(folder / "mix.flac", 0.9 * mix / np.abs(mix).max(), channels=1)
            metadata = {"UUID": f"{number:032x}", "audio_dir": "stems", "lmd_midpath": f"lmd_matched/{number}.mid",
                        "midi_dir": "MIDI", "normalization_factor": -13.0, "normalized": True,
                        "overall_gain": float(0.9 / np.abs(mix).max()), "stems": entries, "target_peak": -1.0}
            (folder / "metadata.yaml").write_text(yaml.safe_dump(metadata))
            number += 1
    return root


def _write_midi(path: Path, notes: np.ndarray, program: int, is_drum: bool) -> None:
    """``notes`` (seconds) as a one-track MIDI file whose tempo changes as :data:`SLAKH_TEMPI` says."""
    import mido

    resolution = 480
    (_, first_bpm), (change, second_bpm) = SLAKH_TEMPI

    def tick(seconds: float) -> int:
        if seconds <= change:
            return round(seconds * first_bpm / 60 * resolution)
        return round(change * first_bpm / 60 * resolution + (seconds - change) * second_bpm / 60 * resolution)

    channel = 9 if is_drum else 0
    events = [(0, mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(first_bpm))),
              (tick(change), mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(second_bpm))),
              (0, mido.Message("program_change", program=0 if is_drum else program, channel=channel))]
    for onset, offset, pitch in notes:
        events.append((tick(onset), mido.Message("note_on", note=int(pitch), velocity=90, channel=channel)))
        events.append((tick(offset), mido.Message("note_off", note=int(pitch), velocity=0, channel=channel)))
    track, now = mido.MidiTrack(), 0
    for at, message in sorted(events, key=lambda e: (e[0], e[1].type != "note_off")):
        track.append(message.copy(time=at - now))
        now = at
    path.parent.mkdir(parents=True, exist_ok=True)
    mido.MidiFile(ticks_per_beat=resolution, tracks=[track]).save(str(path))


def write_adversarial(root: str | Path, songs_per_set: int = 3, seconds: float = 3.0) -> Path:
    """The adversarial chapter's four sets, converted as ``data/README.md`` says:
    ``root/{DSD100/train,DSD100/test,MedleyDB,CCMixter,iKala}/<song>/{vocals,accompaniment}.wav``.
    MedleyDB holds one instrumental song more (a silent ``vocals.wav``), which the loader skips. -> ``root``."""
    root = Path(root)
    folders = ["DSD100/train", "DSD100/test", "MedleyDB", "CCMixter", "iKala"]
    for offset, folder in enumerate(folders):
        for i in range(songs_per_set):
            seed = 10 * offset + i
            _write(root / folder / f"{i:03d} - Song" / "vocals.wav", stem("vocals", seconds, seed=seed))
            _write(root / folder / f"{i:03d} - Song" / "accompaniment.wav",
                   stem("other", seconds, seed=seed) + stem("bass", seconds, seed=seed) + stem("drums", seconds, seed=seed))
    _stem_song(root / "MedleyDB" / "999 - Instrumental", ("vocals", "accompaniment"), seconds, 99, silent=("vocals",))
    return root


#: Which of the six instruments each miniature MedleyDB song holds: every instrument in some song.
MEDLEY_LINEUPS = (("vocals", "bass", "drums", "piano"), ("vocals", "bass", "electric_guitar"),
                  ("bass", "drums", "acoustic_guitar", "piano"), ("vocals", "drums", "electric_guitar", "acoustic_guitar"))


def write_medley(root: str | Path, n_train: int = 4, n_test: int = 2, seconds: float = 3.0) -> Path:
    """MedleyDB-style stems for the activity chapter: ``root/{train,test}/<song>/<instrument>.wav``,
    each song holding only the instruments it plays (:data:`MEDLEY_LINEUPS`). -> ``root``."""
    root = Path(root)
    for subset, count in (("train", n_train), ("test", n_test)):
        for i in range(count):
            lineup = MEDLEY_LINEUPS[i % len(MEDLEY_LINEUPS)]
            _stem_song(root / subset / f"Medley{i:02d}_{subset}", lineup, seconds, seed=i + 50 * (subset == "test"))
    return root


def write_transfer(root: str | Path, songs: tuple[int, int, int] = (2, 2, 1), seconds: float = 3.0) -> Path:
    """The transfer chapter's six sets: ``root/<set>/{train,test,valid}/<song>/<source>.wav`` holding
    the sources of the paper's Table 1 (:data:`sepbook.recipes.transfer.data.SOURCES`); ``songs`` is
    (train, test, valid) songs per set. -> ``root``."""
    from sepbook.recipes.transfer.data import SOURCES as SETS

    root = Path(root)
    for offset, (name, sources) in enumerate(SETS.items()):
        for subset, count in zip(("train", "test", "valid"), songs):
            for i in range(count):
                _stem_song(root / name / subset / f"{name}-{i:02d}", sources, seconds, seed=100 * offset + i)
    return root


def write_all(root: str | Path, seconds: float = 3.0) -> dict[str, str]:
    """Every miniature under ``root``; -> the environment variables that point the book at them."""
    root = Path(root)
    return {"MUSDB_PATH": str(write_musdb18hq(root / "musdb18hq", seconds=seconds)),
            "SLAKH_PATH": str(write_slakh2100(root / "slakh2100", seconds=max(seconds, 5.0))),
            "SEPBOOK_ADVERSARIAL_DATA": str(write_adversarial(root / "adversarial", seconds=seconds)),
            "SEPBOOK_MEDLEY_PATH": str(write_medley(root / "medley", seconds=seconds)),
            "TRANSFER_DATA": str(write_transfer(root / "transfer", seconds=seconds))}



# --------------------------------------------------------------------------------------------
# what a paper configuration costs: a few steps on this CPU, scaled
# --------------------------------------------------------------------------------------------

#: The run measured per chapter (its main system) and the setting that counts its steps.
MEASURED_RUN = {"foundations": ("BLSTM", "steps"), "adversarial": ("VA", "steps"),
                "transcription": ("supervised", "separator_steps"), "activity": ("IASS musdb", "steps"),
                "metatasnet": ("meta", "steps"), "transfer": ("pre-musdb+slakh-none", "pretrain_steps")}
#: Chapters measured on shorter excerpts than the paper's, then scaled in proportion: a step of a
#: convolutional or recurrent network costs time and activation memory in proportion to its length,
#: and Meta-TasNet's 8 s at 32 kHz would not fit this machine's memory at all.
SHORTER_EXCERPTS = {"metatasnet": 1.0, "transfer": 2.0}
#: NVIDIA's data sheet: the T4 (Colab's free GPU) peaks at 8.1 TFLOP/s in float32.
T4_FLOPS = 8.1e12
#: Where :func:`main` writes the measurements the page "Run it on the real data" shows.
COSTS = Path(__file__).resolve().parents[2] / "chapters" / "real_data" / "results" / "paper_costs.json"


def matmul_flops(size: int = 1024, repeats: int = 20) -> float:
    """This CPU's float32 matrix-multiply throughput on one thread, in FLOP/s (best of ``repeats``)."""
    import time

    import torch

    a, b = torch.randn(size, size), torch.randn(size, size)
    best = math.inf
    for _ in range(repeats):
        started = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - started)
    return 2 * size ** 3 / best


def _train_seconds(module, cfg: dict, variant: str) -> tuple[float, object, int]:
    """Wall seconds of training ``variant`` under ``cfg``, the model, and the bytes autograd saved."""
    import time

    import torch

    saved: dict[int, int] = {}

    def keep(tensor):  # a tensor saved twice, or two views of one storage, counts once
        base = tensor if tensor._base is None else tensor._base
        if base.is_leaf and base.requires_grad:  # a weight, counted with the parameters
            return tensor
        storage = tensor.untyped_storage()
        saved[storage.data_ptr()] = max(saved.get(storage.data_ptr(), 0), storage.nbytes())
        return tensor

    splits = module.data(cfg)
    started = time.perf_counter()
    with torch.autograd.graph.saved_tensors_hooks(keep, lambda tensor: tensor):
        model, _ = module.train(cfg, splits, variant, 0, progress=False, live=False)
    return time.perf_counter() - started, model, sum(saved.values())


def measure(chapter: str, steps: tuple[int, int] = (2, 5)) -> dict:
    """One run of ``chapter``'s main system at the ``paper`` sizes, timed on this CPU at batch size 1
    for ``steps[0]`` and ``steps[1]`` steps after a one-step warm-up (the difference of the two is the
    cost of the steps alone, without loading and set-up; :data:`SHORTER_EXCERPTS` on shorter excerpts)
    and scaled
    to the paper's batch size and steps. The miniatures must be in place (:func:`write_all`).

    -> the paper's settings that matter, the parameters, CPU seconds per step, the bytes autograd
    keeps per item for the backward pass (the activations), and from them the estimates for a GPU:
    memory = 16 bytes per parameter (weights, gradients, Adam's two moments) plus the activations of a
    batch; time = CPU time x this CPU's measured matmul throughput / the T4's peak (an optimistic
    bound: GPUs rarely run at peak)."""
    from sepbook import results

    module = results.recipe(chapter)
    variant, step_key = MEASURED_RUN[chapter]
    paper = module.config("paper")
    shorter = {"excerpt_seconds": SHORTER_EXCERPTS[chapter]} if chapter in SHORTER_EXCERPTS else {}
    length = paper["excerpt_seconds"] / shorter["excerpt_seconds"] if shorter else 1.0
    timings = []
    for n in (1, *steps):
        cfg = module.config("paper", **{step_key: n, "batch_size": 1, "seeds": (0,), "valid_every": n}, **shorter)
        seconds, model, activations = _train_seconds(module, cfg, variant)
        timings.append((seconds, activations))
    activations = timings[0][1] * length  # of one step: later steps reuse the freed memory, so would count once
    timings = timings[1:]  # the warm-up run allocates and plans what later runs reuse
    per_item = (timings[1][0] - timings[0][0]) / (steps[1] - steps[0]) * length
    parameters = sum(p.numel() for p in model.parameters())
    cpu_step = per_item * paper["batch_size"]  # linear in the batch: one thread does the items in turn
    flops = matmul_flops()
    memory = 16 * parameters + paper["batch_size"] * activations
    return {"variant": variant, "batch_size": paper["batch_size"], "steps": paper[step_key],
            "runs": len(module.runs(paper)), "parameters": parameters,
            "cpu_seconds_per_step": cpu_step, "cpu_hours_per_run": cpu_step * paper[step_key] / 3600,
            "activation_bytes_per_item": activations, "gpu_memory_gb": memory / 1e9,
            "t4_hours_per_run": cpu_step * paper[step_key] * flops / T4_FLOPS / 3600,
            "cpu_matmul_gflops": flops / 1e9, "measured_excerpt_seconds": shorter.get("excerpt_seconds")}


def main(argv: Sequence[str] | None = None) -> None:
    """``python -m sepbook.results.realdata [CHAPTER ...]``: measure the paper configurations (default: all)
    on miniatures written to a temporary folder, and write :data:`COSTS`."""
    import datetime as dt
    import json
    import os
    import platform
    import sys
    import tempfile

    from sepbook.data import profiles
    from sepbook.results import cpu_kind

    chapters = list(argv if argv is not None else sys.argv[1:]) or list(MEASURED_RUN)
    profiles.one_thread()
    with tempfile.TemporaryDirectory() as folder:
        os.environ.update(write_all(Path(folder) / "real", seconds=12.0))
        os.environ["SEPBOOK_DATA"] = str(Path(folder) / "generated")
        measured = {}
        for chapter in chapters:
            measured[chapter] = measure(chapter)
            print(chapter, {k: round(v, 3) if isinstance(v, float) else v for k, v in measured[chapter].items()},
                  flush=True)
    old = json.loads(COSTS.read_text())["chapters"] if COSTS.is_file() else {}
    COSTS.parent.mkdir(parents=True, exist_ok=True)
    COSTS.write_text(json.dumps({
        "command": "python -m sepbook.results.realdata", "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d"),
        "machine": {"system": platform.platform(), "cpu": cpu_kind(), "threads": 1},
        "t4_flops_assumed": T4_FLOPS, "chapters": old | measured}, indent=2) + "\n")
    print(f"wrote {COSTS}")


if __name__ == "__main__":
    main()
