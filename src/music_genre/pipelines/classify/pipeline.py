from kedro.pipeline import Node, Pipeline

from .nodes import classify_files, find_audio_files, make_playlists, plot_summary


def create_pipeline(**kwargs) -> Pipeline:
    return Pipeline([
        Node(find_audio_files, "params:classify", "classify.files", name="find_audio_files"),
        Node(classify_files,
             ["classify.files", "classify.previous_results", "classify.models",
              "params:classify"],
             "classify.results", name="classify_files"),
        Node(plot_summary, ["classify.results", "params:genres"], "classify.summary_chart",
             name="plot_classify_summary"),
        Node(make_playlists, ["classify.results", "params:classify"], "classify.playlists",
             name="make_playlists"),
    ])
