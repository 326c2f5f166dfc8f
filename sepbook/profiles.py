"""One switch, ``SEPBOOK_PROFILE``, sizes every experiment in the book.

- ``tiny``: CI and CPU readers; every notebook runs top to bottom in minutes on 2 cores.
- ``book``: the reduced-size experiment a chapter reports (minutes per chapter on one GPU).
- ``paper``: the paper's own configuration, for readers with the real datasets and time.

The default is ``book`` when CUDA is available, else ``tiny``. Every recipe reads its sizes from
:data:`SETTINGS` through :func:`settings`, so this file is the one place that says how big things are.

Chapter: preface
"""
from __future__ import annotations

import os
from types import MappingProxyType
from typing import Any, Mapping

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


SETTINGS: Mapping[str, Mapping[str, Mapping[str, Any]]] = MappingProxyType({
    # Foundations: STFT, masks, and the BLSTM mask estimator every later chapter compares against.
    "foundations": {
        "tiny": dict(
            n_train=24, n_test=6, song_seconds=8.0, sr=16000, n_fft=512, hop=128,
            sources=("vocals", "bass", "drums", "other"), segment_seconds=1.0,
            hidden=96, layers=2, steps=500, batch_size=16, lr=3e-3, valid_every=100, seeds=(0, 1, 2),
        ),
        "book": dict(
            n_train=120, n_test=12, song_seconds=12.0, sr=16000, n_fft=1024, hop=256,
            sources=("vocals", "bass", "drums", "other"), segment_seconds=3.0,
            hidden=256, layers=3, steps=6000, batch_size=32, lr=1e-3, valid_every=500, seeds=(0, 1, 2),
        ),
        "paper": dict(
            dataset="musdb18hq", sr=44100, n_fft=4096, hop=1024,
            sources=("vocals", "bass", "drums", "other"), segment_seconds=6.0,
            hidden=512, layers=3, steps=200_000, batch_size=16, lr=1e-3, valid_every=2000, seeds=(0,),
        ),
    },
    # Adversarial semi-supervised separation (Stoller et al. 2018): U-Net separator, one critic per source.
    # Sizes of the three systems are shared; alpha_V / alpha_VA are the paper's alpha (= beta) of V and VA.
    "adversarial": {
        "tiny": dict(
            dataset="synthetic", sr=8192, n_fft=256, hop=128, frames=32, song_seconds=5.0,
            paired_style="pop", domain_styles=("rock", "jazz", "electronic"), mismatched_style="quartet",
            n_paired=8, n_paired_eval=2, songs_per_third=3, data_seed=0,
            unet_base=8, unet_depth=3, critic_base=8, critic_strided_layers=3, critic_frequency_layers=1,
            critic_hidden=16, batch_size=8, steps=200, lr=1e-3, critic_lr=1e-3, n_critic=2, gp_weight=10.0,
            alpha_V=0.01, alpha_VA=0.001, valid_every=40, patience=None, eval_window=None,
            seeds=(0, 1), ablation_seeds=(0,), scarce_fraction=0.25,
        ),
        "book": dict(
            dataset="synthetic", sr=8192, n_fft=512, hop=256, frames=64, song_seconds=12.0,
            paired_style="pop", domain_styles=("rock", "jazz", "electronic"), mismatched_style="quartet",
            n_paired=24, n_paired_eval=6, songs_per_third=8, data_seed=0,
            unet_base=16, unet_depth=4, critic_base=32, critic_strided_layers=4, critic_frequency_layers=2,
            critic_hidden=32, batch_size=64, steps=1000, lr=5e-4, critic_lr=5e-4, n_critic=5, gp_weight=10.0,
            alpha_V=0.01, alpha_VA=0.001, valid_every=100, patience=None, eval_window=None,
            seeds=(0, 1, 2), ablation_seeds=(0,), scarce_fraction=0.25,
        ),
        "paper": dict(
            dataset="dsd100+medleydb+ccmixter+ikala", sr=8192, n_fft=512, hop=256, frames=64, song_seconds=None,
            paired_style=None, domain_styles=None, mismatched_style=None,
            n_paired=None, n_paired_eval=None, songs_per_third=None, data_seed=0,
            unet_base=16, unet_depth=4, critic_base=32, critic_strided_layers=4, critic_frequency_layers=2,
            critic_hidden=32, batch_size=64, steps=200_000, lr=5e-5, critic_lr=5e-5, n_critic=5, gp_weight=10.0,
            alpha_V=0.01, alpha_VA=0.001, valid_every=1000, patience=6, eval_window=None,
            seeds=(0,), ablation_seeds=(), scarce_fraction=0.25,
        ),
    },
})


def settings(chapter: str, profile: str | None = None) -> dict[str, Any]:
    """The sizes ``chapter``'s recipe uses under ``profile`` (default: :func:`current`), plus ``profile`` itself."""
    if chapter not in SETTINGS:
        raise ValueError(f"chapter={chapter!r} has no settings; expected one of {', '.join(SETTINGS)}")
    profile = profile or current()
    if profile not in PROFILES:
        raise ValueError(f"profile={profile!r} is not a profile; expected one of {', '.join(PROFILES)}")
    return {"profile": profile, **SETTINGS[chapter][profile]}
