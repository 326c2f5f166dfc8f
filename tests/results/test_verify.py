"""make verify: every committed row re-derived, and every way of breaking a results folder caught."""
import csv
import json
import random
import shutil

import pytest

from sepbook import results
from sepbook.results import verify

SHRINK = dict(steps=4, valid_every=2, seeds=(0, 1), n_train=3, n_test=2, song_seconds=2.0, hidden=16, batch_size=4)


@pytest.fixture(scope="module")
def produced(tmp_path_factory):
    mp = pytest.MonkeyPatch()
    mp.setenv("SEPBOOK_DATA", str(tmp_path_factory.mktemp("data")))
    yield results.produce("foundations", "tiny", workers=1, out=tmp_path_factory.mktemp("foundations"), **SHRINK)
    mp.undo()


@pytest.fixture
def folder(produced, tmp_path):
    return shutil.copytree(produced, tmp_path / "copy")


def rows_of(folder):
    with open(folder / "metrics.csv", newline="") as file:
        return list(csv.DictReader(file))


def write_rows(folder, rows):
    with open(folder / "metrics.csv", "w", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def check(folder, budget=0.0, seed=0):
    return verify.run(["foundations"], budget, seed, profile="tiny", folders={"foundations": folder})


@pytest.mark.slow
def test_every_row_is_covered_by_checkpoints_and_reference_rows(folder):
    (coverage,) = check(folder)
    assert coverage.rows == len(rows_of(folder))
    assert coverage.covered == coverage.rows
    assert coverage.checkpoints == len(SHRINK["seeds"])  # every seed's checkpoint is committed
    assert coverage.reference > 0 and coverage.from_checkpoints > 0
    assert "| foundations |" in verify.report([coverage])


@pytest.mark.slow
@pytest.mark.parametrize("pick", range(3))
def test_a_row_tampered_anywhere_is_caught(folder, pick):
    rows = rows_of(folder)
    target = random.Random(pick).choice(rows)  # any row: any seed, any song, reference rows too
    target["value"] = repr(float(target["value"]) + 0.5)
    write_rows(folder, rows)
    with pytest.raises(results.ResultsMismatch, match="when computed again"):
        check(folder)


@pytest.mark.slow
def test_a_nan_against_a_number_is_caught(folder):
    rows = rows_of(folder)
    next(r for r in rows if r["seed"] == "1")["value"] = "nan"
    write_rows(folder, rows)
    with pytest.raises(results.ResultsMismatch, match="nan"):
        check(folder)


@pytest.mark.slow
def test_a_missing_or_extra_checkpoint_is_caught(folder):
    (folder / "checkpoints" / "BLSTM-seed1.pt").unlink()
    with pytest.raises(results.ResultsMismatch, match=r"missing: \['BLSTM-seed1.pt'\]"):
        check(folder)


@pytest.mark.slow
def test_an_extra_checkpoint_is_caught(folder):
    shutil.copyfile(folder / "checkpoints" / "BLSTM-seed0.pt", folder / "checkpoints" / "BLSTM-seed7.pt")
    with pytest.raises(results.ResultsMismatch, match=r"not in the manifest: \['BLSTM-seed7.pt'\]"):
        check(folder)


@pytest.mark.slow
def test_a_missing_row_is_caught(folder):
    rows = rows_of(folder)
    write_rows(folder, [r for r in rows if not (r["seed"] == "1" and r["source"] == "bass")])
    with pytest.raises(results.ResultsMismatch, match="no row for"):
        check(folder)


def _without_checkpoint(folder, name="BLSTM-seed1.pt"):
    (folder / "checkpoints" / name).unlink()
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["checkpoints"].remove(name)
    (folder / "manifest.json").write_text(json.dumps(manifest))


@pytest.mark.slow
def test_a_run_without_checkpoint_is_retrained_and_all_its_rows_compared(folder):
    _without_checkpoint(folder)
    (coverage,) = check(folder, budget=1e6)
    assert coverage.retrained and coverage.from_retraining > 0
    assert coverage.covered == coverage.rows


@pytest.mark.slow
def test_a_tampered_row_of_a_retrained_run_is_caught(folder):
    _without_checkpoint(folder)
    rows = rows_of(folder)
    next(r for r in rows if r["seed"] == "1" and r["variant"] == "BLSTM")["value"] = "99.0"
    write_rows(folder, rows)
    (coverage,) = check(folder, budget=0.0)  # nothing retrained: the tampered row is not covered
    assert coverage.covered < coverage.rows
    with pytest.raises(results.ResultsMismatch, match="when computed again"):
        check(folder, budget=1e6)


@pytest.mark.slow
def test_only_runs_with_recorded_code_are_drawn_and_the_budget_holds(folder):
    book = results.load("foundations", "tiny", check=False, folder=folder)
    assert verify.retrainable(book) == [("BLSTM", 0), ("BLSTM", 1)]
    seconds = verify.recorded_seconds(book)
    assert verify.draw({"foundations": book}, budget=0.0, rng=random.Random(0)) == []
    one = verify.draw({"foundations": book}, budget=max(seconds.values()) * 1.01, rng=random.Random(0))
    assert len(one) == 1
    for run in book.manifest["runs"]:
        run["cpu"] = "another kind of CPU"  # rounds differently: a retrained run would drift
    assert verify.retrainable(book) == []
    for run in book.manifest["runs"]:
        run["cpu"] = results.cpu_kind()
        run.pop("code_digest")
    assert verify.retrainable(book) == []


@pytest.mark.slow
def test_the_manifest_records_each_runs_code(produced):
    manifest = json.loads((produced / "manifest.json").read_text())
    for run in manifest["runs"]:
        assert len(run["code_digest"]) == 16 and run["code_digest"] == results.code_digest()
        assert run["commit"] and run["cpu"] == results.cpu_kind()
    assert {"mir_eval", "soxr", "musdb", "museval"} <= set(manifest["versions"])


@pytest.mark.slow
def test_two_worker_processes_cover_the_same_rows_and_catch_the_same_tampering(folder):
    _without_checkpoint(folder)
    (alone,) = check(folder, budget=1e6)
    (together,) = verify.run(["foundations"], 1e6, 0, profile="tiny", folders={"foundations": folder}, workers=2)
    assert (together.covered, together.from_retraining) == (alone.covered, alone.from_retraining)
    rows = rows_of(folder)
    next(r for r in rows if r["seed"] == "1")["value"] = "99.0"
    write_rows(folder, rows)
    with pytest.raises(results.ResultsMismatch, match="when computed again"):
        verify.run(["foundations"], 1e6, 0, profile="tiny", folders={"foundations": folder}, workers=2)


def _rows(values, metric="SI-SDR (DC)"):
    return [{"variant": "v", "seed": 0, "song": f"song {i}", "source": "a", "metric": metric, "value": v}
            for i, v in enumerate(values)]


def test_cpu_sensitive_rows_move_a_little_only_on_another_kind_of_cpu():
    """k-means rows may flip on another CPU's rounding: compared within LOOSE_DB, and only a few of
    them past the tolerance; everything else, and every row on the same kind of CPU, stays strict."""
    import pandas as pd

    committed = pd.DataFrame(_rows([1.0] * 40) + _rows([2.0] * 40, metric="SI-SDR"))
    one_moved = _rows([1.3] + [1.0] * 39) + _rows([2.0] * 40, metric="SI-SDR")
    loose = frozenset({"SI-SDR (DC)"})
    assert results.compare("transfer", committed, one_moved, loose)[1] == 80
    with pytest.raises(results.ResultsMismatch, match="when computed again"):
        results.compare("transfer", committed, one_moved)               # the same kind of CPU: strict
    with pytest.raises(results.ResultsMismatch, match="moved by more than"):
        results.compare("transfer", committed, _rows([1.3] * 3 + [1.0] * 37) + _rows([2.0] * 40, "SI-SDR"), loose)
    with pytest.raises(results.ResultsMismatch, match="when computed again"):
        results.compare("transfer", committed, _rows([1.0 + 2 * results.LOOSE_DB] + [1.0] * 39)
                        + _rows([2.0] * 40, "SI-SDR"), loose)
    with pytest.raises(results.ResultsMismatch, match="when computed again"):
        results.compare("transfer", committed, _rows([1.0] * 40) + _rows([2.3] + [2.0] * 39, "SI-SDR"), loose)


def test_check_jobs_group_a_chapters_models_by_seed():
    keys = [("b", 1), ("a", 0), ("a", 1), ("c", 0)]
    assert verify.by_seed(keys) == [[("a", 0), ("c", 0)], [("a", 1), ("b", 1)]]
