"""sepbook.experiments.report: means and spread over seeds, tables with the paper's numbers, gains, verdicts."""
import math

import numpy as np
import pytest

from sepbook.experiments import report


def rows(per_seed: dict[str, list[float]], songs=(-1.0, 1.0), source="vocals", metric="SDR"):
    """Rows whose per-seed song mean is ``per_seed[variant][seed]`` (songs spread around it)."""
    out = []
    for variant, means in per_seed.items():
        for seed, mean in enumerate(means):
            for k, offset in enumerate(songs):
                out.append({"variant": variant, "seed": seed, "song": f"song{k}", "domain": "pop", "source": source,
                            "metric": metric, "value": mean + offset})
    return out


# ----------------------------------------------------------------------------- summaries


def test_summary_averages_songs_then_takes_mean_and_std_over_seeds():
    stats = report.summary(rows({"A": [2.0, 3.0, 4.0], "B": [4.0, 6.0, 8.0]}, songs=(-1.0, 5.0)))
    assert stats.loc["A", "mean"] == pytest.approx(5.0) and stats.loc["A", "std"] == pytest.approx(1.0)
    assert stats.loc["B", "mean"] == pytest.approx(8.0) and stats.loc["B", "std"] == pytest.approx(2.0)  # ddof=1
    assert stats.loc["A", "seeds"] == 3


def test_summary_of_one_seed_has_no_spread_and_reference_rows_count_once():
    one = rows({"A": [2.0]})
    reference = [dict(r, variant="mixture", seed=None, value=0.0) for r in one]
    stats = report.summary(one + reference)
    assert stats.loc["A", "mean"] == 2.0 and math.isnan(stats.loc["A", "std"]) and stats.loc["A", "seeds"] == 1
    assert stats.loc["mixture", "mean"] == 0.0 and stats.loc["mixture", "seeds"] == 1


def test_per_seed_keeps_groups_apart():
    vocals = rows({"A": [1.0, 2.0]}, source="vocals")
    bass = rows({"A": [10.0, 20.0]}, source="bass")
    means = report.per_seed(vocals + bass, by=("variant", "source"))
    assert means[("A", "bass", 1)] == pytest.approx(20.0) and means[("A", "vocals", 0)] == pytest.approx(1.0)


def test_rows_need_every_column():
    with pytest.raises(ValueError, match="seed"):
        report.summary([{"variant": "A", "song": "s", "domain": "", "source": "v", "metric": "SDR", "value": 1.0}])


def test_rows_for_and_bss_rows():
    made = report.rows_for({"vocals": {"SDR": 1, "SIR": 2}}, variant="A", seed=0, song="s", domain="pop")
    assert made == [{"variant": "A", "seed": 0, "song": "s", "domain": "pop", "source": "vocals", "metric": m,
                     "value": float(v)} for m, v in (("SDR", 1), ("SIR", 2))]
    assert set(made[0]) == set(report.COLUMNS)
    scores = {"SDR": np.array([[1.0, 3.0, np.nan, 10.0], [np.nan] * 4]), "SIR": np.zeros((2, 4)),
              "SAR": np.zeros((2, 4))}
    bss = report.bss_rows(scores, ("vocals", "bass"), metrics=("SDR",), variant="A", seed=0, song="s", domain="")
    assert bss[0]["value"] == 3.0  # median over the finite frames
    assert math.isnan(bss[1]["value"])  # no finite frame at all


# ----------------------------------------------------------------------------- tables


@pytest.mark.parametrize("mean, std, seeds, text", [
    (3.0, 1.0, 3, "3.00 ± 1.00"), (3.0, math.nan, 1, "3.00"), (math.nan, math.nan, 0, "–"), (-0.456, 0.1, 2, "-0.46 ± 0.10"),
])
def test_cell(mean, std, seeds, text):
    assert report.cell(mean, std, seeds) == text


def test_table_lays_out_mean_and_spread_in_a_grid():
    made = rows({"A": [2.0, 3.0, 4.0], "B": [4.0, 6.0, 8.0]}) + rows({"A": [1.0, 1.0, 1.0]}, source="bass")
    grid = report.table(made, index="source", columns=("variant",))
    assert list(grid.index) == ["bass", "vocals"] and list(grid.columns) == [("A",), ("B",)]
    assert grid.loc["vocals", ("A",)] == "3.00 ± 1.00" and grid.loc["vocals", ("B",)] == "6.00 ± 2.00"
    assert grid.loc["bass", ("A",)] == "1.00 ± 0.00" and grid.loc["bass", ("B",)] == "–"


def test_paper_table_puts_the_papers_number_beside_ours():
    made = rows({"A": [2.0, 3.0, 4.0], "B": [4.0, 6.0, 8.0]})
    grid = report.paper_table(made, index="source", columns=("variant",), paper={("vocals", "A"): 5.5},
                              profile="tiny", column_order=[["A", "B"]])
    assert list(grid.columns) == [("A", "ours (tiny)"), ("A", "paper"), ("B", "ours (tiny)"), ("B", "paper")]
    assert grid.loc["vocals", ("A", "ours (tiny)")] == "3.00 ± 1.00"
    assert grid.loc["vocals", ("A", "paper")] == "5.50"
    assert grid.loc["vocals", ("B", "paper")] == "–"  # the paper has no such number


# ----------------------------------------------------------------------------- gains and verdicts


def test_gains_compare_seed_by_seed():
    made = rows({"base": [1.0, 5.0, 2.0], "new": [2.0, 3.0, 4.0]})
    gain = report.gains(made, "new", "base").iloc[0]
    assert gain["mean"] == pytest.approx(1 / 3) and gain["std"] == pytest.approx(np.std([1, -2, 2], ddof=1))
    assert gain["wins"] == 2 and gain["seeds"] == 3
    tie = report.gains(rows({"base": [1.0, 2.0, 3.0], "new": [1.0, 3.0, 4.0]}), "new", "base").iloc[0]
    assert tie["wins"] == 2  # a seed with no gain is not a win


def test_gains_by_group():
    made = rows({"base": [1.0, 1.0], "new": [2.0, 3.0]}) + rows({"base": [1.0, 1.0], "new": [0.0, 0.5]}, source="bass")
    gains = report.gains(made, "new", "base", by=("source",))
    assert gains.loc["vocals", "mean"] == pytest.approx(1.5) and gains.loc["vocals", "wins"] == 2
    assert gains.loc["bass", "mean"] == pytest.approx(-0.75) and gains.loc["bass", "wins"] == 0


def describe(base, new):
    gain = report.gains(rows({"base": base, "new": new}), "new", "base").iloc[0]
    return report.describe(gain, "V", "baseline", "SDR V.", "outside the supervised domain", "book")


def test_describe_gives_the_difference_its_spread_and_the_seeds_ahead():
    text = describe([1.0, 2.0, 3.0], [2.0, 3.5, 4.0])
    assert text.startswith("In the book profile, V minus the baseline outside the supervised domain: +1.17 dB SDR V.")
    assert "std 0.29 dB" in text and "higher in 3 of 3" in text
    mixed = describe([1.0, 2.0, 3.0], [1.5, 0.0, 2.0])
    assert "-0.83 dB" in mixed and "higher in 1 of 3" in mixed


def test_describe_never_decides():
    """Verdicts belong to sepbook.experiments.claims alone: the sentence has no verdict words, whatever the numbers."""
    for new in ([2.0, 3.5, 4.0], [0.0, 1.0, 2.0], [1.0, 2.0, 3.0]):
        text = describe([1.0, 2.0, 3.0], new).lower()
        assert not any(word in text for word in ("beat", "reproduc", "same", "within the", "better"))


def test_describe_with_one_seed_or_no_numbers():
    assert "one seed only" in describe([1.0], [3.0])
    missing = report.describe({"mean": math.nan, "std": math.nan, "wins": 0, "seeds": 0}, "V", "baseline", "SDR V.",
                              "on the iKala songs", "tiny")
    assert missing == "In the tiny profile there are no SDR V. scores for V on the iKala songs."