"""The fast feature helpers of ``music_genre.audio`` against librosa's own functions.

``analyse`` computes centroid, bandwidth, rolloff, zero-crossing rate and tuning with vectorised
re-implementations (see ``audio._spectral_shape`` etc.). A fast path that changed the numbers
would not count, so each helper is compared frame by frame with the librosa function it
replaces, on real GTZAN tracks and on signals that reach the edge cases (silence, a pure tone,
white noise, clipping, sub-threshold samples). Stated tolerances:

* STFT magnitude, rolloff, zero-crossing rate, tuning, tempo, mel spectrogram, spectral
  contrast, flatness and RMS: exactly equal;
* centroid and bandwidth: relative 1e-6 (librosa rounds its normalised spectrogram to float32;
  measured agreement on GTZAN is ~1e-10).
"""

from __future__ import annotations

import warnings
from pathlib import Path

import librosa
import numpy as np
import pytest

from music_genre import audio

SR, N_FFT, HOP = 22050, 2048, 512


def _spectra(y: np.ndarray):
    stft = librosa.stft(y, n_fft=N_FFT, hop_length=HOP)
    magnitude = np.abs(stft)
    return magnitude, magnitude**2


def _check_helpers(y: np.ndarray) -> None:
    """Every fast helper equals (or is within its stated tolerance of) librosa's function."""
    magnitude, power = _spectra(y)
    freqs = audio._fft_frequencies(SR, N_FFT)

    fast_magnitude = audio._stft_magnitude(y, N_FFT, HOP)
    np.testing.assert_array_equal(fast_magnitude, magnitude)
    assert fast_magnitude.flags.f_contiguous  # librosa's layout: later reductions in its order
    fast_magnitude, fast_power = audio._stft_magnitude(y, N_FFT, HOP, with_power=True)
    np.testing.assert_array_equal(fast_magnitude, magnitude)
    np.testing.assert_array_equal(fast_power, power)
    assert fast_power.flags.f_contiguous

    np.testing.assert_array_equal(
        audio._spectral_contrast(magnitude, SR, N_FFT),
        librosa.feature.spectral_contrast(S=magnitude, sr=SR, n_fft=N_FFT))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # log(amin) on silence, both
        np.testing.assert_array_equal(audio._spectral_flatness(power),
                                      librosa.feature.spectral_flatness(S=magnitude)[0])
    np.testing.assert_array_equal(audio._rms_consuming_power(power.copy(order="K"), N_FFT),
                                  librosa.feature.rms(S=magnitude, frame_length=N_FFT)[0])

    centroid, bandwidth, rolloff = audio._spectral_shape(magnitude, freqs, 0.85)  # one pass
    ref_centroid = librosa.feature.spectral_centroid(S=magnitude, sr=SR, n_fft=N_FFT)[0]
    ref_bandwidth = librosa.feature.spectral_bandwidth(S=magnitude, sr=SR, n_fft=N_FFT)[0]
    assert np.all(np.isfinite(centroid)) and np.all(np.isfinite(bandwidth))
    np.testing.assert_allclose(centroid, ref_centroid, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(bandwidth, ref_bandwidth, rtol=1e-6, atol=1e-3)

    ref_rolloff = librosa.feature.spectral_rolloff(S=magnitude, sr=SR, n_fft=N_FFT,
                                                   roll_percent=0.85)[0]
    np.testing.assert_array_equal(rolloff, ref_rolloff)

    zcr = audio._zero_crossing_rate(y, N_FFT, HOP)
    ref_zcr = librosa.feature.zero_crossing_rate(y, frame_length=N_FFT, hop_length=HOP)[0]
    np.testing.assert_array_equal(zcr, ref_zcr)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "empty frequency set" on silence, both
        tuning = audio._estimate_tuning(power, SR, N_FFT, 12)
        ref_tuning = librosa.estimate_tuning(S=power, sr=SR, n_fft=N_FFT, bins_per_octave=12)
    assert tuning == ref_tuning
    np.testing.assert_array_equal(audio._chroma_stft(power, SR, 12, tuning),
                                  librosa.feature.chroma_stft(S=power, sr=SR, tuning=tuning))


def _check_analyse(y: np.ndarray, duration_s: float) -> None:
    """``analyse`` equals librosa's feature functions called one by one on the same spectrogram."""
    params = audio.ExtractionParams(duration_s=duration_s)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        result = audio.analyse(y, params)
        magnitude, power = _spectra(y)
        mel_db = librosa.power_to_db(librosa.feature.melspectrogram(S=power, sr=SR, n_mels=128))
        mfcc = librosa.feature.mfcc(S=mel_db, n_mfcc=20)
        onset = librosa.onset.onset_strength(S=mel_db, sr=SR, hop_length=HOP)
        expected = np.concatenate([
            mfcc.mean(axis=1), mfcc.var(axis=1),
            [librosa.feature.spectral_centroid(S=magnitude, sr=SR).mean(),
             librosa.feature.spectral_bandwidth(S=magnitude, sr=SR).mean(),
             librosa.feature.spectral_rolloff(S=magnitude, sr=SR).mean(),
             librosa.feature.zero_crossing_rate(y, frame_length=N_FFT, hop_length=HOP).mean()],
            [librosa.feature.tempo(onset_envelope=onset, sr=SR, hop_length=HOP)[0]],
            librosa.feature.chroma_stft(S=power, sr=SR, n_fft=N_FFT).mean(axis=1),
        ])
    assert result.features.shape == (len(audio.FEATURE_NAMES),)
    assert np.all(np.isfinite(result.features))
    np.testing.assert_allclose(result.features, expected, rtol=1e-6, atol=1e-9)
    assert result.features[audio.FEATURE_NAMES.index("tempo")] == expected[44]  # same bin
    np.testing.assert_array_equal(result.mel_db, mel_db.astype(np.float32))


def _synthetic(kind: str, seconds: float = 5.0) -> np.ndarray:
    rng = np.random.default_rng(7)
    t = np.arange(int(SR * seconds)) / SR
    if kind == "silence":
        return np.zeros_like(t, dtype=np.float32)
    if kind == "tone":  # 440 Hz: a single sharp peak, bandwidth near 0
        return (0.5 * np.sin(2 * np.pi * 440.0 * t)).astype(np.float32)
    if kind == "noise":
        return rng.uniform(-0.5, 0.5, t.size).astype(np.float32)
    if kind == "clipped":  # flat tops at ±0.3 and exact zeros in between
        return np.clip(2.0 * np.sin(2 * np.pi * 97.0 * t), -0.3, 0.3).astype(np.float32)
    if kind == "gaps":  # music-like bursts with whole silent frames and sub-threshold dither
        y = (0.3 * np.sin(2 * np.pi * 220.0 * t) * (np.sin(2 * np.pi * 0.7 * t) > 0.3))
        y[rng.random(t.size) < 0.01] = 1e-12
        return y.astype(np.float32)
    raise ValueError(kind)


@pytest.mark.parametrize("kind", ["silence", "tone", "noise", "clipped", "gaps"])
def test_fast_helpers_match_librosa_on_edge_case_signals(kind):
    y = _synthetic(kind)
    _check_helpers(y)
    _check_analyse(y, duration_s=5.0)


def test_silence_gives_librosas_values_not_nan():
    y = _synthetic("silence")
    magnitude, power = _spectra(y)
    freqs = audio._fft_frequencies(SR, N_FFT)
    centroid, bandwidth, rolloff = audio._spectral_shape(magnitude, freqs, 0.85)
    assert np.all(centroid == 0) and np.all(bandwidth == 0)
    assert np.all(rolloff == 0)
    assert np.all(audio._zero_crossing_rate(y, N_FFT, HOP) == 0)
    with pytest.warns(UserWarning, match="empty frequency set"):
        assert audio._estimate_tuning(power, SR, N_FFT, 12) == 0.0


def test_fast_helpers_match_librosa_on_real_gtzan_tracks(gtzan_mini):
    # one track per genre, both published formats if present; full 30 s clips
    params = audio.ExtractionParams()
    paths = sorted(p for p in gtzan_mini.rglob("*.*") if p.suffix in (".wav", ".au"))
    by_genre = {}
    for p in paths:
        by_genre.setdefault(p.parent.name, p)
    chosen = list(by_genre.values())[:4]
    assert len(chosen) >= 3, f"expected several genres under {gtzan_mini}"
    for path in chosen:
        y = audio.fix_length(audio.load_audio(path, sr=SR), params.n_samples)
        _check_helpers(y)
        _check_analyse(y, duration_s=params.duration_s)


def test_fast_helpers_follow_other_parameters():
    # a different rate, FFT size and roll percentage: the helpers take them, not constants
    sr, n_fft, hop = 16000, 1024, 256
    y = _synthetic("noise", 3.0)[: 3 * sr] * np.linspace(0, 1, 3 * sr, dtype=np.float32)
    magnitude = np.abs(librosa.stft(y, n_fft=n_fft, hop_length=hop))
    freqs = audio._fft_frequencies(sr, n_fft)
    np.testing.assert_array_equal(
        audio._spectral_shape(magnitude, freqs, 0.5)[2],
        librosa.feature.spectral_rolloff(S=magnitude, sr=sr, n_fft=n_fft, roll_percent=0.5)[0])
    np.testing.assert_array_equal(
        audio._zero_crossing_rate(y, n_fft, hop),
        librosa.feature.zero_crossing_rate(y, frame_length=n_fft, hop_length=hop)[0])
    assert audio._estimate_tuning(magnitude**2, sr, n_fft, 24) == librosa.estimate_tuning(
        S=magnitude**2, sr=sr, n_fft=n_fft, bins_per_octave=24)


def test_rich_features_start_with_the_57_bit_for_bit_one_implementation():
    # training tables, the rich table and the service all come through audio.analyse
    params = audio.ExtractionParams(duration_s=5.0)
    for kind in ("noise", "gaps"):
        y = audio.fix_length(_synthetic(kind), params.n_samples)
        result = audio.analyse(y, params, rich_segment_s=1.0)
        np.testing.assert_array_equal(result.rich[:57], result.features)
        np.testing.assert_array_equal(audio.rich_features(y, params, 1.0), result.rich)
        assert len(result.rich) == len(audio.rich_feature_names(params, 1.0))


def test_warm_up_once_skips_while_the_marker_matches_this_installation(tmp_path, monkeypatch):
    import json

    import numba

    params = audio.ExtractionParams(duration_s=2.0)
    audio.warm_up(params)  # every compiled function loaded in this process: none is cached anew
    monkeypatch.setattr(numba.config, "CACHE_DIR", str(tmp_path))
    (tmp_path / "librosa_x").mkdir()
    assert audio.warm_up_once(params) is True  # no marker yet
    marker = tmp_path / "music_genre_warm.json"
    recorded = json.loads(marker.read_text())
    assert "librosa_x" in recorded["dirs"] and str(Path(audio.__file__).resolve()) in \
        recorded["stamp"]["sources"]
    assert audio.warm_up_once(params) is False
    # librosa reinstalled (a source file's size/mtime changed): warm up again
    recorded["stamp"]["sources"][next(iter(recorded["stamp"]["sources"]))][1] += 1
    marker.write_text(json.dumps(recorded))
    assert audio.warm_up_once(params) is True and audio.warm_up_once(params) is False
    (tmp_path / "librosa_x").rmdir()  # part of the cache deleted
    assert audio.warm_up_once(params) is True
    marker.write_text("{not json")
    assert audio.warm_up_once(params) is True
