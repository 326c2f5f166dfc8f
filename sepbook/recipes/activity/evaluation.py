"""Separating whole songs with and without the activity weighting, and scoring them like the paper:
BSS Eval v4 SDR per instrument (museval) for IASS, the BLSTM, the ideal binary mask and the
unprocessed mixture, plus activity-detection accuracy and F1.

Each song is scored as one BSS Eval window. The usual framing (median over 1 s frames) skips every
frame in which any source is silent, and those are exactly the frames the activity weighting changes.

Chapter: activity/activity_aware
"""
from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np
import torch

from sepbook import metrics, report
from sepbook.activity import activity_weights, weight_masks
from sepbook.masks import oracle_separation
from sepbook.recipes.activity.data import n_bins
from sepbook.recipes.activity.training import VARIANTS, masks_and_logits
from sepbook.recipes.adversarial.spectrograms import front_end
from sepbook.tracks import Track

#: What the paper found (its Figures 3 and 4 give no numbers in the text we have): IASS against
#: Open-Unmix per instrument, and which instruments both separate best on the MedleyDB set.
PAPER: dict[str, Any] = {
    "source": "Hung and Lerch (ISMIR 2020), Figures 3 and 4 and their discussion",
    "musdb": {"vocals": "IASS better", "drums": "IASS better", "other": "equal", "bass": "slightly worse"},
    "medley": {name: "IASS better" for name in
               ("vocals", "bass", "drums", "piano", "electric_guitar", "acoustic_guitar")},
    "medley_easier": ("drums", "bass", "vocals"),
    "medley_harder": ("electric_guitar", "piano", "acoustic_guitar"),
}
UNWEIGHTED = "IASS without weighting"


@torch.no_grad()
def song_masks(model: torch.nn.Module, magnitude: torch.Tensor, max_frames: int = 4096
               ) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Masks ``(K, F, T)`` of a whole song's magnitude ``(F, T)`` and, for IASS, activity
    probabilities ``(K, T)``. Songs longer than ``max_frames`` go through in pieces of that many
    frames, so that a full-length song at the ``paper`` size fits in memory."""
    model.eval()
    device = next(model.parameters()).device
    masks, probabilities = [], []
    for start in range(0, magnitude.shape[-1], max_frames):
        piece, logits = masks_and_logits(model, magnitude[None, None, :, start:start + max_frames].to(device))
        masks.append(piece[0].float().cpu())
        probabilities.append(None if logits is None else torch.sigmoid(logits[0]).float().cpu())
    if probabilities[0] is None:
        return torch.cat(masks, dim=-1), None
    return torch.cat(masks, dim=-1), torch.cat(probabilities, dim=-1)


def separations(model: torch.nn.Module, mixture: torch.Tensor, threshold: float, median_frames: int):
    """Everything one pass of the network gives for a mixture ``(channels, time)``: the unweighted
    and (IASS only, else ``None``) the weighted estimates ``(K, channels, time)``, and the frame
    weights ``(K, T)`` of each channel (an empty list for the BLSTM)."""
    stft = front_end(model.settings)
    unweighted, weighted, weights = [], [], []
    for wave in mixture:
        spec = stft(wave)                                                    # (n_fft / 2 + 1, frames)
        masks, probabilities = song_masks(model, spec[: n_bins(model.settings)].abs())
        unweighted.append(_with_mixture_phase(stft, masks, spec, len(wave)))
        if probabilities is not None:
            weights.append(activity_weights(probabilities, threshold, median_frames))
            weighted.append(_with_mixture_phase(stft, weight_masks(masks, weights[-1]), spec, len(wave)))
    return torch.stack(unweighted, dim=1), torch.stack(weighted, dim=1) if weighted else None, weights


def _with_mixture_phase(stft, masks: torch.Tensor, spec: torch.Tensor, length: int) -> torch.Tensor:
    full = torch.nn.functional.pad(masks, (0, 0, 0, 1))                     # the Nyquist bin gets mask 0
    return stft.inverse(full * spec, length)


def separate(model: torch.nn.Module, mixture: torch.Tensor, weighted: bool = True,
             threshold: float | None = None, median_frames: int | None = None) -> torch.Tensor:
    """Separate a mixture ``(channels, time)`` into ``(K, channels, time)`` with the mixture's phase.

    For IASS with ``weighted=True`` every mask frame is multiplied by the binarised, median-filtered
    activity (``threshold`` and ``median_frames`` default to the profile's).
    """
    mixture = torch.as_tensor(mixture, dtype=torch.float32)
    if mixture.dim() != 2:
        raise ValueError(f"mixture: expected (channels, time), got shape {tuple(mixture.shape)}")
    settings = model.settings
    threshold = settings["threshold"] if threshold is None else threshold
    median_frames = settings["median_frames"] if median_frames is None else median_frames
    unweighted, weighted_estimates, _ = separations(model, mixture, threshold, median_frames)
    return weighted_estimates if weighted and weighted_estimates is not None else unweighted


def sdr_rows(estimates: torch.Tensor, track: Track, cfg: Mapping[str, Any], variant: str,
             seed: int | None) -> list[dict]:
    """BSS Eval v4 SDR of ``estimates`` ``(K, channels, time)``, the whole song as one window."""
    sdr = metrics.bss_eval(track.sources, estimates, cfg["sr"], window_seconds=None)["SDR"][:, 0]
    values = {name: {"SDR": float(sdr[k])} for k, name in enumerate(track.source_names)}
    return report.rows_for(values, variant=variant, seed=seed, song=track.name, domain=track.domain)


def detection_scores(predicted: torch.Tensor, labels: torch.Tensor) -> dict[str, np.ndarray]:
    """Frame accuracy and F1 per instrument of 0/1 ``predicted`` against ``labels``, both ``(K, T)``.

    F1 is NaN for an instrument that is silent in the labels and never predicted: there is no
    active frame to find, so neither a hit nor a miss."""
    predicted, labels = predicted.bool(), labels.bool()
    true_positive = (predicted & labels).sum(-1).double()
    precision = true_positive / predicted.sum(-1).clamp(min=1)
    recall = true_positive / labels.sum(-1).clamp(min=1)
    f1 = torch.where(precision + recall > 0, 2 * precision * recall / (precision + recall).clamp(min=1e-12),
                     torch.zeros_like(precision))
    f1[~predicted.any(-1) & ~labels.any(-1)] = float("nan")
    return {"accuracy": (predicted == labels).double().mean(-1).numpy(), "F1": f1.numpy()}


def activity_rows(weights: torch.Tensor, track: Track, seed: int | None) -> list[dict]:
    """Activity-detection accuracy and F1 on ``track`` of IASS's frame ``weights`` ``(K, T)`` (the
    activity after the weighting's threshold and filter)."""
    scores = detection_scores(weights, track.activity)
    values = {name: {f"activity {m}": float(scores[m][k]) for m in scores} for k, name in enumerate(track.source_names)}
    return report.rows_for(values, variant="IASS", seed=seed, song=track.name, domain=track.domain)


def evaluate(cfg: Mapping[str, Any], models: Mapping[tuple[str, int], torch.nn.Module],
             tracks: Sequence[Track]) -> list[dict]:
    """SDR rows of every ``(variant, seed) -> model`` on the test songs of its set (IASS with and
    without the weighting), and IASS's activity-detection rows."""
    rows = []
    for (variant, seed), model in models.items():
        name, dataset = VARIANTS[variant]
        for track in (t for t in tracks if t.domain == dataset):
            unweighted, weighted, weights = separations(model, track.mixture, cfg["threshold"],
                                                        cfg["median_frames"])
            if name == "IASS":
                rows += sdr_rows(weighted, track, cfg, name, seed)
                rows += sdr_rows(unweighted, track, cfg, UNWEIGHTED, seed)
                rows += activity_rows(weights[0], track, seed)
            else:
                rows += sdr_rows(unweighted, track, cfg, name, seed)
    return rows


def reference_rows(cfg: Mapping[str, Any], tracks: Sequence[Track]) -> list[dict]:
    """Rows that need no training: SDR of the ideal binary mask and of the mixture itself (the input
    SDR), and the fraction of silent frames of every instrument (variant 'labels')."""
    rows = []
    for track in tracks:
        ibm = oracle_separation(track.mixture, track.sources, kind="ibm", n_fft=cfg["n_fft"], hop=cfg["hop"])
        rows += sdr_rows(ibm, track, cfg, "IBM", None)
        rows += sdr_rows(track.mixture.expand_as(track.sources), track, cfg, "mixture", None)
        silent = 1 - track.activity.float().mean(-1)
        values = {name: {"silent fraction": float(silent[k])} for k, name in enumerate(track.source_names)}
        rows += report.rows_for(values, variant="labels", seed=None, song=track.name, domain=track.domain)
    return rows


# ----------------------------------------------------------------------------- tables and claims

SYSTEMS: tuple[str, ...] = ("BLSTM", "IASS", UNWEIGHTED, "IBM", "mixture")


def scored_alike(rows):
    """The SDR rows of the (song, instrument) pairs that every system could be scored on, in every
    seed. BSS Eval cannot score an all-zero estimate (NaN), and a mean that skipped it for one
    system only would compare different songs; the tables and gains compare the same ones."""
    rows = report.frame(rows)
    sdr = rows[rows["metric"] == "SDR"]
    failed = sdr[sdr["value"].isna()].set_index(["domain", "song", "source"]).index.unique()
    keys = sdr.set_index(["domain", "song", "source"]).index
    return sdr[~keys.isin(failed)]


def unscored(rows) -> list[tuple[str, str, str, int]]:
    """``(set, song, instrument, seeds)`` of every pair :func:`scored_alike` leaves out, with in how
    many seeds the weighted IASS estimate was silent there."""
    rows = report.frame(rows)
    sdr = rows[rows["metric"] == "SDR"]
    failed = sdr[sdr["value"].isna()]
    out = []
    for (domain, song, source), group in failed.groupby(["domain", "song", "source"]):
        out.append((domain, song, source, int((group["variant"] == "IASS").sum())))
    return out


def sdr_table(rows, dataset: str, profile: str):
    """The paper's Figure 3 / 4 as a table: SDR (dB) per instrument (rows) for every system
    (columns), mean ± std over seeds, and what the paper found for IASS against its baseline."""
    import pandas as pd

    rows = scored_alike(rows)
    rows = rows[rows["domain"] == dataset]
    names = [n for n in PAPER[dataset] if n in set(rows["source"])]
    ours = report.table(rows, "source", ["variant"], index_order=names, column_order=[list(SYSTEMS)])
    ours.columns = [f"{c[0]} ({profile})" for c in ours.columns]
    ours["paper: IASS vs Open-Unmix"] = [PAPER[dataset][n] for n in names]
    return pd.DataFrame(ours)


def detection_table(rows, profile: str):
    """Activity-detection accuracy and F1 of IASS per set and instrument, mean ± std over seeds, with
    the fraction of silent frames in the test songs."""
    rows = report.frame(rows)
    detection = rows[rows["metric"].str.startswith("activity")]
    table = report.table(detection, "source", ["domain", "metric"])
    silent = rows[rows["metric"] == "silent fraction"].groupby(["domain", "source"])["value"].mean()
    for dataset in table.columns.get_level_values(0).unique():
        table[(dataset, "silent fraction")] = [f"{silent[(dataset, n)]:.2f}" if (dataset, n) in silent else "–"
                                               for n in table.index]
    table.columns.names = ["set", f"{profile} profile"]
    return table.sort_index(axis=1)


def gain_rows(rows, variant: str = "IASS", baseline: str = "BLSTM"):
    """``variant - baseline`` SDR per set and instrument (mean, std, wins, seeds) beside the
    instrument's fraction of silent test frames: a DataFrame indexed ``(domain, source)``."""
    rows = report.frame(rows)
    gain = report.gains(scored_alike(rows), variant, baseline, by=("domain", "source"))
    silent = rows[rows["metric"] == "silent fraction"].groupby(["domain", "source"])["value"].mean()
    return gain.assign(silent=silent.reindex(gain.index).to_numpy())


def side_by_side(rows, dataset: str, profile: str) -> dict[str, str]:
    """For every instrument of ``dataset``: the paper's finding, then whether ours agrees (IASS
    against the BLSTM), in one sentence."""
    gain = gain_rows(rows, "IASS", "BLSTM")
    nothing = {"mean": np.nan, "std": np.nan, "wins": 0, "seeds": 0}
    sentences = {}
    for name, finding in PAPER[dataset].items():
        g = gain.loc[(dataset, name)] if (dataset, name) in gain.index else nothing
        ours = report.describe(g, "IASS", "BLSTM", "SDR", f"on {name.replace('_', ' ')}", profile)
        sentences[name] = f"Paper: {finding}. Ours: {ours}"
    return sentences


def gain_table(rows, baseline: str, profile: str):
    """IASS minus ``baseline`` in SDR (dB) per instrument of each set: mean ± std over seeds, and in
    how many seeds IASS is ahead."""
    import pandas as pd

    gain = gain_rows(rows, "IASS", baseline)
    cells = {(dataset, name): {f"IASS − {baseline} ({profile})": report.cell(g["mean"], g["std"], int(g["seeds"])),
                               "seeds ahead": f"{int(g['wins'])} of {int(g['seeds'])}",
                               "silent fraction": f"{g['silent']:.2f}"}
             for (dataset, name), g in gain.iterrows()}
    table = pd.DataFrame(cells).T
    table.index.names = ["set", "instrument"]
    return table


def silence_correlation(rows, variant: str = "IASS", baseline: str = "BLSTM") -> float:
    """Pearson correlation, over every (set, instrument), of the mean SDR gain with the silent fraction."""
    gain = gain_rows(rows, variant, baseline)
    return float(np.corrcoef(gain["mean"], gain["silent"])[0, 1])


def difficulty_check(rows) -> dict[str, dict[str, Any]]:
    """The numbers behind :func:`difficulty`, per system (IASS, BLSTM) on the MedleyDB-like set:
    the ``lowest`` mean SDR of drums, bass and vocals, the ``highest`` of the guitars and piano,
    and whether the first is above the second (``holds``)."""
    sdr = scored_alike(rows)
    sdr = sdr[sdr["domain"] == "medley"]
    easier, harder = list(PAPER["medley_easier"]), list(PAPER["medley_harder"])
    found = {}
    for system in ("IASS", "BLSTM"):
        means = report.summary(sdr[sdr["variant"] == system], ("source",))["mean"]
        lowest, highest = means[easier].min(), means[harder].max()
        found[system] = {"lowest": lowest, "highest": highest, "holds": lowest > highest}
    return found


def difficulty(rows, profile: str) -> str:
    """The paper's second observation on its MedleyDB set, checked on ours: both systems score higher
    on drums, bass and vocals than on the guitars and piano."""
    found = difficulty_check(rows)
    holds = [f["holds"] for f in found.values()]
    parts = [f"{system}: lowest of the first group {f['lowest']:.2f} dB, highest of the second {f['highest']:.2f} dB"
             for system, f in found.items()]
    verdict = "holds for both systems" if all(holds) else (
        "holds for " + " and ".join(s for s, f in found.items() if f["holds"]) if any(holds)
        else "holds for neither system")
    return (f"In the {profile} profile, 'drums, bass and vocals above electric guitar, piano and acoustic "
            f"guitar' {verdict} ({'; '.join(parts)}).")


def conclusion(rows, profile: str) -> str:
    """Where IASS's lead over the BLSTM comes from: the network, or the weighting the paper adds."""
    overall = gain_rows(rows, "IASS", "BLSTM")
    weighting = gain_rows(rows, "IASS", UNWEIGHTED)
    ahead, helped, n = int((overall["mean"] > 0).sum()), int((weighting["mean"] > 0).sum()), len(overall)
    network = gain_rows(rows, UNWEIGHTED, "BLSTM")["mean"].mean()
    source = ("mostly from the network (a residual U-Net trained on both tasks), not from the weighting"
              if weighting["mean"].mean() < network else "mostly from the weighting")
    return (f"In the {profile} profile IASS is ahead of the BLSTM on {ahead} of {n} instruments, and its "
            f"weighting helps on {helped} of {n}; averaged over instruments, the network without weighting "
            f"gains {network:+.2f} dB over the BLSTM and the weighting adds {weighting['mean'].mean():+.2f} dB. "
            f"At this size the lead comes {source}.")
