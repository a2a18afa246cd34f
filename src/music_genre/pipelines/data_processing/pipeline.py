from kedro.pipeline import Node, Pipeline

from .nodes import (
    assemble_dataset,
    assemble_rich_tables,
    extract_tracks,
    probe_tracks,
    remember_keys,
    split_tracks,
)


def create_pipeline(**kwargs) -> Pipeline:
    return Pipeline(
        [
            Node(probe_tracks, ["raw_audio", "params:genres"], "probed_tracks",
                 name="probe_tracks"),
            # one pass per track: decode once, one STFT for the 57 features, the spectrogram and
            # the rich features, plus each degraded copy of params:augmentation.degradations
            Node(extract_tracks,
                 ["probed_tracks", "track_cache_previous", "params:extraction",
                  "params:rich_features", "params:augmentation", "params:execution",
                  "track_key_memo_previous"],
                 ["track_cache", "track_keys"], name="extract_tracks"),
            # the keys with each file's size and mtime: the next run re-reads no unchanged file
            Node(remember_keys, "track_keys", "track_key_memo", name="remember_track_keys"),
            Node(assemble_dataset,
                 ["probed_tracks", "track_keys", "track_cache", "params:extraction"],
                 ["manifest", "features", "spectrograms"], name="assemble_dataset"),
            Node(split_tracks,
                 ["manifest", "predefined_split", "filtered_split_lists", "params:split"],
                 "split", name="split_tracks"),
            # the 57 + variances, deltas, contrast, tonnetz, segment statistics (issue 8), and
            # the same after 16/8 kHz resampling or MP3: robustness training rows for rf/mlp,
            # robustness scoring in evaluate_cv. Read from the cache entries: no decoding here.
            Node(assemble_rich_tables,
                 ["manifest", "track_keys", "track_cache", "params:extraction",
                  "params:rich_features", "params:augmentation"],
                 ["rich_features", "degraded_features"], name="assemble_rich_tables"),
        ]
    )
