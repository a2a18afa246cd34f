"""The shared audio module: decoding, length policy, probing bad files, the 57 features."""

from __future__ import annotations

import librosa
import numpy as np
import pytest
import soundfile as sf

from music_genre import audio

SR = 22050


def _tone(seconds: float, sr: int = SR, freq: float = 440.0, channels: int = 1) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    y = 0.3 * np.sin(2 * np.pi * freq * t) + 0.05 * np.sin(2 * np.pi * 3 * freq * t)
    y += 0.01 * np.random.default_rng(0).standard_normal(len(t))
    return np.stack([y, 0.5 * y], axis=1) if channels == 2 else y


def test_load_audio_resamples_and_downmixes_like_librosa(tmp_path):
    path = tmp_path / "stereo44k.wav"
    sf.write(path, _tone(2.0, 44100, channels=2), 44100)
    ours = audio.load_audio(path, sr=SR)
    ref, _ = librosa.load(path, sr=SR, mono=True)
    assert ours.dtype == np.float32 and ours.ndim == 1
    assert len(ours) == len(ref) == 2 * SR
    np.testing.assert_allclose(ours, ref, atol=1e-6)


@pytest.mark.parametrize("fmt,suffix", [("WAV", "wav"), ("AU", "au"), ("FLAC", "flac"),
                                        ("OGG", "ogg"), ("MP3", "mp3")])
def test_every_supported_format_decodes(tmp_path, fmt, suffix):
    path = tmp_path / f"clip.{suffix}"
    y = _tone(3.0, 16000).astype(np.float32)
    sf.write(path, y, 16000, format=fmt)
    decoded = audio.load_audio(path, sr=SR)
    # lossy codecs add encoder delay/padding of a few ms; the duration must survive
    assert abs(len(decoded) / SR - 3.0) < 0.1
    assert np.isfinite(decoded).all() and 0.05 < np.abs(decoded).max() <= 1.0
    assert audio.load_audio(path.read_bytes(), sr=SR).shape == decoded.shape  # bytes too


def test_fix_length_crops_and_loops():
    params = audio.ExtractionParams()
    assert params.n_samples == 661500 and params.n_frames == 1292
    long = np.arange(700000, dtype=np.float32)
    assert np.array_equal(audio.fix_length(long, 661500), long[:661500])
    short = np.arange(10, dtype=np.float32)
    assert np.array_equal(audio.fix_length(short, 25), np.concatenate([short, short, short[:5]]))


def test_windows_cover_a_long_file_and_refuse_a_too_short_one():
    params = audio.ExtractionParams(duration_s=2.0, min_duration_s=0.5)
    y = np.ones(int(SR * 5.0), np.float32)  # 2 full windows + a 1 s tail
    wins = list(audio.windows(y, params))
    assert len(wins) == 3 and all(len(w) == params.n_samples for w in wins)
    with pytest.raises(audio.AudioError, match="at least 0.5 s"):
        list(audio.windows(np.ones(100, np.float32), params))


def test_analyse_shares_one_stft_and_matches_librosa_called_separately():
    params = audio.ExtractionParams(duration_s=5.0)
    y = audio.fix_length(_tone(5.0).astype(np.float32), params.n_samples)
    result = audio.analyse(y, params)
    ref_features, ref_mel_db = audio.reference_features(y, SR)
    assert result.features.shape == (57,) and len(audio.FEATURE_NAMES) == 57
    np.testing.assert_allclose(result.features, ref_features, rtol=1e-4, atol=1e-6)
    assert result.mel_db.shape == (128, params.n_frames)
    spec = audio.normalise_spectrogram(result.mel_db)
    assert spec.min() == 0.0 and spec.max() == 1.0
    np.testing.assert_allclose(spec, audio.normalise_spectrogram(ref_mel_db), atol=1e-5)


def test_extraction_params_reject_unknown_keys():
    with pytest.raises(ValueError, match="unknown keys \\['n_mel'\\]"):
        audio.ExtractionParams.from_dict({"n_mel": 64})


def test_probe_reports_each_kind_of_bad_file(tmp_path):
    good = tmp_path / "good.wav"
    sf.write(good, _tone(4.0), SR, subtype="PCM_16")
    info = audio.probe(good)
    assert (info.sample_rate, info.channels, round(info.duration_s, 2)) == (SR, 1, 4.0)

    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    sidecar = tmp_path / "._good.wav"
    sidecar.write_bytes(b"\x00\x05\x16\x07" + bytes(100))
    text = tmp_path / "notes.wav"
    text.write_text("this is not audio at all\n" * 50)
    truncated = tmp_path / "truncated.wav"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    au = tmp_path / "good.au"
    sf.write(au, _tone(4.0), SR, format="AU", subtype="PCM_16")
    truncated_au = tmp_path / "truncated.au"
    truncated_au.write_bytes(au.read_bytes()[: au.stat().st_size // 3])

    for path, message in [(empty, "empty file"), (sidecar, "sidecar"),
                          (text, "not a decodable audio file"), (truncated, "truncated"),
                          (truncated_au, "truncated"), (tmp_path / "missing.wav", "no such file")]:
        with pytest.raises(audio.AudioError, match=message) as err:
            audio.probe(path)
        assert path.name in str(err.value)  # the message names the file


def test_too_short_track_is_refused_with_its_name(tmp_path):
    path = tmp_path / "short.wav"
    sf.write(path, _tone(1.0), SR)
    with pytest.raises(audio.AudioError, match="short.wav: only 1.00 s"):
        audio.analyse_file(path, audio.ExtractionParams())
