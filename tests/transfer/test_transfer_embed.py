"""MusiCNN input: musicnn's recipe, patching, and the float32 compression guard."""

from __future__ import annotations

import numpy as np
import pytest

from music_genre.transfer.embed import (
    EmbedParams,
    embed_signal,
    log_mel,
    musicnn_input,
    patches,
)

SR = 16000


def loud_noise(seconds=6.0, seed=0):
    rng = np.random.default_rng(seed)
    return np.clip(rng.standard_normal(int(seconds * SR)) * 0.9, -1, 1).astype(np.float32)


def loud_square(seconds=6.0, freq=110.0):
    t = np.arange(int(seconds * SR)) / SR
    return np.sign(np.sin(2 * np.pi * freq * t)).astype(np.float32)  # full scale


def test_recipe_matches_musicnn_on_a_quiet_clip():
    """On a clip where float16 does not overflow, ours equals musicnn's batch_data to fp16 precision."""
    import librosa

    t = np.arange(3 * SR) / SR
    y = (0.01 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    mel = librosa.feature.melspectrogram(y=y, sr=SR, hop_length=256, n_fft=512, n_mels=96).T
    theirs = np.log10(10000 * mel.astype(np.float16) + 1)  # musicnn/extractor.py
    assert np.isfinite(theirs).all()
    ours = log_mel(y)
    assert ours.shape == (188, 96) and ours.dtype == np.float32
    np.testing.assert_allclose(ours, theirs.astype(np.float32), rtol=2e-3, atol=2e-3)


def test_loud_clip_is_finite_where_float16_overflows():
    y = loud_square()
    mel = log_mel(y)
    assert np.isfinite(mel).all() and mel.max() > np.log10(10000 * 6.56)  # beyond fp16's range
    import librosa

    raw = librosa.feature.melspectrogram(y=y, sr=SR, hop_length=256, n_fft=512, n_mels=96).T
    with np.errstate(over="ignore"):
        fp16 = np.log10(10000 * raw.astype(np.float16) + 1)
    assert np.isinf(fp16).any()  # the bug this guards against is real for this clip


def test_loud_clips_get_finite_distinct_embeddings(msd_model):
    outs = [embed_signal(msd_model, y) for y in (loud_noise(), loud_square(), 0.25 * loud_square())]
    embs = np.stack([o["embedding"] for o in outs])
    assert np.isfinite(embs).all() and np.isfinite([o["tags"] for o in outs]).all()
    # pairwise distances are far from 0 (an inf input would saturate to one shared embedding)
    d = np.linalg.norm(embs[:, None] - embs[None], axis=-1)
    scale = np.linalg.norm(embs, axis=1).mean()
    assert d[np.triu_indices(3, 1)].min() > 0.05 * scale



def test_float16_recipe_would_collapse_loud_clips(msd_model):
    """The bug itself: musicnn's float16 compression gives two different loud clips the very same
    (finite, saturated) embedding; the float32 recipe keeps them apart."""
    import librosa

    def fp16_patches(y):
        mel = librosa.feature.melspectrogram(y=y, sr=SR, hop_length=256, n_fft=512, n_mels=96).T
        with np.errstate(over="ignore"):
            spec = np.log10(10000 * mel.astype(np.float16) + 1)
        return patches(spec.astype(np.float32), EmbedParams())

    clips = (loud_noise(), loud_square())
    bad = [msd_model.predict_on_batch(fp16_patches(y))[1].mean(axis=0) for y in clips]
    good = [embed_signal(msd_model, y)["embedding"] for y in clips]
    assert np.isfinite(bad).all()  # silent: nothing non-finite reaches the output
    np.testing.assert_allclose(bad[0], bad[1], atol=1e-5)  # every loud track looks the same
    assert np.linalg.norm(good[0] - good[1]) > 0.05 * np.linalg.norm(good[0])


def test_patching():
    p = EmbedParams()
    y = np.zeros(30 * SR, dtype=np.float32)
    y[::97] = 0.1
    x = musicnn_input(y, p)
    assert x.shape == (10, 187, 96)  # 1876 frames -> 10 whole patches
    spec = log_mel(y, p)
    np.testing.assert_array_equal(x[3], spec[3 * 187 : 4 * 187])
    # 40 s of audio is cut to duration_s = 30
    assert musicnn_input(np.tile(y, 2)[: 40 * SR], p).shape == (10, 187, 96)
    # overlap: one patch every 93 frames
    assert musicnn_input(y, EmbedParams(patch_hop=93)).shape == (19, 187, 96)
    # a 1 s clip is looped to one whole patch
    short = patches(spec[:63], p)
    assert short.shape == (1, 187, 96)
    np.testing.assert_array_equal(short[0, 63:126], spec[:63])
    with pytest.raises(ValueError, match="no audio"):
        patches(spec[:0], p)
