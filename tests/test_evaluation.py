"""music_genre.evaluation: track-level folds, intervals, probability averaging, degradations."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import signal

from music_genre import audio, evaluation

GENRES = ["blues", "classical", "jazz"]


def _tracks(per_genre: int = 10) -> pd.DataFrame:
    rows = [(f"{g}.{i:05d}", g) for g in GENRES for i in range(per_genre)]
    return pd.DataFrame(rows, columns=["track_id", "genre"])


CV = {"n_splits": 5, "n_repeats": 3, "seed": 1, "schemes": ["stratified", "grouped"],
      "grouped": {"column": None, "block_size": 5}}


def test_every_track_is_tested_once_per_repeat_and_folds_are_stratified():
    folds = evaluation.make_folds(_tracks(), CV)
    assert set(folds.columns) == set(evaluation.FOLD_COLUMNS)
    strat = folds[folds["scheme"] == "stratified"]
    assert len(strat) == 3 * 30 and strat["repeat"].nunique() == 3
    for _, part in strat.groupby("repeat"):
        assert sorted(part["track_id"]) == sorted(_tracks()["track_id"])
        # 10 tracks per genre over 5 folds: exactly 2 of each genre in every test fold
        assert (part.groupby(["fold", "genre"]).size() == 2).all()
    # repeats reshuffle
    r0 = strat[strat["repeat"] == 0].set_index("track_id")["fold"]
    r1 = strat[strat["repeat"] == 1].set_index("track_id")["fold"].loc[r0.index]
    assert (r0.to_numpy() != r1.to_numpy()).any()


def test_grouped_folds_keep_each_id_block_on_one_side():
    folds = evaluation.make_folds(_tracks(), CV)
    grouped = folds[folds["scheme"] == "grouped"]
    assert set(grouped["group"]) == {f"{g}:{b}" for g in GENRES for b in (0, 1)}
    for _, part in grouped.groupby("repeat"):
        assert (part.groupby("group")["fold"].nunique() == 1).all()
        assert (part.groupby("group").size() == 5).all()


def test_user_groups_and_predefined_folds():
    tracks = _tracks()
    artists = pd.DataFrame({"track_id": tracks["track_id"] + ".wav",
                            "artist": [f"a{i % 6}" for i in range(len(tracks))]})
    cv = {**CV, "n_splits": 3, "n_repeats": 1, "schemes": ["grouped", "predefined"],
          "grouped": {"column": "artist"}}
    predefined = pd.DataFrame({"track_id": tracks["track_id"],
                               "fold": np.where(tracks.index % 2 == 0, 7, 9)})
    folds = evaluation.make_folds(tracks, cv, predefined=predefined, groups=artists)
    g = folds[folds["scheme"] == "grouped"]
    assert set(g["group"]) == {f"a{i}" for i in range(6)}
    assert (g.groupby("group")["fold"].nunique() == 1).all()
    p = folds[folds["scheme"] == "predefined"].set_index("track_id")["fold"]
    assert sorted(p.unique()) == [0, 1]  # labels 7/9 renumbered
    assert (p.loc[tracks["track_id"][::2]] == 0).all()
    with pytest.raises(ValueError, match="'fold' column"):
        evaluation.make_folds(tracks, cv, predefined=predefined.drop(columns="fold"),
                              groups=artists)
    with pytest.raises(ValueError, match="no 'artist' for 1 track"):
        evaluation.make_folds(tracks, cv, predefined=predefined, groups=artists.iloc[1:])


def test_too_many_folds_for_the_smallest_genre_is_refused():
    with pytest.raises(ValueError, match="n_splits"):
        evaluation.make_folds(_tracks(3), CV)


def test_fold_partition_never_mixes_test_and_training_tracks():
    folds = evaluation.make_folds(_tracks(), CV)
    train, val, test = evaluation.fold_partition(folds, "grouped", 1, 2, 0.2, seed=0)
    assert not (set(train) & set(test)) and not (set(val) & set(test))
    assert not set(train) & set(val)
    assert len(train) + len(val) + len(test) == 30
    expected_test = folds[(folds["scheme"] == "grouped") & (folds["repeat"] == 1)
                          & (folds["fold"] == 2)]["track_id"]
    assert sorted(test) == sorted(expected_test)
    _, val, _ = evaluation.fold_partition(folds, "stratified", 0, 0, 0.2, seed=0)
    assert len(val) == 3 * 2  # 20 % of each genre's 8 training tracks, rounded


def test_wilson_interval_matches_the_textbook_value():
    lo, hi = evaluation.wilson_interval(50, 100)
    assert lo == pytest.approx(0.4038, abs=1e-4) and hi == pytest.approx(0.5962, abs=1e-4)
    lo, hi = evaluation.wilson_interval(85, 100)
    assert lo == pytest.approx(0.7672, abs=1e-3) and hi == pytest.approx(0.9069, abs=1e-3)


@pytest.mark.parametrize("n", [3, 7, 20, 100, 381, 1000])
def test_wilson_interval_holds_the_proportion_at_0_and_1(n):
    """No negative error bar: at 0/n and n/n rounding must not leave p outside its interval
    (the comparison chart's `yerr` refused one in a demo run)."""
    for k in (0, n):
        lo, hi = evaluation.wilson_interval(k, n)
        assert 0 <= lo <= k / n <= hi <= 1


def test_summary_agrees_with_numpy():
    acc = np.array([0.6, 0.7, 0.8, 0.9])
    fm = pd.DataFrame({"model": "m", "scheme": "stratified", "repeat": [0, 0, 1, 1],
                       "fold": [0, 1, 0, 1], "accuracy": acc, "f1_macro": acc - 0.1,
                       "train_seconds": 1.0})
    # 4 tracks, each tested twice (two repeats); t0 always right, t3 never, t1/t2 once each
    oof = pd.DataFrame({"model": "m", "scheme": "stratified", "repeat": [0] * 4 + [1] * 4,
                        "track_id": ["t0", "t1", "t2", "t3"] * 2, "genre": ["a"] * 8,
                        "predicted": ["a", "a", "b", "b", "a", "b", "a", "b"]})
    s = evaluation.summarise_folds(fm, oof).iloc[0]
    assert s["accuracy_mean"] == pytest.approx(acc.mean())
    assert s["accuracy_sd"] == pytest.approx(acc.std(ddof=1))
    assert s["accuracy_pooled"] == pytest.approx(0.5) and s["n_tracks"] == 4
    assert (s["accuracy_ci95_low"], s["accuracy_ci95_high"]) == pytest.approx(
        evaluation.wilson_interval(2, 4))
    # pooled macro F1: per repeat over all its tracks (sklearn), then the mean
    from sklearn.metrics import f1_score

    expected_f1 = np.mean([f1_score(r["genre"], r["predicted"], average="macro")
                           for _, r in oof.groupby("repeat")])
    assert s["f1_macro_pooled"] == pytest.approx(expected_f1)
    md = evaluation.summary_markdown(evaluation.summarise_folds(fm, oof))
    assert "| m | stratified | 75.0 ± 12.9 %" in md


def _pred(ids, genres_true, proba):
    df = pd.DataFrame(proba, columns=GENRES)
    df.insert(0, "predicted", [GENRES[i] for i in np.argmax(proba, axis=1)])
    df.insert(0, "genre", genres_true)
    df.insert(0, "track_id", ids)
    return df


def test_average_probabilities_aligns_rows_and_weights_models():
    a = _pred(["t1", "t2", "t3"], ["blues", "jazz", "classical"],
              np.array([[0.6, 0.3, 0.1], [0.2, 0.2, 0.6], [0.1, 0.8, 0.1]]))
    b = _pred(["t3", "t1", "t2", "t9"], ["classical", "blues", "jazz", "jazz"],
              np.array([[0.3, 0.4, 0.3], [0.1, 0.1, 0.8], [0.0, 0.0, 1.0], [0, 0, 1.0]]))
    out = evaluation.average_probabilities([a, b], GENRES, weights=[3, 1])
    assert list(out["track_id"]) == ["t1", "t2", "t3"]  # t9 is not scored by both
    expected_t1 = (3 * np.array([0.6, 0.3, 0.1]) + np.array([0.1, 0.1, 0.8])) / 4
    np.testing.assert_allclose(out.loc[0, GENRES].to_numpy(float), expected_t1)
    assert out.loc[0, "predicted"] == "blues"
    np.testing.assert_allclose(out[GENRES].sum(axis=1), 1.0)
    bad = b.assign(genre="blues")
    with pytest.raises(ValueError, match="disagree"):
        evaluation.average_probabilities([a, bad], GENRES)
    with pytest.raises(ValueError, match="share no track"):
        evaluation.average_probabilities([a, b.assign(track_id=["x", "y", "z", "w"])], GENRES)


def _band_energy(y, sr, lo, hi):
    f, p = signal.welch(y, sr, nperseg=4096)
    return p[(f >= lo) & (f < hi)].sum()


def test_degradations_limit_the_band_and_keep_the_length():
    sr = 22050
    rng = np.random.default_rng(0)
    y = (0.1 * rng.standard_normal(sr * 3)).astype(np.float32)  # white noise: every band full
    assert audio.degrade(y, sr, "full") is y
    for kind, cutoff in (("resample_16k", 8000), ("resample_8k", 4000)):
        d = audio.degrade(y, sr, kind)
        assert d.shape == y.shape and d.dtype == np.float32
        above = _band_energy(d, sr, cutoff * 1.05, sr / 2) / _band_energy(y, sr, cutoff * 1.05,
                                                                         sr / 2)
        below = _band_energy(d, sr, 100, cutoff * 0.9) / _band_energy(y, sr, 100, cutoff * 0.9)
        assert above < 1e-3 and 0.9 < below < 1.1
    mp3 = audio.degrade(y, sr, "mp3")
    assert mp3.shape == y.shape and np.isfinite(mp3).all()
    assert 0.5 < np.std(mp3) / np.std(y) < 1.5
    with pytest.raises(ValueError, match="unknown degradation"):
        audio.degrade(y, sr, "vinyl")


def test_chains_of_degradations_and_list_parameters():
    sr = 22050
    y = (0.1 * np.random.default_rng(1).standard_normal(sr * 2)).astype(np.float32)
    np.testing.assert_array_equal(audio.degrade(y, sr, "mp3>resample_8k"),
                                  audio.degrade(audio.degrade(y, sr, "mp3"), sr, "resample_8k"))
    evaluation.check_chains(["full", "mp3", "resample_16k>resample_8k"], "where")
    with pytest.raises(ValueError, match="augmentation.degradations: unknown degradation 'mp4'"):
        evaluation.check_chains(["mp3", "mp4"], "params:augmentation.degradations")
    with pytest.raises(ValueError, match="unknown degradation 'mp3>vinyl'"):
        evaluation.check_chains(["mp3>vinyl"], "x")
    assert evaluation.name_list("rf+cnn_segments") == ["rf", "cnn_segments"]
    assert evaluation.name_list("full+mp3>resample_8k") == ["full", "mp3>resample_8k"]
    assert evaluation.name_list(["a", "b"]) == ["a", "b"] and evaluation.name_list(None) == []
