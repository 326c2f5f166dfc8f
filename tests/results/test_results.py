"""sepbook.results: producing a chapter's results folder, resuming, and catching results their checkpoints no longer give."""
import csv
import json
import re
import shutil

import pytest
import torch

from sepbook import results
from sepbook.data import profiles
from sepbook.experiments import report
from sepbook.results import make, store

#: Tiny runs: a few steps on a few short songs.
SHRINK = {
    "adversarial": dict(start_steps=4, steps=4, critic_warmup=1, n_critic=1, valid_every=2, seeds=(0,),
                        ablation_seeds=(), song_seconds=2.0, n_paired=2,
                        n_paired_eval=1, songs_per_third=2, batch_size=2, frames=16),
    "foundations": dict(steps=4, valid_every=2, seeds=(0,), n_train=3, n_test=2, song_seconds=2.0, hidden=16,
                        batch_size=4),
    "metatasnet": dict(steps=4, valid_every=2, seeds=(0,), n_train=2, n_valid=1, n_test=2, song_seconds=2.0,
                       batch_size=2, excerpt_seconds=0.25),
    "transfer": dict(pretraining=("musdb+slakh",), augmentations=("none",), downstream=("dagstuhl",),
                     songs={"musdb": (1, 0, 0), "slakh": (1, 0, 0), "dagstuhl": (1, 1, 1)}, song_seconds=2.0,
                     pretrain_steps=4, finetune_steps=2, long_steps=2, shares=(), valid_every=1, hidden=16,
                     seeds=(0,)),
}


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    """produce() keeps finished runs (and generated corpora) under $SEPBOOK_DATA: never the checkout's data/."""
    mp = pytest.MonkeyPatch()
    root = tmp_path_factory.mktemp("data")
    mp.setenv("SEPBOOK_DATA", str(root))
    yield root
    mp.undo()


@pytest.fixture(scope="module")
def produced(data_root, tmp_path_factory):
    out = {}
    for chapter, overrides in SHRINK.items():
        out[chapter] = results.produce(chapter, "tiny", workers=1, out=tmp_path_factory.mktemp(chapter), **overrides)
    return out


def scored_runs(chapter):
    """The runs that score test songs: not pre-training, nor the adversarial starts and candidates."""
    module, cfg = results.recipe(chapter), cfg_of(chapter)
    scored = getattr(module, "scored", lambda variant: not variant.startswith("pre-"))
    return {(v, s) for v, s in module.runs(cfg) if scored(v)}


def cfg_of(chapter):
    return results.recipe(chapter).config("tiny", **SHRINK[chapter])


def scratch_of(data_root, chapter):
    (folder,) = (data_root / "runs").glob(f"{chapter}-tiny-{profiles.digest(cfg_of(chapter))}")
    return folder


def read_csv(path):
    with open(path, newline="") as file:
        return list(csv.DictReader(file))


def write_csv(path, rows):
    with open(path, "w", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


# ----------------------------------------------------------------------------- producing


@pytest.mark.slow
@pytest.mark.parametrize("chapter", sorted(SHRINK))
def test_produce_writes_metrics_with_the_report_columns(produced, chapter):
    rows = read_csv(produced[chapter] / "metrics.csv")
    assert tuple(rows[0]) == report.COLUMNS
    module, cfg = results.recipe(chapter), cfg_of(chapter)
    trained = {(r["variant"], r["seed"]) for r in rows if r["seed"] != ""}
    assert {(v, str(s)) for v, s in scored_runs(chapter)} <= trained   # every run that scores did
    runs = {(v, str(s)) for v, s in module.runs(cfg)}
    # a run may also score its parts (metatasnet's stage 1)
    parts = {(f"{v} (stage {i})", s) for v, s in runs for i in range(1, len(cfg.get("stages", ())))}
    assert trained <= runs | parts
    tracks = results._data(chapter, cfg).test
    assert {r["song"] for r in rows if r["domain"] != "cost"} == {t.name for t in tracks}
    assert all(r["value"] == "nan" or float(r["value"]) == float(r["value"]) for r in rows)
    if chapter == "metatasnet":  # each system's cost, measured in the same run, without a song
        cost = {(r["variant"], r["metric"]) for r in rows if r["domain"] == "cost"}
        assert cost == {(v, m) for v in module.SYSTEMS for m in ("parameters", "step seconds", "peak MiB")}
    if chapter == "foundations":  # the reference rows come along, without a seed
        assert {r["variant"] for r in rows if r["seed"] == ""} >= {"mixture", "oracle IRM"}


@pytest.mark.slow
@pytest.mark.parametrize("chapter", sorted(SHRINK))
def test_manifest_records_settings_provenance_and_runs(produced, chapter):
    manifest = json.loads((produced[chapter] / "manifest.json").read_text())
    cfg = cfg_of(chapter)
    assert manifest["chapter"] == chapter and manifest["profile"] == "tiny"
    assert manifest["settings"] == results.plain(cfg)
    assert manifest["settings_digest"] == profiles.digest(cfg)
    assert manifest["overrides"] == results.plain(SHRINK[chapter])
    assert re.fullmatch(r"([0-9a-f]{40}(\+changes)?|unknown)", manifest["commit"])
    assert {"python", "torch", "numpy", "sepbook"} <= set(manifest["versions"])
    assert manifest["machine"]["cores"] >= 1 and manifest["machine"]["workers"] == 1
    assert [(r["variant"], r["seed"]) for r in manifest["runs"]] == results.recipe(chapter).runs(cfg)
    assert manifest["float16_storage_max_drift_db"] < results.TOLERANCE_DB
    histories = json.loads((produced[chapter] / "histories.json").read_text())
    assert set(histories) == {f"{v}/{s}" for v, s in results.recipe(chapter).runs(cfg)}


@pytest.mark.slow
@pytest.mark.parametrize("chapter", sorted(SHRINK))
def test_checkpoints_are_float16_and_load_with_weights_only(produced, chapter):
    module, cfg = results.recipe(chapter), cfg_of(chapter)
    paths = sorted((produced[chapter] / "checkpoints").glob("*.pt"))
    kept = scored_runs(chapter) | {(v, 0) for v in module.VARIANTS}  # and the page's systems at seed 0
    assert [p.name for p in paths] == sorted(f"{v}-seed{s}.pt" for v, s in kept)
    assert json.loads((produced[chapter] / "manifest.json").read_text())["checkpoints"] == [p.name for p in paths]
    for path in paths:
        weights = torch.load(path, map_location="cpu", weights_only=True)
        assert all(v.dtype == torch.float16 for v in weights.values() if v.is_floating_point())
        results.load_half(module.build(cfg, path.stem.rsplit("-seed", 1)[0]), weights)


# ----------------------------------------------------------------------------- reading and checking


@pytest.mark.slow
@pytest.mark.parametrize("chapter", sorted(SHRINK))
def test_load_verifies_the_results_against_their_checkpoints(produced, chapter):
    loaded = results.load(chapter, "tiny", folder=produced[chapter])
    module = results.recipe(chapter)
    assert set(loaded.models) == scored_runs(chapter) | {(v, 0) for v in module.VARIANTS}
    assert set(loaded.histories) == set(results.recipe(chapter).runs(cfg_of(chapter)))
    assert len(loaded.rows) == len(read_csv(produced[chapter] / "metrics.csv"))
    assert results.recheck(loaded) <= results.TOLERANCE_DB
    assert "tiny profile, seeds 0" in loaded.provenance()


@pytest.mark.slow
@pytest.mark.parametrize("chapter", sorted(SHRINK))
def test_a_tampered_score_is_caught(produced, chapter, tmp_path):
    folder = shutil.copytree(produced[chapter], tmp_path / "copy")
    rows = read_csv(folder / "metrics.csv")
    first_song = results._data(chapter, cfg_of(chapter)).test[0].name
    metric = "SDR" if chapter == "adversarial" else "SI-SDR"
    variant = next(v for v in results.recipe(chapter).VARIANTS
                   if any(r["variant"] == v and r["metric"] == metric for r in rows))
    target = [r for r in rows if r["variant"] == variant and r["seed"] == "0" and r["song"] == first_song
              and r["metric"] == metric]
    target = next((r for r in target if r["source"] == "vocals"), target[0])
    target["value"] = repr(float(target["value"]) + 1.0)
    write_csv(folder / "metrics.csv", rows)
    with pytest.raises(results.ResultsMismatch, match=rf"^{chapter}: .*`make results CHAPTER={chapter}`"):
        results.load(chapter, "tiny", folder=folder)
    assert results.load(chapter, "tiny", folder=folder, check=False).rows.shape[0] == len(rows)


@pytest.mark.slow
def test_changed_settings_are_caught(produced, tmp_path):
    folder = shutil.copytree(produced["adversarial"], tmp_path / "copy")
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["overrides"]["steps"] = 5  # the settings no longer hash to the recorded digest
    (folder / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(results.ResultsMismatch, match="settings.*changed.*make results CHAPTER=adversarial"):
        results.load("adversarial", "tiny", folder=folder)


def test_missing_results_name_the_command(tmp_path):
    with pytest.raises(FileNotFoundError, match="make results CHAPTER=foundations"):
        results.load("foundations", "tiny", folder=tmp_path)
    with pytest.raises(ValueError, match="chapter"):
        results.recipe("nope")


# ----------------------------------------------------------------------------- resuming


@pytest.mark.slow
def test_rerun_skips_finished_runs(produced, data_root, monkeypatch):
    before = (produced["adversarial"] / "metrics.csv").read_text()
    monkeypatch.setattr(make, "train_one", lambda *job: pytest.fail(f"retrained a finished run {job[2:4]}"))
    results.produce("adversarial", "tiny", workers=1, out=produced["adversarial"], **SHRINK["adversarial"])
    assert (produced["adversarial"] / "metrics.csv").read_text() == before


@pytest.mark.slow
def test_rerun_trains_only_the_missing_run(produced, data_root, monkeypatch):
    scratch = scratch_of(data_root, "adversarial")
    record = (scratch / "V-seed0.json").read_text()
    (scratch / "V-seed0.json").unlink()
    trained = []

    def replay(chapter, cfg, variant, seed, scratch_folder):
        trained.append((variant, seed))
        (scratch_folder / f"{variant}-seed{seed}.json").write_text(record)
        return json.loads(record)

    monkeypatch.setattr(make, "train_one", replay)
    results.produce("adversarial", "tiny", workers=1, out=produced["adversarial"], **SHRINK["adversarial"])
    assert trained == [("V", 0)]


# ----------------------------------------------------------------------------- the committed results


@pytest.mark.parametrize("chapter", sorted(results.RECIPES))
def test_committed_book_results_match_the_book_settings(chapter):
    """Changing a book setting without regenerating the chapter's results must fail here."""
    path = results.results_dir(chapter, "book") / "manifest.json"
    assert path.is_file(), f"{path} is missing: run `make results CHAPTER={chapter}` and commit the folder"
    manifest = json.loads(path.read_text())
    cfg = results.recipe(chapter).config("book")
    assert manifest["overrides"] == {}, "committed results must come from the plain book settings"
    assert manifest["settings_digest"] == profiles.digest(cfg), f"run `make results CHAPTER={chapter}`"
    assert manifest["settings"] == results.plain(cfg), f"run `make results CHAPTER={chapter}`"


@pytest.mark.slow
def test_checking_foundations_results_reads_only_the_test_songs(monkeypatch):
    from sepbook.recipes import foundations

    monkeypatch.setattr(store, "_DATA", {})
    monkeypatch.setattr(foundations, "data", lambda cfg: pytest.fail("loaded the training songs"))
    loaded = results.load("foundations", songs=1)
    assert len(loaded.test_tracks()) == loaded.cfg["n_test"]
