"""The adversarial chapter's data: four synthetic domains in the roles of the paper's datasets,
split as the paper splits its datasets (spectrograms and batches: :mod:`.spectrograms`).

Chapter: adversarial/adversarial_separation
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from sepbook import seeds
from sepbook.tracks import Track, track_from_stems

#: Separator output channels, in order. The paper's table calls them "Inst." and "V.".
SOURCES: tuple[str, str] = ("accompaniment", "vocals")
#: The paper's datasets, in the order of its table: the paired one first, then the unlabelled ones.
PAPER_ROLES: tuple[str, ...] = ("DSD100", "MedleyDB", "CCMixter", "iKala")
ROLE_DESCRIPTIONS: dict[str, str] = {
    "DSD100": "paired multitracks, plus its own validation and test songs",
    "MedleyDB": "unlabelled mixtures and solo sources; validation and test thirds",
    "CCMixter": "unlabelled mixtures and solo sources; validation and test thirds",
    "iKala": "unlabelled mixtures and solo sources; validation and test thirds",
}
REAL_DATA_ENV = "SEPBOOK_ADVERSARIAL_DATA"


@dataclass
class Domains:
    """The experiment's sets, as in the paper's Sec. 4.2 (all songs disjoint).

    ``paired`` is the multitrack set ``D_m`` (one domain); ``unlabelled`` the songs whose *mixtures*
    form ``D_u``; ``solo`` other songs whose *stems* form the solo sets ``D_s^k``; ``valid`` and
    ``test`` hold songs of every domain. ``roles`` maps a domain to the paper dataset it plays.
    """

    paired: list[Track]
    unlabelled: list[Track]
    solo: list[Track]
    valid: list[Track]
    test: list[Track]
    roles: dict[str, str]
    paired_domain: str
    notes: dict[str, str] = field(default_factory=dict)

    def sets(self) -> dict[str, list[Track]]:
        """The five sets by name."""
        return {"paired": self.paired, "unlabelled": self.unlabelled, "solo": self.solo,
                "valid": self.valid, "test": self.test}

    def role_table(self):
        """A DataFrame: which domain plays which paper dataset, and how many songs each set takes from it."""
        import pandas as pd

        rows = []
        for domain, role in self.roles.items():
            counts = {name: sum(t.domain == domain for t in tracks) for name, tracks in self.sets().items()}
            rows.append({"domain": domain, "plays the role of": role,
                         "paired (D_m)": counts["paired"], "unlabelled mixtures (D_u)": counts["unlabelled"],
                         "solo sources (D_s)": counts["solo"], "validation": counts["valid"], "test": counts["test"],
                         "why": self.notes.get(domain, ROLE_DESCRIPTIONS.get(role, ""))})
        return pd.DataFrame(rows).set_index("domain")


def domain_sound(cfg: Mapping[str, Any], style: str) -> tuple[tuple[str, ...] | None, float]:
    """The SoundFonts that play ``style``'s accompaniment and its voice's level (dB): the paired
    style sounds one way, every other style another, so the domains differ as recordings do."""
    if style == cfg["paired_style"]:
        return cfg["paired_fonts"], cfg["paired_voice_db"]
    return cfg["other_fonts"], cfg["other_voice_db"]


def style_tracks(style: str, n: int, cfg: Mapping[str, Any]) -> list[Track]:
    """``n`` synthetic songs of ``style``: voice = the 'vocals' stem, accompaniment = all other stems,
    played and mixed as :func:`domain_sound` says."""
    from sepbook.data.synth import STYLES, synthesize_songs

    if style not in STYLES:
        raise ValueError(f"style: unknown style {style!r}; choose one of {sorted(STYLES)}")
    lineup = STYLES[style].instruments
    shift = cfg.get("paired_formant_shift") if style == cfg["paired_style"] else None
    # the paired domain's singer may have a voice of its own (formants relative to an adult male's)
    sound = replace(STYLES[style], formant_shift=tuple(shift)) if shift else STYLES[style]
    # A style without a singer (the quartet) gets one, so every domain has a voice to extract.
    instruments = lineup if "vocals" in lineup else ("vocals",) + tuple(lineup)
    fonts, voice_db = domain_sound(cfg, style)
    first_seed = seeds.derive(cfg["data_seed"], "adversarial", style) % 2**31
    songs = synthesize_songs(n, first_seed, seconds=cfg["song_seconds"], sr=cfg["sr"], style=sound,
                             instruments=instruments, fonts=fonts)
    tracks = []
    for song in songs:
        voice = song.stems["vocals"]
        accompaniment = song.mixture - voice
        tracks.append(track_from_stems(song.name, [accompaniment, voice * np.float32(10 ** (voice_db / 20))],
                                       SOURCES, style))
    return tracks


def _thirds(tracks: Sequence[Track]) -> tuple[list[Track], list[Track], list[Track]]:
    third = len(tracks) // 3
    return list(tracks[:third]), list(tracks[third:2 * third]), list(tracks[2 * third:])


def build_domains(cfg: Mapping[str, Any]) -> Domains:
    """Synthesise the songs (mono, ``cfg['sr']``) and split them as the paper does (its Sec. 4.2).

    ``paired_style`` plays DSD100: ``n_paired`` paired songs, ``n_paired_eval`` each for
    validation and test. Each of the ``domain_styles`` plays MedleyDB, CCMixter and iKala in turn:
    ``3 * songs_per_third`` songs in thirds, the first for semi-supervised training, the others for
    validation and test. The first third gives both the unlabelled mixtures and the solo stems,
    "to eliminate dataset bias as a confounding factor"; the batches keep a mixture from meeting
    its own stems (:func:`.spectrograms.solo_batch`). The ``paper`` profile reads the real datasets.
    """
    if cfg["dataset"] != "synthetic":
        return load_real_domains(cfg)
    _check_styles(cfg)
    paired_style, n, n_eval = cfg["paired_style"], cfg["n_paired"], cfg["n_paired_eval"]
    pool = style_tracks(paired_style, n + 2 * n_eval, cfg)
    domains = Domains(paired=pool[:n], unlabelled=[], solo=[], valid=pool[n:n + n_eval], test=pool[n + n_eval:],
                      roles={paired_style: PAPER_ROLES[0]}, paired_domain=paired_style)
    for style, role in zip(cfg["domain_styles"], PAPER_ROLES[1:]):
        semi, valid, test = _thirds(style_tracks(style, 3 * cfg["songs_per_third"], cfg))
        domains.unlabelled += semi
        domains.solo += semi
        domains.valid += valid
        domains.test += test
        domains.roles[style] = role
    return domains


def disjoint_domains(domains: Domains) -> Domains:
    """The book's first reading of the split, kept as an ablation: each domain's unlabelled mixtures
    from one half of its semi-supervised songs and its solo stems from the other half, so the
    critics can tell the two song sets apart (dataset bias) instead of real from separated."""
    unlabelled, solo = [], []
    for domain in dict.fromkeys(t.domain for t in domains.unlabelled):
        own = [t for t in domains.unlabelled if t.domain == domain]
        half = max(1, len(own) // 2)
        unlabelled += own[:half]
        solo += own[half:] or own
    notes = dict(domains.notes, disjoint="unlabelled mixtures and solo stems from disjoint halves of the songs")
    return replace(domains, unlabelled=unlabelled, solo=solo, notes=notes)


def upper_domains(domains: Domains) -> Domains:
    """``domains`` with the unlabelled songs' true pairs added to the paired set: what a supervised
    separator reaches if the unlabelled songs came with their stems, the best the critics could give."""
    return replace(domains, paired=domains.paired + domains.unlabelled)


def _check_styles(cfg: Mapping[str, Any]) -> None:
    styles = [cfg["paired_style"], *cfg["domain_styles"]]
    if len(set(styles)) != len(styles):
        raise ValueError(f"paired_style and domain_styles must all differ, got {styles}")
    if len(cfg["domain_styles"]) != len(PAPER_ROLES) - 1:
        raise ValueError(f"domain_styles: expected {len(PAPER_ROLES) - 1} styles (the roles of "
                         f"{', '.join(PAPER_ROLES[1:])}), got {list(cfg['domain_styles'])}")
    if cfg["songs_per_third"] < 2:
        raise ValueError(f"songs_per_third: expected at least 2 (one mixture song and one solo song), "
                         f"got {cfg['songs_per_third']}")


def mismatched_domains(cfg: Mapping[str, Any], domains: Domains, style: str | None = None) -> Domains:
    """``domains`` with unlabelled mixtures and solo sources from ``style`` (default ``cfg['mismatched_style']``),
    a domain absent from validation and test: the paper's warning case of a different distribution."""
    style = style or cfg["mismatched_style"]
    if not style:
        raise ValueError("mismatched_style: this profile names no mismatched style (the real datasets have none)")
    if style in domains.roles:
        raise ValueError(f"style: {style!r} is already one of the experiment's domains {sorted(domains.roles)}")
    tracks = style_tracks(style, len(domains.unlabelled), cfg)
    notes = dict(domains.notes, **{style: "unlabelled data from a style absent from validation and test"})
    return replace(domains, unlabelled=tracks, solo=list(tracks), notes=notes,
                   roles={**domains.roles, style: "(mismatched)"})


def scarce_domains(domains: Domains, fraction: float) -> Domains:
    """``domains`` keeping ``fraction`` of the unlabelled and of the solo songs (at least one each).

    Songs are kept in turn from each domain, so a small fraction still spans as many domains as it can.
    """
    if not 0 < fraction <= 1:
        raise ValueError(f"fraction: expected a fraction in (0, 1], got {fraction!r}")

    def keep(tracks: Sequence[Track]) -> list[Track]:
        by_domain: dict[str, list[Track]] = {}
        for track in tracks:
            by_domain.setdefault(track.domain, []).append(track)
        turns = [own[i] for i in range(max(map(len, by_domain.values()), default=0))
                 for own in by_domain.values() if i < len(own)]
        return turns[:max(1, math.floor(len(tracks) * fraction))]

    return replace(domains, unlabelled=keep(domains.unlabelled), solo=keep(domains.solo))


def load_real_domains(cfg: Mapping[str, Any]) -> Domains:
    """The paper's data from ``$SEPBOOK_ADVERSARIAL_DATA`` (mono, resampled to ``cfg['sr']``).

    One folder per song holding ``vocals.wav`` and ``accompaniment.wav`` (the mixture is their sum)::

        DSD100/train/<song>/   DSD100/test/<song>/   MedleyDB/<song>/   CCMixter/<song>/   iKala/<song>/

    Songs with a silent voice are left out (the paper excludes 22 instrumental tracks). DSD100's
    training songs are ``D_m``, its test songs are halved into validation and test; every other
    dataset is split into thirds (sorted by name), its first third used unpaired, as in the paper.
    """
    root = os.environ.get(REAL_DATA_ENV)
    if not root or not Path(root).is_dir():
        raise FileNotFoundError(
            f"the {cfg.get('profile', 'paper')} profile needs the real DSD100, MedleyDB, CCMixter and iKala: set "
            f"${REAL_DATA_ENV} to a folder with DSD100/train/<song>/, DSD100/test/<song>/, MedleyDB/<song>/, "
            f"CCMixter/<song>/ and iKala/<song>/, each holding vocals.wav and accompaniment.wav "
            f"(currently {REAL_DATA_ENV}={root!r})")
    root = Path(root)
    dsd_test = _read_songs(root / "DSD100" / "test", "DSD100", cfg["sr"])
    half = len(dsd_test) // 2
    domains = Domains(paired=_read_songs(root / "DSD100" / "train", "DSD100", cfg["sr"]), unlabelled=[], solo=[],
                      valid=dsd_test[:half], test=dsd_test[half:], roles={"DSD100": "DSD100"}, paired_domain="DSD100")
    for name in PAPER_ROLES[1:]:
        semi, valid, test = _thirds(_read_songs(root / name, name, cfg["sr"]))
        domains.unlabelled += semi
        domains.solo += semi
        domains.valid += valid
        domains.test += test
        domains.roles[name] = name
    return domains


def _read_songs(folder: Path, domain: str, sr: int) -> list[Track]:
    from sepbook.data.layouts import read_stem_folder

    songs = sorted(p for p in folder.iterdir() if p.is_dir()) if folder.is_dir() else []
    if not songs:
        raise FileNotFoundError(f"{folder}: expected one folder per song holding vocals.wav and accompaniment.wav "
                                f"(see load_real_domains for the whole layout)")
    tracks = []
    for song in songs:
        stems = read_stem_folder(song, SOURCES, sr)
        if np.abs(stems["vocals"]).max() > 0:  # instrumental songs are left out, as in the paper
            tracks.append(track_from_stems(song.name, [stems[name] for name in SOURCES], SOURCES, domain))
    if not tracks:
        raise ValueError(f"{folder}: every song's vocals.wav is silent; expected songs with a voice")
    return tracks
