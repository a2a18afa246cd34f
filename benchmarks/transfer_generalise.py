"""Does the ``transfer`` model generalise to other artists? Every variant, three measurements.

    python benchmarks/transfer_generalise.py                       # the full table (~15 min)
    python benchmarks/transfer_generalise.py --variants "today: msd.emb mean lr1,DEFAULT: conf/base/parameters_transfer.yml"
    python benchmarks/transfer_generalise.py --repeats 1 --excerpt-views 4 --variants "..."
    python benchmarks/transfer_generalise.py --serve --variants "DEFAULT: conf/base/parameters_transfer.yml"

Trains only on the 100-track sample (``../shared/data/gtzan_mini``) and scores every variant on
* the 381 **other-artist excerpts** (``../shared/data/gtzan_clips_other_artists``, 2.0-3.0 s,
  median 2.47 s; never trained on): each is one 3 s MusiCNN patch, looped to 187 frames when
  shorter (:func:`music_genre.transfer.embed.patches`, musicnn's own "repeat-pad"; the service
  does the same with a short upload);
* **grouped CV** on the sample: stratified group 5-fold, groups = contiguous id blocks of 5 per
  genre (the artist proxy of ``conf/base/parameters_evaluate_cv.yml``), 5 repeats;
* **stratified CV** on the sample (5-fold × 5 repeats; the same artist on both sides: optimistic).
CV accuracy is pooled over repeats, the 95 % Wilson interval counts each of the 100 tracks once.
(No "16 kHz copies" column: every variant analyses audio resampled to 16 kHz already, so a
16 kHz copy of a test track gives it the same input up to the resampler.)

Features: per 3 s patch, the outputs of the four pretrained networks of the musicnn wheel
(``MSD_musicnn``, ``MTT_musicnn`` 200-d embedding; ``MSD_vgg``, ``MTT_vgg`` 256-d pool5; each with
its 50 tag probabilities; ``.pool``/``.p4``/``.p3``: deeper layers), computed once and cached in
``.cache/transfer_bench/``. A variant names its features (``msd.emb+msd.logit``: side by side;
``msd.emb|msdvgg.emb``: one head each, probabilities geometric-averaged), how a track is
summarised (``mean`` of its patch features = the model before issue 19; ``patch``: the head
learns from every patch and a track's probability is the mean of its patches'), the head
(``lr<C>`` logistic regression, ``lda`` shrinkage LDA, ``mlp``, ``ft``: MusiCNN's pretrained
back-end fine-tuned on ``msd.pool``, :class:`FinetuneHead`), ``+prior`` (the tag-name genre
prior of the conf multiplied in) and training copies (``+pitch`` ±2 semitones, ``+loopcrop``
2-3 s crops looped as the excerpts are). Second session: ``embn`` (every patch embedding scaled
to unit length: the conf's ``embedding_l2``), ``hop62``/``hop124`` (training and CV test tracks
cut into overlapping patches 62/124 frames apart: 28/14 per 30 s; excerpts stay one patch),
``+priormax`` (a genre's prior score is the max of its tags, not the mean: the conf's
``genre_prior_aggregate``), ``+priorwide`` (rock/pop prior from more tags, :data:`PRIOR_WIDE`),
``+priorcv`` (per-genre prior exponents chosen on grouped out-of-fold probabilities),
``+mixA``/``+gain``/``+eq``/``+lp`` (mel-domain copies of the training tracks,
:data:`MEL_AUGMENTATIONS`). ``DEFAULT`` is the shipped model, built by the pipeline's own
functions from ``conf/base/parameters_transfer.yml``. The last line is JSON.

Third session: any name in the grammar of :func:`parse_variant` is a variant, listed or not
(``"msd+msdvgg+mtt.embn patch lr0.003 +priormax hop62"``); ``+priorvgg``/``+priorvgg4``/
``+priormttvgg`` take the prior's tags from other networks (:data:`PRIOR_NETS`); deep layers
(``msd.pooln``) also at overlapping hops; a fourth figure, **grouped CV on 3 s clips** (every
disjoint 3 s patch of a grouped test track classified alone with its own prior, as an excerpt
is: the excerpts' length without the excerpts); ``--embed-cost N`` measures the conf's
embedding in CPU-s per 30 s track. ``benchmarks/transfer_ensemble.py``: transfer + the
rich-feature models with out-of-fold-chosen weights.
"""

from __future__ import annotations

import os

# hundreds of small fits: one BLAS thread each is ~50x faster than threads fighting over cores
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import functools  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from dataclasses import dataclass, replace  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
CACHE = ROOT / ".cache" / "transfer_bench"
NETS = {"msd": "MSD_musicnn", "mtt": "MTT_musicnn", "msdvgg": "MSD_vgg", "mttvgg": "MTT_vgg"}


def audio_files(root: Path) -> list[Path]:
    base = root / "genres_original" if (root / "genres_original").is_dir() else root
    return sorted(p for p in base.glob("*/*.*") if p.suffix.lower() in (".wav", ".au"))


def log_mels(files: list[Path], tag: str) -> list[np.ndarray]:
    """16 kHz log-mel spectrograms of the first 30 s (the embedding recipe), cached."""
    from music_genre.transfer.embed import EmbedParams, load_16k, log_mel

    path = CACHE / f"mel_{tag}.npz"
    if path.is_file():
        data = np.load(path)
        return [data[f"m{i}"] for i in range(len(files))]
    params = EmbedParams()
    out = []
    for f in files:
        y = load_16k(f, params)[: int(params.duration_s * params.sample_rate)]
        out.append(log_mel(y, params))
    CACHE.mkdir(parents=True, exist_ok=True)
    np.savez(path, **{f"m{i}": m for i, m in enumerate(out)})
    return out


AUGMENTATIONS = ("pitch-2", "pitch+2")


def loop_crops(spec: np.ndarray, rng: np.random.Generator, lo_s: float = 2.0, hi_s: float = 3.0,
               patch: int = 187, frame_s: float = 256 / 16000) -> np.ndarray:
    """The training track as the excerpts look: at each patch start a crop of 2-3 s (uniform),
    looped up to a whole patch like a short clip (``embed.patches``), patches end to end."""
    from music_genre.transfer.embed import EmbedParams, patches

    out = []
    for start in range(0, spec.shape[0] - patch + 1, patch):
        n = int(round(rng.uniform(lo_s, hi_s) / frame_s))
        out.append(patches(spec[start : start + min(n, patch)], EmbedParams())[0])
    return np.concatenate(out)


#: mel-domain augmentations of training tracks (one random draw per track, seeded): ``gain``
#: -12..+6 dB; ``eq`` a random tilt (±6 dB over 100 Hz-8 kHz) and three ±6 dB one-octave bumps;
#: ``lp`` a low-pass, cutoff log-uniform 2.5-7 kHz, -24 dB/octave above; ``mixA``/``mixB`` all
#: three (two independent draws). Applied to the mel power (log10(10000·mel + 1) undone).
MEL_AUGMENTATIONS = {"gain": 1, "eq": 2, "lp": 3, "mixA": 4, "mixB": 5}


def mel_augment(spec: np.ndarray, kind: str, rng: np.random.Generator) -> np.ndarray:
    import librosa

    n_mels = spec.shape[1]
    f = librosa.mel_frequencies(n_mels + 2, fmax=8000.0)[1:-1]
    octave = np.log2(np.maximum(f, 50.0) / 1000.0)
    db = np.zeros(n_mels)
    mix = kind.startswith("mix")
    if kind == "gain" or mix:
        db += rng.uniform(-12.0, 6.0)
    if kind == "eq" or mix:
        db += rng.uniform(-6.0, 6.0) * np.clip(octave / 3.0, -1.0, 1.0)
        for _ in range(3):
            centre = rng.uniform(np.log2(0.1), np.log2(6.0))
            db += rng.uniform(-6.0, 6.0) * np.exp(-0.5 * ((octave - centre) / 0.5) ** 2)
    if kind == "lp" or mix:
        cutoff = np.exp(rng.uniform(np.log(2500.0), np.log(7000.0)))
        db -= 24.0 * np.clip(np.log2(np.maximum(f, 1.0) / cutoff), 0.0, None)
    power = (10.0 ** spec.astype(np.float64) - 1.0) / 1e4
    power *= 10.0 ** (db / 10.0)
    return np.log10(1e4 * power + 1.0).astype(np.float32)


def augmented_mels(files: list[Path], aug: str) -> list[np.ndarray]:
    """Log-mels of the training tracks after ``aug`` (``pitch±n``: librosa pitch shift by n
    semitones, tempo kept), cached like :func:`log_mels`."""
    import librosa

    from music_genre.transfer.embed import EmbedParams, load_16k, log_mel

    if aug == "loopcrop":
        rng = np.random.default_rng(0)
        return [loop_crops(m, rng) for m in log_mels(files, "mini")]
    if aug in MEL_AUGMENTATIONS:
        rng = np.random.default_rng(MEL_AUGMENTATIONS[aug])
        return [mel_augment(m, aug, rng) for m in log_mels(files, "mini")]
    path = CACHE / f"mel_mini_{aug}.npz"
    if path.is_file():
        data = np.load(path)
        return [data[f"m{i}"] for i in range(len(files))]
    params = EmbedParams()
    out = []
    for f in files:
        y = load_16k(f, params)[: int(params.duration_s * params.sample_rate)]
        if aug.startswith("pitch"):
            y = librosa.effects.pitch_shift(y, sr=params.sample_rate, n_steps=float(aug[5:]))
        else:
            raise ValueError(f"unknown augmentation {aug!r}")
        out.append(log_mel(y.astype(np.float32), params))
    CACHE.mkdir(parents=True, exist_ok=True)
    np.savez(path, **{f"m{i}": m for i, m in enumerate(out)})
    return out


def rolled_views(spec: np.ndarray, views: int, patch: int = 187) -> np.ndarray:
    """A clip shorter than a patch as ``views`` patches: looped from ``views`` evenly spaced
    starting points (the loop's seam moves), end to end; longer clips are left as they are."""
    from music_genre.transfer.embed import EmbedParams, patches

    if views <= 1 or spec.shape[0] >= patch:
        return spec
    step = spec.shape[0] / views
    return np.concatenate([patches(np.roll(spec, -int(k * step), axis=0), EmbedParams())[0]
                           for k in range(views)])  # fmt: skip


def patch_outputs(net_name: str, mels: list[np.ndarray], tag: str,
                  hop: int = 187) -> dict[str, list[np.ndarray]]:
    """Per file: (n_patches, 50) tags and (n_patches, d) embeddings of one network, cached
    (``hop``: frames between patch starts; 187 = the disjoint 3 s patches of the conf)."""
    from music_genre.transfer.embed import EmbedParams, patches, run_patches
    from music_genre.transfer.musicnn import load_musicnn

    path = CACHE / f"{net_name}_{tag}.npz"
    if path.is_file():
        data = np.load(path)
        n = len(mels)
        return {"tags": [data[f"t{i}"] for i in range(n)], "emb": [data[f"e{i}"] for i in range(n)]}
    net = load_musicnn(net_name)
    params = EmbedParams(patch_hop=hop)
    x = [patches(m, params) for m in mels]
    counts = [len(p) for p in x]
    tags, emb = run_patches(net, np.concatenate(x), 64)
    bounds = np.cumsum([0, *counts])
    out = {"tags": [tags[a:b] for a, b in zip(bounds[:-1], bounds[1:], strict=True)],
           "emb": [emb[a:b] for a, b in zip(bounds[:-1], bounds[1:], strict=True)]}  # fmt: skip
    np.savez(path, **{f"t{i}": t for i, t in enumerate(out["tags"])},
             **{f"e{i}": e for i, e in enumerate(out["emb"])})  # fmt: skip
    return out


#: deeper layers, as more features: musicnn's pooled back-end input (max & mean over time of the
#: 753 mid-end channels, 1506) and the vgg's 4th/3rd block, max & mean over time and frequency
DEEP = {"MSD_musicnn": {"pool": "pool_flat"}, "MSD_vgg": {"p4": "vgg4_pool", "p3": "vgg3_pool"}}


def deep_outputs(net_name: str, mels: list[np.ndarray], tag: str,
                 hop: int = 187) -> dict[str, list[np.ndarray]]:
    """Per file and deeper layer of :data:`DEEP`: (n_patches, d) features, cached (``hop``:
    frames between patch starts, as :func:`patch_outputs`)."""
    import keras

    from music_genre.transfer.embed import EmbedParams, patches
    from music_genre.transfer.musicnn import load_musicnn

    layers_ = DEEP[net_name]
    path = CACHE / f"{net_name}_deep_{tag}.npz"
    if path.is_file():
        data = np.load(path)
        return {k: [data[f"{k}{i}"] for i in range(len(mels))] for k in layers_}
    net = load_musicnn(net_name)
    model = keras.Model(net.inputs, [net.get_layer(n).output for n in layers_.values()])
    params = EmbedParams(patch_hop=hop)
    x = [patches(m, params) for m in mels]
    counts = [len(p) for p in x]
    X = np.concatenate(x)
    outs = [[] for _ in layers_]
    for start in range(0, len(X), 64):
        res = model.predict_on_batch(X[start : start + 64])
        res = res if isinstance(res, list | tuple) else [res]
        for j, r in enumerate(res):
            r = np.asarray(r)
            if r.ndim == 4:  # (B, T, F, C): max and mean over time and frequency
                r = np.concatenate([r.max(axis=(1, 2)), r.mean(axis=(1, 2))], axis=1)
            outs[j].append(r.astype(np.float32))
    bounds = np.cumsum([0, *counts])
    out = {}
    for j, k in enumerate(layers_):
        full = np.concatenate(outs[j])
        out[k] = [full[a:b] for a, b in zip(bounds[:-1], bounds[1:], strict=True)]
    np.savez(path, **{f"{k}{i}": v for k in out for i, v in enumerate(out[k])})
    return out


@dataclass
class Data:
    genres: list[str]
    y: np.ndarray  # (100,) train labels
    ids: np.ndarray  # track ids "blues.00000"
    y_ex: np.ndarray  # (381,)
    feats: dict[str, list[np.ndarray]]  # "msd.emb" -> per track (n_patches, d)
    feats_ex: dict[str, list[np.ndarray]]
    feats_aug: dict[str, dict[str, list[np.ndarray]]]  # augmentation -> like feats
    feats_hop: dict[int, dict[str, list[np.ndarray]]] | None = None  # patch hop -> like feats

    def train_feats(self, hop: int) -> dict[str, list[np.ndarray]]:
        return self.feats if hop == 187 else self.feats_hop[hop]


#: overlapping patches are computed once at this hop (~1 s) and subsampled (124 = every 2nd)
FINE_HOP = 62


def load_data(mini: Path, excerpts: Path, nets=NETS, augment=(), deep=frozenset(),
              aug_nets=None, views: int = 1, hops=()) -> Data:
    files, ex_files = audio_files(mini), audio_files(excerpts)
    if not files or not ex_files:
        sys.exit(f"no audio under {mini} or {excerpts}")
    mels, mels_ex = log_mels(files, "mini"), log_mels(ex_files, "excerpts")
    ex_tag = "excerpts"
    if views > 1:
        mels_ex = [rolled_views(m, views) for m in mels_ex]
        ex_tag = f"excerpts_views{views}"
    feats, feats_ex = {}, {}
    for short, name in nets.items():
        t0 = time.perf_counter()
        a, b = patch_outputs(name, mels, "mini"), patch_outputs(name, mels_ex, ex_tag)
        for kind in ("tags", "emb"):
            feats[f"{short}.{kind}"], feats_ex[f"{short}.{kind}"] = a[kind], b[kind]
        if short in deep and name in DEEP:
            a, b = deep_outputs(name, mels, "mini"), deep_outputs(name, mels_ex, ex_tag)
            for kind in a:
                feats[f"{short}.{kind}"], feats_ex[f"{short}.{kind}"] = a[kind], b[kind]
        print(f"# {name}: {time.perf_counter() - t0:.1f} s", file=sys.stderr, flush=True)
    feats_aug = {}
    for aug in augment:
        mels_aug = augmented_mels(files, aug)
        feats_aug[aug] = {}
        for short, name in nets.items():
            if aug_nets is not None and short not in aug_nets:
                continue
            a = patch_outputs(name, mels_aug, f"mini_{aug}")
            for kind in ("tags", "emb"):
                feats_aug[aug][f"{short}.{kind}"] = a[kind]
        print(f"# augmentation {aug} ready", file=sys.stderr, flush=True)
    feats_hop = {}
    for hop in sorted(set(hops) - {187}):
        if hop % FINE_HOP:
            sys.exit(f"patch hop {hop}: use a multiple of {FINE_HOP} or 187")
        feats_hop[hop] = {}
        for short, name in nets.items():
            a = patch_outputs(name, mels, f"mini_hop{FINE_HOP}", hop=FINE_HOP)
            if short in deep and name in DEEP:
                a = {**a, **deep_outputs(name, mels, f"mini_hop{FINE_HOP}", hop=FINE_HOP)}
            for kind in a:
                feats_hop[hop][f"{short}.{kind}"] = [b[:: hop // FINE_HOP] for b in a[kind]]
        print(f"# patch hop {hop} ready", file=sys.stderr, flush=True)
    genres = sorted({f.parent.name for f in files})
    return Data(genres, np.array([f.parent.name for f in files]),
                np.array([f.stem for f in files]), np.array([f.parent.name for f in ex_files]),
                feats, feats_ex, feats_aug, feats_hop)  # fmt: skip



# --- the name-based prior of conf/base/parameters_transfer.yml (musicnn.genre_prior) ----------
def conf_params(name: str = "") -> dict:
    """conf/base/parameters_transfer.yml; ``name`` = ``DEFAULT: <yml> key=value ...`` sets
    those keys (dotted paths, YAML values) over it: the shipped model with one change."""
    import yaml

    params = yaml.safe_load((ROOT / "conf" / "base" / "parameters_transfer.yml").read_text())
    for item in name.split()[2:] if name.startswith("DEFAULT") else []:
        key, _, value = item.partition("=")
        *path, last = key.split(".")
        block = params
        for part in path:
            block = block.setdefault(part, {})
        block[last] = yaml.safe_load(value)
    return params


PRIOR_TAGS = {g: [t.replace("MSD_musicnn:", "msd:").replace("MTT_musicnn:", "mtt:") for t in tags]
              for g, tags in conf_params()["musicnn"]["genre_prior"].items()}  # fmt: skip


#: a wider name-based prior (chosen by name before measuring): rock also from its sub-genre tags
#: (alternative/indie/progressive rock, punk), pop also from indie pop
PRIOR_WIDE = {**PRIOR_TAGS,
              "rock": [*PRIOR_TAGS["rock"], "msd:alternative rock", "msd:indie rock",
                       "msd:Progressive rock", "msd:punk"],
              "pop": [*PRIOR_TAGS["pop"], "msd:indie pop"]}  # fmt: skip
PRIORS = {"": PRIOR_TAGS, "wide": PRIOR_WIDE}


def name_prior(msd_tags: np.ndarray, mtt_tags: np.ndarray, genres: list[str],
               tags: dict | None = None, agg: str = "mean", raw: bool = False) -> np.ndarray:
    """(n, genres) prior: per genre the mean (``agg``: or max) probability of its tags; genres
    without a tag (reggae) get the mean of the others; rows normalised."""
    from music_genre.transfer.musicnn import MSD_TAGS, MTT_TAGS

    cols = []
    for g in genres:
        idx = [(msd_tags if t.startswith("msd:") else mtt_tags)[:, (MSD_TAGS if t.startswith("msd:")
               else MTT_TAGS).index(t.split(":", 1)[1])]
               for t in (tags or PRIOR_TAGS).get(g, [])]  # fmt: skip
        cols.append((np.max if agg == "max" else np.mean)(idx, axis=0) if idx else None)
    known = np.mean([c for c in cols if c is not None], axis=0)
    p = np.stack([known if c is None else c for c in cols], axis=1)
    if raw:
        return p
    p = p + 1e-3
    return p / p.sum(axis=1, keepdims=True)


#: where the prior's MSD and MTT tag probabilities come from (their mean over these networks):
#: ``+priorvgg``: MSD tags from MSD_musicnn and MSD_vgg (two networks' opinion of the same 50
#: tags; MSD_vgg runs anyway); ``+priorvgg4``: the MTT tags also with MTT_vgg's;
#: ``+priormttvgg``: the MTT tags from MTT_vgg instead of MTT_musicnn (a cheaper network)
PRIOR_NETS = {"": (("msd",), ("mtt",)), "vgg": (("msd", "msdvgg"), ("mtt",)),
              "vgg4": (("msd", "msdvgg"), ("mtt", "mttvgg")), "mttvgg": (("msd",), ("mttvgg",))}


def track_prior(feats: dict[str, list[np.ndarray]], genres: list[str], tags: dict | None = None,
                agg: str = "mean", nets: str = "") -> np.ndarray:
    """(tracks, genres) prior as the pipeline computes it: per 3 s patch the unnormalised
    scores (``embed.prior_scores``), their mean over a track's patches, + 1e-3, normalised
    (``nets``: a :data:`PRIOR_NETS` key, the tag probabilities averaged over more networks)."""
    msd_nets, mtt_nets = PRIOR_NETS[nets]
    msds = [np.mean([feats[f"{n}.tags"][i] for n in msd_nets], axis=0)
            for i in range(len(feats["msd.tags"]))]  # fmt: skip
    mtts = [np.mean([feats[f"{n}.tags"][i] for n in mtt_nets], axis=0)
            for i in range(len(feats["msd.tags"]))]  # fmt: skip
    out = []
    for msd, mtt in zip(msds, mtts, strict=True):
        raw = name_prior(msd, mtt, genres, tags, agg, raw=True).mean(axis=0) + 1e-3
        out.append(raw / raw.sum())
    return np.stack(out)


# --- variants -------------------------------------------------------------------------------
def feature(d_feats: dict[str, list[np.ndarray]], spec: str) -> list[np.ndarray]:
    """Per file (n_patches, D): the named feature blocks side by side (``msd.emb+msd.logit``);
    ``x.tags`` are the tag probabilities, ``x.logit`` the same tags as log-odds."""
    out = None
    for part in spec.split("+"):
        net, kind = part.split(".")
        norm = kind.endswith("n") and kind[:-1] in ("emb", "pool")
        kind = kind[:-1] if norm else kind
        blocks = d_feats[f"{net}.{'tags' if kind == 'logit' else kind}"]
        if norm:  # every patch vector scaled to unit length (loudness/timbre scale removed)
            blocks = [b / (np.linalg.norm(b, axis=1, keepdims=True) + 1e-9) for b in blocks]
        if kind == "logit":
            blocks = [np.log(np.clip(b, 1e-4, 1 - 1e-4) / (1 - np.clip(b, 1e-4, 1 - 1e-4)))
                      for b in blocks]  # fmt: skip
        out = blocks if out is None else [np.hstack([a, b]) for a, b in zip(out, blocks, strict=True)]
    return [np.asarray(b, np.float64) for b in out]


def make_head(head: str, seed: int = 0):
    from sklearn.discriminant_analysis import LinearDiscriminantAnalysis
    from sklearn.linear_model import LogisticRegression
    from sklearn.neural_network import MLPClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    if head.startswith("lr"):
        c = float(head[2:] or 1.0)
        return make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=3000))
    if head == "lda":
        return make_pipeline(StandardScaler(),
                             LinearDiscriminantAnalysis(solver="lsqr", shrinkage="auto"))
    if head == "mlp":
        return make_pipeline(StandardScaler(), MLPClassifier(
            (64,), alpha=1.0, max_iter=300, early_stopping=False, random_state=seed))
    if head == "ft":
        return FinetuneHead(seed)
    raise ValueError(f"unknown head {head!r}")


@functools.cache
def _msd_musicnn():
    from music_genre.transfer.musicnn import load_musicnn

    return load_musicnn("MSD_musicnn")


class FinetuneHead:
    """``ft``: the ``transfer_finetune`` recipe as a patch head — MusiCNN's pretrained back-end
    (BatchNorm 1506 → Dense 200 → BatchNorm, :func:`music_genre.transfer.finetune.
    build_finetune_model`) + a new softmax, trained on the pooled 1506-d patch features
    (``msd.pool``) with conf/base/parameters_transfer.yml's ``transfer_finetune`` settings;
    early stopping on a random 15 % of the training patches."""

    def __init__(self, seed: int = 0):
        self.seed = seed

    def fit(self, X, y):
        import keras

        from music_genre.transfer.finetune import build_finetune_model

        params = conf_params()["transfer_finetune"]
        self.classes_ = np.unique(y)
        keras.utils.set_random_seed(self.seed)
        _, self.top = build_finetune_model(_msd_musicnn(), len(self.classes_), params)
        target = np.searchsorted(self.classes_, y)
        val = np.random.default_rng(self.seed).random(len(X)) < 0.15
        self.top.compile(optimizer=keras.optimizers.Adam(float(params["learning_rate"])),
                         loss="sparse_categorical_crossentropy")
        self.top.fit(np.asarray(X[~val], np.float32), target[~val],
                     validation_data=(np.asarray(X[val], np.float32), target[val]),
                     epochs=int(params["epochs"]), batch_size=int(params["batch_size"]),
                     callbacks=[keras.callbacks.EarlyStopping(
                         monitor="val_loss", patience=int(params["patience"]),
                         restore_best_weights=True)], verbose=0)
        return self

    def predict_proba(self, X):
        return np.asarray(self.top.predict(np.asarray(X, np.float32), batch_size=512,
                                           verbose=0), np.float64)


CONF = "DEFAULT: conf/base/parameters_transfer.yml"


@dataclass(frozen=True)
class Variant:
    name: str
    features: str  # "msd.emb+msd.logit"
    level: str = "mean"  # mean: one row per track (mean over patches) | patch: every patch
    head: str = "lr1"
    prior: float = 0.0  # exponent of the name-based prior multiplied in (0: none)
    augment: tuple[str, ...] = ()  # + these copies of the training tracks (AUGMENTATIONS)
    hop: int = 187  # frames between the training (and CV test) tracks' patch starts
    prior_cv: bool = False  # per-genre prior weights chosen by grouped CV (out-of-fold)
    prior_tags: str = ""  # PRIORS key ("wide")
    prior_agg: str = "mean"  # mean | max of a genre's tag probabilities
    prior_nets: str = ""  # PRIOR_NETS key: the tags averaged over more networks ("vgg")


VARIANTS = {v.name: v for v in [
    Variant("today: msd.emb mean lr1", "msd.emb"),
    Variant("msd.tags mean lr1", "msd.tags"),
    Variant("msd.logit mean lr1", "msd.logit"),
    Variant("msd.emb+logit mean lr1", "msd.emb+msd.logit"),
    Variant("msd.emb patch lr1", "msd.emb", "patch"),
    Variant("msd.emb patch lr0.1", "msd.emb", "patch", "lr0.1"),
    Variant("msd.emb patch lr0.01", "msd.emb", "patch", "lr0.01"),
    Variant("msd.logit patch lr0.1", "msd.logit", "patch", "lr0.1"),
    Variant("msd.emb+logit patch lr0.1", "msd.emb+msd.logit", "patch", "lr0.1"),
    Variant("mtt.emb patch lr0.1", "mtt.emb", "patch", "lr0.1"),
    Variant("msdvgg.emb patch lr0.1", "msdvgg.emb", "patch", "lr0.1"),
    Variant("mttvgg.emb patch lr0.1", "mttvgg.emb", "patch", "lr0.1"),
    Variant("msd+mtt.emb patch lr0.1", "msd.emb+mtt.emb", "patch", "lr0.1"),
    Variant("msd+mtt.emb+logit patch lr0.1", "msd.emb+msd.logit+mtt.emb+mtt.logit", "patch",
            "lr0.1"),
    Variant("all4.emb+logit patch lr0.1", "msd.emb+msd.logit+mtt.emb+mtt.logit+msdvgg.emb+"
            "msdvgg.logit+mttvgg.emb+mttvgg.logit", "patch", "lr0.1"),
    Variant("msd.emb patch lda", "msd.emb", "patch", "lda"),
    Variant("msd.emb patch mlp", "msd.emb", "patch", "mlp"),
    Variant("msd.emb patch lr0.1 +prior", "msd.emb", "patch", "lr0.1", 1.0),
    Variant("msd.emb patch lr0.1 +prior0.5", "msd.emb", "patch", "lr0.1", 0.5),
    Variant("msd.emb patch lr0.1 +prior2", "msd.emb", "patch", "lr0.1", 2.0),
    Variant("msd.emb+logit patch lr0.01", "msd.emb+msd.logit", "patch", "lr0.01"),
    Variant("msd+mtt.logit patch lr0.1", "msd.logit+mtt.logit", "patch", "lr0.1"),
    Variant("msd+mtt.emb+logit patch lda", "msd.emb+msd.logit+mtt.emb+mtt.logit", "patch", "lda"),
    Variant("msd+mtt.emb+logit patch lr0.1 +prior", "msd.emb+msd.logit+mtt.emb+mtt.logit",
            "patch", "lr0.1", 1.0),
    Variant("msd.emb patch lr0.1 +pitch", "msd.emb", "patch", "lr0.1",
            augment=AUGMENTATIONS),
    Variant("msd+mtt.emb+logit patch lr0.1 +pitch", "msd.emb+msd.logit+mtt.emb+mtt.logit",
            "patch", "lr0.1", augment=AUGMENTATIONS),
    Variant("msd+msdvgg.emb patch lr0.1", "msd.emb+msdvgg.emb", "patch", "lr0.1"),
    Variant("msd+msdvgg.emb+logit patch lr0.1", "msd.emb+msd.logit+msdvgg.emb+msdvgg.logit",
            "patch", "lr0.1"),
    Variant("msdvgg.emb patch lr0.1 +prior", "msdvgg.emb", "patch", "lr0.1", 1.0),
    Variant("msd+msdvgg.emb patch lr0.1 +prior", "msd.emb+msdvgg.emb", "patch", "lr0.1", 1.0),
    Variant("msd|msdvgg.emb patch lr0.1", "msd.emb|msdvgg.emb", "patch", "lr0.1"),
    Variant("msd|msdvgg.emb patch lr0.1 +prior", "msd.emb|msdvgg.emb", "patch", "lr0.1", 1.0),
    Variant("msd|msdvgg|mtt|mttvgg patch lr0.1", "msd.emb|msdvgg.emb|mtt.emb|mttvgg.emb",
            "patch", "lr0.1"),
    Variant("msd|msdvgg.emb patch lr0.01 +prior", "msd.emb|msdvgg.emb", "patch", "lr0.01", 1.0),
    Variant("msd+msdvgg.emb patch lr0.1 +pitch", "msd.emb+msdvgg.emb", "patch", "lr0.1",
            augment=AUGMENTATIONS),
    Variant("msdvgg.emb patch lr0.1 +pitch", "msdvgg.emb", "patch", "lr0.1",
            augment=AUGMENTATIONS),
    Variant("msd|msdvgg.emb patch lr0.1 +pitch", "msd.emb|msdvgg.emb", "patch", "lr0.1",
            augment=AUGMENTATIONS),
    Variant("msd|msdvgg.emb patch lr0.01 +prior +pitch", "msd.emb|msdvgg.emb", "patch", "lr0.01",
            1.0, AUGMENTATIONS),
    Variant("msd|msdvgg.emb patch lr0.01", "msd.emb|msdvgg.emb", "patch", "lr0.01"),
    Variant("msd|msdvgg.emb patch lr0.001 +prior", "msd.emb|msdvgg.emb", "patch", "lr0.001", 1.0),
    Variant("msd|msdvgg.emb patch lr0.01 +prior2", "msd.emb|msdvgg.emb", "patch", "lr0.01", 2.0),
    Variant("msd+msdvgg.emb patch lr0.01 +prior", "msd.emb+msdvgg.emb", "patch", "lr0.01", 1.0),
    Variant("msd+msdvgg.emb patch lr0.01", "msd.emb+msdvgg.emb", "patch", "lr0.01"),
    Variant("msd.pool patch lr0.1", "msd.pool", "patch", "lr0.1"),
    Variant("msd.pool patch lr0.01", "msd.pool", "patch", "lr0.01"),
    Variant("msdvgg.p4 patch lr0.1", "msdvgg.p4", "patch", "lr0.1"),
    Variant("msdvgg.p3 patch lr0.1", "msdvgg.p3", "patch", "lr0.1"),
    Variant("msd.pool+msdvgg.p4 patch lr0.01", "msd.pool+msdvgg.p4", "patch", "lr0.01"),
    Variant("msd.pool+emb+msdvgg.emb+p4 patch lr0.01", "msd.pool+msd.emb+msdvgg.emb+msdvgg.p4",
            "patch", "lr0.01"),
    Variant("msd+msdvgg.emb patch lr0.1 +loopcrop", "msd.emb+msdvgg.emb", "patch", "lr0.1",
            augment=("loopcrop",)),
    Variant("msd+msdvgg.emb patch lr0.01 +prior +loopcrop", "msd.emb+msdvgg.emb", "patch",
            "lr0.01", 1.0, ("loopcrop",)),
    Variant("msd.emb patch lr0.1 +loopcrop", "msd.emb", "patch", "lr0.1", augment=("loopcrop",)),
    *[Variant(f"msd+msdvgg.emb patch lr{c} +prior", "msd.emb+msdvgg.emb", "patch", f"lr{c}", 1.0)
      for c in ("0.01", "0.03", "0.3", "1")],  # C grid (0.1 above)
    # --- second session (issue 19, part 1 continued) ---
    *[Variant(f"msd+msdvgg.emb patch lr{c} +prior hop{h}", "msd.emb+msdvgg.emb", "patch",
              f"lr{c}", 1.0, hop=h) for c in ("0.01", "0.03", "0.1") for h in (62, 124)],
    Variant("msd+msdvgg.emb patch lr0.01 +priorcv", "msd.emb+msdvgg.emb", "patch", "lr0.01",
            1.0, prior_cv=True),
    Variant("msd+msdvgg.emb patch lr0.1 +priorcv", "msd.emb+msdvgg.emb", "patch", "lr0.1",
            1.0, prior_cv=True),
    Variant("msd+msdvgg.embn patch lr0.01 +prior", "msd.embn+msdvgg.embn", "patch", "lr0.01",
            1.0),
    Variant("msd+msdvgg.embn patch lr0.1 +prior", "msd.embn+msdvgg.embn", "patch", "lr0.1", 1.0),
    *[Variant(f"msd+msdvgg.emb patch lr0.01 +prior +{a}", "msd.emb+msdvgg.emb", "patch",
              "lr0.01", 1.0, augment=tuple(a.split("+")))
      for a in ("mixA", "mixA+mixB", "gain", "eq", "lp")],
    *[Variant(f"msd+msdvgg.emb{n} patch lr0.01 +prior{t}{a}", f"msd.emb{n}+msdvgg.emb{n}",
              "patch", "lr0.01", 1.0, prior_tags=t, prior_agg=a or "mean")
      for n in ("", "n") for t, a in (("wide", ""), ("", "max"), ("wide", "max"))],
    *[Variant(f"msd+msdvgg.emb{n} patch lr{c} +priormax{w}", f"msd.emb{n}+msdvgg.emb{n}",
              "patch", f"lr{c}", float(w or 1), prior_agg="max")
      for n in ("", "n") for c, w in (("0.01", "0.5"), ("0.01", "1.5"), ("0.01", "2"),
                                      ("0.03", ""), ("0.1", ""), ("0.003", ""))],
    *[Variant(f"msd+msdvgg.emb{n} patch lr{c} +priormax hop62", f"msd.emb{n}+msdvgg.emb{n}",
              "patch", f"lr{c}", 1.0, hop=62, prior_agg="max")
      for n in ("", "n") for c in ("0.003", "0.01", "0.03")],
    *[Variant(f"msd+msdvgg.embn patch lr{c} +priormax hop62", "msd.embn+msdvgg.embn", "patch",
              f"lr{c}", 1.0, hop=62, prior_agg="max") for c in ("0.1", "0.3", "1")],
    *[Variant(f"msd+msdvgg.embn patch lr{c} +prior hop62", "msd.embn+msdvgg.embn", "patch",
              f"lr{c}", 1.0, hop=62) for c in ("0.003", "0.01")],
    Variant("msd+msdvgg.embn patch lr0.001 +priormax hop62", "msd.embn+msdvgg.embn", "patch",
            "lr0.001", 1.0, hop=62, prior_agg="max"),
    Variant("msd+msdvgg.embn patch lr0.003 +priormax hop62 +mixA", "msd.embn+msdvgg.embn",
            "patch", "lr0.003", 1.0, ("mixA",), hop=62, prior_agg="max"),
    Variant("msd|msdvgg.embn patch lr0.003 +priormax hop62", "msd.embn|msdvgg.embn", "patch",
            "lr0.003", 1.0, hop=62, prior_agg="max"),
    Variant("msd|msdvgg.emb patch lr0.01 +priormax", "msd.emb|msdvgg.emb", "patch", "lr0.01",
            1.0, prior_agg="max"),
    Variant("msd|msdvgg.emb patch lr0.01 +prior hop62", "msd.emb|msdvgg.emb", "patch", "lr0.01",
            1.0, hop=62),
    Variant(CONF, "msd.emb+msdvgg.emb+mtt.tags", "patch", "conf"),
    Variant("name prior only", "msd.tags", "patch", "none", 1.0),
]}  # fmt: skip


def parse_variant(name: str) -> Variant:
    """A variant from its name alone, in the grammar of :data:`VARIANTS`' names:
    ``<features> <mean|patch> <head> [+prior[max|wide|cv|vgg|vgg4...][<weight>]] [hop<N>]
    [+<augmentation>...]``, e.g. ``msd+mtt.embn patch lr0.01 +priormaxvgg hop62``
    (``msd+mtt.embn`` = ``msd.embn+mtt.embn``: a network list before one feature kind)."""
    words = name.split()
    if len(words) < 3:
        raise SystemExit(f"variant {name!r}: not in VARIANTS and not '<features> <level> <head> "
                         "[options]' (see parse_variant)")
    features, level, head = words[:3]
    parts = []
    for part in features.split("|"):
        nets, _, kinds = part.rpartition(".")
        if "+" in nets and "." not in nets:  # msd+msdvgg.embn -> msd.embn+msdvgg.embn
            part = "+".join(f"{n}.{kinds}" for n in nets.split("+"))
        parts.append(part)
    kw: dict = {"augment": ()}
    for word in words[3:]:
        if word.startswith("hop"):
            kw["hop"] = int(word[3:])
        elif word.startswith("+prior"):
            rest = word[len("+prior"):]
            while True:
                for key, field, value in (("max", "prior_agg", "max"), ("wide", "prior_tags", "wide"),
                                          ("cv", "prior_cv", True), ("vgg4", "prior_nets", "vgg4"), ("mttvgg", "prior_nets", "mttvgg"),
                                          ("vgg", "prior_nets", "vgg")):  # fmt: skip
                    if rest.startswith(key):
                        kw[field], rest = value, rest[len(key):]
                        break
                else:
                    break
            kw["prior"] = float(rest or 1.0)
        elif word.startswith("+"):
            kw["augment"] = (*kw["augment"], *word[1:].split("+"))
        else:
            raise SystemExit(f"variant {name!r}: unknown option {word!r} (see parse_variant)")
    return Variant(name, "|".join(parts), level, head, **kw)


def variant(name: str) -> Variant:
    return VARIANTS.get(name) or parse_variant(name)


SHORT = {v: k for k, v in NETS.items()}


def conf_rows(feats: dict[str, list[np.ndarray]], musicnn: dict) -> np.ndarray:
    """The pipeline's own model input rows (:func:`music_genre.transfer.embed.feature_row`)."""
    from music_genre.transfer.embed import EmbedParams, FeatureSpec, feature_row, patch_vectors

    spec = FeatureSpec.from_dict(musicnn)
    n = EmbedParams.from_dict(musicnn.get("embedding")).max_patches if spec.pooling == "patch" else 1
    rows = []
    for i in range(len(feats["msd.emb"])):
        outputs = {net: (feats[f"{SHORT[net]}.tags"][i], feats[f"{SHORT[net]}.emb"][i])
                   for net in spec.networks}  # fmt: skip
        rows.append(feature_row(patch_vectors(outputs, spec), spec, n))
    return np.stack(rows)


def evaluate_conf(d: Data, folds: pd.DataFrame, name: str) -> dict:
    """The shipped ``transfer`` model: conf/base/parameters_transfer.yml's features and head,
    built by the pipeline's functions (``builders.build_logistic_regression``)."""
    from music_genre.evaluation import wilson_interval
    from music_genre.models.builders import build_logistic_regression
    from music_genre.transfer.embed import EmbedParams

    params = conf_params(name)
    hop = EmbedParams.from_dict(params["musicnn"].get("embedding")).patch_hop
    X = conf_rows(d.train_feats(hop), params["musicnn"])
    X_ex = conf_rows(d.feats_ex, params["musicnn"])
    g = np.array(d.genres)
    y = np.array([d.genres.index(t) for t in d.y])

    def fit(train):
        return build_logistic_regression(params["transfer"], 42).fit(X[train], y[train])

    t0 = time.perf_counter()
    pred = g[fit(np.arange(len(X))).predict_proba(X_ex).argmax(axis=1)]
    k = int((pred == d.y_ex).sum())
    row = {"variant": name, "excerpts": (k / len(pred), *wilson_interval(k, len(pred))),
           "excerpt_recall": {genre: float(np.mean(pred[d.y_ex == genre] == genre)) for genre in g},
           "_hits": pred == d.y_ex}
    index = {t: i for i, t in enumerate(d.ids)}
    for scheme, part in folds.groupby("scheme"):
        hits, n = 0, 0
        for _, rep in part.groupby(["repeat", "fold"]):
            test = np.array([index[t] for t in rep["track_id"]])
            model = fit(np.setdiff1d(np.arange(len(X)), test))
            hits += int((model.predict_proba(X[test]).argmax(axis=1) == y[test]).sum())
            n += len(test)
        row[scheme] = (hits / n, *wilson_interval(hits / n * len(X), len(X)))
    row["seconds"] = time.perf_counter() - t0
    return row


def serve_default(d: Data, excerpts: Path) -> dict:
    """The shipped model through the service's own path: the conf's head, trained on all 100
    tracks with the pipeline's functions, inside :class:`music_genre.transfer.serving.
    TransferService` with the conf's networks, fed every excerpt's audio file (not the cache)."""
    from music_genre.evaluation import wilson_interval
    from music_genre.models.builders import build_logistic_regression
    from music_genre.transfer.embed import EmbedParams, FeatureSpec
    from music_genre.transfer.musicnn import combined_network, load_musicnn
    from music_genre.transfer.serving import TransferService

    params = conf_params()
    musicnn = params["musicnn"]
    hop = EmbedParams.from_dict(musicnn.get("embedding")).patch_hop
    y = np.array([d.genres.index(t) for t in d.y])
    head = build_logistic_regression(params["transfer"], 42).fit(
        conf_rows(d.train_feats(hop), musicnn), y)
    nets = FeatureSpec.from_dict(musicnn).networks
    service = TransferService(combined_network([load_musicnn(n) for n in nets]), head,
                              d.genres, musicnn)  # fmt: skip
    g = np.array(d.genres)
    pred = np.array([g[int(np.argmax(service.predict_proba(str(f))))]
                     for f in audio_files(excerpts)])  # fmt: skip
    k = int((pred == d.y_ex).sum())
    return {"excerpts": (k / len(pred), *wilson_interval(k, len(pred))),
            "excerpt_recall": {x: float(np.mean(pred[d.y_ex == x] == x)) for x in g}}


def embed_cost(mini: Path, n_tracks: int, networks: str = "") -> dict:
    """CPU-seconds per 30 s track of the shipped recipe's embedding (decode, log-mel, patches,
    every network of the conf in one combined model), process time over ``n_tracks`` tracks
    after one warm-up track (the networks' graph tracing is not counted); ``networks``
    (comma-separated) replaces the conf's."""
    from music_genre.transfer.embed import (
        EmbedParams,
        FeatureSpec,
        load_16k,
        musicnn_input,
        network_outputs,
    )
    from music_genre.transfer.musicnn import combined_network, load_musicnn

    musicnn = conf_params()["musicnn"]
    params, spec = EmbedParams.from_dict(musicnn.get("embedding")), FeatureSpec.from_dict(musicnn)
    if networks:
        spec = replace(spec, networks=tuple(networks.split(",")))
    net = combined_network([load_musicnn(n) for n in spec.networks])
    files = audio_files(mini)[:: max(1, 100 // n_tracks)][: n_tracks + 1]
    t0 = w0 = None
    for i, f in enumerate(files):
        if i == 1:
            t0, w0 = time.process_time(), time.perf_counter()
        x = musicnn_input(load_16k(f, params), params)
        network_outputs(net, x, spec.networks, params.batch_size)
    n = len(files) - 1
    return {"networks": list(spec.networks), "patches_per_track": int(len(x)),
            "cpu_s_per_track": (time.process_time() - t0) / n,
            "wall_s_per_track": (time.perf_counter() - w0) / n, "tracks": n,
            "load": os.getloadavg()[0]}


def fit_predict(v: Variant, X: list[np.ndarray], y: np.ndarray, train: np.ndarray,
                X_test: list[np.ndarray], genres: list[str], prior_test: np.ndarray | None,
                seed: int = 0, X_aug: list[list[np.ndarray]] = ()) -> np.ndarray:
    """(n_test, genres) probabilities of ``X_test`` after fitting on the ``train`` tracks (and
    their augmented copies ``X_aug``: only of training tracks, never of a test track)."""
    if isinstance(X, tuple):  # separate heads ("a|b"): geometric mean of their probabilities
        logp = np.mean([np.log(fit_predict(replace(v, prior=0.0), Xi, y, train, Ti, genres, None,
                                           seed, Ai) + 1e-9)
                        for Xi, Ti, Ai in zip(X, X_test, X_aug or [()] * len(X), strict=True)],
                       axis=0)  # fmt: skip
        proba = np.exp(logp - logp.max(axis=1, keepdims=True))
        proba /= proba.sum(axis=1, keepdims=True)
        if v.prior:
            proba = proba * prior_test**v.prior
            proba /= proba.sum(axis=1, keepdims=True)
        return proba
    if X_aug:
        X = list(X) + [a[i] for a in X_aug for i in train]
        y = np.concatenate([y, np.concatenate([y[train]] * len(X_aug))])
        train = np.concatenate([train, np.arange(len(X) - len(X_aug) * len(train), len(X))])
    if v.head == "none":
        proba = np.ones((len(X_test), len(genres)))
    else:
        clf = make_head(v.head, seed)
        if v.level == "mean":
            clf.fit(np.stack([X[i].mean(axis=0) for i in train]), y[train])
            proba = clf.predict_proba(np.stack([x.mean(axis=0) for x in X_test]))
        else:
            clf.fit(np.concatenate([X[i] for i in train]),
                    np.concatenate([[y[i]] * len(X[i]) for i in train]))  # fmt: skip
            proba = np.stack([clf.predict_proba(x).mean(axis=0) for x in X_test])
        order = [list(clf.classes_).index(g) for g in genres]
        proba = proba[:, order]
    if v.prior:
        proba = proba * prior_test**v.prior
        proba /= proba.sum(axis=1, keepdims=True)
    return proba


#: per-genre prior weights searched by ``prior_cv`` (coordinate ascent from all 1)
PRIOR_GRID = (0.0, 0.25, 0.5, 1.0, 1.5, 2.0, 3.0)


def with_prior(proba: np.ndarray, prior: np.ndarray, w) -> np.ndarray:
    out = proba * prior ** np.asarray(w, dtype=np.float64)
    return out / out.sum(axis=1, keepdims=True)


def choose_prior_weights(proba: np.ndarray, prior: np.ndarray, y: np.ndarray,
                         sweeps: int = 3) -> np.ndarray:
    """Per-genre exponents of the prior that maximise the mean log-probability of the true
    genre of out-of-fold head probabilities ``proba`` (``y``: genre indices)."""
    w = np.ones(proba.shape[1])

    def score(w):
        return float(np.mean(np.log(with_prior(proba, prior, w)[np.arange(len(y)), y] + 1e-12)))

    best = score(w)
    for _ in range(sweeps):
        changed = False
        for g in range(len(w)):
            for value in PRIOR_GRID:
                trial = w.copy()
                trial[g] = value
                s = score(trial)
                if s > best + 1e-9:
                    best, w, changed = s, trial, True
        if not changed:
            break
    return w


def evaluate(v: Variant, d: Data, folds: pd.DataFrame) -> dict:
    from music_genre.evaluation import wilson_interval

    def build(feats):
        parts = v.features.split("|")
        if len(parts) == 1:
            return feature(feats, parts[0])
        return tuple(feature(feats, p) for p in parts)

    train_feats = d.train_feats(v.hop)
    X, X_ex = build(train_feats), build(d.feats_ex)
    X_aug = [build(d.feats_aug[a]) for a in v.augment]
    if isinstance(X, tuple) and X_aug:  # per head: its blocks of every augmentation
        X_aug = tuple([a[k] for a in X_aug] for k in range(len(X)))
    prior = track_prior(train_feats, d.genres, PRIORS[v.prior_tags], v.prior_agg, v.prior_nets)
    prior_ex = track_prior(d.feats_ex, d.genres, PRIORS[v.prior_tags], v.prior_agg, v.prior_nets)
    base = replace(v, prior=0.0) if v.prior_cv else v
    g = np.array(d.genres)
    y_idx = np.array([d.genres.index(t) for t in d.y])
    n_tracks = len(d.ids)
    row = {"variant": v.name}
    t0 = time.perf_counter()
    proba_ex = fit_predict(base, X, d.y, np.arange(n_tracks), X_ex, d.genres, prior_ex,
                           X_aug=X_aug)
    index = {t: i for i, t in enumerate(d.ids)}
    oof = {}  # (scheme, repeat) -> [(test indices, probabilities)]
    # grouped CV on 3 s clips: every disjoint 3 s patch of a test track alone, as an excerpt is
    # classified (one patch, its own prior); the same fitted heads
    clips = not isinstance(X, tuple) and not v.prior_cv
    if clips:
        X_clip = build(d.feats)
        clip_prior = [track_prior({k: [b[j : j + 1] for j in range(len(b))]
                                   for k, b in ((k, d.feats[k][i]) for k in ("msd.tags", "mtt.tags",
                                   "msdvgg.tags", "mttvgg.tags") if k in d.feats)},
                                  d.genres, PRIORS[v.prior_tags], v.prior_agg, v.prior_nets)
                      for i in range(n_tracks)]  # fmt: skip
    clip_hits = clip_n = 0
    for (scheme, repeat, _), rep in folds.groupby(["scheme", "repeat", "fold"]):
        test = np.array([index[t] for t in rep["track_id"]])
        train = np.setdiff1d(np.arange(n_tracks), test)
        X_test = (tuple([x[i] for i in test] for x in X) if isinstance(X, tuple)
                  else [X[i] for i in test])  # fmt: skip
        test_prior = prior[test]
        if clips and scheme == "grouped":
            owner = np.concatenate([[i] * len(X_clip[i]) for i in test])
            X_test = X_test + [row[None, :] for i in test for row in X_clip[i]]
            test_prior = np.concatenate([test_prior, *[clip_prior[i] for i in test]])
        p = fit_predict(base, X, d.y, train, X_test, d.genres, test_prior, X_aug=X_aug)
        if clips and scheme == "grouped":
            p, p_clip = p[: len(test)], p[len(test) :]
            clip_hits += int((p_clip.argmax(axis=1) == y_idx[owner]).sum())
            clip_n += len(owner)
        oof.setdefault((scheme, repeat), []).append((test, p))
    if v.prior_cv:  # weights from grouped out-of-fold probabilities of all 100 tracks
        full = []
        for (scheme, _), parts in oof.items():
            if scheme == "grouped":
                P = np.zeros((n_tracks, len(g)))
                for test, p in parts:
                    P[test] = p
                full.append(P)
        P = np.concatenate(full)
        w = choose_prior_weights(P, np.tile(prior, (len(full), 1)), np.tile(y_idx, len(full)))
        row["prior_weights"] = dict(zip(d.genres, w.tolist(), strict=True))
        proba_ex = with_prior(proba_ex, prior_ex, w)
        for key, parts in oof.items():  # per fold: weights chosen on the repeat's other tracks
            P = np.zeros((n_tracks, len(g)))
            for test, p in parts:
                P[test] = p
            new = []
            for test, p in parts:
                rest = np.setdiff1d(np.arange(n_tracks), test)
                w_k = choose_prior_weights(P[rest], prior[rest], y_idx[rest])
                new.append((test, with_prior(p, prior[test], w_k)))
            oof[key] = new
    row["_proba_ex"], row["_oof"] = proba_ex, oof  # for benchmarks/transfer_ensemble.py
    pred = g[proba_ex.argmax(axis=1)]
    k = int((pred == d.y_ex).sum())
    row["excerpts"] = (k / len(pred), *wilson_interval(k, len(pred)))
    row["excerpt_recall"] = {genre: float(np.mean(pred[d.y_ex == genre] == genre)) for genre in g}
    for scheme in ("grouped", "stratified"):
        hits = sum(int((p.argmax(axis=1) == y_idx[test]).sum())
                   for (s_, _), parts in oof.items() if s_ == scheme for test, p in parts)
        n = sum(len(test) for (s_, _), parts in oof.items() if s_ == scheme for test, _ in parts)
        acc = hits / n
        row[scheme] = (acc, *wilson_interval(acc * n_tracks, n_tracks))
    if clip_n:  # interval: the 1000 distinct clips counted once each (clips of a track correlate)
        n_clips = clip_n // max(1, folds["repeat"].nunique())
        row["grouped_clips"] = (clip_hits / clip_n,
                                *wilson_interval(clip_hits / clip_n * n_clips, n_clips))
    row["seconds"] = time.perf_counter() - t0
    return row


def fmt(t) -> str:
    return f"{100 * t[0]:5.1f} % [{100 * t[1]:.1f}, {100 * t[2]:.1f}]"


def main() -> None:
    from music_genre.evaluation import make_folds

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--mini", type=Path, default=SHARED / "gtzan_mini")
    ap.add_argument("--excerpts", type=Path, default=SHARED / "gtzan_clips_other_artists")
    ap.add_argument("--variants", default="", help="comma-separated names (default: all)")
    ap.add_argument("--excerpt-views", type=int, default=1,
                    help="a clip shorter than 3 s as this many looped views (seam moved)")
    ap.add_argument("--repeats", type=int, default=5, help="CV repeats (5 as evaluate_cv)")
    ap.add_argument("--serve", action="store_true", help="also score the shipped model on the "
                    "excerpts through TransferService from the audio files (~2 min)")
    ap.add_argument("--winner", default="", help="variant whose per-genre recall is printed "
                    "(default: the shipped model, else the best by grouped CV)")
    ap.add_argument("--embed-cost", type=int, default=0, metavar="N",
                    help="only measure the conf's embedding CPU-s per track over N tracks")
    ap.add_argument("--networks", default="", help="with --embed-cost: these networks "
                    "(comma-separated) instead of the conf's")
    args = ap.parse_args()
    if args.embed_cost:
        cost = embed_cost(args.mini, args.embed_cost, args.networks)
        print(f"embedding {cost['networks']}, {cost['patches_per_track']} patches per 30 s: "
              f"{cost['cpu_s_per_track']:.2f} CPU-s per track ({cost['wall_s_per_track']:.2f} s "
              f"wall, load {cost['load']:.1f}, {cost['tracks']} tracks)")
        print(json.dumps(cost))
        return
    names = [n.strip() for n in args.variants.split(",") if n.strip()] or list(VARIANTS)
    chosen = {n: variant(n) for n in names if not n.startswith(CONF)}
    used = {p.split(".")[0] for v in chosen.values() for p in v.features.replace("|", "+").split("+")}
    needed = {"msd", "mtt"} | used | {n for v in chosen.values() for n in
                                      sum(PRIOR_NETS[v.prior_nets], ())}  # fmt: skip
    augment = sorted({a for v in chosen.values() for a in v.augment})
    deep = {p.split(".")[0] for v in chosen.values() for p in v.features.replace("|", "+").split("+")
            if p.split(".")[1].rstrip("n") in ("pool", "p4", "p3")}  # nets whose deep layers
    hops = {v.hop for v in chosen.values()}
    if any(n.startswith(CONF) for n in names) or args.serve:
        from music_genre.transfer.embed import EmbedParams, FeatureSpec

        hops.add(EmbedParams.from_dict(conf_params()["musicnn"].get("embedding")).patch_hop)
        needed |= {SHORT[n] for n in FeatureSpec.from_dict(conf_params()["musicnn"]).networks}
    d = load_data(args.mini, args.excerpts, {k: v for k, v in NETS.items() if k in needed},
                  augment, deep, used, args.excerpt_views, hops)
    cv = {"n_splits": 5, "n_repeats": args.repeats, "seed": 42,
          "schemes": ["stratified", "grouped"], "grouped": {"block_size": 5}}  # fmt: skip
    folds = make_folds(pd.DataFrame({"track_id": d.ids, "genre": d.y}), cv)
    print(f"train: {len(d.y)} tracks of {args.mini}; excerpts: {len(d.y_ex)} of {args.excerpts}; "
          f"CV 5-fold x {args.repeats} repeats, grouped = id blocks of 5 per genre")  # fmt: skip
    print(f"{'variant':34s} | {'381 excerpts':24s} | {'grouped CV':24s} | {'stratified CV':24s}")
    rows = []
    for name in names:
        row = (evaluate_conf(d, folds, name) if name.startswith(CONF)
               else evaluate(chosen[name], d, folds))
        rows.append(row)
        clip = f" | 3 s clips {fmt(row['grouped_clips'])}" if "grouped_clips" in row else ""
        print(f"{name:34s} | {fmt(row['excerpts'])} | {fmt(row['grouped'])} | "
              f"{fmt(row['stratified'])}{clip} ({row['seconds']:.0f} s)", flush=True)
    conf_rows_ = [r for r in rows if "_hits" in r]
    for r in conf_rows_[1:]:  # the same excerpts: exact McNemar against the first DEFAULT row
        from scipy.stats import binomtest

        gained = int((r["_hits"] & ~conf_rows_[0]["_hits"]).sum())
        lost = int((~r["_hits"] & conf_rows_[0]["_hits"]).sum())
        p = binomtest(gained, gained + lost).pvalue if gained + lost else 1.0
        r["vs_first_default"] = {"gained": gained, "lost": lost, "mcnemar_p": p}
        print(f"{r['variant']}: vs {conf_rows_[0]['variant']} on the excerpts: {gained} gained, "
              f"{lost} lost, exact McNemar p {p:.3g}; recall " + ", ".join(
                  f"{g} {100 * x:.0f}" for g, x in r["excerpt_recall"].items()))
    winner = next((r for r in rows if r["variant"] == (args.winner or CONF)),
                  max(rows, key=lambda r: r["grouped"][0]))  # fmt: skip
    print(f"per-genre recall on the excerpts, {winner['variant']}: " + ", ".join(
        f"{g} {100 * r:.0f} %" for g, r in winner["excerpt_recall"].items()))
    served = None
    if args.serve:
        served = serve_default(d, args.excerpts)
        print(f"DEFAULT through TransferService from audio: 381 excerpts {fmt(served['excerpts'])}; "
              + ", ".join(f"{g} {100 * r:.0f} %" for g, r in served["excerpt_recall"].items()))
    rows = [{k: v for k, v in r.items() if not k.startswith("_")} for r in rows]
    print(json.dumps({"rows": rows, "winner": winner["variant"], "served": served}))


if __name__ == "__main__":
    main()
