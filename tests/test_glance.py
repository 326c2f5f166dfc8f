"""The results-at-a-glance page: every chapter's claims, verdicts by a rule that can fail, numbers
that are the rows', and links that land on a heading."""
import math
import posixpath
import re
from pathlib import Path
from types import SimpleNamespace

import nbformat
import numpy as np
import pandas as pd
import pytest
import yaml

from sepbook import glance, results
from sepbook.glance import NOT_REPRODUCED, PARTLY, REPRODUCED, Claim, direction, share

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def books():
    return glance.load("book")


@pytest.fixture(scope="module")
def claims(books):
    return glance.collect(books)


def _toc_files():
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())

    def walk(entries):
        for entry in entries:
            if "file" in entry:
                yield entry["file"]
            yield from walk(entry.get("chapters", []) + entry.get("sections", []))

    return {toc["root"], *walk([c for part in toc["parts"] for c in part["chapters"]])}


def _headings(page: str) -> list[str]:
    """The markdown headings of a notebook, without their #s (outside code fences)."""
    notebook = nbformat.read(ROOT / f"{page}.ipynb", as_version=4)
    found = []
    for cell in notebook.cells:
        if cell.cell_type != "markdown":
            continue
        fenced = False
        for line in cell.source.splitlines():
            if line.lstrip().startswith(("```", "~~~")):
                fenced = not fenced
            elif not fenced and re.match(r"#{1,6} ", line):
                found.append(line.lstrip("#").strip())
    return found


# ----------------------------------------------------------------------------- every chapter


def test_every_chapter_with_committed_results_has_claims_or_a_reason(books, claims):
    with_results = [c for c in results.RECIPES if (results.results_dir(c) / "manifest.json").is_file()]
    assert with_results and glance.committed() == with_results
    assert set(glance.EXCLUDED) <= set(results.RECIPES)
    for chapter in with_results:
        if chapter in glance.EXCLUDED:
            assert len(glance.EXCLUDED[chapter]) > 20, f"{chapter}: say why it is left out"
            with pytest.raises(ValueError, match="no headline"):
                glance.headline(chapter)
            continue
        own = glance.headline(chapter)(books[chapter])
        assert own, f"{chapter}: no claims"
        assert all(c.chapter == chapter for c in own)
        assert chapter in glance.CHAPTERS, f"{chapter}: give it a name in glance.CHAPTERS"
    assert {c.chapter for c in claims} == set(with_results) - set(glance.EXCLUDED)


def test_every_verdict_is_one_of_the_three_and_every_text_is_filled(claims):
    for claim in claims:
        assert claim.verdict in glance.VERDICTS
        assert claim.claim and claim.paper and claim.measured, claim
        assert "nan" not in claim.measured.lower().split(), claim
    with pytest.raises(ValueError, match="verdict"):
        Claim("x", "a claim", "paper", "ours", "reproduced-ish", "chapters/x/x", "A heading")


def test_the_counts_add_up(claims):
    tally = glance.counts(claims)
    assert list(tally) == list(glance.VERDICTS) and sum(tally.values()) == len(claims)


# ----------------------------------------------------------------------------- the rules


def test_the_direction_rule_gives_each_verdict():
    # better, as the paper says: outside the spread, within it, or the wrong way round
    assert direction(1.0, 0.2, 3, +1) == REPRODUCED
    assert direction(0.1, 0.5, 3, +1) == PARTLY
    assert direction(-1.0, 0.2, 3, +1) == NOT_REPRODUCED
    assert direction(-0.1, 0.5, 3, +1) == NOT_REPRODUCED      # the opposite sign, even within the spread
    # worse, as the paper says: the mirror image
    assert direction(-1.0, 0.2, 3, -1) == REPRODUCED
    assert direction(-0.1, 0.5, 3, -1) == PARTLY
    assert direction(1.0, 0.2, 3, -1) == NOT_REPRODUCED
    # one seed has no spread to judge by; a difference that rounds to zero has no sign; nothing measured
    assert direction(1.0, math.nan, 1, +1) == PARTLY
    assert direction(1.0, 0.1, 1, +1) == PARTLY
    assert direction(0.001, 0.2, 3, +1) == NOT_REPRODUCED
    assert direction(math.nan, math.nan, 0, +1) == NOT_REPRODUCED
    # equal, as the paper says
    assert direction(0.1, 0.5, 3, 0) == REPRODUCED
    assert direction(0.001, math.nan, 1, 0) == REPRODUCED
    assert direction(2.0, math.nan, 1, 0) == PARTLY
    assert direction(2.0, 0.1, 3, 0) == NOT_REPRODUCED
    with pytest.raises(ValueError, match="expected"):
        direction(1.0, 0.1, 3, 2)


def test_the_share_rule_gives_each_verdict():
    assert share(9, 9) == REPRODUCED
    assert share(7, 9) == REPRODUCED                           # 7/9 >= 3/4
    assert share(6, 9) == PARTLY
    assert share(1, 9) == PARTLY
    assert share(0, 9) == NOT_REPRODUCED
    assert share(0, 0) == NOT_REPRODUCED
    assert share(1, 2, most=0.5) == REPRODUCED
    with pytest.raises(ValueError, match="held"):
        share(10, 9)


def _metatasnet_rows(meta_ahead: float):
    g = np.random.default_rng(0)
    rows = []
    for variant in ("meta", "independent", "multi-task"):
        for seed in (0, 1, 2):
            for song in ("a", "b"):
                for source in ("vocals", "drums", "bass", "other"):
                    value = 3.0 + (meta_ahead if variant == "meta" else 0.0) + 0.05 * g.normal()
                    rows.append({"variant": variant, "seed": seed, "song": song, "domain": "musdb",
                                 "source": source, "metric": "SI-SDR", "value": value})
    return pd.DataFrame(rows)


def test_a_headline_follows_the_rows_both_ways():
    """The same rule through a recipe's headline: meta clearly ahead is reproduced, clearly behind is not."""
    from sepbook.recipes.metatasnet import evaluation

    ahead = evaluation.headline(SimpleNamespace(rows=_metatasnet_rows(+1.0), cfg={}))
    behind = evaluation.headline(SimpleNamespace(rows=_metatasnet_rows(-1.0), cfg={}))
    assert [c.verdict for c in ahead] == [REPRODUCED, REPRODUCED]
    assert [c.verdict for c in behind] == [NOT_REPRODUCED, NOT_REPRODUCED]
    for said, gain in ((ahead, 1.0), (behind, -1.0)):
        number = re.search(r": ([+-]\d+\.\d+) ± ", said[0].measured)
        assert number and float(number.group(1)) == pytest.approx(gain, abs=0.1), said[0].measured


def test_the_transfer_headline_counts_cases_the_right_way_round():
    from sepbook.recipes import transfer
    from sepbook.recipes.transfer import evaluation

    cfg = transfer.config("tiny", pretraining=("slakh", "musdb"), augmentations=("none", "pitch"),
                          downstream=("dagstuhl",))
    g = np.random.default_rng(1)

    def rows(gain_of):
        out = []
        for variant, seed in transfer.runs(cfg):
            if transfer.plan(variant).kind == "pretrain":
                continue
            for i in range(20):
                out.append({"variant": variant, "seed": seed, "song": f"dagstuhl {i:03d}", "domain": "dagstuhl",
                            "source": "male", "metric": "SI-SDR", "value": gain_of(variant) + 0.01 * g.normal()})
        return pd.DataFrame(out)

    # pre-training helps, the mask head alone costs 1 dB, pitch shifting adds 1 dB
    helps = rows(lambda v: 0.0 if v.endswith("scratch") else 2.0 - v.endswith("mask") + v.count("pitch"))
    said = {c.claim.split("(")[-1]: c.verdict for c in evaluation.headline(SimpleNamespace(rows=helps, cfg=cfg))}
    assert said["H1)"] == REPRODUCED and said["R2)"] == REPRODUCED
    assert said["the paper's answer to H2)"] == NOT_REPRODUCED   # every augmentation a significant gain
    # pre-training hurts, the mask head alone gains
    hurts = rows(lambda v: 3.0 if v.endswith("scratch") else 1.0 + v.endswith("mask"))
    said = {c.claim.split("(")[-1]: c.verdict for c in evaluation.headline(SimpleNamespace(rows=hurts, cfg=cfg))}
    assert said["H1)"] == NOT_REPRODUCED and said["R2)"] == NOT_REPRODUCED
    assert said["the paper's answer to H2)"] == REPRODUCED


# ----------------------------------------------------------------------------- the numbers are the rows'


def _per_seed_gain(frame, variant, baseline):
    means = frame.groupby(["variant", "seed"])["value"].mean()
    gain = (means[variant] - means[baseline]).dropna()
    return gain.mean(), gain.std(ddof=1)


def _one(claims, chapter, text):
    found = [c for c in claims if c.chapter == chapter and text in c.claim]
    assert len(found) == 1, (chapter, text, [c.claim for c in claims if c.chapter == chapter])
    return found[0]


def test_metatasnet_measured_text_is_the_rows(books, claims):
    rows = books["metatasnet"].rows
    rows = rows[(rows["metric"] == "SI-SDR") & (rows["domain"] != "cost")]
    by_source = rows.groupby(["variant", "seed", "source"])["value"].mean().reset_index()
    mean, std = _per_seed_gain(by_source, "meta", "independent")
    claim = _one(claims, "metatasnet", "independent extractors")
    assert f"{mean:+.2f} ± {std:.2f} dB" in claim.measured


def test_activity_measured_text_is_the_rows(books, claims):
    rows = books["activity"].rows
    sdr = rows[rows["metric"] == "SDR"]
    failed = sdr[sdr["value"].isna()].set_index(["domain", "song", "source"]).index
    sdr = sdr[~sdr.set_index(["domain", "song", "source"]).index.isin(failed)]
    vocals = sdr[(sdr["domain"] == "musdb") & (sdr["source"] == "vocals")]
    mean, std = _per_seed_gain(vocals, "IASS", "BLSTM")
    claim = _one(claims, "activity", "vocals better than its baseline (MUSDB")
    assert f"{mean:+.2f} ± {std:.2f} dB" in claim.measured


def test_adversarial_measured_text_is_the_rows(books, claims):
    from sepbook.recipes.adversarial import evaluation

    book = books["adversarial"]
    paired = [d for d, role in evaluation.roles(book.cfg).items() if role == "DSD100"]
    rows = book.rows
    voice = rows[(rows["metric"] == "SDR") & (rows["source"] == "vocals") & ~rows["domain"].isin(paired)]
    mean, std = _per_seed_gain(voice, "V", "baseline")
    claim = _one(claims, "adversarial", "(V) raises the voice's SDR")
    assert claim.measured.startswith(f"{mean:+.2f} ± {std:.2f} dB over 3 seeds")
    assert (claim.verdict == REPRODUCED) == (mean > 0 and abs(mean) > std)


def test_transfer_and_transcription_measured_text_is_the_rows(books, claims):
    cfg = books["transfer"].cfg
    h1 = _one(claims, "transfer", "(H1)")
    assert f"of {len(cfg['downstream']) * len(cfg['pretraining'])} cases" in h1.measured
    r2 = _one(claims, "transfer", "(R2)")
    grid = len(cfg["downstream"]) * len(cfg["pretraining"]) * len(cfg["augmentations"])
    assert f"of {grid} cases" in r2.measured
    # Table 1: supervised minus isolated c+h-mix, average SI-SDR over instruments per song
    rows = books["transcription"].rows
    rows = rows[rows["metric"] == "SI-SDR"]
    per_song = rows.groupby(["variant", "seed", "song"])["value"].mean().reset_index()
    mean, std = _per_seed_gain(per_song, "supervised", "isolated c+h-mix")
    claim = _one(claims, "transcription", "Stems still beat the score")
    assert claim.measured == f"{mean:+.2f} ± {std:.2f} dB over 3 seeds"


# ----------------------------------------------------------------------------- the links


def test_every_link_lands_on_a_heading_of_a_page_in_the_toc(claims):
    from docutils.nodes import make_id

    listed = _toc_files()
    assert glance.PAGE in listed
    for claim in claims:
        assert claim.page in listed, f"{claim.page} is not in _toc.yml"
        headings = _headings(claim.page)
        assert claim.section in headings, f"{claim.page} has no heading {claim.section!r}: {headings}"
        slugs = [glance.slug(h) for h in headings]
        assert slugs.count(claim.anchor) == 1, f"{claim.page}: heading {claim.section!r} is not unique"
        assert claim.anchor == make_id(glance._plain(claim.section))
        target, anchor = claim.href().split("#")
        assert (ROOT / posixpath.dirname(glance.PAGE) / target).with_suffix(".ipynb").is_file(), target
        assert anchor == claim.anchor


def test_slug_is_the_id_docutils_gives_every_heading_of_the_book():
    from docutils.nodes import make_id

    tricky = ["The `make_id` trick", "**Bold** start", "3 stems, 2 seeds", "Café: the paper's Fig. 1"]
    for heading in tricky:
        assert glance.slug(heading) == make_id(glance._plain(heading)), heading
    for page in sorted(p for p in _toc_files() if (ROOT / f"{p}.ipynb").is_file()):
        for heading in _headings(page):
            assert glance.slug(heading) == make_id(glance._plain(heading)), (page, heading)
