from kedro.pipeline import Node, Pipeline

from .nodes import (
    assemble_dataset,
    extract_degraded_features,
    extract_rich_features,
    extract_tracks,
    probe_tracks,
    split_tracks,
)


def create_pipeline(**kwargs) -> Pipeline:
    return Pipeline(
        [
            Node(probe_tracks, ["raw_audio", "params:genres"], "probed_tracks",
                 name="probe_tracks"),
            Node(extract_tracks,
                 ["probed_tracks", "track_cache_previous", "params:extraction",
                  "params:execution"],
                 ["track_cache", "track_keys"], name="extract_tracks"),
            Node(assemble_dataset,
                 ["probed_tracks", "track_keys", "track_cache", "params:extraction"],
                 ["manifest", "features", "spectrograms"], name="assemble_dataset"),
            Node(split_tracks,
                 ["manifest", "predefined_split", "filtered_split_lists", "params:split"],
                 "split", name="split_tracks"),
            # the 57 + variances, deltas, contrast, tonnetz, segment statistics (issue 8)
            Node(extract_rich_features,
                 ["manifest", "rich_cache_previous", "params:extraction", "params:rich_features",
                  "params:execution"],
                 ["rich_cache", "rich_features"], name="extract_rich_features"),
            # the same after 16/8 kHz resampling or MP3 (params:augmentation.degradations):
            # robustness training rows for rf/mlp, robustness scoring in evaluate_cv
            Node(extract_degraded_features,
                 ["manifest", "degraded_cache_previous", "params:extraction",
                  "params:rich_features", "params:augmentation", "params:execution"],
                 ["degraded_cache", "degraded_features"], name="extract_degraded_features"),
        ]
    )
