"""The book's one claims rule: a paper's claim, declared as data, judged on paired test songs.

Each paper chapter declares its paper's claims in one place (``sepbook/recipes/<chapter>/claims.py``,
a tuple ``CLAIMS`` of :class:`Claim`), before its results are produced. :func:`judge` decides them
all by the same rule, and both the chapter's "What reproduced" section and the results-at-a-glance
page show its :class:`Verdict` objects.

The rule, for one claim:

1. **Pair.** For each test song and seed, the claim's variant minus its reference, on the same song,
   averaged over the claim's sources (and over its pairs of variants, when it pools several). A
   reference without seeds (the unprocessed mixture) stands beside every seed. The effect is the
   mean over songs of each song's mean over seeds.
2. **Interval.** A two-way bootstrap (:func:`bootstrap`): resample the songs with replacement and,
   in the same draw, the seeds with replacement, and take the mean over the drawn songs and
   seeds. Seeds are drawn once for all songs because a seed is one trained model that plays every
   song. The spread of those means reflects both how songs differ and how retraining differs;
   the 95 % interval is their 2.5th to 97.5th percentile.
3. **Decide.** A claim that one system scores higher (or lower) is *reproduced* when its interval
   lies on the paper's side of zero, *contradicted* when it lies on the other side, and
   *inconclusive* otherwise. A claim of "no difference" is reproduced only when its interval lies
   inside the equivalence margin declared with the claim, contradicted when it lies wholly outside
   it, and inconclusive otherwise -- never reproduced for lack of evidence.
4. **Family.** A chapter's claims are one family: each claim's bootstrap p-value (the smallest
   two-sided level at which its interval would decide it) is adjusted by Holm's step-down method
   (:func:`holm`), and a claim is decided only when its adjusted p-value is below 0.05. With one
   claim this is exactly step 3.
5. **Guards.** Fewer than :data:`MIN_SONGS` songs or :data:`MIN_SEEDS` seeds on either side give
   *inconclusive*. A reference that scores below its declared floor (the unprocessed mixture) has
   collapsed: the claim is *not comparable*, and its numbers are shown but not used as evidence.

Chapter: glance/results_at_a_glance
"""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from typing import Iterable, Sequence

import numpy as np

REPRODUCED, CONTRADICTED, INCONCLUSIVE, NOT_COMPARABLE = "reproduced", "contradicted", "inconclusive", "not comparable"
#: The four verdicts, in the order the pages count them.
VERDICTS: tuple[str, ...] = (REPRODUCED, CONTRADICTED, INCONCLUSIVE, NOT_COMPARABLE)
#: The family-wise error rate of a chapter's claims.
ALPHA = 0.05
#: Bootstrap draws: enough that a p-value of ALPHA / 20 is resolved.
DRAWS = 20_000
#: Fewer songs than this, or seeds than :data:`MIN_SEEDS`, and no interval is trusted.
MIN_SONGS = 5
MIN_SEEDS = 2
HIGHER, LOWER, SAME = 1, -1, 0


@dataclass(frozen=True)
class Claim:
    """One claim of a paper, fixed before the results exist.

    ``versus`` holds the (variant, reference) pairs the paper compares; several pairs are pooled
    per song (for a claim about every pre-training set, say). ``expect`` is the paper's direction
    for variant minus reference (:data:`HIGHER`, :data:`LOWER`, or :data:`SAME` with a ``margin``
    in the metric's unit). ``sources``/``domains`` of ``None`` take every one; ``seeds`` of
    ``None`` every seed. ``floor``, when given, is the row the reference must beat (the
    unprocessed mixture) for the comparison to count. ``paper_effect`` is the paper's own
    difference in the same unit, ``None`` when the paper gives only a direction. ``reason`` is
    the likeliest reason, in one sentence, if the book does not reproduce the claim.
    """

    id: str
    words: str
    paper: str
    versus: tuple[tuple[str, str], ...]
    metric: str
    expect: int
    reason: str
    paper_effect: float | None = None
    sources: tuple[str, ...] | None = None
    domains: tuple[str, ...] | None = None
    seeds: tuple[int, ...] | None = None
    margin: float = 0.0
    floor: str | None = None
    unit: str = "dB"

    def __post_init__(self):
        if self.expect not in (HIGHER, LOWER, SAME):
            raise ValueError(f"{self.id}: expect must be HIGHER (+1), LOWER (-1) or SAME (0), got {self.expect!r}")
        if self.expect == SAME and not self.margin > 0:
            raise ValueError(f"{self.id}: a 'no difference' claim needs an equivalence margin > 0, got {self.margin!r}")
        if not self.versus or any(len(pair) != 2 for pair in self.versus):
            raise ValueError(f"{self.id}: versus must hold (variant, reference) pairs, got {self.versus!r}")


def compare(variant: str, reference: str) -> tuple[tuple[str, str], ...]:
    """``versus`` for a claim with one pair."""
    return ((variant, reference),)


@dataclass(frozen=True)
class Verdict:
    """What the rule found for one :class:`Claim` (effects in the claim's unit)."""

    claim: Claim
    verdict: str
    effect: float
    low: float
    high: float
    p: float
    p_holm: float
    songs: int
    seeds: int
    note: str = ""
    per_song: dict = field(default_factory=dict, compare=False, repr=False)

    def measured(self, digits: int = 2) -> str:
        """``'+0.41 dB (95 % CI −0.10 to +0.93; 12 songs × 3 seeds)'``."""
        if not math.isfinite(self.effect):
            return "no paired scores"
        unit = f" {self.claim.unit}" if self.claim.unit else ""
        return (f"{self.effect:+.{digits}f}{unit} (95 % CI {self.low:+.{digits}f} to {self.high:+.{digits}f}; "
                f"{self.songs} songs × {self.seeds} seeds)")


# ----------------------------------------------------------------------------- the statistics


def bootstrap(differences: np.ndarray, draws: int = DRAWS, seed: int = 0) -> np.ndarray:
    """Means of a two-way bootstrap of ``differences`` ``(songs, seeds)`` (NaN where a song lacks a
    seed): in each draw, songs with replacement and seeds with replacement, and the mean over the
    drawn songs x drawn seeds. -> ``(draws,)``.

    Seeds are drawn once per draw, not per song: a seed is one trained model that plays every
    song, so its luck is shared by all of them. Drawing seeds song by song would average that
    luck away and let one lucky seed carry a claim.
    """
    d = np.asarray(differences, dtype=float)
    if d.ndim != 2 or d.shape[0] == 0 or d.shape[1] == 0:
        raise ValueError(f"differences: expected a (songs, seeds) array with at least one song, got shape {d.shape}")
    if not np.isfinite(d).any(axis=1).all():
        raise ValueError("differences: every song needs at least one finite difference")
    rng = np.random.default_rng(seed)
    songs, seeds = d.shape
    out = np.empty(draws)
    for start in range(0, draws, 2000):  # in chunks: chunk x songs x seeds stays small
        n = min(2000, draws - start)
        drawn_songs = rng.integers(0, songs, size=(n, songs, 1))
        drawn_seeds = rng.integers(0, seeds, size=(n, 1, seeds))
        with warnings.catch_warnings():  # a draw of only missing pairs is dropped below
            warnings.simplefilter("ignore", RuntimeWarning)
            out[start:start + n] = np.nanmean(d[drawn_songs, drawn_seeds], axis=(1, 2))
    return out[np.isfinite(out)]


def p_value(draws: np.ndarray, low: float, high: float | None = None) -> tuple[float, float]:
    """Bootstrap p-values of the two sides a claim can be decided on.

    With ``high`` of ``None``: ``(p of effect > low, p of effect < low)``, each two-sided (twice the
    share of draws on the other side), so that a 95 % interval excludes ``low`` exactly when one
    of them is below 0.05. With ``high``: ``(p of lying inside (low, high), p of lying outside)``.
    """
    n = len(draws)

    def share(mask) -> float:
        return (np.count_nonzero(mask) + 1) / (n + 1)

    if high is None:
        return min(1.0, 2 * share(draws <= low)), min(1.0, 2 * share(draws >= low))
    inside = min(1.0, 2 * max(share(draws <= low), share(draws >= high)))
    outside = min(1.0, 2 * min(share(draws >= low), share(draws <= high)))
    return inside, outside


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm's step-down adjusted p-values (NaN stays NaN and counts as no test)."""
    p = np.asarray(p_values, dtype=float)
    tested = np.flatnonzero(np.isfinite(p))
    adjusted = np.full(len(p), math.nan)
    m, running = len(tested), 0.0
    for rank, index in enumerate(tested[np.argsort(p[tested], kind="stable")]):
        running = max(running, min(1.0, (m - rank) * p[index]))
        adjusted[index] = running
    return adjusted.tolist()


# ----------------------------------------------------------------------------- from rows to verdicts


def differences(claim: Claim, rows):
    """The claim's paired differences as a ``(song, seed)`` table (NaN where a pair is missing)."""
    import pandas as pd

    table = _select(claim, rows)
    parts = []
    for variant, reference in claim.versus:
        ours = table[table["variant"] == variant]
        theirs = table[table["variant"] == reference]
        if theirs["seed"].isna().all() and len(theirs):  # no seed: stands beside every seed
            theirs = pd.concat([theirs.assign(seed=s) for s in sorted(ours["seed"].dropna().unique())])
        keys = ["song", "seed", "source"]
        joined = ours.merge(theirs, on=keys, suffixes=("", "_ref"))
        joined["value"] = joined["value"] - joined["value_ref"]
        parts.append(joined[keys + ["value"]].dropna())
    if not parts or not sum(len(p) for p in parts):
        return pd.DataFrame()
    paired = pd.concat(parts)
    return paired.groupby(["song", "seed"])["value"].mean().unstack("seed")


def _select(claim: Claim, rows):
    from sepbook.experiments import report

    table = report.frame(rows)
    keep = (table["metric"] == claim.metric)
    keep &= table["variant"].isin({v for pair in claim.versus for v in pair} | {claim.floor})
    if claim.sources is not None:
        keep &= table["source"].isin(claim.sources)
    if claim.domains is not None:
        keep &= table["domain"].isin(claim.domains)
    table = table[keep]
    if claim.seeds is not None:
        table = table[table["seed"].isna() | table["seed"].isin(claim.seeds)]
    return table


def collapsed(claim: Claim, rows) -> str:
    """Why the claim's reference cannot serve as evidence ('' when it can): it scores below ``floor``."""
    if claim.floor is None:
        return ""
    references = {reference for _, reference in claim.versus}
    below = []
    for reference in sorted(references):
        probe = Claim(claim.id, "", "", ((reference, claim.floor),), claim.metric, HIGHER, "",
                      sources=claim.sources, domains=claim.domains, seeds=claim.seeds)
        paired = differences(probe, rows)
        if len(paired) and float(np.nanmean(paired.mean(axis=1))) < 0:
            below.append(f"{reference} scores {float(np.nanmean(paired.mean(axis=1))):+.2f} {claim.unit} "
                         f"against {claim.floor}")
    return ("the reference collapsed below the unprocessed input (" + "; ".join(below) + ")") if below else ""


def _measure(claim: Claim, rows) -> dict:
    """Effect, interval and the two sides' p-values of one claim, before the family adjustment."""
    paired = differences(claim, rows)
    nan = math.nan
    if paired.empty:
        return dict(effect=nan, low=nan, high=nan, p=(nan, nan), songs=0, seeds=0, note="no paired scores",
                    per_song={})
    per_song = paired.mean(axis=1)
    songs = len(paired)
    seeds = int(paired.notna().any(axis=0).sum())  # seeds with any paired score
    draws = bootstrap(paired.to_numpy())
    low, high = np.percentile(draws, [2.5, 97.5])
    if claim.expect == SAME:
        p = p_value(draws, -claim.margin, claim.margin)
    else:
        p = p_value(draws, 0.0)
        p = p if claim.expect == HIGHER else p[::-1]  # (paper's side, other side)
    note = ""
    if songs < MIN_SONGS:
        note = f"too few songs ({songs}, at least {MIN_SONGS} needed)"
    elif seeds < MIN_SEEDS:
        note = f"too few seeds ({seeds}, at least {MIN_SEEDS} needed for the seed-to-seed spread)"
    return dict(effect=float(per_song.mean()), low=float(low), high=float(high), p=p, songs=songs, seeds=seeds,
                note=note, per_song=per_song.to_dict())


def judge(claims: Iterable[Claim], rows) -> list[Verdict]:
    """Every claim of one family (a chapter) decided on ``rows`` (:data:`sepbook.experiments.report.COLUMNS`)."""
    claims = list(claims)
    ids = [c.id for c in claims]
    if len(set(ids)) != len(ids):
        raise ValueError(f"claims: ids must be unique within a chapter, got {ids}")
    found = [_measure(c, rows) for c in claims]
    flags = [collapsed(c, rows) for c in claims]
    usable = [not f["note"] and not flag for f, flag in zip(found, flags)]
    # each claim's p-value is that of the side its interval points to; Holm adjusts them together
    p = [min(f["p"]) if ok else math.nan for f, ok in zip(found, usable)]
    adjusted = holm(p)
    verdicts = []
    for claim, f, flag, ok, p_adj in zip(claims, found, flags, usable, adjusted):
        if flag:
            verdict, note = NOT_COMPARABLE, flag
        elif not ok:
            verdict, note = INCONCLUSIVE, f["note"]
        elif p_adj < ALPHA:
            verdict, note = (REPRODUCED if f["p"][0] <= f["p"][1] else CONTRADICTED), ""
        else:
            verdict, note = INCONCLUSIVE, ""
        p_side = min(f["p"]) if all(math.isfinite(x) for x in f["p"]) else math.nan
        verdicts.append(Verdict(claim, verdict, f["effect"], f["low"], f["high"], p_side, p_adj, f["songs"],
                                f["seeds"], note, f["per_song"]))
    return verdicts


def counts(verdicts: Iterable[Verdict]) -> dict[str, int]:
    """How many verdicts of each kind, every kind present."""
    verdicts = list(verdicts)
    return {v: sum(x.verdict == v for x in verdicts) for v in VERDICTS}


# ----------------------------------------------------------------------------- for the pages


#: Background colours of the verdicts (with dark text, for both themes).
COLOURS = {REPRODUCED: "#d9efd5", CONTRADICTED: "#f6d6d6", INCONCLUSIVE: "#fbeecb", NOT_COMPARABLE: "#e3e3e3"}


def paper_number(claim: Claim, digits: int = 2) -> str:
    """The paper's effect in the claim's unit, or its direction when it gives no number."""
    if claim.paper_effect is None:
        return {HIGHER: "higher", LOWER: "lower", SAME: "no difference"}[claim.expect]
    unit = f" {claim.unit}" if claim.unit else ""
    return f"{claim.paper_effect:+.{digits}f}{unit}"


def expected_words(claim: Claim) -> str:
    if claim.expect == SAME:
        unit = f" {claim.unit}" if claim.unit else ""
        return f"within ±{claim.margin:g}{unit}"
    return "above 0" if claim.expect == HIGHER else "below 0"


def table(verdicts: Sequence[Verdict], profile: str = "book", digits: int = 2, links: Sequence[str] | None = None):
    """The verdicts as a DataFrame for a page: claim, the paper, the book's effect with its interval,
    Holm-adjusted p, verdict, and the reason when it did not reproduce. Text is HTML-escaped;
    ``links`` (HTML, one per verdict) adds a ``shown in`` column."""
    import html

    import pandas as pd

    def esc(text: str) -> str:
        return html.escape(text, quote=False)

    records = []
    for i, v in enumerate(verdicts):
        c = v.claim
        why = "" if v.verdict == REPRODUCED else (v.note + ". " if v.note else "") + c.reason
        p = "–" if not math.isfinite(v.p_holm) else ("< 0.001" if v.p_holm < 0.001 else f"{v.p_holm:.3f}")
        record = {"id": esc(c.id), "claim": esc(c.words), "the paper": esc(f"{paper_number(c, digits)}: {c.paper}"),
                  f"this book ({profile})": esc(f"{c.metric}: {v.measured(digits)}"), "needed": esc(expected_words(c)),
                  "Holm p": p, "verdict": v.verdict, "likeliest reason": esc(why)}
        if links is not None:
            record["shown in"] = links[i]
        records.append(record)
    return pd.DataFrame(records).set_index("id")


def styled(frame):
    """:func:`table`'s DataFrame as a pandas Styler: verdicts coloured, text left-aligned, links live."""
    def colour(value):
        return f"background-color: {COLOURS[value]}; color: #1f1f1f" if value in COLOURS else ""

    cells = "text-align: left; vertical-align: top; padding: 0.3em 0.5em;"
    return (frame.style.format(escape=None)
            .map(colour, subset=["verdict"])
            .set_table_styles([{"selector": "", "props": "font-size: 0.82em; border-collapse: collapse;"},
                               {"selector": "th, td", "props": cells},
                               {"selector": "tbody tr", "props": "border-top: 1px solid #d0d0d0;"}]))


def summary(verdicts: Sequence[Verdict]) -> str:
    """'3 reproduced, 1 contradicted, 4 inconclusive, 1 not comparable, of 9 claims'."""
    found = counts(verdicts)
    parts = [f"{n} {name}" for name, n in found.items() if n or name != NOT_COMPARABLE]
    return ", ".join(parts) + f", of {len(verdicts)} claims"
