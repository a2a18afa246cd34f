"""The transfer model input (network outputs per patch → a track row) and the patch head."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from music_genre.transfer.embed import (
    EmbedParams,
    FeatureSpec,
    feature_row,
    patch_vectors,
)
from music_genre.transfer.head import PatchAveragingClassifier, patch_rows


def test_spec_from_conf_and_its_errors():
    spec = FeatureSpec.from_dict({"weights": "MSD_musicnn", "extra_networks": ["MSD_vgg"],
                                  "features": ["embedding", "tags_logit"], "pooling": "patch"})
    assert spec.networks == ("MSD_musicnn", "MSD_vgg") and spec.pooling == "patch"
    cols = spec.columns({"MSD_musicnn": 200, "MSD_vgg": 256}, 10)
    assert len(cols) == 10 * (200 + 50 + 256 + 50) and cols[0] == "p00.MSD_musicnn.embedding_000"
    assert FeatureSpec.from_dict({}) == FeatureSpec()  # today's model: MSD embedding, mean
    with pytest.raises(ValueError, match="params:musicnn.features"):
        FeatureSpec.from_dict({"features": ["embeding"]})
    with pytest.raises(ValueError, match="params:musicnn.pooling"):
        FeatureSpec.from_dict({"pooling": "max"})
    with pytest.raises(ValueError, match="repeats"):
        FeatureSpec.from_dict({"weights": "MSD_vgg", "extra_networks": ["MSD_vgg"]})


def test_max_patches_follows_the_recipe():
    assert EmbedParams().max_patches == 10  # 30 s: 1876 frames, 10 patches of 187
    assert EmbedParams(patch_hop=93).max_patches == 19
    assert EmbedParams(duration_s=2.0).max_patches == 1  # looped up to one patch
    with pytest.raises(ValueError, match="duration_s"):
        EmbedParams(duration_s=None).max_patches  # noqa: B018


def test_patch_vectors_and_rows():
    rng = np.random.default_rng(0)
    tags = rng.uniform(0, 1, (3, 50)).astype(np.float32)
    tags[0, 0] = 1.0  # saturated: the logit is clipped, finite
    emb = rng.standard_normal((3, 200)).astype(np.float32)
    spec = FeatureSpec(("MSD_musicnn",), ("embedding", "tags_logit"), "patch")
    v = patch_vectors({"MSD_musicnn": (tags, emb)}, spec)
    assert v.shape == (3, 250) and np.isfinite(v).all()
    np.testing.assert_array_equal(v[:, :200], emb)
    np.testing.assert_allclose(1 / (1 + np.exp(-v[1:, 200:])), tags[1:], rtol=1e-4)
    row = feature_row(v, spec, 10)
    assert row.shape == (2500,)
    np.testing.assert_array_equal(row[:750], v.reshape(-1))
    assert np.isnan(row[750:]).all()
    mean = feature_row(v, FeatureSpec(spec.networks, spec.features, "mean"), 1)
    np.testing.assert_allclose(mean, v.mean(axis=0), rtol=1e-6)


def test_patch_head_averages_patch_probabilities():
    rng = np.random.default_rng(1)
    n_tracks, n_patches, d = 40, 4, 6
    y = np.repeat([0, 1, 2, 3], 10)
    centres = rng.standard_normal((4, d)) * 2
    P = centres[y][:, None, :] + rng.standard_normal((n_tracks, n_patches, d))
    counts = rng.integers(1, n_patches + 1, n_tracks)  # ragged: some tracks have 1 patch
    for i, c in enumerate(counts):
        P[i, c:] = np.nan
    X = P.reshape(n_tracks, -1)
    head = PatchAveragingClassifier(LogisticRegression(max_iter=500), n_patches).fit(X, y)
    assert head.n_patches_seen_ == counts.sum()
    proba = head.predict_proba(X)
    for i in (0, 17, 39):  # = the mean of the inner model's probabilities of its own patches
        manual = head.estimator_.predict_proba(P[i, : counts[i]]).mean(axis=0)
        np.testing.assert_allclose(proba[i], manual)
    assert proba.shape == (40, 4) and (head.predict(X) == y).mean() > 0.9
    # one row with a single patch (a 2-3 s clip) gives that patch's probabilities
    one = np.full((1, n_patches * d), np.nan)
    one[0, :d] = P[5, 0]
    np.testing.assert_allclose(head.predict_proba(one)[0],
                               head.estimator_.predict_proba(P[5, :1])[0])
    with pytest.raises(ValueError, match="n_patches=4"):
        head.predict_proba(X[:, :-1])
    with pytest.raises(ValueError, match="without a single complete patch"):
        patch_rows(np.full((2, n_patches * d), np.nan), n_patches)
