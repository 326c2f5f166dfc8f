"""Training-step speed of the book's models against the implementations a reader would otherwise pick.

One training step is forward, loss, backward and optimiser step (Adam) on one fixed batch, on the
CPU, with 1 and with 2 threads (``torch.set_num_threads``). Each book model and its reference are
built at the same ``book``-profile sizes (:mod:`sepbook.data.profiles`: same STFT or encoder, hidden
units, layers, channels, batch and excerpt length) and timed in the same process, interleaved:
every round times one step of each, in alternating order, so a change of machine load hits both
alike. After ``--warmup`` untimed steps each, the median of ``--steps`` timed steps is reported
as steps per second; ratio = book steps/s over reference steps/s (>= 1: the book is not slower).

The pairs (each step is the one its own code trains with):

- ``blstm``: the Foundations :class:`~sepbook.models.blstm.BLSTMMasker` (``supervised_step``
  with ``magnitude_loss``) against ``openunmix.model.OpenUnmix`` (its ``train.py`` step: STFT +
  ``ComplexNorm`` encoder, MSE of magnitudes). Open-Unmix trains one model per target, so this is
  timed twice: per source (a book model with K=1 against one OpenUnmix: the parameters match) and
  for the chapter's four sources (one book model with K=4 outputs against four OpenUnmix steps).
- ``tasnet``: the Meta-TasNet chapter's Conv-TasNet (:func:`~sepbook.models.tasnet.build_tasnet`,
  ``stage_loss``) against ``asteroid.models.ConvTasNet`` (``multisrc_neg_sisdr``): the
  multi-task system is Conv-TasNet itself (one TCN, K masks); the independent and meta systems
  (one TCN stream per instrument) against asteroid's encoder and decoder with one
  ``asteroid.masknn.TDConvNet`` per instrument (asteroid has no generated-weight masker).
- ``chimera``: the transfer chapter's :class:`~sepbook.models.chimera.ChimeraNet` (``whole_loss``,
  both heads) against nussl's ``SeparationModel(build_recurrent_chimera(...))`` with nussl's
  ``DeepClusteringLoss`` and ``L1Loss``; both get magnitudes from the same ``torch.stft`` in the step.
- ``unet``: the adversarial chapter's :class:`~sepbook.models.unet.UNet` (its baseline separator
  step, ``separator_step`` on ``L_s``) against ``unet.UNet`` (the PyPI package ``unet``: a
  configurable Ronneberger U-Net with two convolutions per level), at equal depth and channels and,
  since two convolutions per level double its size, also at about equal parameters.

Where the book was slower. ChimeraNet trained slower than nussl's Chimera on one thread, and a
profile (torch.profiler) and an interleaved ablation put it down to two choices: (1) its heads read
the BLSTM output concatenated with its input (the Open-Unmix skip of ``BLSTMTrunk``), twice the
width of nussl's, so the embedding head's Linear was twice as large; (2) its embeddings were
``tanh`` then unit norm, nussl's ``sigmoid`` then unit norm, and the CPU ``tanh`` is the slower of
the two. Both are now as in nussl, the implementation the paper (Bugler et al. 2020) names: the
heads read the BLSTM output alone (``BLSTMTrunk(..., skip=False)``) and the embeddings are
``sigmoid`` then unit norm. That changes the weights' shapes and the numbers computed, so
checkpoints of the earlier ChimeraNet do not load into it. Its ratio now is the ``chimera`` rows of
benchmarks/RESULTS.md (``python benchmarks/run.py speed-chimera``). Every other model is faster
than its reference at equal size and needed no change.

The references live in their own environment, never in sepbook's dependencies. Create it once
(under two minutes with a warm pip cache), then run::

    python3 benchmarks/training_speed.py setup
    benchmarks/.venv-reference/bin/python benchmarks/training_speed.py              # all pairs, 1 and 2 threads
    benchmarks/.venv-reference/bin/python benchmarks/training_speed.py blstm unet --threads 1 --steps 30
    python benchmarks/run.py speed      # the same, recorded in results.json and RESULTS.md

Two things in that environment are not installed as their packages ask, and the benchmark says
so where it works around them: ``torchaudio`` has no build for this torch (its compiled extension
does not load against torch 2.13 CPU), and ``openunmix.transforms`` imports it without using it
for the STFT or the model, so an empty placeholder module stands in for it (any use raises);
nussl 1.1.9 still calls ``scipy.signal.hamming``, which scipy 1.13 moved to ``scipy.signal.windows``,
so that name is aliased before nussl is imported.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
import types
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parent.parent
VENV = ROOT / "benchmarks" / ".venv-reference"
PYTHON = VENV / "bin" / "python"

#: The reference packages, pinned, installed with --no-deps (their declared dependencies would
#: pull torchaudio, or another torch).
REFERENCES = ["openunmix==1.3.0", "asteroid==0.7.0", "asteroid-filterbanks==0.4.0", "nussl==1.1.9", "unet==0.8.1"]
#: What sepbook's models and the references really import (asteroid's hub utilities and nussl's
#: whole package tree are imported on ``import asteroid`` / ``import nussl``). Installed with their
#: dependencies under a torch pin, so nothing can replace the local CPU torch.
LIGHT = ["numpy", "scipy", "tqdm", "pyyaml", "soundfile", "librosa", "huggingface_hub", "requests",
         # nussl's imports
         "musdb", "museval", "pyloudnorm", "six", "sox", "importlib_resources", "pandas", "termtables",
         "zarr", "jams", "gpytorch", "pytorch-ignite", "tensorboard", "norbert", "scikit-learn"]
TORCH = "torch==2.13.0"  # the only CPU wheel on this machine; a bare 'torch' downloads a CUDA build


def setup(venv: Path = VENV) -> None:
    """Create the reference environment: torch first, then the references, then sepbook (no deps)."""
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "-q"]
    pin = venv / "torch-pin.txt"
    steps = [[sys.executable, "-m", "venv", str(venv)], pip + [TORCH], pip + ["--no-deps", *REFERENCES],
             pip + ["-c", str(pin), "-c", str(ROOT / "requirements.lock"), *LIGHT],
             pip + ["--no-deps", "--no-build-isolation", "-e", str(ROOT)]]
    for i, command in enumerate(steps):
        if i == 1:
            pin.write_text(TORCH + "\n")
        print("+", " ".join(command), flush=True)
        subprocess.run(command, check=True)


# --------------------------------------------------------------------------- reference imports

def _placeholder_torchaudio() -> None:
    """``openunmix.transforms`` imports torchaudio but neither OpenUnmix nor TorchSTFT uses it."""
    if "torchaudio" in sys.modules:
        return
    module = types.ModuleType("torchaudio", "placeholder: torchaudio does not load against this torch")

    def missing(name):
        raise AttributeError(f"torchaudio.{name}: torchaudio is a placeholder in the benchmark environment")

    module.__getattr__ = missing
    sys.modules["torchaudio"] = module


def _scipy_windows_for_nussl() -> None:
    """nussl 1.1.9 reads ``scipy.signal.hamming`` and friends, moved to ``scipy.signal.windows``."""
    import scipy.signal
    import scipy.signal.windows

    for name in ("hamming", "hann", "blackman"):
        if not hasattr(scipy.signal, name):
            setattr(scipy.signal, name, getattr(scipy.signal.windows, name))


# --------------------------------------------------------------------------- one pair

@dataclass
class Contender:
    """A model and the closure that runs one training step of it on the pair's batch."""

    name: str
    model: "object"
    step: Callable[[], None]
    times: list[float] = field(default_factory=list)

    @property
    def params(self) -> int:
        models = self.model if isinstance(self.model, list) else [self.model]
        return sum(p.numel() for m in models for p in m.parameters() if p.requires_grad)


@dataclass
class Pair:
    key: str
    model: str
    reference: str
    sizes: str
    build: Callable[[], tuple[Contender, Contender]]
    note: str = ""


def _adam_step(model, loss_fn, lr, clip=None):
    import torch

    optimizer = torch.optim.Adam(model.parameters(), lr=lr)

    def step():
        optimizer.zero_grad(set_to_none=True)
        loss = loss_fn()
        loss.backward()
        if clip:
            torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
        optimizer.step()

    return step


def _book_step(model, loss_fn, batch, lr):
    """The book's own step: :func:`sepbook.experiments.train.supervised_step` (Adam, gradient norm clipped to 5)."""
    import torch

    from sepbook.experiments.train import supervised_step

    step, optimizers = supervised_step(loss_fn), {"model": torch.optim.Adam(model.parameters(), lr=lr)}
    return lambda: step(model, optimizers, batch)


def _waves(*shape, seed=0):
    import torch

    generator = torch.Generator().manual_seed(seed)
    return 0.1 * torch.randn(*shape, generator=generator)


# Foundations ------------------------------------------------------------------------------

def _blstm_pair(n_sources: int):
    def build():
        import torch

        from sepbook.losses.masking import magnitude_loss
        from sepbook.models.blstm import blstm_separator
        from sepbook.data.profiles import settings

        _placeholder_torchaudio()
        from openunmix.model import OpenUnmix
        from openunmix.transforms import ComplexNorm, make_filterbanks

        cfg = settings("foundations", "book")
        samples = int(cfg["segment_seconds"] * cfg["sr"])
        sources = _waves(cfg["batch_size"], n_sources, 1, samples)
        batch = {"mixture": sources.sum(1), "sources": sources}
        torch.manual_seed(0)
        book = blstm_separator(n_sources, cfg["n_fft"], cfg["hop"], hidden=cfg["hidden"], layers=cfg["layers"])
        book.train()
        mine = Contender(f"BLSTMMasker K={n_sources}", book, _book_step(book, magnitude_loss, batch, cfg["lr"]))

        # open-unmix's train.py: encoder = STFT + ComplexNorm; centred frames so both see 1 + time // hop
        stft, _ = make_filterbanks(n_fft=cfg["n_fft"], n_hop=cfg["hop"], center=True, sample_rate=cfg["sr"])
        encoder = torch.nn.Sequential(stft, ComplexNorm(mono=True))
        targets = [OpenUnmix(nb_bins=cfg["n_fft"] // 2 + 1, nb_channels=1, hidden_size=cfg["hidden"],
                             nb_layers=cfg["layers"]) for _ in range(n_sources)]
        steps = []
        for k, unmix in enumerate(targets):
            unmix.train()

            def loss(unmix=unmix, k=k):
                estimate = unmix(encoder(batch["mixture"]))
                return torch.nn.functional.mse_loss(estimate, encoder(batch["sources"][:, k]))

            steps.append(_adam_step(unmix, loss, cfg["lr"]))
        reference = Contender(f"OpenUnmix x{n_sources}", targets, lambda: [s() for s in steps])
        return mine, reference

    cfg = _cfg("foundations")
    what = "per source: K=1 vs 1 OpenUnmix" if n_sources == 1 else f"K={n_sources} vs {n_sources} OpenUnmix (one per target)"
    return Pair(f"blstm-k{n_sources}", f"Foundations BLSTM ({what})", "openunmix 1.3.0 OpenUnmix",
                f"n_fft {cfg['n_fft']}/hop {cfg['hop']}, hidden {cfg['hidden']}, {cfg['layers']} BLSTM layers, "
                f"batch {cfg['batch_size']} x {cfg['segment_seconds']:g} s at {cfg['sr']} Hz",
                build, "OpenUnmix keeps its fixed LSTM dropout 0.4 and no gradient clipping (its train.py)")


# Meta-TasNet ------------------------------------------------------------------------------

def _tasnet_cfg() -> dict:
    """The book sizes at the first stage only: asteroid's Conv-TasNet has no multi-stage form."""
    cfg = _cfg("metatasnet")
    return dict(cfg, stages=tuple(cfg["stages"][:1]))


def _tasnet_pair(variant: str):
    def build():
        import torch

        from sepbook.recipes.metatasnet.training import build as build_book, stage_loss

        from asteroid.losses import multisrc_neg_sisdr
        from asteroid.masknn import TDConvNet
        from asteroid.models import ConvTasNet
        from asteroid_filterbanks import make_enc_dec

        cfg = _tasnet_cfg()
        n_src, sr = len(cfg["sources"]), cfg["stages"][0]
        samples = int(cfg["excerpt_seconds"] * sr)
        sources = _waves(cfg["batch_size"], n_src, 1, samples)
        batch = {"mixture": [sources.sum(1)], "sources": [sources]}
        torch.manual_seed(0)
        book = build_book(cfg, variant).train()
        mine = Contender(f"{variant} TasNet", book, _book_step(book, stage_loss, batch, cfg["lr"]))

        tcn = dict(n_blocks=cfg["blocks"], n_repeats=cfg["stacks"], bn_chan=cfg["bottleneck"],
                   skip_chan=cfg["bottleneck"], conv_kernel_size=3, norm_type="gLN")
        if variant == "multi-task":
            ref = ConvTasNet(n_src, n_filters=cfg["n_basis"], kernel_size=cfg["kernel"], stride=cfg["kernel"] // 2,
                             hid_chan=n_src * cfg["hidden"], mask_act="softmax", encoder_activation="relu",
                             sample_rate=sr, **tcn)
            name = "asteroid ConvTasNet"
        else:
            ref = _IndependentTasNet(make_enc_dec, TDConvNet, n_src, cfg, tcn)
            name = f"asteroid {n_src} x TDConvNet"
        ref.train()
        wave, target = batch["mixture"][0][:, 0], sources[:, :, 0]
        loss = lambda: multisrc_neg_sisdr(ref(wave), target).mean()
        return mine, Contender(name, ref, _adam_step(ref, loss, cfg["lr"], clip=5.0))

    cfg = _tasnet_cfg()
    reference = "asteroid 0.7.0 ConvTasNet" if variant == "multi-task" else "asteroid 0.7.0 TDConvNet per instrument"
    width = f"{len(cfg['sources'])} x {cfg['hidden']}" if variant != "multi-task" else f"{len(cfg['sources']) * cfg['hidden']}"
    note = {"multi-task": "Conv-TasNet proper: one TCN with K softmax masks",
            "independent": "one TCN stream per instrument (book: grouped convolutions; asteroid: K modules)",
            "meta": "no public Meta-TasNet: compared with the independent maskers whose convolutions it runs "
                    "(its kernels are generated from instrument embeddings every step)"}[variant]
    return Pair(f"tasnet-{variant}", f"Meta-TasNet chapter Conv-TasNet, {variant}", reference,
                f"{cfg['n_basis']} basis, kernel {cfg['kernel']}, bottleneck {cfg['bottleneck']}, hidden {width}, "
                f"{cfg['blocks']} blocks x {cfg['stacks']} stacks, batch {cfg['batch_size']} x "
                f"{cfg['excerpt_seconds']:g} s at {cfg['stages'][0]} Hz (the first stage)", build, note)


def _IndependentTasNet(make_enc_dec, TDConvNet, n_src, cfg, tcn):
    """Asteroid's free encoder and decoder with one single-mask TDConvNet per instrument, the
    masks a softmax over instruments: what the book's independent system is, built from asteroid."""
    import torch
    from torch import nn

    class IndependentTasNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.encoder, self.decoder = make_enc_dec("free", n_filters=cfg["n_basis"], kernel_size=cfg["kernel"],
                                                      stride=cfg["kernel"] // 2)
            self.maskers = nn.ModuleList(TDConvNet(cfg["n_basis"], 1, hid_chan=cfg["hidden"], mask_act="linear", **tcn)
                                         for _ in range(n_src))

        def forward(self, wave):
            latent = torch.relu(self.encoder(wave.unsqueeze(1)))                   # (B, N, T')
            logits = torch.cat([m(latent) for m in self.maskers], dim=1)           # (B, K, N, T')
            estimates = self.decoder(latent.unsqueeze(1) * logits.softmax(dim=1))
            return nn.functional.pad(estimates, (0, wave.shape[-1] - estimates.shape[-1]))

    return IndependentTasNet()


# Transfer ---------------------------------------------------------------------------------

def _chimera_pair():
    #: The book's largest mask head among the pre-training sets (slakh, musdb+slakh: 3 sources).
    n_src = 3

    def build():
        import torch

        from sepbook.models.blstm import MaskSeparator
        from sepbook.models.chimera import ChimeraNet
        from sepbook.recipes.transfer.training import whole_loss

        _scipy_windows_for_nussl()
        from nussl.ml.networks import SeparationModel, builders
        from nussl.ml.train.loss import DeepClusteringLoss, L1Loss

        cfg = _cfg("transfer")
        samples = int(cfg["excerpt_seconds"] * cfg["sr"])
        sources = _waves(cfg["batch_size"], n_src, 1, samples)
        batch = {"mixture": sources.sum(1), "sources": sources}
        n_freq = cfg["n_fft"] // 2 + 1
        torch.manual_seed(0)
        book = MaskSeparator(ChimeraNet(n_freq, n_src, cfg["hidden"], cfg["layers"], cfg["embedding_dim"]),
                             cfg["n_fft"], cfg["hop"]).train()
        mine = Contender("ChimeraNet", book, _book_step(book, partial(whole_loss, alpha=cfg["alpha"]), batch, cfg["lr"]))

        # hidden_size is per direction in nussl; the book's hidden counts both directions
        config = builders.build_recurrent_chimera(n_freq, cfg["hidden"] // 2, cfg["layers"], True, 0.0,
                                                  cfg["embedding_dim"], ["sigmoid", "unit_norm"], n_src, ["sigmoid"])
        ref = SeparationModel(config).train()
        dc, l1 = DeepClusteringLoss(), L1Loss()
        window = torch.hann_window(cfg["n_fft"])

        def magnitude(x):  # (..., time) -> (batch, frames, freq, ...) as nussl's datasets give
            spec = torch.stft(x.reshape(-1, x.shape[-1]), cfg["n_fft"], cfg["hop"], window=window,
                              pad_mode="constant", return_complex=True).abs()
            return spec.reshape(*x.shape[:-1], *spec.shape[-2:])

        def loss():
            mix = magnitude(batch["mixture"]).permute(0, 3, 2, 1)                  # (B, T, F, 1)
            srcs = magnitude(batch["sources"][:, :, 0]).permute(0, 3, 2, 1).unsqueeze(-2)  # (B, T, F, 1, K)
            ibm = torch.nn.functional.one_hot(srcs.argmax(-1), n_src).float()
            out = ref({"mix_magnitude": mix})
            return (cfg["alpha"] * dc(out["embedding"], ibm, mix.sqrt())
                    + (1 - cfg["alpha"]) * l1(out["estimates"], srcs))

        return mine, Contender("nussl Chimera", ref, _adam_step(ref, loss, cfg["lr"], clip=5.0))

    cfg = _cfg("transfer")
    return Pair("chimera", "Transfer chapter ChimeraNet (both heads)", "nussl 1.1.9 build_recurrent_chimera",
                f"n_fft {cfg['n_fft']}/hop {cfg['hop']}, BLSTM {cfg['hidden']} units ({cfg['hidden'] // 2} per "
                f"direction) x {cfg['layers']} layers, embedding {cfg['embedding_dim']}, K={n_src}, batch "
                f"{cfg['batch_size']} x {cfg['excerpt_seconds']:g} s at {cfg['sr']} Hz", build,
                "the book's heads read the BLSTM output alone and its embeddings are sigmoid then unit norm, "
                "as nussl's")


# Adversarial ------------------------------------------------------------------------------

def _unet_pair(equal: str):
    def build():
        import torch

        from sepbook.models.unet import UNet
        from sepbook.recipes.adversarial.data import SOURCES
        from sepbook.recipes.adversarial.training import separator_step
        from sepbook.losses.adversarial import supervised_loss
        import unet

        cfg = _cfg("adversarial")
        n_src, bins = len(SOURCES), cfg["n_fft"] // 2
        logs = torch.log1p(_waves(cfg["batch_size"], 1 + n_src, bins, cfg["frames"]).abs() * 10)
        mixture, targets = logs[:, :1], logs[:, 1:]
        torch.manual_seed(0)
        book = UNet(n_sources=n_src, base_channels=cfg["unet_base"], depth=cfg["unet_depth"]).train()
        optimizer = torch.optim.Adam(book.parameters(), lr=cfg["lr"])
        mine = Contender("UNet", book, lambda: separator_step(book, optimizer, {}, mixture, targets, None, 0.0, 0.0))

        base = _unet_reference_base(cfg, equal)
        ref = unet.UNet(in_channels=1, out_classes=n_src, dimensions=2, num_encoding_blocks=cfg["unet_depth"] + 1,
                        out_channels_first_layer=base, padding=1, upsampling_type="conv").train()
        loss = lambda: supervised_loss(torch.relu(ref(mixture)), targets)
        return mine, Contender(f"unet.UNet base {base}", ref, _adam_step(ref, loss, cfg["lr"]))

    cfg = _cfg("adversarial")
    base = _unet_reference_base(cfg, equal)
    channels = f"base {cfg['unet_base']} channels" + ("" if base == cfg["unet_base"] else f" (reference {base})")
    return Pair(f"unet-{equal}", f"Adversarial chapter U-Net (equal {equal})", "unet 0.8.1 UNet",
                f"{cfg['n_fft'] // 2} bins x {cfg['frames']} frames, {channels}, depth {cfg['unet_depth']}, "
                f"2 sources, batch {cfg['batch_size']}", build,
                "the reference has two 3x3 convolutions per level, the book one" + (
                    "" if equal == "channels" else f"; {base} base channels give it about the book's parameters"))


def _unet_reference_base(cfg, equal: str) -> int:
    """``unet.UNet``'s first-layer channels: the book's, or 5/8 of them (about the book's parameters,
    since its two convolutions per level make it about 2.4 times as large at equal channels)."""
    return cfg["unet_base"] if equal == "channels" else max(1, round(cfg["unet_base"] * 5 / 8))


def _cfg(chapter):
    from sepbook.data.profiles import settings

    return settings(chapter, "book")


PAIRS: dict[str, Callable[[], list[Pair]]] = {
    "blstm": lambda: [_blstm_pair(1), _blstm_pair(4)],
    "tasnet": lambda: [_tasnet_pair(v) for v in ("multi-task", "independent", "meta")],
    "chimera": lambda: [_chimera_pair()],
    "unet": lambda: [_unet_pair("channels"), _unet_pair("parameters")],
}


# --------------------------------------------------------------------------- timing

def time_pair(pair: Pair, threads: int, warmup: int, steps: int) -> dict:
    """Warm up both, then ``steps`` rounds of one step each, in alternating order; medians."""
    import torch

    torch.set_num_threads(threads)
    mine, ref = pair.build()
    for _ in range(warmup):
        mine.step()
        ref.step()
    for i in range(steps):
        for contender in ((mine, ref) if i % 2 == 0 else (ref, mine)):
            start = time.perf_counter()
            contender.step()
            contender.times.append(time.perf_counter() - start)
    book_s, ref_s = statistics.median(mine.times), statistics.median(ref.times)
    return {"key": pair.key, "model": pair.model, "reference": pair.reference, "book": mine.name,
            "reference_model": ref.name, "sizes": pair.sizes, "note": pair.note, "threads": threads,
            "params_book": mine.params, "params_reference": ref.params,
            "steps_per_s_book": 1 / book_s, "steps_per_s_reference": 1 / ref_s, "ratio": ref_s / book_s,
            "spread_book": _spread(mine.times), "spread_reference": _spread(ref.times)}


def _spread(times: list[float]) -> float:
    """Interquartile range over median: how steady the timings were."""
    if len(times) < 2:
        return 0.0
    q = statistics.quantiles(times, n=4)
    return (q[2] - q[0]) / statistics.median(times)


def machine() -> dict:
    import platform

    import torch

    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor()) if Path("/proc/cpuinfo").exists() else ""
    return {"cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version(), "torch": torch.__version__}


def run(names: list[str], threads: list[int], warmup: int, steps: int) -> dict:
    load_before = os.getloadavg()
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    rows = []
    for name in names:
        for pair in PAIRS[name]():
            for t in threads:
                row = time_pair(pair, t, warmup, steps)
                rows.append(row)
                print(f"{row['key']:>22} {t} thr: book {row['steps_per_s_book']:7.2f} steps/s "
                      f"({row['params_book']:,} params), {row['reference_model']} {row['steps_per_s_reference']:7.2f} "
                      f"({row['params_reference']:,}), ratio {row['ratio']:.2f}", flush=True)
    return {"date": started, "machine": machine(), "load_before": load_before, "load_after": os.getloadavg(),
            "warmup": warmup, "steps": steps, "command": " ".join(["benchmarks/.venv-reference/bin/python",
                                                                    "benchmarks/training_speed.py", *sys.argv[1:]]),
            "rows": rows}


def table(result: dict) -> list[str]:
    """The Markdown table of one run, with its machine, date, load and command."""
    m = result["machine"]
    lines = ["| model | reference | sizes (book profile) | params book / reference | steps/s book | steps/s reference "
             "| ratio | threads |", "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: |"]
    for r in result["rows"]:
        lines.append(f"| {r['model']} | {r['reference']} ({r['reference_model']}) | {r['sizes']} | "
                     f"{r['params_book']:,} / {r['params_reference']:,} | {r['steps_per_s_book']:.2f} | "
                     f"{r['steps_per_s_reference']:.2f} | {r['ratio']:.2f} | {r['threads']} |")
    before, after = (", ".join(f"{x:.2f}" for x in result[k]) for k in ("load_before", "load_after"))
    shared = max(result["load_before"][0], result["load_after"][0]) > 0.5
    notes = sorted({f"{r['model']}: {r['note']}" for r in result["rows"] if r["note"]})
    lines += ["", f"Run {result['date']} on {m['cpu']}, {m['cores']} cores, Python {m['python']}, torch {m['torch']}; "
              f"median of {result['steps']} timed steps after {result['warmup']} warm-up steps each, the two "
              f"interleaved. Load average (1, 5, 15 min) before: {before}; after: {after}"
              + (" (the machine was shared with other work during the run: the 2-thread steps then compete with "
                 "it for a core, which can slow a step several times over, so read the 1-thread rows for the "
                 "comparison)." if shared else "."),
              f"Command: `{result['command']}`", "", "Ratio: book steps/s over reference steps/s (>= 1: the book "
              "model trains at least as fast). Notes: " + "; ".join(notes) + "."]
    return lines


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("pairs", nargs="*", help=f"setup, or some of {sorted(PAIRS)} (default: all)")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--steps", type=int, default=21)
    parser.add_argument("--json", type=Path, help="also write the results to this file")
    args = parser.parse_args(argv)
    if args.pairs == ["setup"]:
        return setup()
    unknown = set(args.pairs) - set(PAIRS)
    if unknown:
        raise SystemExit(f"unknown pair(s) {sorted(unknown)}; choose from {sorted(PAIRS)} (or 'setup')")
    if Path(sys.prefix).resolve() != VENV.resolve():
        print(f"note: running in {sys.prefix}, not the reference environment {VENV}", file=sys.stderr)
    result = run(args.pairs or list(PAIRS), args.threads, args.warmup, args.steps)
    print("\n".join(table(result)))
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main(sys.argv[1:])
