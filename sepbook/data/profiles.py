"""One switch, ``SEPBOOK_PROFILE``, sizes every experiment in the book.

- ``tiny``: CI and CPU readers; every notebook runs top to bottom in minutes on 2 cores.
- ``book``: the reduced-size experiment a chapter reports. A CPU budget: one command
  (``make results CHAPTER=...``) trains a chapter's whole ``book`` experiment on 2 cores in at most
  about an hour, and its results are committed (see :mod:`sepbook.results`).
- ``paper``: the paper's own configuration, for readers with the real datasets and time.

The default is ``book`` when CUDA is available, else ``tiny``. Every recipe reads its sizes from
:data:`SETTINGS` through :func:`settings`, so this file is the one place that says how big things are.

Chapter: preface
"""
from __future__ import annotations

import os
from types import MappingProxyType
from typing import Any, Mapping

from sepbook.data.soundfonts import HELD_OUT_FONT, TRAINING_FONTS

PROFILES = ("tiny", "book", "paper")
ENV_VAR = "SEPBOOK_PROFILE"


def current() -> str:
    """The active profile: ``$SEPBOOK_PROFILE`` if set, else ``book`` with CUDA and ``tiny`` without."""
    name = os.environ.get(ENV_VAR, "").strip().lower()
    if name:
        if name not in PROFILES:
            raise ValueError(f"{ENV_VAR}={name!r} is not a profile; expected one of {', '.join(PROFILES)}")
        return name
    import torch

    return "book" if torch.cuda.is_available() else "tiny"


def one_thread() -> None:
    """Run torch and numpy/scipy's BLAS on one thread each in this process.

    The book's CPU work runs as processes that share the cores (``make results`` and ``make verify``
    workers, the build's two kernels, the test workers): with each library on every core, two
    processes run four threads on two cores, and OpenBLAS's spinning threads then made BSS Eval's
    solves about twice as slow (measured in ``make verify``)."""
    import threadpoolctl
    import torch

    torch.set_num_threads(1)
    threadpoolctl.threadpool_limits(1, user_api="blas")


SETTINGS: Mapping[str, Mapping[str, Mapping[str, Any]]] = MappingProxyType({
    # Foundations: STFT, masks, and the BLSTM mask estimator every later chapter compares against.
    # Songs are played by the TRAINING_FONTS (sepbook.data.soundfonts); every training source passes a
    # random equaliser of up to ±equalise_db dB per band, so that timbre alone does not name it.
    "foundations": {
        "tiny": dict(
            n_train=24, n_test=6, song_seconds=8.0, sr=16000, n_fft=512, hop=128,
            sources=("vocals", "bass", "drums", "other"), segment_seconds=1.0,
            hidden=96, layers=2, steps=350, batch_size=16, lr=3e-3, valid_every=70, seeds=(0,),
            fonts=TRAINING_FONTS, equalise_db=12.0,
        ),
        "book": dict(
            n_train=120, n_test=12, song_seconds=12.0, sr=16000, n_fft=512, hop=128,
            sources=("vocals", "bass", "drums", "other"), segment_seconds=1.5,
            hidden=128, layers=2, steps=2500, batch_size=16, lr=2e-3, valid_every=250, seeds=(0, 1, 2),
            fonts=TRAINING_FONTS, equalise_db=12.0,
        ),
        "paper": dict(
            dataset="musdb18hq", sr=44100, n_fft=4096, hop=1024,
            sources=("vocals", "bass", "drums", "other"), segment_seconds=6.0,
            hidden=512, layers=3, steps=200_000, batch_size=16, lr=1e-3, valid_every=2000, seeds=(0,),
        ),
    },
    # Adversarial semi-supervised separation (Stoller et al. 2018): U-Net separator, one critic per source.
    # Sizes of the systems are shared. Each system starts from a supervised separator (start_steps),
    # then trains `steps` more updates (early-stopped by `patience` validations) at each setting of
    # its grid, chosen on validation: lrs for the supervised systems, alphas_V / alphas_VA (alpha =
    # beta, the paper's 0.01 / 0.001 and a tenth of it) for V and VA. A step of V or VA takes
    # n_critic critic updates (the paper's 5); critic_warmup critic updates come first.
    "adversarial": {
        "tiny": dict(
            dataset="synthetic", sr=8192, n_fft=256, hop=128, frames=32, song_seconds=5.0,
            paired_style="pop", domain_styles=("rock", "jazz", "electronic"), mismatched_style="quartet",
            n_paired=8, n_paired_eval=2, songs_per_third=3, data_seed=0,
            unet_base=8, unet_depth=3, critic_base=8, critic_strided_layers=3, critic_frequency_layers=1,
            critic_hidden=16, batch_size=8, start_steps=120, steps=60, lr=1e-3, critic_lr=1e-3, n_critic=2,
            critic_warmup=20, gp_weight=10.0, lrs=(1e-3,), alphas_V=(0.01,), alphas_VA=(0.001,),
            valid_every=20, patience=3, eval_window=None,
            seeds=(0,), ablation_seeds=(0,), scarce_fraction=0.25,
            paired_fonts=TRAINING_FONTS[:1], other_fonts=TRAINING_FONTS[1:] + (HELD_OUT_FONT,),
            paired_voice_db=0.0, other_voice_db=-6.0, paired_formant_shift=(0.8, 0.95),
        ),
        "book": dict(
            dataset="synthetic", sr=8192, n_fft=256, hop=128, frames=32, song_seconds=12.0,
            paired_style="pop", domain_styles=("rock", "jazz", "electronic"), mismatched_style="quartet",
            n_paired=12, n_paired_eval=6, songs_per_third=8, data_seed=0,
            unet_base=8, unet_depth=3, critic_base=16, critic_strided_layers=3, critic_frequency_layers=1,
            critic_hidden=32, batch_size=16, start_steps=1500, steps=800, lr=5e-4, critic_lr=5e-4, n_critic=5,
            critic_warmup=200, gp_weight=10.0, lrs=(5e-4, 1.25e-4), alphas_V=(0.01, 0.001),
            alphas_VA=(0.001, 0.0001), valid_every=50, patience=5, eval_window=None,
            seeds=(0, 1, 2), ablation_seeds=(0, 1, 2), scarce_fraction=0.25,
            paired_fonts=TRAINING_FONTS[:1], other_fonts=TRAINING_FONTS[1:] + (HELD_OUT_FONT,),
            paired_voice_db=0.0, other_voice_db=-6.0, paired_formant_shift=(0.8, 0.95),
        ),
        "paper": dict(
            dataset="dsd100+medleydb+ccmixter+ikala", sr=8192, n_fft=512, hop=256, frames=64, song_seconds=None,
            paired_style=None, domain_styles=None, mismatched_style=None,
            n_paired=None, n_paired_eval=None, songs_per_third=None, data_seed=0,
            unet_base=16, unet_depth=4, critic_base=32, critic_strided_layers=4, critic_frequency_layers=2,
            critic_hidden=32, batch_size=64, start_steps=100_000, steps=100_000, lr=5e-5, critic_lr=5e-5,
            n_critic=5, critic_warmup=1000, gp_weight=10.0, lrs=(5e-5, 1.25e-5), alphas_V=(0.01, 0.001),
            alphas_VA=(0.001, 0.0001), valid_every=1000, patience=6, eval_window=None,
            seeds=(0,), ablation_seeds=(), scarce_fraction=0.25,
            paired_fonts=None, other_fonts=None, paired_voice_db=0.0, other_voice_db=0.0,
            paired_formant_shift=None,
        ),
    },
    # Score as supervision (Hung, Wichern and Le Roux 2021): a transcriptor as the separator's critic.
    # Steps: transcriptor/classifier pre-training, separator training, joint fine-tuning. Songs are
    # played by the TRAINING_FONTS, each part from another composition and resting in some bars
    # (sepbook.data.synth.independent_parts), so no part can be guessed from another.
    "transcription": {
        "tiny": dict(
            dataset="synthetic", instruments=("bass", "guitar", "piano"), n_train=60, n_valid=3, n_test=3,
            fonts=TRAINING_FONTS, independent_parts=True,
            song_seconds=8.0, sr=8192, n_fft=512, hop=256, frames=32, lowest_pitch=28, n_pitches=48,
            n_harmonics=8, unet_base=8, unet_depth=3, channels=16, hidden=128, batch_size=8,
            transcriptor_steps=800, supervised_steps=250, separator_steps=250, fine_tune_steps=100, lr=2e-3,
            mix_weight=1.0, adversarial_weights=(0.1, 0.3), valid_every=50, seeds=(0, 1),
        ),
        "book": dict(
            dataset="synthetic", instruments=("bass", "guitar", "piano"), n_train=200, n_valid=6, n_test=24,
            fonts=TRAINING_FONTS, independent_parts=True,
            song_seconds=12.0, sr=8192, n_fft=512, hop=256, frames=64, lowest_pitch=28, n_pitches=48,
            n_harmonics=8, unet_base=16, unet_depth=3, channels=16, hidden=128, batch_size=8,
            transcriptor_steps=1200, supervised_steps=2500, separator_steps=1000, fine_tune_steps=500, lr=1e-3,
            mix_weight=1.0, adversarial_weights=(0.1, 0.3), valid_every=100, seeds=(0, 1, 2),
        ),
        "paper": dict(
            dataset="slakh2100", instruments=("Bass", "Guitar", "Piano"), n_train=None, n_valid=None, n_test=None,
            fonts=None, independent_parts=False,
            song_seconds=None, sr=16000, n_fft=1024, hop=256, frames=256, lowest_pitch=21, n_pitches=88,
            n_harmonics=10, unet_base=32, unet_depth=5, channels=32, hidden=256, batch_size=16,
            transcriptor_steps=100_000, supervised_steps=100_000, separator_steps=100_000, fine_tune_steps=50_000,
            lr=1e-4,
            mix_weight=1.0, adversarial_weights=(0.1, 0.3), valid_every=2000, seeds=(0,),
        ),
    },
    # Meta-TasNet (Samuel et al. 2020): Conv-TasNet with independent, multi-task or generated
    # masking networks on four MUSDB stems, played by the TRAINING_FONTS. tiny and book have two
    # stages (book the paper's first two, 8 and 16 kHz); paper has all three.
    "metatasnet": {
        "tiny": dict(
            dataset="synthetic", sources=("vocals", "drums", "bass", "other"), n_train=8, n_valid=2,
            n_test=2, song_seconds=8.0, fonts=TRAINING_FONTS, stages=(4000, 8000), n_basis=32,
            kernel=16, bottleneck=32, hidden=64, blocks=4, stacks=1, embedding_dim=8, rank=3,
            batch_size=4, excerpt_seconds=1.0,
            steps=80, lr=2e-3, valid_every=40, seeds=(0, 1),
        ),
        "book": dict(
            dataset="synthetic", sources=("vocals", "drums", "bass", "other"), n_train=40, n_valid=4,
            n_test=24, song_seconds=12.0, fonts=TRAINING_FONTS, stages=(8000, 16000), n_basis=64,
            kernel=32, bottleneck=64, hidden=96, blocks=5, stacks=2, embedding_dim=8, rank=3,
            batch_size=4, excerpt_seconds=0.5, steps=1600, lr=1e-3, valid_every=160, seeds=(0, 1, 2),
        ),
        "paper": dict(
            dataset="musdb18hq", sources=("vocals", "drums", "bass", "other"), n_train=None,
            n_valid=None, n_test=None, song_seconds=None, fonts=None, stages=(8000, 16000, 32000),
            n_basis=440,
            kernel=20, bottleneck=160, hidden=160, blocks=6, stacks=3, embedding_dim=8, rank=5,
            batch_size=12, excerpt_seconds=8.0, steps=200_000, lr=1e-3, valid_every=2000, seeds=(0,),
        ),
    },
    # Instrument-activation-aware separation (Hung and Lerch 2020): a residual U-Net with an activity
    # head, against the Foundations BLSTM, on a MUSDB-layout set and a MedleyDB-like set.
    "activity": {
        "tiny": dict(
            dataset="synthetic", musdb_sources=("vocals", "drums", "bass", "other"),
            medley_sources=("vocals", "bass", "drums", "piano", "electric_guitar", "acoustic_guitar"),
            n_train=16, n_valid=2, n_test=3, song_seconds=8.0, sr=8192, n_fft=512, hop=256, frames=64,
            label_threshold_db=-30.0, unet_base=8, unet_depth=4, unet_max_channels=16, head_hidden=64,
            blstm_hidden=128, blstm_layers=2, batch_size=8, steps=140, lr=2e-3, activity_weight=0.5,
            threshold=0.5, median_frames=15, thresholds=(0.3, 0.5, 0.7), medians=(1, 15),
            valid_every=35, seeds=(0, 1), fonts=TRAINING_FONTS,
        ),
        "book": dict(
            dataset="synthetic", musdb_sources=("vocals", "drums", "bass", "other"),
            medley_sources=("vocals", "bass", "drums", "piano", "electric_guitar", "acoustic_guitar"),
            n_train=48, n_valid=6, n_test=24, song_seconds=12.0, sr=8192, n_fft=512, hop=256, frames=64,
            label_threshold_db=-30.0, unet_base=8, unet_depth=4, unet_max_channels=16, head_hidden=64,
            blstm_hidden=256, blstm_layers=3, batch_size=8, steps=1600, lr=1e-3, activity_weight=0.5,
            threshold=0.5, median_frames=15, thresholds=(0.3, 0.5, 0.7), medians=(1, 7, 15, 31),
            valid_every=160, seeds=(0, 1, 2), fonts=TRAINING_FONTS,
        ),
        "paper": dict(
            dataset="musdb18hq+medleydb", musdb_sources=("vocals", "drums", "bass", "other"),
            medley_sources=("vocals", "bass", "drums", "piano", "electric_guitar", "acoustic_guitar"),
            n_train=None, n_valid=None, n_test=None, song_seconds=None, sr=22050, n_fft=2048, hop=512,
            frames=128, label_threshold_db=-30.0, unet_base=32, unet_depth=5, unet_max_channels=None,
            head_hidden=256, blstm_hidden=512, blstm_layers=3, batch_size=16, steps=200_000, lr=1e-3,
            activity_weight=0.5, threshold=0.5, median_frames=21, thresholds=(0.3, 0.5, 0.7),
            medians=(1, 11, 21, 41), valid_every=2000, seeds=(0,), fonts=None,
        ),
    },
    # Transfer learning (Bugler, Pardo and Seetharaman 2020): ChimeraNet pre-trained with deep
    # clustering on large sets, fine-tuned on small ones (whole or mask only), against training from
    # scratch for as many steps. ``songs`` gives (training, test) songs per set.
    "transfer": {
        # songs: (training, test, validation) songs per set; test and validation songs are scored whole
        "tiny": dict(
            dataset="synthetic", sr=8000, n_fft=256, hop=128, song_seconds=8.0, fonts=TRAINING_FONTS,
            songs={"musdb": (8, 0, 0), "slakh": (8, 0, 0), "bach10": (2, 5, 1), "dagstuhl": (2, 5, 1),
                   "remixpacks": (3, 5, 1)},
            pretraining=("musdb", "slakh", "musdb+slakh"), augmentations=("none", "incoherent"),
            downstream=("bach10", "dagstuhl", "remixpacks"), excerpt_seconds=1.0,
            gain_range=(0.7, 1.3), pitch_shift=(-3, 3), time_stretch=(0.8, 1.2),
            hidden=64, layers=2, embedding_dim=20, batch_size=8, pretrain_steps=200, finetune_steps=80,
            long_steps=160, shares=(0.5,), sweep_from="musdb+slakh",
            lr=2e-3, alpha=0.01, valid_every=20, seeds=(0, 1),
        ),
        "book": dict(
            dataset="synthetic", sr=8000, n_fft=256, hop=128, song_seconds=10.0, fonts=TRAINING_FONTS,
            songs={"musdb": (30, 0, 0), "slakh": (60, 0, 0), "bach10": (3, 12, 2), "dagstuhl": (4, 12, 2),
                   "remixpacks": (6, 12, 2)},
            pretraining=("musdb", "slakh", "musdb+slakh"), augmentations=("none", "pitch", "stretch", "incoherent"),
            downstream=("bach10", "dagstuhl", "remixpacks"), excerpt_seconds=1.0,
            gain_range=(0.7, 1.3), pitch_shift=(-3, 3), time_stretch=(0.8, 1.2),
            hidden=128, layers=2, embedding_dim=20, batch_size=8, pretrain_steps=800, finetune_steps=160,
            long_steps=1280, shares=(0.25, 0.5), sweep_from="musdb+slakh",
            lr=1e-3, alpha=0.01, valid_every=20, seeds=(0, 1, 2),
        ),
        "paper": dict(
            dataset="real", sr=16000, n_fft=512, hop=128, song_seconds=None, fonts=None,
            songs=None, pretraining=("musdb", "slakh", "musdb+slakh"),
            augmentations=("none", "pitch", "stretch", "incoherent"), downstream=("bach10", "dagstuhl", "remixpacks"),
            excerpt_seconds=10.0, gain_range=(1.0, 1.0),
            pitch_shift=(-3, 3), time_stretch=(0.8, 1.2), hidden=1000, layers=4, embedding_dim=20, batch_size=24,
            pretrain_steps=10_000, finetune_steps=2000, long_steps=10_000, shares=(0.25, 0.5), sweep_from="musdb+slakh",
            lr=1e-3, alpha=0.01, valid_every=100, seeds=(0,),
        ),
    },
})


def settings(chapter: str, profile: str | None = None, **overrides: Any) -> dict[str, Any]:
    """``chapter``'s sizes under ``profile`` (default: :func:`current`), plus ``profile`` itself.

    ``overrides`` replace single settings (the tests shrink experiments this way); a name the
    chapter does not have, or a value of another type than the profile's, raises ``ValueError``.
    """
    if chapter not in SETTINGS:
        raise ValueError(f"chapter={chapter!r} has no settings; expected one of {', '.join(SETTINGS)}")
    profile = profile or current()
    if profile not in PROFILES:
        raise ValueError(f"profile={profile!r} is not a profile; expected one of {', '.join(PROFILES)}")
    cfg = {"profile": profile, **SETTINGS[chapter][profile]}
    for name, value in overrides.items():
        if name not in cfg or name == "profile":
            names = sorted(set(cfg) - {"profile"})
            raise ValueError(f"overrides: {chapter} has no setting {name!r}; expected some of {names}")
        if isinstance(cfg[name], tuple) and isinstance(value, list):
            overrides[name] = value = tuple(value)  # settings read back from JSON
        _check_override(name, value, cfg[name])
    return cfg | overrides


def _check_override(name: str, value: Any, default: Any) -> None:
    if default is None or value is None:
        return
    numbers = (int, float)
    if isinstance(default, bool) != isinstance(value, bool):
        raise ValueError(f"{name}: expected {type(default).__name__}, got {value!r}")
    if isinstance(default, numbers) and isinstance(value, numbers):
        if isinstance(default, int) and not isinstance(value, int):
            raise ValueError(f"{name}: expected an integer, got {value!r}")
        if default > 0 and value <= 0:
            raise ValueError(f"{name}: expected a positive number, got {value!r}")
        return
    if not isinstance(value, type(default)):
        raise ValueError(f"{name}: expected {type(default).__name__}, got {value!r}")


def digest(cfg: Mapping[str, Any]) -> str:
    """A short hash of settings, written to a results manifest so stale results can be detected."""
    import hashlib
    import json

    text = json.dumps({k: v for k, v in cfg.items()}, sort_keys=True, default=list)
    return hashlib.sha256(text.encode()).hexdigest()[:16]
