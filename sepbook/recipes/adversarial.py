"""The adversarial semi-supervised experiment (Stoller, Ewert and Dixon, ICASSP 2018) on synthetic domains.

Singing-voice extraction (voice vs accompaniment) with a U-Net separator trained three ways: the
supervised baseline, ``V`` (plus a voice critic on unlabelled mixtures) and ``VA`` (voice and
accompaniment critics). As in the paper, the paired set comes from one domain and the unlabelled
mixtures, the solo sources, the validation and the test songs from other domains, so that the
critics can only help by carrying information the paired set lacks.

Each step is a function the notebook calls in turn; :func:`run` calls them all (the tests run it at
``tiny`` size). Waveforms are mono ``(time,)`` numpy arrays, sources stacked ``(K, time)`` in the
order of :data:`SOURCES`; spectrograms are ``(batch, channels, freq, frames)`` log-magnitudes.

Chapter: adversarial/adversarial_separation
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np
import torch

from sepbook import metrics, profiles
from sepbook.adversarial import (
    AdversarialConfig,
    build_critics,
    critic_input_gradient,
    critic_step,
    inverse_log_magnitude,
    log_magnitude,
    random_loudness,
    separator_step,
    supervised_loss,
)
from sepbook.audio import STFT
from sepbook.models.unet import UNet
from sepbook.plot import LiveCurve, smoothed
from sepbook.train import pick_device, progress_bar, seed_everything

#: Separator output channels, in order. The paper's table calls them "Inst." and "V.".
SOURCES: tuple[str, str] = ("accompaniment", "vocals")
SOURCE_LABELS: dict[str, str] = {"accompaniment": "Instrumental", "vocals": "Voice"}
VARIANTS: tuple[str, ...] = ("baseline", "V", "VA")
#: The paper's datasets, in the order of its table: the paired one first, then the unlabelled ones.
PAPER_ROLES: tuple[str, ...] = ("DSD100", "MedleyDB", "CCMixter", "iKala")
ROLE_DESCRIPTIONS: dict[str, str] = {
    "DSD100": "paired multitracks, plus its own validation and test songs",
    "MedleyDB": "unlabelled mixtures and solo sources; validation and test thirds",
    "CCMixter": "unlabelled mixtures and solo sources; validation and test thirds",
    "iKala": "unlabelled mixtures and solo sources; validation and test thirds",
}
METRIC_ROWS: tuple[tuple[str, str, str], ...] = (
    ("SDR Inst.", "SDR", "Instrumental"), ("SDR V.", "SDR", "Voice"),
    ("SIR Inst.", "SIR", "Instrumental"), ("SIR V.", "SIR", "Voice"),
    ("SAR Inst.", "SAR", "Instrumental"), ("SAR V.", "SAR", "Voice"),
)
TEST_SET = "Test set"

#: The paper's Fig. 2: mean test-set scores (dB) of Baseline / V / VA on the whole test set and per subset.
PAPER_TABLE: dict[str, dict[str, tuple[float, float, float]]] = {
    "SDR Inst.": {"Test set": (8.09, 8.89, 8.55), "DSD100": (11.11, 10.75, 10.76), "MedleyDB": (9.40, 9.60, 9.65),
                  "CCMixter": (10.65, 11.09, 10.89), "iKala": (6.34, 7.71, 7.13)},
    "SDR V.": {"Test set": (6.80, 7.28, 7.47), "DSD100": (3.74, 3.17, 3.54), "MedleyDB": (2.48, 2.43, 3.00),
               "CCMixter": (3.25, 3.52, 3.70), "iKala": (9.50, 10.47, 10.52)},
    "SIR Inst.": {"Test set": (12.03, 12.58, 12.67), "DSD100": (14.46, 13.56, 13.86), "MedleyDB": (12.18, 12.07, 12.74),
                  "CCMixter": (15.99, 15.49, 16.08), "iKala": (10.42, 11.79, 11.57)},
    "SIR V.": {"Test set": (13.72, 14.00, 14.45), "DSD100": (10.03, 9.92, 10.49), "MedleyDB": (9.40, 9.21, 9.48),
               "CCMixter": (8.39, 8.94, 9.35), "iKala": (16.98, 17.44, 17.90)},
    "SAR Inst.": {"Test set": (11.27, 12.05, 11.40), "DSD100": (14.20, 14.60, 14.10), "MedleyDB": (13.94, 14.23, 13.45),
                  "CCMixter": (12.84, 13.69, 13.24), "iKala": (9.43, 10.42, 9.70)},
    "SAR V.": {"Test set": (8.54, 9.00, 9.04), "DSD100": (5.50, 4.84, 5.12), "MedleyDB": (4.71, 4.69, 5.20),
               "CCMixter": (6.43, 6.17, 6.17), "iKala": (10.81, 11.83, 11.73)},
}
REAL_DATA_ENV = "SEPBOOK_ADVERSARIAL_DATA"


# --------------------------------------------------------------------------- configuration


def config(profile: str | None = None, **overrides) -> dict:
    """The chapter's settings for ``profile`` with ``overrides`` applied; unknown or bad values raise ``ValueError``."""
    cfg = profiles.settings("adversarial", profile)
    unknown = set(overrides) - set(cfg)
    if unknown:
        raise ValueError(f"overrides: unknown settings {sorted(unknown)}; expected some of {sorted(cfg)}")
    cfg.update(overrides)
    for name in ("steps", "batch_size", "frames", "n_critic", "valid_every", "n_fft", "hop", "sr"):
        value = cfg[name]
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"{name}: expected a positive integer, got {value!r}")
    if cfg["frames"] % 2 ** cfg["unet_depth"]:
        raise ValueError(f"frames: expected a multiple of 2**unet_depth = {2 ** cfg['unet_depth']}, got {cfg['frames']}")
    if not 0 < cfg["scarce_fraction"] <= 1:
        raise ValueError(f"scarce_fraction: expected a fraction in (0, 1], got {cfg['scarce_fraction']!r}")
    if not cfg["seeds"]:
        raise ValueError("seeds: expected at least one seed")
    return cfg


def adversarial_config(cfg: Mapping[str, Any], variant: str) -> AdversarialConfig:
    """The paper's hyper-parameters of ``variant`` ('baseline', 'V' or 'VA') at the profile's learning rates."""
    check_variant(variant)
    alpha = {"baseline": 0.0, "V": cfg["alpha_V"], "VA": cfg["alpha_VA"]}[variant]
    return AdversarialConfig.paper(variant, alpha=alpha, beta=alpha, n_critic=cfg["n_critic"], lr=cfg["lr"],
                                   critic_lr=cfg["critic_lr"], gp_weight=cfg["gp_weight"])


def check_variant(variant: str) -> None:
    """Raise ``ValueError`` naming ``variant`` unless it is one of :data:`VARIANTS`."""
    if variant not in VARIANTS:
        raise ValueError(f"variant: expected one of {list(VARIANTS)}, got {variant!r}")


# --------------------------------------------------------------------------- data


@dataclass
class Track:
    """One song of one domain: ``mixture`` ``(time,)`` and ``sources`` ``(2, time)`` (accompaniment, vocals)."""

    name: str
    domain: str
    mixture: np.ndarray
    sources: np.ndarray


@dataclass
class Domains:
    """The experiment's data sets, as in the paper's Sec. 4.2 (all songs disjoint).

    ``paired`` is the multitrack set ``D_m`` (one domain); ``unlabelled`` the songs whose *mixtures*
    form ``D_u``; ``solo`` other songs whose *stems* form the solo sets ``D_s^k`` (so mixtures and
    solo sources are unpaired); ``valid`` and ``test`` hold songs of every domain. ``roles`` maps a
    domain name to the paper dataset whose role it plays; ``paired_domain`` names ``D_m``'s domain.
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
        """A pandas DataFrame: which domain plays which paper dataset, and how many songs each set takes from it."""
        import pandas as pd

        rows = []
        for domain, role in self.roles.items():
            counts = {name: sum(t.domain == domain for t in tracks) for name, tracks in self.sets().items()}
            rows.append({"domain": domain, "plays the role of": role,
                         "paired (D_m)": counts["paired"], "unlabelled mixtures (D_u)": counts["unlabelled"],
                         "solo sources (D_s)": counts["solo"], "validation": counts["valid"], "test": counts["test"],
                         "why": self.notes.get(domain, ROLE_DESCRIPTIONS.get(role, ""))})
        return pd.DataFrame(rows).set_index("domain")


def _song_tracks(style: str, n: int, seed: int, cfg: Mapping[str, Any]) -> list[Track]:
    """``n`` synthetic songs of ``style`` as tracks: voice = the 'vocals' stem, accompaniment = all other stems."""
    from sepbook.synth import STYLES, synthesize_songs

    if style not in STYLES:
        raise ValueError(f"style: unknown style {style!r}; choose one of {sorted(STYLES)}")
    lineup = STYLES[style].instruments
    # A style without a singer (the quartet) gets one, so every domain has a voice to extract.
    instruments = lineup if "vocals" in lineup else ("vocals",) + tuple(lineup)
    songs = synthesize_songs(n, seed, seconds=cfg["song_seconds"], sr=cfg["sr"], style=style, instruments=instruments)
    tracks = []
    for song in songs:
        voice = song.stems["vocals"].astype(np.float32)
        accompaniment = (song.mixture - voice).astype(np.float32)
        tracks.append(Track(song.name, style, song.mixture.astype(np.float32), np.stack([accompaniment, voice])))
    return tracks


def _style_seed(cfg: Mapping[str, Any], style: str) -> int:
    # A fixed seed per (data_seed, style name): adding or reordering styles never changes another style's songs.
    return int(cfg["data_seed"]) * 1000 + sum(ord(c) * 31**i for i, c in enumerate(style)) % 997 + 1


def _thirds(tracks: Sequence[Track]) -> tuple[list[Track], list[Track], list[Track]]:
    third = len(tracks) // 3
    return list(tracks[:third]), list(tracks[third:2 * third]), list(tracks[2 * third:])


def _split_unlabelled(tracks: Sequence[Track]) -> tuple[list[Track], list[Track]]:
    """Half the songs give mixtures, the other half solo stems: no mixture has its own stems among the solos."""
    half = max(1, len(tracks) // 2)
    return list(tracks[:half]), list(tracks[half:])


def build_domains(cfg: Mapping[str, Any]) -> Domains:
    """Synthesise the experiment's songs in memory (mono, ``cfg['sr']``) and split them as the paper does.

    The ``paired_style`` plays DSD100: ``n_paired`` paired songs, and ``n_paired_eval`` songs each
    for validation and test. Each of the ``domain_styles`` plays MedleyDB, CCMixter and iKala in turn:
    ``3 * songs_per_third`` songs split into thirds, the first for semi-supervised training (half its
    songs give unlabelled mixtures, the other half solo voice and accompaniment), the others for
    validation and test. The ``paper`` profile reads the real datasets instead (:func:`load_real_domains`).
    """
    if cfg["dataset"] != "synthetic":
        return load_real_domains(cfg)
    styles = [cfg["paired_style"], *cfg["domain_styles"]]
    if len(set(styles)) != len(styles):
        raise ValueError(f"paired_style and domain_styles must all differ, got {styles}")
    if len(cfg["domain_styles"]) != len(PAPER_ROLES) - 1:
        raise ValueError(f"domain_styles: expected {len(PAPER_ROLES) - 1} styles (the roles of "
                         f"{', '.join(PAPER_ROLES[1:])}), got {list(cfg['domain_styles'])}")
    if cfg["songs_per_third"] < 2:
        raise ValueError(f"songs_per_third: expected at least 2 (one mixture song and one solo song), "
                         f"got {cfg['songs_per_third']}")
    paired_style = cfg["paired_style"]
    pool = _song_tracks(paired_style, cfg["n_paired"] + 2 * cfg["n_paired_eval"], _style_seed(cfg, paired_style), cfg)
    n, n_eval = cfg["n_paired"], cfg["n_paired_eval"]
    domains = Domains(paired=pool[:n], unlabelled=[], solo=[], valid=pool[n:n + n_eval], test=pool[n + n_eval:],
                      roles={paired_style: PAPER_ROLES[0]}, paired_domain=paired_style)
    for style, role in zip(cfg["domain_styles"], PAPER_ROLES[1:]):
        tracks = _song_tracks(style, 3 * cfg["songs_per_third"], _style_seed(cfg, style), cfg)
        semi, valid, test = _thirds(tracks)
        mixtures, solos = _split_unlabelled(semi)
        domains.unlabelled += mixtures
        domains.solo += solos
        domains.valid += valid
        domains.test += test
        domains.roles[style] = role
    return domains


def mismatched_domains(cfg: Mapping[str, Any], domains: Domains, style: str | None = None) -> Domains:
    """``domains`` with unlabelled mixtures and solo sources from ``style`` (default ``cfg['mismatched_style']``),
    a domain that appears in neither validation nor test: the paper's warning case of a different distribution."""
    style = style or cfg["mismatched_style"]
    if not style:
        raise ValueError("mismatched_style: this profile names no mismatched style (the real datasets have none)")
    if style in domains.roles:
        raise ValueError(f"style: {style!r} is already one of the experiment's domains {sorted(domains.roles)}")
    n_mix, n_solo = len(domains.unlabelled), len(domains.solo)
    tracks = _song_tracks(style, n_mix + n_solo, _style_seed(cfg, style), cfg)
    notes = dict(domains.notes, **{style: "unlabelled data from a style absent from validation and test"})
    return replace(domains, unlabelled=tracks[:n_mix], solo=tracks[n_mix:], notes=notes,
                   roles={**domains.roles, style: "(mismatched)"})


def scarce_domains(domains: Domains, fraction: float) -> Domains:
    """``domains`` keeping only ``fraction`` of the unlabelled mixture songs and of the solo songs (at least one each).

    Songs are kept in turn from each domain (first song of every domain, then the second, ...), so a
    small fraction still spans as many domains as it can.
    """
    if not 0 < fraction <= 1:
        raise ValueError(f"fraction: expected a fraction in (0, 1], got {fraction!r}")

    def keep(tracks: Sequence[Track]) -> list[Track]:
        by_domain: dict[str, list[Track]] = {}
        for track in tracks:
            by_domain.setdefault(track.domain, []).append(track)
        turns = [t for i in range(max(map(len, by_domain.values()), default=0))
                 for own in by_domain.values() if i < len(own) for t in [own[i]]]
        return turns[:max(1, math.floor(len(tracks) * fraction))]

    return replace(domains, unlabelled=keep(domains.unlabelled), solo=keep(domains.solo))


def load_real_domains(cfg: Mapping[str, Any]) -> Domains:
    """The paper's data from ``$SEPBOOK_ADVERSARIAL_DATA`` (mono, resampled to ``cfg['sr']``).

    Expected layout, one folder per song holding ``vocals.wav`` and ``accompaniment.wav`` (the
    mixture is their sum; convert each dataset's own format once)::

        DSD100/train/<song>/   DSD100/test/<song>/   MedleyDB/<song>/   CCMixter/<song>/   iKala/<song>/

    Songs whose voice is silent are left out (the paper excludes 22 instrumental tracks). DSD100's
    training songs are ``D_m``; its test songs are halved into validation and test; every other
    dataset is split into thirds (sorted by name) as in the paper.
    """
    from sepbook.audio import load

    root = os.environ.get(REAL_DATA_ENV)
    if not root or not Path(root).is_dir():
        raise FileNotFoundError(
            f"the {cfg.get('profile', 'paper')} profile needs the real DSD100, MedleyDB, CCMixter and iKala: set "
            f"${REAL_DATA_ENV} to a folder with DSD100/train/<song>/, DSD100/test/<song>/, MedleyDB/<song>/, "
            f"CCMixter/<song>/ and iKala/<song>/, each song folder holding vocals.wav and accompaniment.wav "
            f"(currently {REAL_DATA_ENV}={root!r})")
    root = Path(root)

    def read(folder: Path, domain: str) -> list[Track]:
        if not folder.is_dir():
            raise FileNotFoundError(f"{folder} does not exist; see load_real_domains for the expected layout")
        tracks = []
        for song in sorted(p for p in folder.iterdir() if p.is_dir()):
            stems = []
            for stem in ("accompaniment", "vocals"):
                path = song / f"{stem}.wav"
                if not path.is_file():
                    raise FileNotFoundError(f"{path} is missing; every song folder needs vocals.wav and accompaniment.wav")
                audio, _ = load(path, sr=cfg["sr"], mono=True)
                stems.append(audio[0])
            length = min(len(s) for s in stems)
            sources = np.stack([s[:length] for s in stems]).astype(np.float32)
            if np.abs(sources[1]).max() > 0:
                tracks.append(Track(song.name, domain, sources.sum(0), sources))
        return tracks

    dsd_test = read(root / "DSD100" / "test", "DSD100")
    half = len(dsd_test) // 2
    domains = Domains(paired=read(root / "DSD100" / "train", "DSD100"), unlabelled=[], solo=[],
                      valid=dsd_test[:half], test=dsd_test[half:], roles={"DSD100": "DSD100"}, paired_domain="DSD100")
    for name in PAPER_ROLES[1:]:
        semi, valid, test = _thirds(read(root / name, name))
        # The paper takes mixtures and solo stems from the same third (its multitracks are used unpaired).
        domains.unlabelled += semi
        domains.solo += semi
        domains.valid += valid
        domains.test += test
        domains.roles[name] = name
    return domains


# --------------------------------------------------------------------------- spectrogram front end


def front_end(cfg: Mapping[str, Any]) -> STFT:
    """The STFT of the profile (paper: 512-point FFT, hop 256 at 8192 Hz)."""
    return STFT(cfg["n_fft"], cfg["hop"])


def n_bins(cfg: Mapping[str, Any]) -> int:
    """Frequency bins the networks see: ``n_fft // 2``, the Nyquist bin dropped (257 -> 256 in the paper)."""
    return cfg["n_fft"] // 2


def magnitudes(cfg: Mapping[str, Any], waves: np.ndarray | torch.Tensor) -> torch.Tensor:
    """Linear STFT magnitudes of ``(..., time)`` waveforms without the Nyquist bin: ``(..., n_fft // 2, frames)``."""
    spec = front_end(cfg)(torch.as_tensor(np.asarray(waves, dtype=np.float32)))
    return spec[..., : n_bins(cfg), :].abs()


@dataclass
class Bank:
    """Linear magnitudes of a set of songs laid end to end: ``frames`` ``(channels, freq, total_frames)``.

    Song ``i`` occupies frames ``starts[i] : starts[i] + lengths[i]``; excerpts never straddle two songs.
    """

    frames: torch.Tensor
    starts: np.ndarray
    lengths: np.ndarray

    def to(self, device: torch.device | str) -> "Bank":
        return Bank(self.frames.to(device), self.starts, self.lengths)

    def channel(self, index: int) -> "Bank":
        """The same songs with one channel only."""
        return Bank(self.frames[index:index + 1], self.starts, self.lengths)

    def excerpts(self, frames: int) -> torch.Tensor:
        """All non-overlapping excerpts of ``frames`` frames, ``(n, channels, freq, frames)``."""
        pieces = [self.frames[..., start + offset:start + offset + frames]
                  for start, length in zip(self.starts, self.lengths) for offset in range(0, length - frames + 1, frames)]
        return torch.stack(pieces) if pieces else self.frames.new_zeros(0, *self.frames.shape[:2], frames)


@dataclass
class SpectrogramSets:
    """The training sets as :class:`Bank` s on one device, and fixed validation excerpts.

    ``paired`` channels: mixture, accompaniment, vocals; ``unlabelled``: mixture; ``solo``:
    accompaniment, vocals (from songs other than the unlabelled ones); ``valid``: validation
    excerpts ``(excerpts, 3, freq, frames)`` with the paired channels.
    """

    paired: Bank
    unlabelled: Bank
    solo: Bank
    valid: torch.Tensor

    def to(self, device: torch.device | str) -> "SpectrogramSets":
        return SpectrogramSets(self.paired.to(device), self.unlabelled.to(device), self.solo.to(device),
                               self.valid.to(device))


def _bank(cfg: Mapping[str, Any], tracks: Sequence[Track], channels: str, name: str) -> Bank:
    if not tracks:
        raise ValueError(f"domains.{name}: no songs; the experiment needs paired, unlabelled, solo and validation songs")
    specs = []
    for t in tracks:
        parts = {"m": t.mixture, "a": t.sources[0], "v": t.sources[1]}
        spec = magnitudes(cfg, np.stack([parts[c] for c in channels]))          # (C, F, frames)
        if spec.shape[-1] < cfg["frames"]:
            raise ValueError(f"frames: song {t.name} has {spec.shape[-1]} STFT frames, fewer than one excerpt "
                             f"({cfg['frames']} frames); use longer songs or smaller frames")
        specs.append(spec)
    lengths = np.array([spec.shape[-1] for spec in specs])
    return Bank(torch.cat(specs, dim=-1), np.concatenate([[0], np.cumsum(lengths)[:-1]]), lengths)


def spectrogram_sets(cfg: Mapping[str, Any], domains: Domains, device: torch.device | str = "cpu",
                     max_valid_excerpts: int = 256) -> SpectrogramSets:
    """Compute :class:`SpectrogramSets` for ``domains`` (at most ``max_valid_excerpts`` validation excerpts)."""
    valid = _bank(cfg, domains.valid, "mav", "valid").excerpts(cfg["frames"])
    if len(valid) > max_valid_excerpts:
        valid = valid[torch.linspace(0, len(valid) - 1, max_valid_excerpts).long()]
    sets = SpectrogramSets(_bank(cfg, domains.paired, "mav", "paired"), _bank(cfg, domains.unlabelled, "m", "unlabelled"),
                           _bank(cfg, domains.solo, "av", "solo"), valid)
    return sets.to(device)


def _draw(bank: Bank, batch: int, frames: int, rng: np.random.Generator) -> torch.Tensor:
    """``batch`` random excerpts ``(batch, C, F, frames)``, uniform over all excerpt positions of all songs."""
    positions = bank.lengths - frames + 1
    songs = rng.choice(len(positions), size=batch, p=positions / positions.sum())
    starts = bank.starts[songs] + (rng.random(batch) * positions[songs]).astype(np.int64)
    device = bank.frames.device
    columns = torch.as_tensor(starts, device=device)[:, None] + torch.arange(frames, device=device)
    return bank.frames[:, :, columns].permute(2, 0, 1, 3)                    # (batch, C, F, frames)


def _rng(seed: int, step: int, purpose: int, repeat: int = 0) -> np.random.Generator:
    # Batches are a pure function of (seed, step, purpose, repeat): every variant sees the same paired
    # batches, and a rerun sees the same data.
    return np.random.default_rng([seed, step, purpose, repeat])


def _loudness(magnitude: torch.Tensor, rng: np.random.Generator, low_high: tuple[float, float]) -> torch.Tensor:
    generator = torch.Generator().manual_seed(int(rng.integers(2**62)))
    return random_loudness(magnitude, *low_high, generator=generator)


def paired_batch(cfg: Mapping[str, Any], sets: SpectrogramSets, seed: int, step: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Log-magnitude mixtures ``(batch, 1, F, frames)`` and sources ``(batch, 2, F, frames)`` of paired songs."""
    excerpt = log_magnitude(_draw(sets.paired, cfg["batch_size"], cfg["frames"], _rng(seed, step, 0)))
    return excerpt[:, :1], excerpt[:, 1:]


def unlabelled_batch(cfg: Mapping[str, Any], sets: SpectrogramSets, seed: int, step: int, repeat: int = 0,
                     loudness: tuple[float, float] = (0.2, 1.2)) -> torch.Tensor:
    """Log-magnitude unlabelled mixtures ``(batch, 1, F, frames)``, each scaled by a random loudness (paper Sec. 4.3.1)."""
    rng = _rng(seed, step, 1, repeat)
    return log_magnitude(_loudness(_draw(sets.unlabelled, cfg["batch_size"], cfg["frames"], rng), rng, loudness))


def solo_batch(cfg: Mapping[str, Any], sets: SpectrogramSets, seed: int, step: int, repeat: int = 0,
               loudness: tuple[float, float] = (0.2, 1.2)) -> dict[str, torch.Tensor]:
    """Real solo excerpts per source, ``{name: (batch, 1, F, frames)}`` log-magnitudes with random loudness.

    Voice and accompaniment excerpts are drawn independently (other songs, other times).
    """
    batches = {}
    for index, name in enumerate(SOURCES):
        rng = _rng(seed, step, 2 + index, repeat)
        excerpt = _draw(sets.solo.channel(index), cfg["batch_size"], cfg["frames"], rng)
        batches[name] = log_magnitude(_loudness(excerpt, rng, loudness))
    return batches


# --------------------------------------------------------------------------- models and training


def build_separator(cfg: Mapping[str, Any]) -> UNet:
    """The U-Net separator at the profile's size (paper: 16 filters, 4 levels)."""
    return UNet(n_sources=len(SOURCES), base_channels=cfg["unet_base"], depth=cfg["unet_depth"])


def build_variant_critics(cfg: Mapping[str, Any], variant: str) -> torch.nn.ModuleDict:
    """The critics of ``variant``: none (baseline), the voice critic (V), or voice and accompaniment (VA)."""
    names = adversarial_config(cfg, variant).critic_sources
    return build_critics(names, base_channels=cfg["critic_base"], n_strided_layers=cfg["critic_strided_layers"],
                         n_frequency_layers=cfg["critic_frequency_layers"], hidden_units=cfg["critic_hidden"])


@torch.no_grad()
def validation_loss(separator: torch.nn.Module, sets: SpectrogramSets, chunk: int = 64) -> float:
    """Mean supervised loss ``L_s`` of ``separator`` on the fixed validation excerpts."""
    was_training = separator.training
    separator.eval()
    total, count = 0.0, 0
    for start in range(0, len(sets.valid), chunk):
        excerpt = log_magnitude(sets.valid[start:start + chunk])
        total += float(supervised_loss(separator(excerpt[:, :1]), excerpt[:, 1:])) * len(excerpt)
        count += len(excerpt)
    separator.train(was_training)
    return total / max(count, 1)


def new_history(critic_names: Iterable[str]) -> dict[str, list]:
    """Per-step losses and per-critic Wasserstein estimates and gradient penalties, plus validation."""
    history = {"step": [], "Ls": [], "Lu": [], "Ladd": [], "total": [], "valid_step": [], "valid_loss": []}
    for name in critic_names:
        history[f"{name}_wasserstein"] = []
        history[f"{name}_gradient_penalty"] = []
    return history


def train_variant(cfg: Mapping[str, Any], domains: Domains, variant: str, seed: int = 0, *,
                  sets: SpectrogramSets | None = None, device: str | torch.device | None = None,
                  progress: bool = True, label: str | None = None, live: bool = True):
    """Train ``variant`` ('baseline', 'V' or 'VA') for ``cfg['steps']`` separator updates; -> ``(separator, critics, history)``.

    Every step takes ``n_critic`` updates of each critic (fresh unlabelled and solo batches each
    time), then one separator update on ``L_s + alpha L_u + beta L_add``; the baseline takes only
    ``L_s``. The separator and the paired batches depend only on ``seed``, so the three variants
    start from the same weights and see the same paired data. Every ``valid_every`` steps the
    validation ``L_s`` is measured and the best separator is kept (paper Sec. 4.3.4: "the model with
    the best validation loss is selected"); with ``patience`` set, training stops after that many
    validations without improvement. The separator is returned on the CPU in eval mode, with the
    best weights; the critics as they are at the end. Raises ``FloatingPointError`` on NaN or Inf.
    ``live`` redraws the loss curve at every validation in a live notebook (never in the static book).
    """
    check_variant(variant)
    device = pick_device(device) if not isinstance(device, torch.device) else device
    adv = adversarial_config(cfg, variant)
    sets = (sets if sets is not None else spectrogram_sets(cfg, domains)).to(device)
    seed_everything(seed)
    separator = build_separator(cfg).to(device)
    critics = build_variant_critics(cfg, variant).to(device)
    optimizer = torch.optim.Adam(separator.parameters(), lr=adv.lr)
    critic_optimizers = {name: torch.optim.Adam(critic.parameters(), lr=adv.critic_lr) for name, critic in critics.items()}
    penalty_generator = torch.Generator(device=device).manual_seed(10_000 + seed)
    history = new_history(critics.keys())
    best_loss, best_state, best_step, stale = math.inf, None, 0, 0
    bar = progress_bar(cfg["steps"], 0, progress)
    bar.set_description(label or f"{variant} seed {seed}")
    curve = LiveCurve(title=label or f"{variant} seed {seed}") if live and progress else None
    separator.train()
    for step in range(cfg["steps"]):
        critic_logs: dict[str, list[float]] = {}
        for repeat in range(adv.n_critic if critics else 0):
            logs = critic_step(critics, critic_optimizers, separator,
                               unlabelled_batch(cfg, sets, seed, step, repeat, adv.loudness_range),
                               solo_batch(cfg, sets, seed, step, repeat, adv.loudness_range),
                               source_names=SOURCES, gp_weight=adv.gp_weight, generator=penalty_generator)
            for key, value in logs.items():
                critic_logs.setdefault(key, []).append(value)
        mixture, targets = paired_batch(cfg, sets, seed, step)
        unlabelled = (unlabelled_batch(cfg, sets, seed, step, adv.n_critic, adv.loudness_range)
                      if adv.semi_supervised else None)
        logs = separator_step(separator, optimizer, critics, mixture, targets, unlabelled, adv.alpha, adv.beta,
                              source_names=SOURCES)
        logs.update({key: float(np.mean(values)) for key, values in critic_logs.items()})
        bad = [key for key, value in logs.items() if not math.isfinite(value)]
        if bad:
            raise FloatingPointError(f"{variant} seed {seed}: {', '.join(bad)} became non-finite at step {step}; "
                                     "lower lr / critic_lr or alpha")
        history["step"].append(step + 1)
        for key in history:
            if key in logs:
                history[key].append(logs[key])
        bar.update(1)
        done = step + 1
        if done % cfg["valid_every"] == 0 or done == cfg["steps"]:
            loss = validation_loss(separator, sets)
            history["valid_step"].append(done)
            history["valid_loss"].append(loss)
            if loss < best_loss:
                best_loss, best_step, stale = loss, done, 0
                best_state = {k: v.detach().clone() for k, v in separator.state_dict().items()}
            else:
                stale += 1
            bar.set_postfix(Ls=f"{logs['Ls']:.4f}", valid=f"{loss:.4f}", refresh=False)
            if curve is not None:
                curve.update({"step": history["step"], "loss": history["Ls"], "valid_step": history["valid_step"],
                              "valid": [{"validation L_s": v} for v in history["valid_loss"]]})
            if cfg.get("patience") and stale >= cfg["patience"]:
                break
    bar.close()
    if best_state is not None:
        separator.load_state_dict(best_state)
    history["best_step"] = best_step
    history["best_valid_loss"] = best_loss
    return separator.cpu().eval(), critics.cpu().eval(), history


# --------------------------------------------------------------------------- separation and evaluation


@torch.no_grad()
def separate(separator: torch.nn.Module, mixture: np.ndarray | torch.Tensor, cfg: Mapping[str, Any] | None = None,
             batch: int = 32) -> tuple[np.ndarray, np.ndarray]:
    """Separate a mono mixture ``(time,)`` into ``(voice, accompaniment)`` waveforms ``(time,)`` each.

    The log-magnitude spectrogram is cut into chunks of ``cfg['frames']`` frames (zero-padded at the
    end to a whole number of chunks), each chunk is separated, and each estimate is turned back
    into audio with the mixture's phase (paper Sec. 4.3.2). The dropped Nyquist bin is left silent.
    """
    cfg = cfg or config()
    wave = np.asarray(mixture.detach().cpu() if isinstance(mixture, torch.Tensor) else mixture, dtype=np.float32)
    if wave.ndim == 2 and wave.shape[0] == 1:
        wave = wave[0]
    if wave.ndim != 1:
        raise ValueError(f"mixture: expected a mono waveform shaped (time,), got shape {wave.shape}")
    if len(wave) < cfg["n_fft"]:
        raise ValueError(f"mixture: {len(wave)} samples is shorter than one FFT frame ({cfg['n_fft']})")
    if not np.isfinite(wave).all():
        raise ValueError("mixture: contains NaN or infinite samples")
    stft, frames, bins = front_end(cfg), cfg["frames"], n_bins(cfg)
    device = next(separator.parameters()).device
    spec = stft(torch.from_numpy(wave))                                         # (freq, T) complex
    n_frames = spec.shape[-1]
    padded = math.ceil(n_frames / frames) * frames
    log_mix = log_magnitude(torch.nn.functional.pad(spec[:bins].abs(), (0, padded - n_frames)))
    chunks = log_mix.reshape(bins, -1, frames).permute(1, 0, 2).unsqueeze(1)   # (chunks, 1, bins, frames)
    separator.eval()
    outputs = torch.cat([separator(chunks[i:i + batch].to(device)).cpu() for i in range(0, len(chunks), batch)])
    estimates = outputs.permute(1, 2, 0, 3).reshape(len(SOURCES), bins, padded)[..., :n_frames]
    magnitude = torch.zeros(len(SOURCES), spec.shape[0], n_frames)
    magnitude[:, :bins] = inverse_log_magnitude(estimates.float()).clamp_min(0)
    phase = spec.angle().unsqueeze(0)
    waves = stft.inverse(torch.polar(magnitude, phase.expand_as(magnitude)), len(wave)).numpy()
    return waves[SOURCES.index("vocals")], waves[SOURCES.index("accompaniment")]


def evaluate(cfg: Mapping[str, Any], models: Mapping[tuple[str, int], torch.nn.Module], tracks: Sequence[Track],
             domains: Domains | None = None) -> list[dict]:
    """BSS Eval v4 (museval) of every ``(variant, seed) -> separator`` on every track; one row per source.

    Rows: variant, seed, track, domain, role, source ('Instrumental' or 'Voice'), SDR, SIR, SAR. With
    ``cfg['eval_window']`` of ``None`` each track is scored as one frame (the paper's track-wise
    metrics); otherwise the median over windows of that many seconds.
    """
    roles = domains.roles if domains is not None else {}
    rows = []
    for (variant, seed), separator in models.items():
        for track in tracks:
            voice, accompaniment = separate(separator, track.mixture, cfg)
            estimates = np.stack([accompaniment, voice])
            scores = metrics.bss_eval(track.sources, estimates, cfg["sr"], window_seconds=cfg["eval_window"],
                                      hop_seconds=cfg["eval_window"])
            for k, name in enumerate(SOURCES):
                values = {m: float(np.nanmedian(scores[m][k])) if np.isfinite(scores[m][k]).any() else float("nan")
                          for m in ("SDR", "SIR", "SAR")}
                rows.append({"variant": variant, "seed": seed, "track": track.name, "domain": track.domain,
                             "role": roles.get(track.domain, track.domain), "source": SOURCE_LABELS[name], **values})
    return rows


def _group_means(rows: Sequence[Mapping[str, Any]], variants: Sequence[str], groups: Sequence[str]):
    """Per (row label, group, variant): the mean over tracks for each seed, then mean and std over seeds."""
    import pandas as pd

    frame = pd.DataFrame(list(rows))
    out = {}
    for label, metric, source in METRIC_ROWS:
        for group in groups:
            for variant in variants:
                sel = frame[(frame["variant"] == variant) & (frame["source"] == source)]
                if group != TEST_SET:
                    sel = sel[sel["role"] == group]
                per_seed = sel.groupby("seed")[metric].mean().dropna()
                mean = float(per_seed.mean()) if len(per_seed) else float("nan")
                std = float(per_seed.std(ddof=0)) if len(per_seed) else float("nan")
                out[(label, group, variant)] = (mean, std, len(per_seed))
    return out


def _groups(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    present = {r["role"] for r in rows}
    return [TEST_SET] + [role for role in PAPER_ROLES if role in present]


def paper_table(rows: Sequence[Mapping[str, Any]], variants: Sequence[str] = VARIANTS, digits: int = 2):
    """The paper's Fig. 2 layout for our rows: metric rows x (Test set, DSD100, MedleyDB, CCMixter, iKala) x variant.

    Cells read ``mean ± std`` over seeds of the per-seed mean over tracks. Columns are named after
    the paper dataset each domain stands in for.
    """
    import pandas as pd

    groups = _groups(rows)
    values = _group_means(rows, variants, groups)
    columns = pd.MultiIndex.from_tuples([(g, v) for g in groups for v in variants], names=["subset", "system"])
    data = [[_cell(*values[(label, g, v)][:2], digits, values[(label, g, v)][2]) for g in groups for v in variants]
            for label, _, _ in METRIC_ROWS]
    return pd.DataFrame(data, index=[label for label, _, _ in METRIC_ROWS], columns=columns)


def _cell(mean: float, std: float, digits: int, n_seeds: int = 2) -> str:
    if not math.isfinite(mean):
        return "–"
    return f"{mean:.{digits}f} ± {std:.{digits}f}" if n_seeds > 1 else f"{mean:.{digits}f}"


def paper_numbers_table():
    """The paper's own Fig. 2 as a DataFrame in the same layout as :func:`paper_table`."""
    import pandas as pd

    groups = [TEST_SET, *PAPER_ROLES]
    columns = pd.MultiIndex.from_tuples([(g, v) for g in groups for v in VARIANTS], names=["subset", "system"])
    data = [[PAPER_TABLE[label][g][i] for g in groups for i in range(len(VARIANTS))] for label, _, _ in METRIC_ROWS]
    return pd.DataFrame(data, index=[label for label, _, _ in METRIC_ROWS], columns=columns)


def side_by_side(rows: Sequence[Mapping[str, Any]], profile: str, digits: int = 2):
    """Ours (``profile``, mean ± std over seeds) and the paper's number beside each cell: columns (subset, system, who)."""
    import pandas as pd

    ours, paper = paper_table(rows, digits=digits), paper_numbers_table()
    columns, data = [], {}
    for group, variant in ours.columns:
        for who, frame in ((f"ours ({profile})", ours), ("paper", paper)):
            columns.append((group, variant, who))
            data[(group, variant, who)] = frame[(group, variant)].map(
                lambda x: f"{x:.{digits}f}" if isinstance(x, float) else x)
    table = pd.DataFrame(data, index=ours.index)
    table.columns = pd.MultiIndex.from_tuples(columns, names=["subset", "system", "numbers"])
    return table


def improvements(rows: Sequence[Mapping[str, Any]], variants: Sequence[str] = ("V", "VA"),
                 baseline: str = "baseline"):
    """Gain over the baseline (dB) of each variant per seed, ``variant - baseline`` on the same seed and tracks.

    Returns a pandas DataFrame indexed by (variant, subset) with one column per metric row, holding
    the mean over seeds, plus ``seeds`` and, per metric, ``... wins`` (seeds where the variant beats
    the baseline). The paper's gains are in :func:`paper_improvements`.
    """
    import pandas as pd

    frame = pd.DataFrame(list(rows))
    groups = _groups(rows) + ["out-of-domain"]
    records = []
    paired_roles = {PAPER_ROLES[0]}
    for variant in variants:
        for group in groups:
            record = {"variant": variant, "subset": group}
            for label, metric, source in METRIC_ROWS:
                per_seed = {}
                for name in (variant, baseline):
                    sel = frame[(frame["variant"] == name) & (frame["source"] == source)]
                    if group == "out-of-domain":
                        sel = sel[~sel["role"].isin(paired_roles)]
                    elif group != TEST_SET:
                        sel = sel[sel["role"] == group]
                    per_seed[name] = sel.groupby("seed")[metric].mean()
                gain = (per_seed[variant] - per_seed[baseline]).dropna()
                record[label] = float(gain.mean()) if len(gain) else float("nan")
                record[f"{label} std"] = float(gain.std(ddof=0)) if len(gain) else float("nan")
                record[f"{label} wins"] = int((gain > 0).sum())
                record["seeds"] = len(gain)
            records.append(record)
    return pd.DataFrame(records).set_index(["variant", "subset"])


def paper_improvements(variants: Sequence[str] = ("V", "VA")):
    """The paper's gains over its baseline (dB), from :data:`PAPER_TABLE`, indexed by (variant, subset)."""
    import pandas as pd

    records = []
    for variant in variants:
        i = VARIANTS.index(variant)
        for group in (TEST_SET, *PAPER_ROLES):
            records.append({"variant": variant, "subset": group,
                            **{label: round(PAPER_TABLE[label][group][i] - PAPER_TABLE[label][group][0], 2)
                               for label, _, _ in METRIC_ROWS}})
    return pd.DataFrame(records).set_index(["variant", "subset"])


def gains_table(rows: Sequence[Mapping[str, Any]], digits: int = 2):
    """Our gains over the baseline (:func:`improvements`, mean over seeds) with the paper's beside each metric."""
    import pandas as pd

    labels = [label for label, _, _ in METRIC_ROWS]
    ours, paper = improvements(rows)[labels].round(digits), paper_improvements()[labels]
    columns = {}
    for label in labels:
        columns[(label, "ours")] = ours[label]
        columns[(label, "paper")] = paper[label].reindex(ours.index)
    table = pd.DataFrame(columns)
    table.columns = pd.MultiIndex.from_tuples(table.columns, names=["metric", "numbers"])
    return table


def verdict(rows: Sequence[Mapping[str, Any]], variant: str, profile: str, metric_row: str = "SDR V.",
            subset: str = "out-of-domain") -> str:
    """One honest sentence, built from the numbers, on whether ``variant`` beats the baseline on ``subset``."""
    table = improvements(rows, variants=(variant,))
    gain = table.loc[(variant, subset)]
    mean, std, wins, seeds = gain[metric_row], gain[f"{metric_row} std"], int(gain[f"{metric_row} wins"]), int(gain["seeds"])
    where = "outside the supervised domain" if subset == "out-of-domain" else f"on the {subset} subset"
    if not math.isfinite(mean):
        return f"In the {profile} profile there are no {metric_row} scores for {variant} {where}."
    if mean > 0 and wins == seeds:
        claim = f"{variant} beats the baseline {where}" + (" in every seed" if seeds > 1 else "")
    elif mean > 0:
        claim = f"{variant} beats the baseline {where} on average but not in every seed"
    elif wins > 0:
        claim = f"{variant} does not beat the baseline {where} on average (it wins in some seeds only)"
    else:
        claim = f"{variant} does not beat the baseline {where}"
    noise = " — within the seed-to-seed spread" if seeds > 1 and abs(mean) <= std else ""
    spread = (f"mean over {seeds} seeds, std {std:.2f} dB; better in {wins} of {seeds}" if seeds > 1
              else "one seed only, so no spread to judge it by")
    return f"In the {profile} profile, {claim}: {mean:+.2f} dB {metric_row} ({spread}){noise}."


# --------------------------------------------------------------------------- figures' data


def showcase_track(domains: Domains) -> Track:
    """The test song outside the paired domain whose voice is active longest: the one to look at and listen to."""
    candidates = [t for t in domains.test if t.domain != domains.paired_domain] or list(domains.test)
    if not candidates:
        raise ValueError("domains.test: no test songs")

    def voice_activity(track: Track) -> float:
        frames = track.sources[1][: len(track.sources[1]) // 1024 * 1024].reshape(-1, 1024)
        return float(np.mean(np.sqrt(np.mean(frames**2, axis=1)) > 0.01 * np.abs(track.sources[1]).max()))

    return max(candidates, key=voice_activity)


def critic_gradient_example(cfg: Mapping[str, Any], separator: torch.nn.Module, critic: torch.nn.Module,
                            track: Track, start_frame: int | None = None) -> dict[str, np.ndarray]:
    """The paper's Fig. 3 on one excerpt: the separator's voice estimate ``x`` and the critic's ``grad_x D(x)``.

    Returns ``estimate`` and ``gradient`` ``(freq, frames)``, and ``voice_dominant``: True where the
    true voice is louder than the true accompaniment (so that energy in the estimate is voice, not
    leakage). ``start_frame`` defaults to the excerpt where the voice is most active.
    """
    frames, bins = cfg["frames"], n_bins(cfg)
    spec = magnitudes(cfg, np.stack([track.mixture, *track.sources]))        # (3, bins, T)
    if spec.shape[-1] < frames:
        raise ValueError(f"track: {spec.shape[-1]} frames is shorter than one excerpt of {frames}")
    if start_frame is None:
        energy = torch.nn.functional.avg_pool1d(spec[2].sum(0)[None, None], frames, 1)[0, 0]
        start_frame = int(energy.argmax())
    excerpt = spec[..., start_frame:start_frame + frames]
    mixture = log_magnitude(excerpt[:1]).unsqueeze(0)                         # (1, 1, bins, frames)
    with torch.no_grad():
        estimate = separator(mixture)[:, SOURCES.index("vocals"):SOURCES.index("vocals") + 1]
    gradient = critic_input_gradient(critic, estimate)
    return {"estimate": estimate[0, 0].numpy(), "gradient": gradient[0, 0].numpy(),
            "voice_dominant": (excerpt[2] > excerpt[1]).numpy(), "start_frame": start_frame, "bins": bins}


def gradient_on_voice_and_leakage(example: Mapping[str, np.ndarray], level: float = 0.25) -> dict[str, float]:
    """Mean critic gradient on the estimate's energetic bins, split by which true source owns them.

    Energetic bins hold at least ``level`` times the excerpt's largest log-magnitude. ``voice``: those
    where the true voice dominates; ``leakage``: those where the accompaniment dominates, i.e.
    accompaniment energy that leaked into the voice estimate. The paper's Fig. 3 reading predicts
    ``voice > 0 > leakage``.
    """
    estimate, gradient, voice = (np.asarray(example[k]) for k in ("estimate", "gradient", "voice_dominant"))
    loud = estimate >= level * estimate.max() if estimate.max() > 0 else np.zeros_like(voice)
    pick = lambda mask: float(gradient[mask].mean()) if mask.any() else float("nan")
    return {"voice": pick(loud & voice), "leakage": pick(loud & ~voice),
            "voice bins": int((loud & voice).sum()), "leakage bins": int((loud & ~voice).sum())}


# --------------------------------------------------------------------------- book checkpoints


def checkpoint_path(profile: str = "book") -> Path:
    """Where the chapter's trained models of ``profile`` live: ``chapters/adversarial/checkpoints/{profile}-adversarial.pt``."""
    return Path(__file__).resolve().parents[2] / "chapters" / "adversarial" / "checkpoints" / f"{profile}-adversarial.pt"


def _plain(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


def save_models(path: str | Path, cfg: Mapping[str, Any], separators: Mapping[tuple[str, int], torch.nn.Module],
                rows: Sequence[Mapping[str, Any]] = (),
                critics: Mapping[tuple[str, int], Mapping[str, torch.nn.Module]] | None = None,
                half: bool = True) -> Path:
    """Write separators and critics (state dicts keyed ``"variant/seed"``), the settings and the result rows.

    The file holds only tensors, numbers, strings, lists and dicts, so :func:`load_models` reads it
    with ``weights_only=True``. ``half`` stores weights in float16 (half the size; they are read back
    as float32), which keeps committed book checkpoints small.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)

    def weights(module: torch.nn.Module) -> dict[str, torch.Tensor]:
        return {k: (t.detach().cpu().half() if half and t.is_floating_point() else t.detach().cpu())
                for k, t in module.state_dict().items()}

    state = {
        "cfg": {k: _plain(v) for k, v in cfg.items()},
        "rows": [dict(r) for r in rows],
        "separators": {f"{v}/{s}": weights(m) for (v, s), m in separators.items()},
        "critics": {f"{v}/{s}": {name: weights(c) for name, c in dict(group).items()}
                    for (v, s), group in (critics or {}).items()},
    }
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(state, tmp)
    tmp.replace(path)
    return path


def load_models(path: str | Path) -> dict[str, Any]:
    """Read :func:`save_models`' file with ``weights_only=True``.

    Returns ``{'cfg', 'rows', 'separators': {(variant, seed): UNet}, 'critics': {(variant, seed): ModuleDict}}``,
    models in float32 and eval mode on the CPU.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint file {path} does not exist")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises several types for a damaged file
        raise ValueError(f"checkpoint file {path} could not be read: {error}") from error
    if not isinstance(state, dict) or "separators" not in state:
        raise ValueError(f"checkpoint file {path} holds no 'separators'; was it written by save_models?")
    cfg = {k: (tuple(v) if isinstance(v, list) else v) for k, v in state["cfg"].items()}

    def key(text: str) -> tuple[str, int]:
        variant, seed = text.rsplit("/", 1)
        return variant, int(seed)

    def floats(weights: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {k: t.float() if t.is_floating_point() else t for k, t in weights.items()}

    separators, critics = {}, {}
    for name, weights in state["separators"].items():
        model = build_separator(cfg)
        model.load_state_dict(floats(weights))
        separators[key(name)] = model.eval()
    for name, group in state.get("critics", {}).items():
        variant = key(name)[0].split(" ")[0]
        modules = build_variant_critics(cfg, variant)
        for source, weights in group.items():
            modules[source].load_state_dict(floats(weights))
        critics[key(name)] = modules.eval()
    return {"cfg": cfg, "rows": list(state["rows"]), "separators": separators, "critics": critics}


# --------------------------------------------------------------------------- figures


def draw_training_scheme(ax=None):
    """Draw the paper's Fig. 1(b): supervised loss on paired data, one critic per source on unlabelled mixtures."""
    import matplotlib.pyplot as plt
    from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

    if ax is None:
        _, ax = plt.subplots(figsize=(12, 5.6))
    ax.set_xlim(0, 12.3)
    ax.set_ylim(0.4, 7.45)
    ax.axis("off")
    styles = {"data": ("#e8f1fb", "#2b6cb0"), "net": ("#fdf0e6", "#c05621"), "loss": ("#edf7ed", "#2f855a"),
              "critic": ("#f6ecfb", "#6b46c1")}

    def box(x, y, text, kind, w=2.0, h=0.75):
        face, edge = styles[kind]
        ax.add_patch(FancyBboxPatch((x - w / 2, y - h / 2), w, h, boxstyle="round,pad=0.05", fc=face, ec=edge, lw=1.5))
        ax.text(x, y, text, ha="center", va="center", fontsize=9.5)

    def arrow(a, b, text="", color="0.25", rad=0.0):
        ax.add_patch(FancyArrowPatch(a, b, arrowstyle="-|>", mutation_scale=12, color=color, lw=1.2,
                                     connectionstyle=f"arc3,rad={rad}"))
        if text:
            ax.text((a[0] + b[0]) / 2, (a[1] + b[1]) / 2 + 0.15, text, ha="center", fontsize=8, color=color)

    box(1.1, 5.9, "paired multitracks\n$\\mathcal{D}_m$: $(m_i, \\mathbf{s}_i)$", "data", h=0.9)
    box(3.6, 5.9, "separator $f_\\phi$\n(U-Net)", "net")
    box(6.0, 5.9, "$f_\\phi(m_i)$", "data", w=1.6)
    box(8.9, 5.9, "$L_s = \\|f_\\phi(m_i) - \\mathbf{s}_i\\|^2$", "loss", w=2.6)
    arrow((2.15, 5.9), (2.55, 5.9))
    arrow((4.65, 5.9), (5.15, 5.9))
    arrow((6.85, 5.9), (7.55, 5.9))
    arrow((1.1, 6.4), (8.9, 6.4), color="0.55", rad=-0.15)
    ax.text(5.0, 7.12, "targets $\\mathbf{s}_i$", ha="center", fontsize=8, color="0.45")

    ax.text(6.1, 4.55, "separator: $L = L_s + \\alpha L_u + \\beta L_{add}$, with $L_u = -\\sum_k \\mathbb{E}\\,D_{\\theta_k}"
            "(f_\\phi(m^u)_k)$;   critic $k$: $\\mathbb{E}\\,D(\\mathrm{fake}) - \\mathbb{E}\\,D(\\mathrm{real}) + "
            "\\lambda L_{grad}$", ha="center", fontsize=9.5, color=styles["loss"][1])
    box(1.1, 3.0, "unlabelled mixtures\n$\\mathcal{D}_u$: $m^u$", "data", h=0.9)
    box(3.6, 3.0, "separator $f_\\phi$\n(same weights)", "net")
    box(6.0, 3.8, "voice estimate", "data", w=1.8)
    box(6.0, 2.2, "accompaniment\nestimate", "data", w=1.8, h=0.8)
    box(8.6, 3.8, "voice critic $D_{\\theta_1}$", "critic")
    box(8.6, 2.2, "accomp. critic $D_{\\theta_2}$\n(VA only)", "critic", h=0.8)
    box(11.2, 3.8, "solo voices $\\mathcal{D}_s^1$\n(other songs)", "data", w=1.9, h=0.8)
    box(11.2, 2.2, "solo accomp. $\\mathcal{D}_s^2$\n(other songs)", "data", w=1.9, h=0.8)
    box(3.6, 1.0, "$L_{add}$: $\\sum_k f_\\phi(m^u)_k \\approx m^u$", "loss", w=2.8)
    arrow((2.15, 3.0), (2.55, 3.0))
    arrow((4.65, 3.15), (5.05, 3.75))
    arrow((4.65, 2.85), (5.05, 2.25))
    arrow((6.95, 3.8), (7.55, 3.8), "fake")
    arrow((6.95, 2.2), (7.55, 2.2), "fake")
    arrow((10.2, 3.8), (9.65, 3.8), "real", color=styles["critic"][1])
    arrow((10.2, 2.2), (9.65, 2.2), "real", color=styles["critic"][1])
    arrow((3.6, 2.55), (3.6, 1.45))
    return ax


def plot_critic_curves(histories: Mapping[tuple[str, int], Mapping[str, list]], variants: Sequence[str] = ("V", "VA"),
                       smooth: int = 10, axes=None):
    """Wasserstein estimates and gradient penalties of every critic over training, one line per (variant, critic, seed)."""
    import matplotlib.pyplot as plt

    if axes is None:
        _, axes = plt.subplots(1, 2, figsize=(12, 3.4))
    colors = {("V", "vocals"): "C0", ("VA", "vocals"): "C1", ("VA", "accompaniment"): "C2"}
    labelled = set()
    for (variant, seed), history in histories.items():
        if variant not in variants:
            continue
        for name in SOURCES:
            if f"{name}_wasserstein" not in history:
                continue
            color = colors.get((variant, name), "C3")
            label = None if (variant, name) in labelled else f"{variant}: {name} critic"
            labelled.add((variant, name))
            for ax, key in zip(axes, ("wasserstein", "gradient_penalty")):
                ax.plot(history["step"], smoothed(history[f"{name}_{key}"], smooth), color=color, lw=1.2,
                        alpha=0.85, label=label)
    axes[0].set(xlabel="separator step", ylabel="$E\\,D(real) - E\\,D(fake)$", title="Wasserstein estimate")
    axes[1].set(xlabel="separator step", ylabel="$L_{grad}$", title="one-sided gradient penalty")
    axes[0].legend(fontsize=8)
    return axes


def plot_losses(histories: Mapping[tuple[str, int], Mapping[str, list]], smooth: int = 10, axes=None):
    """Training ``L_s`` (smoothed) and validation ``L_s`` of every (variant, seed)."""
    import matplotlib.pyplot as plt

    if axes is None:
        _, axes = plt.subplots(1, 2, figsize=(12, 3.4))
    variants = list(dict.fromkeys(v for v, _ in histories))
    for (variant, seed), history in histories.items():
        color = f"C{variants.index(variant)}"
        label = f"{variant}" if seed == min(s for v, s in histories if v == variant) else None
        axes[0].plot(history["step"], smoothed(history["Ls"], smooth), color=color, lw=1.1, label=label)
        axes[1].plot(history["valid_step"], history["valid_loss"], "o-", color=color, ms=3, lw=1.1, label=label)
    axes[0].set(xlabel="separator step", ylabel="$L_s$ (paired batches)", title="supervised loss", yscale="log")
    axes[1].set(xlabel="separator step", ylabel="$L_s$ (validation)", title="validation loss (all domains)")
    axes[0].legend(fontsize=8)
    return axes


def plot_critic_gradient(example: Mapping[str, Any], cfg: Mapping[str, Any], max_bin: int | None = None, axes=None):
    """The paper's Fig. 3: (a) the voice estimate ``x``; (b) ``grad_x D(x)`` on a diverging map centred at 0.

    Contours in (b) outline the bins where the true voice dominates, so positive gradient on them and
    negative gradient elsewhere is the paper's reading. Only bins below ``max_bin`` are shown.
    """
    import matplotlib.pyplot as plt
    from matplotlib.colors import TwoSlopeNorm

    if axes is None:
        _, axes = plt.subplots(1, 2, figsize=(12, 3.6))
    max_bin = max_bin or example["estimate"].shape[0] // 2
    hz = cfg["sr"] / cfg["n_fft"]
    seconds = cfg["hop"] / cfg["sr"]
    extent = (0, example["estimate"].shape[1] * seconds, 0, max_bin * hz)
    estimate, gradient = example["estimate"][:max_bin], example["gradient"][:max_bin]
    image = axes[0].imshow(estimate, origin="lower", aspect="auto", extent=extent, cmap="gray")
    axes[0].figure.colorbar(image, ax=axes[0], label="log(1 + |x|)", pad=0.01)
    limit = float(np.quantile(np.abs(gradient), 0.99)) or 1.0
    image = axes[1].imshow(gradient, origin="lower", aspect="auto", extent=extent, cmap="RdBu_r",
                           norm=TwoSlopeNorm(0.0, -limit, limit))
    axes[1].contour(example["voice_dominant"][:max_bin].astype(float), levels=[0.5], colors="k", linewidths=0.5,
                    extent=extent, origin="lower")
    axes[1].figure.colorbar(image, ax=axes[1], label="$\\nabla_x D(x)$", pad=0.01)
    axes[0].set(title="(a) separator voice estimate $x$", xlabel="time (s)", ylabel="frequency (Hz)")
    axes[1].set(title="(b) $\\nabla_x D(x)$ (red > 0 > blue; black: true voice dominates)", xlabel="time (s)")
    return axes


# --------------------------------------------------------------------------- the whole experiment


def train_all(cfg: Mapping[str, Any], domains: Domains, variants: Sequence[str] = VARIANTS,
              seeds: Sequence[int] | None = None, *, sets: SpectrogramSets | None = None,
              device: str | torch.device | None = None, progress: bool = True, tag: str = ""):
    """Train every variant for every seed; -> ``(separators, critics, histories)`` keyed ``(variant, seed)``."""
    for variant in variants:
        check_variant(variant)
    device = pick_device(device) if not isinstance(device, torch.device) else device
    sets = sets if sets is not None else spectrogram_sets(cfg, domains, device)
    separators, critics, histories = {}, {}, {}
    for seed in seeds if seeds is not None else cfg["seeds"]:
        for variant in variants:
            key = (variant + tag, seed)
            separators[key], critics[key], histories[key] = train_variant(
                cfg, domains, variant, seed, sets=sets, device=device, progress=progress,
                label=f"{variant + tag} seed {seed}")
    return separators, critics, histories


def ablation(cfg: Mapping[str, Any], domains: Domains, seeds: Sequence[int] | None = None, *,
             device: str | torch.device | None = None, progress: bool = True):
    """V trained with scarce unlabelled data and with mismatched unlabelled data; -> ``(separators, histories)``.

    Variants are named ``'V (scarce)'`` (``scarce_fraction`` of each domain's unlabelled songs) and
    ``'V (mismatched)'`` (unlabelled mixtures and solo sources from ``mismatched_style``, when the
    profile names one). Compare them with the baseline and V of the same seeds.
    """
    seeds = tuple(cfg["ablation_seeds"] if seeds is None else seeds)
    settings = [(" (scarce)", scarce_domains(domains, cfg["scarce_fraction"]))]
    if cfg.get("mismatched_style"):
        settings.append((" (mismatched)", mismatched_domains(cfg, domains)))
    separators, histories = {}, {}
    for tag, data in settings:
        trained, _, trained_histories = train_all(cfg, data, ("V",), seeds, device=device, progress=progress, tag=tag)
        separators.update(trained)
        histories.update(trained_histories)
    return separators, histories


def ablation_table(rows: Sequence[Mapping[str, Any]], variants: Sequence[str], subset: str = "out-of-domain",
                   digits: int = 2):
    """Mean ± std over seeds of each metric row for ``variants`` on ``subset`` ('out-of-domain', 'Test set' or a role)."""
    import pandas as pd

    frame = pd.DataFrame(list(rows))
    if subset == "out-of-domain":
        frame = frame[frame["role"] != PAPER_ROLES[0]]
    elif subset != TEST_SET:
        frame = frame[frame["role"] == subset]
    table = {}
    for variant in variants:
        column = {}
        for label, metric, source in METRIC_ROWS:
            sel = frame[(frame["variant"] == variant) & (frame["source"] == source)]
            per_seed = sel.groupby("seed")[metric].mean().dropna()
            column[label] = _cell(float(per_seed.mean()) if len(per_seed) else float("nan"),
                                  float(per_seed.std(ddof=0)) if len(per_seed) else float("nan"), digits,
                                  len(per_seed))
        table[variant] = column
    return pd.DataFrame(table)


def run(profile: str | None = None, progress: bool = False, device: str | None = None, **overrides) -> dict:
    """The whole experiment: data, Baseline/V/VA over seeds, the scarce/mismatched ablation, BSS Eval rows.

    Returns ``{'profile', 'cfg', 'domains', 'rows', 'ablation_rows', 'histories'}``. ``overrides``
    replace individual settings of the profile (the tests shrink everything this way).
    """
    cfg = config(profile, **overrides)
    device = pick_device(device)
    domains = build_domains(cfg)
    sets = spectrogram_sets(cfg, domains, device)
    separators, _, histories = train_all(cfg, domains, VARIANTS, sets=sets, device=device, progress=progress)
    rows = evaluate(cfg, separators, domains.test, domains)
    ablation_rows = []
    if cfg["ablation_seeds"]:
        extra, extra_histories = ablation(cfg, domains, device=device, progress=progress)
        histories.update(extra_histories)
        ablation_rows = evaluate(cfg, extra, domains.test, domains)
    return {"profile": cfg["profile"], "cfg": cfg, "domains": domains, "rows": rows,
            "ablation_rows": ablation_rows, "histories": histories}
