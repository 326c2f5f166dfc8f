"""Every chapter's ``paper`` configuration, end to end, on miniatures of the real datasets.

The miniatures (:mod:`sepbook.results.realdata`) hold each real set's layout and quirks: MUSDB18-HQ's 16-bit
stereo WAVs and its own validation songs, Slakh2100's ``metadata.yaml`` with two guitars, an
unrendered stem, FLAC audio, MIDI with a tempo change and a normalised mix, the adversarial sets
with an instrumental song, MedleyDB-style songs that lack some instruments. The runs go through the
environment variables a reader sets and ``python -m sepbook.results CHAPTER --profile paper``; the
only overrides shrink sizes and steps (:data:`SMALL`). Then each fault a real dataset can have must
stop with an error that names the file and what was expected.
"""
from __future__ import annotations

import csv
import json
import math
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile
import yaml

from sepbook import results
from sepbook.data import profiles
from sepbook.data.layouts import musdb_validation_names
from sepbook.results import realdata

#: Sizes and steps only: the paper's rates, STFTs, frames, depths, sources and datasets are kept.
SMALL: dict[str, dict] = {
    "foundations": dict(steps=2, batch_size=2, valid_every=2, segment_seconds=2.0, hidden=32),
    "adversarial": dict(start_steps=2, steps=2, critic_warmup=1, batch_size=2, valid_every=2, unet_base=4,
                        critic_base=4, critic_hidden=8),
    "transcription": dict(transcriptor_steps=2, supervised_steps=2, separator_steps=2, fine_tune_steps=2,
                          batch_size=2, valid_every=2, unet_base=4, channels=4, hidden=16),
    "activity": dict(steps=2, batch_size=2, valid_every=2, unet_base=4, head_hidden=8, blstm_hidden=16,
                     blstm_layers=1),
    "metatasnet": dict(steps=2, batch_size=2, valid_every=2, excerpt_seconds=1.0, n_basis=16, bottleneck=8,
                       hidden=8, blocks=2, stacks=1),
    "transfer": dict(augmentations=("none",), shares=(0.5,), pretrain_steps=2, finetune_steps=2, long_steps=4,
                     batch_size=2, valid_every=2, hidden=8, layers=1, excerpt_seconds=1.0),
}
#: What :data:`SMALL` may change: how big and how long, never what is read or how it is analysed.
SIZES = {"steps", "start_steps", "critic_warmup", "transcriptor_steps", "supervised_steps", "separator_steps",
         "fine_tune_steps", "pretrain_steps", "finetune_steps", "long_steps", "batch_size", "valid_every", "segment_seconds", "excerpt_seconds", "hidden", "layers",
         "unet_base", "critic_base", "critic_hidden", "channels", "head_hidden", "blstm_hidden", "blstm_layers",
         "n_basis", "bottleneck", "blocks", "stacks", "augmentations", "shares"}
#: Each chapter's test songs in the miniatures, as the metrics name them.
TEST_SONGS = {
    "foundations": {f"Band {i} - Tune {i}" for i in range(2)},
    "metatasnet": {f"Band {i} - Tune {i}" for i in range(2)},
    "transcription": {"Track00006", "Track00007"},
    "activity": {f"Band {i} - Tune {i}" for i in range(2)} | {f"Medley{i:02d}_test" for i in range(2)},
    "adversarial": {"001 - Song", "002 - Song"},  # DSD100's second half, each other set's last third
}


@pytest.fixture(scope="module")
def miniatures(tmp_path_factory) -> dict[str, str]:
    """Every real set in miniature, written once; -> the environment variables that point at them."""
    return realdata.write_all(tmp_path_factory.mktemp("real"))


@pytest.fixture
def reader(miniatures, monkeypatch, tmp_path) -> Path:
    """A reader's shell: the variables set, the book's generated data in a fresh folder."""
    for name, value in miniatures.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("SEPBOOK_DATA", str(tmp_path / "generated"))
    return tmp_path


def _sets(overrides: dict) -> list[str]:
    return [arg for name, value in overrides.items() for arg in ("--set", f"{name}={value!r}")]


def _rows(out: Path) -> list[dict]:
    with open(out / "metrics.csv") as file:
        return list(csv.DictReader(file))


def test_the_small_overrides_change_only_sizes_and_steps():
    for chapter, overrides in SMALL.items():
        assert set(overrides) <= SIZES, chapter
        paper = profiles.settings(chapter, "paper")
        for name, value in overrides.items():
            assert not isinstance(paper[name], (int, float)) or value <= paper[name], (chapter, name)


@pytest.mark.slow
@pytest.mark.parametrize("chapter", list(SMALL))
def test_the_paper_configuration_runs_end_to_end_on_the_real_layouts(chapter, reader):
    out = reader / "results"
    results.main([chapter, "--profile", "paper", "--workers", "1", "--out", str(out), *_sets(SMALL[chapter])])
    manifest = json.loads((out / "manifest.json").read_text())
    module = results.recipe(chapter)
    assert manifest["profile"] == "paper" and manifest["settings"]["dataset"] != "synthetic"
    assert manifest["overrides"] == results.plain(SMALL[chapter])
    rows = _rows(out)
    runs = {(v, s) for v, s in module.runs(module.config("paper", **SMALL[chapter]))}
    assert {(r["variant"], r["seed"]) for r in manifest["runs"]} == runs, "every run of the recipe trained"
    assert any(r["seed"] != "" for r in rows), "trained systems are scored"
    scores = [float(r["value"]) for r in rows]
    # an instrument a test song lacks has no defined score (the activity chapter's MedleyDB-style songs)
    assert sum(map(math.isfinite, scores)) > 0.5 * len(scores), "the scores are numbers"
    if chapter in TEST_SONGS:
        assert TEST_SONGS[chapter] <= {r["song"] for r in rows}, "every test song of the real layout is scored"
    assert (out / "histories.json").is_file() and list((out / "checkpoints").glob("*.pt"))


def test_the_real_sets_own_validation_songs_are_held_out(reader):
    from sepbook.recipes import foundations, transcription

    splits = foundations.data(foundations.config("paper", **SMALL["foundations"]))
    assert {t.name for t in splits.valid} == set(realdata.MUSDB_VALIDATION) <= set(musdb_validation_names())
    assert not {t.name for t in splits.train} & set(musdb_validation_names())
    slakh = transcription.data(transcription.config("paper", **SMALL["transcription"]))
    assert [t.name for t in slakh.valid] == ["Track00005"]  # Slakh's own validation/ folder
    # two guitars are summed into one Guitar source, the unrendered string part is left out, and the
    # tempo change moves the notes' frames: the roll's active frames follow the audio's
    track = slakh.train[0]
    assert track.source_names == ("Bass", "Guitar", "Piano") and track.rolls.any(dim=(1, 2)).all()


@pytest.mark.slow
def test_the_paper_configuration_trains_under_torchrun_with_two_gloo_processes(reader):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    out = reader / "results"
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", f"--master_port={port}",
               "-m", "sepbook.results", "foundations", "--profile", "paper", "--out", str(out),
               *_sets(SMALL["foundations"])]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, env=os.environ | {"OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stderr[-3000:]
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["machine"]["processes"] == 2 and manifest["machine"]["backend"] == "gloo"
    assert {r["song"] for r in _rows(out)} >= TEST_SONGS["foundations"]


# ----------------------------------------------------------------------------- faults of a real set


def _copy(miniatures: dict, variable: str, tmp_path: Path, monkeypatch) -> Path:
    """A private copy of one miniature, pointed at by ``variable``, to break."""
    copy = tmp_path / variable
    shutil.copytree(miniatures[variable], copy)
    monkeypatch.setenv(variable, str(copy))
    return copy


def _resave(path: Path, sr: int) -> None:
    audio, _ = soundfile.read(str(path))
    soundfile.write(str(path), audio, sr)


def _load(chapter: str):
    module = results.recipe(chapter)
    return module.data(module.config("paper", **SMALL[chapter]))


def test_a_missing_stem_is_named(reader, miniatures, tmp_path, monkeypatch):
    musdb = _copy(miniatures, "MUSDB_PATH", tmp_path, monkeypatch)
    (musdb / "test" / "Band 1 - Tune 1" / "bass.wav").unlink()
    with pytest.raises(FileNotFoundError, match=r"Band 1 - Tune 1/bass\.wav"):
        _load("foundations")
    slakh = _copy(miniatures, "SLAKH_PATH", tmp_path, monkeypatch)
    (slakh / "train" / "Track00002" / "stems" / "S03.flac").unlink()  # metadata says it was rendered
    with pytest.raises(FileNotFoundError, match=r"Track00002/stems/S03\.flac"):
        _load("transcription")
    adversarial = _copy(miniatures, "SEPBOOK_ADVERSARIAL_DATA", tmp_path, monkeypatch)
    (adversarial / "iKala" / "001 - Song" / "accompaniment.wav").unlink()
    with pytest.raises(FileNotFoundError, match=r"iKala/001 - Song/accompaniment\.wav is missing"):
        _load("adversarial")


def test_a_sample_rate_mismatch_is_named(reader, miniatures, tmp_path, monkeypatch):
    musdb = _copy(miniatures, "MUSDB_PATH", tmp_path, monkeypatch)
    _resave(musdb / "train" / "Artist 0 - Song 0" / "vocals.wav", 22050)
    with pytest.raises(ValueError, match=r"Artist 0 - Song 0/vocals\.wav: sample rate 22050 Hz.*44100 Hz"):
        _load("metatasnet")
    medley = _copy(miniatures, "SEPBOOK_MEDLEY_PATH", tmp_path, monkeypatch)
    _resave(medley / "train" / "Medley01_train" / "bass.wav", 48000)
    monkeypatch.setenv("MUSDB_PATH", miniatures["MUSDB_PATH"])
    with pytest.raises(ValueError, match=r"Medley01_train/bass\.wav: sample rate 48000 Hz differs"):
        _load("activity")
    slakh = _copy(miniatures, "SLAKH_PATH", tmp_path, monkeypatch)
    _resave(slakh / "test" / "Track00006" / "stems" / "S00.flac", 22050)
    with pytest.raises(ValueError, match=r"Track00006/stems/S00: sample rate 22050 Hz differs from the mix"):
        _load("transcription")


def test_a_song_shorter_than_the_excerpt_is_named(reader):
    from sepbook.recipes import foundations, metatasnet, transcription

    cfg = foundations.config("paper", **SMALL["foundations"] | {"segment_seconds": 6.0})  # the paper's
    with pytest.raises(ValueError, match=r"segment_seconds=6\.0: song 'Artist 0 - Song 0' lasts 3\.000 s"):
        foundations.train(cfg, foundations.data(cfg), "BLSTM", progress=False)
    cfg = metatasnet.config("paper", **SMALL["metatasnet"] | {"excerpt_seconds": 8.0})
    with pytest.raises(ValueError, match=r"excerpt_seconds: song Artist 0 - Song 0 lasts 3\.00 s"):
        metatasnet.train(cfg, metatasnet.data(cfg), "independent", progress=False)
    cfg = transcription.config("paper", **SMALL["transcription"] | {"frames": 512})
    with pytest.raises(ValueError, match=r"frames: song Track00001 has 313 STFT frames, fewer than one excerpt"):
        transcription.train(cfg, transcription.data(cfg), "transcriptor", progress=False)


def test_an_empty_split_is_named(reader, miniatures, tmp_path, monkeypatch):
    musdb = _copy(miniatures, "MUSDB_PATH", tmp_path, monkeypatch)
    for song in (musdb / "test").iterdir():
        shutil.rmtree(song)
    with pytest.raises(ValueError, match=r"no MUSDB tracks in .*/test: expected one folder per track"):
        _load("foundations")
    slakh = _copy(miniatures, "SLAKH_PATH", tmp_path, monkeypatch)
    shutil.rmtree(slakh / "validation")
    with pytest.raises(FileNotFoundError, match=r"validation: expected Slakh2100's validation/ holding TrackNNNNN"):
        _load("transcription")
    adversarial = _copy(miniatures, "SEPBOOK_ADVERSARIAL_DATA", tmp_path, monkeypatch)
    for song in (adversarial / "CCMixter").iterdir():
        shutil.rmtree(song)
    with pytest.raises(FileNotFoundError, match=r"CCMixter: expected one folder per song holding vocals\.wav"):
        _load("adversarial")
    transfer = _copy(miniatures, "TRANSFER_DATA", tmp_path, monkeypatch)
    shutil.rmtree(transfer / "dagstuhl" / "valid")
    with pytest.raises(FileNotFoundError, match=r"dagstuhl/valid: expected one folder per song holding male\.wav"):
        _load("transfer")


def test_an_instrument_no_track_plays_is_named(reader, miniatures, tmp_path, monkeypatch):
    slakh = _copy(miniatures, "SLAKH_PATH", tmp_path, monkeypatch)
    for meta in (slakh / "test").glob("*/metadata.yaml"):
        data = yaml.safe_load(meta.read_text())
        for entry in data["stems"].values():
            entry["inst_class"] = "Organ" if entry["inst_class"] == "Piano" else entry["inst_class"]
        meta.write_text(yaml.safe_dump(data))
    with pytest.raises(ValueError, match=r"test: no track has a rendered stem of 'Piano'.*Bass, Guitar, Piano"):
        _load("transcription")
    medley = _copy(miniatures, "SEPBOOK_MEDLEY_PATH", tmp_path, monkeypatch)
    for path in (medley / "train").glob("*/acoustic_guitar.wav"):
        path.unlink()
    with pytest.raises(ValueError, match=r"train: no song holds acoustic_guitar\.wav"):
        _load("activity")


def test_the_miniatures_keep_the_real_sets_quirks(miniatures):
    musdb = Path(miniatures["MUSDB_PATH"]) / "train" / realdata.MUSDB_VALIDATION[0]
    info = soundfile.info(str(musdb / "mixture.wav"))
    assert (info.samplerate, info.channels, info.subtype) == (44100, 2, "PCM_16")
    track = Path(miniatures["SLAKH_PATH"]) / "train" / "Track00001"
    meta = yaml.safe_load((track / "metadata.yaml").read_text())
    classes = [entry["inst_class"] for entry in meta["stems"].values()]
    assert classes.count("Guitar") == 2 and not all(e["audio_rendered"] for e in meta["stems"].values())
    assert all("name" not in entry for entry in meta["stems"].values())  # the real set names no stems
    assert not (track / "stems" / "S05.flac").exists() and (track / "MIDI" / "S05.mid").is_file()
    import pretty_midi

    times, tempi = pretty_midi.PrettyMIDI(str(track / "MIDI" / "S00.mid")).get_tempo_changes()
    assert np.allclose(times, [t for t, _ in realdata.SLAKH_TEMPI]) and np.allclose(tempi, [b for _, b in realdata.SLAKH_TEMPI], atol=1e-3)
    stems = sum(soundfile.read(str(p))[0] for p in sorted((track / "stems").glob("*.flac")))
    mix = soundfile.read(str(track / "mix.flac"))[0]
    assert not np.allclose(mix, stems, atol=1e-3), "the release's mix is normalised, not the stems' sum"


def test_set_reads_python_literals_and_names_bad_settings(capsys):
    assert results.parse_overrides(["steps=20", "seeds=(0, 1)", "dataset=musdb18hq", "lr = 1e-4"]) == \
        {"steps": 20, "seeds": (0, 1), "dataset": "musdb18hq", "lr": 1e-4}
    with pytest.raises(ValueError, match="expected NAME=VALUE, got 'steps'"):
        results.parse_overrides(["steps"])
    with pytest.raises(SystemExit):
        results.main(["foundations", "--profile", "paper", "--set", "=3"])
    assert "--set: expected NAME=VALUE" in capsys.readouterr().err
    with pytest.raises(ValueError, match="foundations has no setting 'stepz'"):
        results.main(["foundations", "--profile", "paper", "--set", "stepz=3"])


def test_a_song_folder_whose_files_differ_in_length_or_lack_a_file_is_named(tmp_path):
    from sepbook.data.layouts import read_stem_folder

    realdata._write(tmp_path / "song" / "vocals.wav", realdata.stem("vocals", 1.0))
    realdata._write(tmp_path / "song" / "accompaniment.wav", realdata.stem("other", 1.5))
    with pytest.raises(ValueError, match=r"song/accompaniment\.wav: 66150 samples, but vocals\.wav has 44100"):
        read_stem_folder(tmp_path / "song", ("vocals", "accompaniment"), 8000)
    with pytest.raises(FileNotFoundError, match=r"song/bass\.wav is missing"):
        read_stem_folder(tmp_path / "song", ("vocals", "bass"), 8000)
    assert set(read_stem_folder(tmp_path / "song", ("vocals", "bass"), 8000, optional=True)) == {"vocals"}


def test_holding_out_by_a_list_that_matches_no_song_or_every_song_is_named():
    from sepbook.tracks import hold_out, track_from_stems

    songs = [track_from_stems(name, [np.zeros(8)], ("x",)) for name in ("a", "b")]
    assert [t.name for t in hold_out(songs, ["b"])[1]] == ["b"]
    with pytest.raises(ValueError, match="train/: none of the 2 songs is on the set's validation list"):
        hold_out(songs, ["z"], "train/")
    with pytest.raises(ValueError, match="every song is on the set's validation list"):
        hold_out(songs, ["a", "b"])
