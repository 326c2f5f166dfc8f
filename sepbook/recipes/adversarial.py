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

import copy
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
from sepbook.train import _progress, pick_device, seed_everything

#: Separator output channels, in order. The paper's table calls them "Inst." and "V.".
SOURCES: tuple[str, str] = ("accompaniment", "vocals")
SOURCE_LABELS: dict[str, str] = {"accompaniment": "Instrumental", "vocals": "Voice"}
VARIANTS: tuple[str, ...] = ("baseline", "V", "VA")
#: The paper's datasets, in the order of its table: the paired one first, then the unlabelled ones.
PAPER_ROLES: tuple[str, ...] = ("DSD100", "MedleyDB", "CCMixter", "iKala")
ROLE_DESCRIPTIONS: dict[str, str] = {
    "DSD100": "paired multitracks (training partition) + its own test songs",
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
    """``domains`` keeping only ``fraction`` of each domain's unlabelled mixture songs and solo songs (at least one)."""
    if not 0 < fraction <= 1:
        raise ValueError(f"fraction: expected a fraction in (0, 1], got {fraction!r}")

    def keep(tracks: Sequence[Track]) -> list[Track]:
        kept = []
        for domain in dict.fromkeys(t.domain for t in tracks):
            own = [t for t in tracks if t.domain == domain]
            kept += own[:max(1, math.floor(len(own) * fraction))]
        return kept

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
class SpectrogramSets:
    """Linear magnitudes of the training sets, each ``(songs, channels, freq, frames)``, on one device.

    ``paired`` channels: mixture, accompaniment, vocals; ``unlabelled``: mixture; ``solo``:
    accompaniment, vocals (from songs other than the unlabelled ones); ``valid``: fixed validation
    excerpts ``(excerpts, 3, freq, frames)`` with the paired channels.
    """

    paired: torch.Tensor
    unlabelled: torch.Tensor
    solo: torch.Tensor
    valid: torch.Tensor


def _stack(cfg: Mapping[str, Any], tracks: Sequence[Track], channels: str) -> torch.Tensor:
    if not tracks:
        return torch.zeros(0, len(channels), n_bins(cfg), 0)
    length = min(len(t.mixture) for t in tracks)
    waves = []
    for t in tracks:
        parts = {"m": t.mixture[:length], "a": t.sources[0, :length], "v": t.sources[1, :length]}
        waves.append(np.stack([parts[c] for c in channels]))
    return magnitudes(cfg, np.stack(waves))


def _excerpts(bank: torch.Tensor, frames: int) -> torch.Tensor:
    """Cut ``(songs, C, F, T)`` into non-overlapping ``(n, C, F, frames)`` excerpts."""
    usable = bank.shape[-1] // frames * frames
    pieces = bank[..., :usable].unfold(-1, frames, frames)          # (songs, C, F, n, frames)
    return pieces.permute(0, 3, 1, 2, 4).reshape(-1, bank.shape[1], bank.shape[2], frames)


def spectrogram_sets(cfg: Mapping[str, Any], domains: Domains, device: torch.device | str = "cpu",
                     max_valid_excerpts: int = 256) -> SpectrogramSets:
    """Compute :class:`SpectrogramSets` for ``domains`` (at most ``max_valid_excerpts`` validation excerpts)."""
    frames = cfg["frames"]
    sets = {"paired": _stack(cfg, domains.paired, "mav"), "unlabelled": _stack(cfg, domains.unlabelled, "m"),
            "solo": _stack(cfg, domains.solo, "av")}
    for name, bank in sets.items():
        if bank.shape[0] == 0:
            raise ValueError(f"domains.{name}: no songs; the experiment needs paired, unlabelled and solo songs")
        if bank.shape[-1] < frames:
            raise ValueError(f"frames: songs of {bank.shape[-1]} STFT frames are shorter than one excerpt "
                             f"({frames} frames); make song_seconds longer or frames smaller")
    valid = _excerpts(_stack(cfg, domains.valid, "mav"), frames)
    if len(valid) > max_valid_excerpts:
        valid = valid[torch.linspace(0, len(valid) - 1, max_valid_excerpts).long()]
    sets["valid"] = valid
    return SpectrogramSets(**{k: v.to(device) for k, v in sets.items()})


def _draw(bank: torch.Tensor, batch: int, frames: int, rng: np.random.Generator) -> torch.Tensor:
    """``batch`` random excerpts ``(batch, C, F, frames)`` of ``(songs, C, F, T)``."""
    songs = torch.as_tensor(rng.integers(bank.shape[0], size=batch), device=bank.device)
    starts = torch.as_tensor(rng.integers(bank.shape[-1] - frames + 1, size=batch), device=bank.device)
    columns = starts[:, None] + torch.arange(frames, device=bank.device)       # (batch, frames)
    picked = bank[songs]                                                        # (batch, C, F, T)
    index = columns[:, None, None, :].expand(-1, picked.shape[1], picked.shape[2], -1)
    return picked.gather(-1, index)


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
        excerpt = _draw(sets.solo[:, index:index + 1], cfg["batch_size"], cfg["frames"], rng)
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
                  progress: bool = True, label: str | None = None):
    """Train ``variant`` ('baseline', 'V' or 'VA') for ``cfg['steps']`` separator updates; -> ``(separator, critics, history)``.

    Every step takes ``n_critic`` updates of each critic (fresh unlabelled and solo batches each
    time), then one separator update on ``L_s + alpha L_u + beta L_add``; the baseline takes only
    ``L_s``. The separator and the paired batches depend only on ``seed``, so the three variants
    start from the same weights and see the same paired data. Every ``valid_every`` steps the
    validation ``L_s`` is measured and the best separator is kept (paper Sec. 4.3.4: "the model with
    the best validation loss is selected"); with ``patience`` set, training stops after that many
    validations without improvement. The separator is returned on the CPU in eval mode, with the
    best weights; the critics as they are at the end. Raises ``FloatingPointError`` on NaN or Inf.
    """
    check_variant(variant)
    device = pick_device(device) if not isinstance(device, torch.device) else device
    adv = adversarial_config(cfg, variant)
    sets = sets if sets is not None else spectrogram_sets(cfg, domains, device)
    sets = SpectrogramSets(**{k: v.to(device) for k, v in vars(sets).items()})
    seed_everything(seed)
    separator = build_separator(cfg).to(device)
    critics = build_variant_critics(cfg, variant).to(device)
    optimizer = torch.optim.Adam(separator.parameters(), lr=adv.lr)
    critic_optimizers = {name: torch.optim.Adam(critic.parameters(), lr=adv.critic_lr) for name, critic in critics.items()}
    penalty_generator = torch.Generator(device=device).manual_seed(10_000 + seed)
    history = new_history(critics.keys())
    best_loss, best_state, best_step, stale = math.inf, None, 0, 0
    bar = _progress(cfg["steps"], 0, progress)
    bar.set_description(label or f"{variant} seed {seed}")
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
    data = [[_cell(*values[(label, g, v)][:2], digits) for g in groups for v in variants] for label, _, _ in METRIC_ROWS]
    return pd.DataFrame(data, index=[label for label, _, _ in METRIC_ROWS], columns=columns)


def _cell(mean: float, std: float, digits: int) -> str:
    if not math.isfinite(mean):
        return "–"
    return f"{mean:.{digits}f} ± {std:.{digits}f}"


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
        claim = f"{variant} beats the baseline {where} in every seed"
    elif mean > 0:
        claim = f"{variant} beats the baseline {where} on average but not in every seed"
    elif wins > 0:
        claim = f"{variant} does not beat the baseline {where} on average (it wins in some seeds only)"
    else:
        claim = f"{variant} does not beat the baseline {where}"
    noise = " — within the seed-to-seed spread" if abs(mean) <= std else ""
    return (f"In the {profile} profile, {claim}: {mean:+.2f} dB {metric_row} (mean over {seeds} seeds, "
            f"std {std:.2f} dB; better in {wins} of {seeds}){noise}.")


# --------------------------------------------------------------------------- figures' data


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


def gradient_on_voice_and_leakage(example: Mapping[str, np.ndarray], quantile: float = 0.75) -> dict[str, float]:
    """Mean critic gradient on the estimate's loud bins (top ``1 - quantile``), split by who really owns them.

    ``voice``: loud estimate bins where the true voice dominates; ``leakage``: loud bins where the
    accompaniment dominates. The paper's Fig. 3 reading predicts ``voice > 0 > leakage``.
    """
    estimate, gradient, voice = (np.asarray(example[k]) for k in ("estimate", "gradient", "voice_dominant"))
    loud = estimate >= np.quantile(estimate, quantile)
    pick = lambda mask: float(gradient[mask].mean()) if mask.any() else float("nan")
    return {"voice": pick(loud & voice), "leakage": pick(loud & ~voice),
            "voice bins": int((loud & voice).sum()), "leakage bins": int((loud & ~voice).sum())}


def smoothed(values: Sequence[float], width: int) -> np.ndarray:
    """Moving average over ``width`` steps (shorter at the start), for noisy training curves."""
    values = np.asarray(values, dtype=float)
    if values.size == 0:
        return values
    width = max(1, min(width, values.size))
    cumulative = np.cumsum(np.insert(values, 0, 0.0))
    out = np.empty_like(values)
    for i in range(values.size):
        lo = max(0, i + 1 - width)
        out[i] = (cumulative[i + 1] - cumulative[lo]) / (i + 1 - lo)
    return out


# --------------------------------------------------------------------------- book checkpoints


def checkpoint_path(profile: str = "book") -> Path:
    """Where the chapter's trained models of ``profile`` live: ``chapters/adversarial/checkpoints/{profile}-adversarial.pt``."""
    return Path(__file__).resolve().parents[2] / "chapters" / "adversarial" / "checkpoints" / f"{profile}-adversarial.pt"


def save_models(path: str | Path, cfg: Mapping[str, Any], models: Mapping[tuple[str, int], torch.nn.Module],
                rows: Sequence[Mapping[str, Any]] = ()) -> Path:
    """Write separators (state dicts, keyed ``"variant/seed"``), the settings and result rows, loadable with ``weights_only=True``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    plain_cfg = {k: (list(v) if isinstance(v, tuple) else v) for k, v in cfg.items()}
    state = {"cfg": plain_cfg, "rows": [dict(r) for r in rows],
             "models": {f"{v}/{s}": {k: t.detach().cpu() for k, t in m.state_dict().items()} for (v, s), m in models.items()}}
    torch.save(state, path)
    return path


def load_models(path: str | Path) -> tuple[dict, dict[tuple[str, int], UNet], list[dict]]:
    """Read :func:`save_models`' file with ``weights_only=True``; -> ``(cfg, {(variant, seed): separator}, rows)``."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint file {path} does not exist")
    state = torch.load(path, map_location="cpu", weights_only=True)
    cfg = {k: (tuple(v) if isinstance(v, list) else v) for k, v in state["cfg"].items()}
    models = {}
    for key, weights in state["models"].items():
        variant, seed = key.split("/")
        model = build_separator(cfg)
        model.load_state_dict(weights)
        models[(variant, int(seed))] = model.eval()
    return cfg, models, list(state["rows"])


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
                                  float(per_seed.std(ddof=0)) if len(per_seed) else float("nan"), digits)
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
