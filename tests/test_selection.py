"""Ranking by grouped CV / other artists / test split, and ensemble weights from OOF predictions."""

from __future__ import annotations

import numpy as np
import pandas as pd

from music_genre import selection

GENRES = ["a", "b", "c"]


def _oof(model: str, proba: np.ndarray, truth: list[str]) -> pd.DataFrame:
    frame = pd.DataFrame(proba, columns=GENRES)
    frame.insert(0, "genre", truth)
    frame.insert(0, "track_id", [f"t{i}" for i in range(len(truth))])
    frame.insert(0, "fold", np.arange(len(truth)) % 3)
    frame.insert(0, "repeat", 0)
    frame.insert(0, "scheme", "grouped")
    frame.insert(0, "model", model)
    return frame


def test_ensemble_weights_leave_out_a_member_that_does_not_help():
    rng = np.random.default_rng(0)
    truth = list(rng.choice(GENRES, 90))
    y = np.array([GENRES.index(g) for g in truth])
    good = np.full((90, 3), 0.1)
    good[np.arange(90), y] = 0.8
    good[:20] = good[:20, ::-1]  # wrong on 20 tracks
    fair = np.full((90, 3), 0.2)
    fair[np.arange(90), y] = 0.6
    fair[60:] = fair[60:, ::-1]  # wrong on the last 30, right on the first 20
    noise = rng.dirichlet(np.ones(3), 90)
    oof = pd.concat([_oof("good", good, truth), _oof("fair", fair, truth),
                     _oof("noise", noise, truth)])
    weights = selection.ensemble_weights(oof, ["good", "fair", "noise"], GENRES)
    assert weights["noise"] == 0.0 and weights["good"] > 0
    assert abs(sum(weights.values()) - 1) < 1e-9
    # only stratified predictions, or one member: no weights to choose
    assert selection.ensemble_weights(oof.assign(scheme="stratified"), ["good", "fair"],
                                      GENRES) is None
    assert selection.ensemble_weights(oof, ["good"], GENRES) is None


def test_ranking_is_by_grouped_then_other_artists_then_split():
    metrics = {"cnn": {"accuracy": 0.95, "n_test": 20}, "transfer": {"accuracy": 0.85,
                                                                     "n_test": 20},
               "rf": {"accuracy": 0.9, "n_test": 20}}
    cv = pd.DataFrame([{"model": m, "scheme": "grouped", "accuracy_pooled": a,
                        "accuracy_ci95_low": a - 0.1, "accuracy_ci95_high": a + 0.05,
                        "n_tracks": 100} for m, a in (("cnn", 0.62), ("transfer", 0.88))])
    result = selection.rank_models(metrics, cv, {"rf": {"accuracy": 0.4, "n": 381}})
    assert [r["model"] for r in result["ranking"]] == ["transfer", "cnn", "rf"]
    assert result["default"] == "transfer" and result["chosen_by"] == "grouped"
    rf = result["ranking"][2]
    assert rf["grouped"] is None and rf["holdout"]["n"] == 381
    lo, hi = rf["split"]["ci95"]
    assert lo < 0.9 < hi and rf["split"]["n"] == 20
    # without any CV the split figure decides, and the result says so
    plain = selection.rank_models(metrics, pd.DataFrame(), None)
    assert plain["default"] == "cnn" and plain["chosen_by"] == "split"
    assert "grouped CV" in selection.ranking_markdown(result)
