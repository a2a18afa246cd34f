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
    with pytest.raises(ValueError, match="not musicnn.weights"):
        FeatureSpec.from_dict({"features": {"MSD_vgg": ["embedding"]}})
    with pytest.raises(ValueError, match="unknown network"):
        FeatureSpec.from_dict({"extra_networks": ["MSD_musicnn_big"]})


def test_prior_scores_from_tag_names():
    """The conf's prior: per genre the max (or mean) of its tags' probabilities, per patch."""
    import yaml

    from music_genre.transfer.embed import prior_scores
    from music_genre.transfer.musicnn import MSD_TAGS, MTT_TAGS
    from tests.helpers import PROJECT_ROOT as PROJECT

    musicnn = yaml.safe_load((PROJECT / "conf/base/parameters_transfer.yml").read_text())["musicnn"]
    spec = FeatureSpec.from_dict(musicnn)
    assert spec.networks == ("MSD_musicnn", "MSD_vgg", "MTT_musicnn")
    assert spec.features == (("embedding_l2",), ("embedding_l2",), ())
    assert spec.prior_aggregate == "max"
    genres = spec.prior_genres
    msd = np.full((2, 50), 0.01, np.float32)
    mtt = np.full((2, 50), 0.01, np.float32)
    msd[0, MSD_TAGS.index("rock")] = 0.9  # patch 0: rock-ish
    mtt[1, MTT_TAGS.index("classical")] = 0.8  # patch 1: one of classical's eight tags
    outputs = {"MSD_musicnn": (msd, np.zeros((2, 200))), "MSD_vgg": (msd, np.zeros((2, 256))),
               "MTT_musicnn": (mtt, np.zeros((2, 200)))}  # fmt: skip
    scores = prior_scores(outputs, spec)
    assert scores.shape == (2, 10)
    assert genres[int(scores[0].argmax())] == "rock"
    assert genres[int(scores[1].argmax())] == "classical"
    assert scores[0, genres.index("rock")] == pytest.approx(0.9)  # max of rock's four tags
    assert scores[1, genres.index("classical")] == pytest.approx(0.8)
    mean = prior_scores(outputs, FeatureSpec.from_dict({**musicnn,
                                                        "genre_prior_aggregate": "mean"}))
    assert mean[0, genres.index("rock")] == pytest.approx((0.9 + 0.01 * 3) / 4)
    assert mean[1, genres.index("classical")] == pytest.approx((0.8 + 7 * 0.01) / 8)
    with pytest.raises(ValueError, match="genre_prior_aggregate"):
        FeatureSpec.from_dict({**musicnn, "genre_prior_aggregate": "median"})
    others = [i for i, g in enumerate(genres) if g != "reggae"]
    np.testing.assert_allclose(scores[:, genres.index("reggae")], scores[:, others].mean(axis=1),
                               rtol=1e-6)  # no reggae tag: the mean of the others
    v = patch_vectors(outputs, spec)
    assert v.shape == (2, 200 + 256 + 10)
    np.testing.assert_array_equal(v[:, -10:], scores)


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
    spec = FeatureSpec(("MSD_musicnn",), (("embedding", "tags_logit"),), "patch")
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
    # embedding_l2: each patch's embedding scaled to unit length (direction kept)
    unit = patch_vectors({"MSD_musicnn": (tags, 3 * emb)},
                         FeatureSpec(("MSD_musicnn",), (("embedding_l2",),), "patch"))
    np.testing.assert_allclose(np.linalg.norm(unit, axis=1), 1, rtol=1e-6)
    np.testing.assert_allclose(unit * np.linalg.norm(emb, axis=1, keepdims=True), emb,
                               rtol=1e-5, atol=1e-6)
    assert spec.columns({"MSD_musicnn": 200}, 1) != FeatureSpec(
        ("MSD_musicnn",), (("embedding_l2",),)).columns({"MSD_musicnn": 200}, 1)


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


def test_patch_head_multiplies_the_prior():
    rng = np.random.default_rng(2)
    y = np.repeat([0, 1, 2], 10)
    feats = rng.standard_normal((30, 2, 4)) + y[:, None, None]
    scores = rng.uniform(0.01, 1, (30, 2, 3))  # the prior's columns: last 3 of every patch
    X = np.concatenate([feats, scores], axis=2).reshape(30, -1)
    head = PatchAveragingClassifier(LogisticRegression(), 2, prior_columns=3).fit(X, y)
    assert head.estimator_.n_features_in_ == 4  # the prior is not a feature
    p = head.estimator_.predict_proba(feats.reshape(-1, 4)).reshape(30, 2, 3).mean(axis=1)
    prior = scores.mean(axis=1) + 1e-3
    prior /= prior.sum(axis=1, keepdims=True)
    expected = p * prior
    np.testing.assert_allclose(head.predict_proba(X), expected / expected.sum(1, keepdims=True))
    squared = PatchAveragingClassifier(LogisticRegression(), 2, 3, prior_weight=2.0).fit(X, y)
    expected = p * prior**2
    np.testing.assert_allclose(squared.predict_proba(X), expected / expected.sum(1, keepdims=True))
    with pytest.raises(ValueError, match="every genre needs training tracks"):
        PatchAveragingClassifier(LogisticRegression(), 2, prior_columns=3).fit(X[:20], y[:20])


def test_service_chunks_are_bounded():
    """A long upload is cut into 30 s chunks, at most ``musicnn.serving.max_chunks``, evenly
    spread; a 2 s clip is one chunk (looped to a patch later)."""
    import yaml

    from music_genre.inference import _transfer_chunks
    from tests.helpers import PROJECT_ROOT as PROJECT

    sr = 100  # samples per second: only lengths matter here
    y = np.arange(3600 * sr, dtype=np.float32)  # one hour
    assert len(_transfer_chunks(y, sr, 30.0, 2.0)) == 120
    chunks = _transfer_chunks(y, sr, 30.0, 2.0, max_chunks=10)
    assert len(chunks) == 10 and all(len(c) == 30 * sr for c in chunks)
    starts = [int(c[0]) // sr for c in chunks]
    assert starts[0] == 0 and starts[-1] == 3570 and starts == sorted(starts)  # spread
    assert len(_transfer_chunks(y[: 2 * sr], sr, 30.0, 2.0, max_chunks=10)) == 1
    # a 61 s file: 30 + 30 + a 1 s tail too short to count
    assert [len(c) for c in _transfer_chunks(y[: 61 * sr], sr, 30.0, 2.0, 10)] == [3000, 3000]
    conf = yaml.safe_load((PROJECT / "conf/base/parameters_transfer.yml").read_text())
    assert conf["musicnn"]["serving"]["max_chunks"] == 10
