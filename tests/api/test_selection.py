"""The served default follows the ranking by artist-disjoint evidence (model_selection)."""

from __future__ import annotations

import shutil

import pandas as pd
from kedro.framework.session import KedroSession
from kedro.framework.startup import bootstrap_project

from music_genre.api.service import ApiSettings, load_service
from music_genre.pipelines.model_selection.nodes import rank_models


def test_a_ranking_that_prefers_another_model_changes_the_served_default(api_project, api_data):
    settings = ApiSettings(project_path=str(api_project), env="apitest", warmup=False)
    before = load_service(settings)
    name, chosen_by = before.default_choice
    assert chosen_by.startswith("test-split accuracy")
    accuracy = {n: m.accuracy for n, m in before.available.items()}
    assert accuracy[name] == max(accuracy.values())
    # grouped CV in which the model with the lowest test accuracy is the best
    worst = min(accuracy, key=accuracy.get)
    assert worst != name
    cv = pd.DataFrame([{"model": n, "scheme": "grouped", "n_tracks": 30,
                        "accuracy_pooled": 0.9 if n == worst else 0.5,
                        "accuracy_ci95_low": 0.7 if n == worst else 0.3,
                        "accuracy_ci95_high": 0.95 if n == worst else 0.7}
                       for n in accuracy])
    names = sorted(accuracy)
    result, markdown = rank_models(cv, {}, {},
                                   *[before.available[n].metrics for n in names])
    assert result["default"] == worst and result["chosen_by"] == "grouped"
    assert f"| 1 | {worst} (served default) | 90.0 %" in markdown
    bootstrap_project(api_project)
    with KedroSession.create(project_path=api_project, env="apitest") as session:
        session.load_context().catalog.save("model_selection", result)
    try:
        after = load_service(settings)
        assert after.default_choice == (worst, "model_selection (grouped figure)")
        assert after.figures(worst)["grouped"]["accuracy"] == 0.9
        # api.default_model still overrides the ranking
        pinned = load_service(ApiSettings(project_path=str(api_project), env="apitest",
                                          warmup=False, default_model=name))
        assert pinned.default_choice == (name, "api.default_model")
    finally:
        shutil.rmtree(api_data / "08_reporting" / "model_selection.json")
