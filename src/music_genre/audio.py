"""The one audio/DSP module of the project: decoding, probing, fixing length, features, spectrograms.

Training pipelines and the prediction service both call these functions, so a track is analysed
the same way wherever it comes from. Nothing here knows about Kedro.

Feature recipe (the reference's 57 columns), all from ONE short-time Fourier transform per track:

* ``|STFT|`` (n_fft 2048, hop 512, Hann, centred) gives the spectral centroid, bandwidth and rolloff;
* ``|STFT|**2`` projected on 128 mel bands gives the dB mel spectrogram; its DCT gives the 20 MFCCs,
  its onset envelope gives the tempo, and min-max normalised it is the CNN's input;
* ``|STFT|**2`` on chroma filters (tuning estimated once from the same spectrogram) gives chroma;
* the zero-crossing rate comes from the waveform frames.

The spectrogram, MFCCs, onset envelope and chroma are librosa's own calls with ``S=`` the shared
spectrogram; centroid, bandwidth, rolloff, zero-crossing rate and tuning are exact
vectorised re-implementations of librosa's definitions (5× cheaper; ``tests/test_audio_fast.py``
checks each against librosa's function, ``tests/test_audio.py`` checks the whole against librosa
called separately on the waveform and against the Kaggle feature table on real GTZAN tracks).

Length policy: a clip is cut or padded to exactly ``duration_s`` (30 s → 661 500 samples at
22 050 Hz → 1292 frames). Longer clips keep their first ``duration_s``; shorter ones are looped
(wrap padding) so a short clip does not turn into mostly silence. The service cuts long files into
consecutive windows with :func:`windows` and pads the last one the same way.
"""

from __future__ import annotations

import functools
import io
import os
import struct
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

# numba (used by librosa) compiles on first use; a persistent cache saves 10-18 s per process.
os.environ.setdefault(
    "NUMBA_CACHE_DIR", str(Path(__file__).resolve().parents[2] / ".numba_cache")
)

import librosa  # noqa: E402
import soundfile as sf  # noqa: E402

AUDIO_SUFFIXES = (".wav", ".au", ".snd", ".flac", ".ogg", ".mp3", ".aiff", ".aif")

MFCC_MEAN = [f"mfcc{i}_mean" for i in range(1, 21)]
MFCC_VAR = [f"mfcc{i}_var" for i in range(1, 21)]
CHROMA_MEAN = [f"chroma{i}_mean" for i in range(1, 13)]
SPECTRAL = [
    "spectral_centroid_mean",
    "spectral_bandwidth_mean",
    "rolloff_mean",
    "zero_crossing_rate_mean",
]
#: The reference's 57 features, in a stable order (column names follow the Kaggle table).
FEATURE_NAMES: list[str] = MFCC_MEAN + MFCC_VAR + SPECTRAL + ["tempo"] + CHROMA_MEAN


class AudioError(ValueError):
    """A file that cannot be used as a track; the message names the file and what to do."""


@dataclass(frozen=True)
class ExtractionParams:
    """Every knob of the signal chain; built from ``params:extraction`` in ``conf/``."""

    sample_rate: int = 22050
    duration_s: float = 30.0
    n_fft: int = 2048
    hop_length: int = 512
    n_mels: int = 128
    n_mfcc: int = 20
    n_chroma: int = 12
    rolloff_percent: float = 0.85
    min_duration_s: float = 3.0
    estimate_tuning: bool = True

    @classmethod
    def from_dict(cls, params: Mapping[str, Any] | None) -> ExtractionParams:
        params = dict(params or {})
        unknown = sorted(set(params) - set(cls.__dataclass_fields__))
        if unknown:
            raise ValueError(
                f"params:extraction has unknown keys {unknown}; valid keys are "
                f"{sorted(cls.__dataclass_fields__)} (see conf/base/parameters_data_processing.yml)"
            )
        return cls(**params)

    @property
    def n_samples(self) -> int:
        return int(round(self.sample_rate * self.duration_s))

    @property
    def n_frames(self) -> int:
        # librosa centres frames: 1 + floor(n_samples / hop)
        return 1 + self.n_samples // self.hop_length

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


# --------------------------------------------------------------------------------------------
# Decoding
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AudioInfo:
    format: str
    sample_rate: int
    channels: int
    duration_s: float
    frames: int


def _declared_frames(path: Path, info: sf._SoundFileInfo) -> int | None:
    """Frames the header promises for WAV/AU files, to catch truncated downloads."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(1 << 16)
    except OSError:
        return None
    frame_bytes = None
    subtype_bytes = {"PCM_16": 2, "PCM_24": 3, "PCM_32": 4, "PCM_U8": 1, "PCM_S8": 1, "FLOAT": 4,
                     "DOUBLE": 8, "ULAW": 1, "ALAW": 1}
    if info.subtype in subtype_bytes:
        frame_bytes = subtype_bytes[info.subtype] * info.channels
    if not frame_bytes:
        return None
    if head[:4] == b"RIFF" and head[8:12] == b"WAVE":
        pos = 12
        while pos + 8 <= len(head):
            chunk, size = head[pos : pos + 4], struct.unpack("<I", head[pos + 4 : pos + 8])[0]
            if chunk == b"data":
                return size // frame_bytes if size != 0xFFFFFFFF else None
            pos += 8 + size + (size & 1)
        return None
    if head[:4] == b".snd":
        size = struct.unpack(">I", head[8:12])[0]
        return None if size == 0xFFFFFFFF else size // frame_bytes
    return None


def _audioread_decode(source) -> tuple[np.ndarray, int]:
    """(frames, channels) float32 and rate, decoded by audioread (ffmpeg, GStreamer, ...): the
    fallback ``librosa.load`` uses for what libsndfile cannot read, called directly so that
    soundfile is not tried a second time (librosa's "PySoundFile failed" warning) and librosa's
    deprecated ``__audioread_load`` is not used. audioread reads paths only."""
    import audioread

    if not isinstance(source, (str, os.PathLike)):
        raise AudioError("audioread decodes files, not in-memory data")
    with audioread.audio_open(str(source)) as f:
        sr, channels = int(f.samplerate), int(f.channels)
        pcm = b"".join(f)  # 16-bit little-endian, interleaved
    data = np.frombuffer(pcm, "<i2").astype(np.float32) / 32768.0  # librosa's buf_to_float
    if data.size == 0:
        raise AudioError(f"{source}: audioread decoded no samples")
    return data.reshape(-1, channels), sr


def probe(path: str | os.PathLike) -> AudioInfo:
    """Read a file's header and check it can be a track; raises :class:`AudioError` otherwise."""
    path = Path(path)
    if path.name.startswith("._"):
        raise AudioError(f"{path}: macOS resource-fork sidecar ('._' file), not audio; delete it")
    if not path.is_file():
        raise AudioError(f"{path}: no such file")
    if path.stat().st_size == 0:
        raise AudioError(f"{path}: empty file (0 bytes); re-download or remove it")
    try:
        info = sf.info(str(path))
    except Exception as exc:  # libsndfile cannot read it: try the audioread/ffmpeg backend
        try:
            data, sr = _audioread_decode(path)
        except Exception:
            raise AudioError(
                f"{path}: not a decodable audio file ({exc}); re-download it or remove it"
            ) from None
        channels, frames = data.shape[1], data.shape[0]
        return AudioInfo(path.suffix.lstrip(".").upper(), int(sr), channels, frames / sr, frames)
    if info.frames == 0:
        raise AudioError(f"{path}: audio header but no samples; re-download or remove it")
    declared = _declared_frames(path, info)
    if declared is not None and declared > info.frames:
        raise AudioError(
            f"{path}: truncated: its header declares {declared / info.samplerate:.2f} s but the "
            f"file holds {info.frames / info.samplerate:.2f} s; re-download it"
        )
    return AudioInfo(info.format, int(info.samplerate), int(info.channels), info.duration,
                     int(info.frames))


def load_audio(
    source: str | os.PathLike | bytes | BinaryIO, sr: int = 22050, name: str | None = None
) -> np.ndarray:
    """Decode any supported file (WAV, AU, FLAC, OGG, MP3, ...) to float32 mono at ``sr`` Hz.

    Stereo is averaged to mono and other rates are resampled with soxr (librosa's default), so
    the result equals ``librosa.load(path, sr=sr)``.
    """
    label = name or (str(source) if isinstance(source, (str, os.PathLike)) else "uploaded audio")
    if isinstance(source, bytes):
        source = io.BytesIO(source)
    try:
        data, native_sr = sf.read(source, dtype="float32", always_2d=True)
        y = data.mean(axis=1) if data.shape[1] > 1 else data[:, 0]
        y = np.ascontiguousarray(y, dtype=np.float32)
    except Exception as exc:
        # libsndfile lacks some codecs (older MP3 builds, AAC...): fall back to audioread/ffmpeg
        try:
            data, native_sr = _audioread_decode(source)
            y = np.ascontiguousarray(data.mean(axis=1), dtype=np.float32)
        except Exception:
            raise AudioError(
                f"{label}: cannot decode audio ({exc}). Supported: WAV, AU, FLAC, OGG, MP3."
            ) from None
    if y.size == 0:
        raise AudioError(f"{label}: the file decodes to no samples")
    if not np.all(np.isfinite(y)):
        raise AudioError(f"{label}: the decoded signal contains NaN or infinite samples")
    if native_sr != sr:
        y = librosa.resample(y, orig_sr=native_sr, target_sr=sr, res_type="soxr_hq")
    return y.astype(np.float32, copy=False)


def fix_length(y: np.ndarray, n_samples: int) -> np.ndarray:
    """Crop to the first ``n_samples`` or loop (wrap-pad) a shorter clip up to it."""
    if len(y) >= n_samples:
        return y[:n_samples]
    return np.pad(y, (0, n_samples - len(y)), mode="wrap")


def windows(y: np.ndarray, params: ExtractionParams) -> Iterator[np.ndarray]:
    """Consecutive ``duration_s`` windows covering a long signal (the last one wrap-padded)."""
    n = params.n_samples
    if len(y) < params.sample_rate * params.min_duration_s:
        raise AudioError(
            f"clip is {len(y) / params.sample_rate:.2f} s long; at least "
            f"{params.min_duration_s:g} s are needed"
        )
    starts = range(0, max(len(y) - n, 0) + 1, n)
    for start in starts:
        yield fix_length(y[start : start + n], n)
    tail = len(y) - (starts[-1] + n)
    # keep a last partial window only when it carries a meaningful amount of new audio
    if tail >= params.sample_rate * params.min_duration_s:
        yield fix_length(y[len(y) - tail :], n)


# --------------------------------------------------------------------------------------------
# Real-world degradations: the band-limited and compressed audio users send
# --------------------------------------------------------------------------------------------

#: ``full`` (unchanged) and the chains of :func:`degrade`
DEGRADATIONS = ("full", "resample_16k", "resample_8k", "mp3")


def degrade(y: np.ndarray, sr: int, kind: str) -> np.ndarray:
    """``y`` as it arrives after a real-world chain, back at ``sr`` Hz and the same length.

    * ``resample_16k`` / ``resample_8k``: recorded at 16 / 8 kHz (band limit 8 / 4 kHz), then
      resampled up exactly as :func:`load_audio` resamples an upload;
    * ``mp3``: encoded to MP3 by libsndfile (LAME, default VBR quality) and decoded again;
    * ``a>b``: chain ``a`` then chain ``b`` (``mp3>resample_8k``: an MP3 upload served by a
      model that band-limits its input to 4 kHz, see ``input_degradation``).

    Used to augment training data (``params:augmentation``), to band-limit a model's input and
    to measure robustness.
    """
    if ">" in kind:
        for part in kind.split(">"):
            y = degrade(y, sr, part.strip())
        return y
    if kind == "full":
        return y
    if kind.startswith("resample_") and kind.removeprefix("resample_").rstrip("k").isdigit():
        low = int(kind.removeprefix("resample_").rstrip("k")) * 1000
        down = librosa.resample(y, orig_sr=sr, target_sr=low, res_type="soxr_hq")
        back = librosa.resample(down, orig_sr=low, target_sr=sr, res_type="soxr_hq")
    elif kind == "mp3":
        buf = io.BytesIO()
        sf.write(buf, np.clip(y, -1, 1), sr, format="MP3")
        buf.seek(0)
        back, _ = sf.read(buf, dtype="float32")
        back = back.mean(axis=1) if back.ndim > 1 else back
    else:
        raise ValueError(f"unknown degradation '{kind}'; use one of {list(DEGRADATIONS)}")
    back = np.asarray(back, np.float32)
    if len(back) >= len(y):
        return back[: len(y)]
    return np.pad(back, (0, len(y) - len(back)))


# --------------------------------------------------------------------------------------------
# Analysis: one STFT shared by all features and the spectrogram
# --------------------------------------------------------------------------------------------


@dataclass
class TrackAnalysis:
    features: np.ndarray  # (57,) float64, in FEATURE_NAMES order
    mel_db: np.ndarray  # (n_mels, n_frames) float32 dB mel spectrogram


def mel_db_from_power(power: np.ndarray, params: ExtractionParams) -> np.ndarray:
    return librosa.power_to_db(_mel_power(power, params))


def normalise_spectrogram(mel_db: np.ndarray) -> np.ndarray:
    """Per-file min-max normalisation to [0, 1] (a silent file maps to zeros)."""
    lo, hi = float(mel_db.min()), float(mel_db.max())
    if hi - lo < 1e-6:
        return np.zeros_like(mel_db, dtype=np.float32)
    return ((mel_db - lo) / (hi - lo)).astype(np.float32)


# --------------------------------------------------------------------------------------------
# Fast exact re-implementations of the librosa features (``analyse`` uses them)
#
# librosa's feature functions each redo work the others already did (a fresh filter bank, a
# normalised copy of the spectrogram, a full-range peak search, a strided FFT). These helpers
# compute the SAME definitions from the shared spectrogram with vectorised numpy; each states
# how close it is to librosa's function, and tests/test_audio_fast.py checks it on real GTZAN
# tracks and on edge-case signals (silence, pure tone, noise, clipping).
# --------------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=8)
def _fft_frequencies(sr: int, n_fft: int) -> np.ndarray:
    return librosa.fft_frequencies(sr=sr, n_fft=n_fft)


@functools.lru_cache(maxsize=8)
def _mel_basis(sr: int, n_fft: int, n_mels: int) -> np.ndarray:
    # librosa.feature.melspectrogram rebuilds this filter bank on every call (~0.7 ms)
    return librosa.filters.mel(sr=sr, n_fft=n_fft, n_mels=n_mels)


def _mel_power(power: np.ndarray, params: ExtractionParams) -> np.ndarray:
    """``librosa.feature.melspectrogram(S=power)`` bit for bit (same einsum), cached filters."""
    basis = _mel_basis(params.sample_rate, params.n_fft, params.n_mels)
    return np.einsum("...ft,mf->...mt", power, basis, optimize=True)


def _centroid_bandwidth(magnitude: np.ndarray, freqs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-frame spectral centroid and bandwidth (p=2) from the first three spectral moments.

    librosa: ``centroid = Σ f·S/ΣS`` and ``bandwidth = sqrt(Σ (f-c)²·S/ΣS)``, a frame whose ΣS is
    below float32's ``tiny`` left unnormalised (so silence gives 0, not NaN). Computed here in
    float64 as ``(m2 - 2c·m1 + c²·m0)/ΣS`` from one (3 × n_bins) @ (n_bins × n_frames) product,
    instead of librosa's normalised copy and (n_bins × n_frames) deviation matrix. Agreement:
    relative 1e-6 (librosa rounds its normalised spectrogram to float32).
    """
    moments = np.stack([np.ones_like(freqs), freqs, freqs**2]) @ magnitude.astype(np.float64)
    m0, m1, m2 = moments
    length = np.where(m0 < np.finfo(magnitude.dtype).tiny, 1.0, m0)
    centroid = m1 / length
    variance = (m2 - 2.0 * centroid * m1 + centroid**2 * m0) / length
    return centroid, np.sqrt(np.maximum(variance, 0.0))


def _rolloff(magnitude: np.ndarray, freqs: np.ndarray, roll_percent: float) -> np.ndarray:
    """``librosa.feature.spectral_rolloff`` exactly: the lowest bin whose float32 cumulative
    energy reaches ``roll_percent`` of the frame's total (same cumsum, same comparison), without
    the NaN mask and ``nanmin`` over the whole spectrogram."""
    total = np.cumsum(magnitude, axis=-2)
    threshold = roll_percent * total[-1]
    # the cumsum of non-negative values never decreases: the first bin at or above the
    # threshold is the count of bins below it
    return freqs[np.count_nonzero(total < threshold, axis=-2)]


def _zero_crossing_rate(y: np.ndarray, frame_length: int, hop_length: int) -> np.ndarray:
    """``librosa.feature.zero_crossing_rate(y, frame_length, hop_length)`` exactly.

    librosa frames the edge-padded signal and tests every adjacent pair inside each frame
    (|x| <= 1e-10 counts as +0); frames overlap 4×, so each pair is tested 4 times. Here each
    pair is tested once and a cumulative sum counts the crossings per frame (integer counts,
    the same division by ``frame_length``).
    """
    half = frame_length // 2
    padded = np.pad(y, (half, half), mode="edge")
    tiny_amp = padded.dtype.type(1e-10)
    negative = np.signbit(np.where(np.abs(padded) <= tiny_amp, 0, padded))
    counts = np.concatenate([[0], np.cumsum(negative[1:] != negative[:-1], dtype=np.int64)])
    n_frames = 1 + (len(padded) - frame_length) // hop_length
    starts = np.arange(n_frames) * hop_length
    # pairs (s, s+1) ... (s+L-2, s+L-1) of the frame starting at s; librosa pads pair 0 False
    return (counts[starts + frame_length - 1] - counts[starts]) / frame_length


def _estimate_tuning(power: np.ndarray, sr: int, n_fft: int, bins_per_octave: int) -> float:
    """``librosa.estimate_tuning(S=power, sr, n_fft, bins_per_octave)`` exactly.

    ``piptrack`` interpolates and peak-picks every bin of the spectrogram, then keeps the peaks
    between fmin=150 Hz and fmax=4 kHz (~1/3 of the bins at 22 kHz). The stencils are local
    (one bin either side), so running librosa's own stencils on that band plus one bin of
    margin gives the same pitches and magnitudes; only the per-frame reference (10 % of the
    frame's maximum) needs every bin.
    """
    from librosa.core.pitch import _parabolic_interpolation

    freqs = _fft_frequencies(sr, n_fft)
    fmin, fmax = 150.0, min(4000.0, float(sr) / 2)
    band = np.flatnonzero((fmin <= freqs) & (freqs < fmax))
    if band.size == 0:
        return librosa.pitch_tuning(np.zeros(0), bins_per_octave=bins_per_octave)
    lo, hi = max(int(band[0]) - 1, 0), min(int(band[-1]) + 2, power.shape[-2])
    S = np.abs(power[lo:hi])
    ref_value = 0.1 * np.max(power, axis=-2)  # power >= 0: |power| is power
    avg = np.gradient(S, axis=-2)
    shift = _parabolic_interpolation(S, axis=-2)
    # the band-slice's edges are not spectrum edges: recompute their stencil values from the
    # full spectrogram's neighbours, or drop them (they are margin rows, outside the band)
    peaks = librosa.util.localmax(S * (S > ref_value), axis=-2)
    inner = slice(int(band[0]) - lo, int(band[-1]) - lo + 1)
    rows, cols = np.nonzero(peaks[inner])
    rows = rows + inner.start
    pitch = ((rows + lo + shift[rows, cols]) * float(sr) / n_fft).astype(power.dtype)
    mag = (S[rows, cols] + (0.5 * avg * shift)[rows, cols]).astype(power.dtype)
    positive = pitch > 0
    threshold = np.median(mag[positive]) if positive.any() else 0.0
    return librosa.pitch_tuning(pitch[(mag >= threshold) & positive], resolution=0.01,
                                bins_per_octave=bins_per_octave)


def analyse(y: np.ndarray, params: ExtractionParams, with_features: bool = True) -> TrackAnalysis:
    """The 57 features and the dB mel spectrogram of one fixed-length signal.

    The STFT, mel spectrogram, MFCCs, onset envelope and chroma are librosa's own calls on the
    shared spectrogram; centroid, bandwidth, rolloff, zero-crossing rate and tuning come from the
    exact vectorised helpers above (same definitions, ~2× less time per track).
    """
    sr, hop = params.sample_rate, params.hop_length
    stft = librosa.stft(y, n_fft=params.n_fft, hop_length=hop)
    magnitude = np.abs(stft)
    power = magnitude**2
    mel_db = librosa.power_to_db(_mel_power(power, params))
    if not with_features:
        return TrackAnalysis(np.empty(0), mel_db.astype(np.float32))

    freqs = _fft_frequencies(sr, params.n_fft)
    mfcc = librosa.feature.mfcc(S=mel_db, n_mfcc=params.n_mfcc)
    centroid, bandwidth = _centroid_bandwidth(magnitude, freqs)
    rolloff = _rolloff(magnitude, freqs, params.rolloff_percent)
    zcr = _zero_crossing_rate(y, params.n_fft, hop)
    onset_env = librosa.onset.onset_strength(S=mel_db, sr=sr, hop_length=hop)
    # librosa's autocorrelation tempogram (1293 FFTs of 720 points, ~10 ms) is already the
    # cheapest exact route: an own version along contiguous rows measured no faster
    tempo = float(librosa.feature.tempo(onset_envelope=onset_env, sr=sr, hop_length=hop)[0])
    tuning = (_estimate_tuning(power, sr, params.n_fft, params.n_chroma)
              if params.estimate_tuning else 0.0)
    chroma = librosa.feature.chroma_stft(
        S=power, sr=sr, n_fft=params.n_fft, n_chroma=params.n_chroma, tuning=tuning
    )
    features = np.concatenate(
        [
            mfcc.mean(axis=1),
            mfcc.var(axis=1),
            [centroid.mean(), bandwidth.mean(), rolloff.mean(), zcr.mean()],
            [tempo],
            chroma.mean(axis=1),
        ]
    ).astype(np.float64)
    return TrackAnalysis(features, mel_db.astype(np.float32))


def analyse_file(path: str | os.PathLike, params: ExtractionParams) -> TrackAnalysis:
    """Decode, fix the length and analyse one file: what the pipelines do for each track."""
    y = load_audio(path, sr=params.sample_rate)
    if len(y) < params.sample_rate * params.min_duration_s:
        raise AudioError(
            f"{path}: only {len(y) / params.sample_rate:.2f} s of audio; at least "
            f"{params.min_duration_s:g} s are needed (truncated file?)"
        )
    return analyse(fix_length(y, params.n_samples), params)


@functools.cache
def warm_up(params: ExtractionParams) -> None:
    """Compile (or load from ``NUMBA_CACHE_DIR``) librosa's numba code in this process.

    Called before worker processes start: two workers compiling into an empty cache at once can
    leave it corrupt (measured here: every later worker then segfaults in librosa's tuning
    estimate), while workers that find it filled only load it.
    """
    rng = np.random.default_rng(0)
    y = (0.1 * rng.standard_normal(int(params.sample_rate * 4))).astype(np.float32)
    analyse(y, params)
    rich_features(y, params, 1.0)


def _cache_entry(path: str, params: ExtractionParams) -> dict[str, np.ndarray]:
    """One track's extraction-cache entry (what ``extract_tracks`` stores), never raising.

    It lives here, not in the pipeline's node module, because joblib/Dask workers import the
    module of the function they run: this one costs them librosa alone, the node module also
    pandas and Kedro (~1 s of start-up per worker process).
    """
    from threadpoolctl import threadpool_limits

    try:
        # one BLAS thread, as in joblib and Dask workers: multi-threaded OpenBLAS sums in another
        # order (last-bit differences), and a track must give the same numbers wherever it runs
        with threadpool_limits(1):
            result = analyse_file(path, params)
    except AudioError as exc:
        return {"status": np.array("excluded"), "reason": np.array(str(exc))}
    except Exception as exc:  # a decoder crash on one file must not cost the others
        return {"status": np.array("excluded"), "reason": np.array(f"{path}: {exc!r}")}
    return {
        "status": np.array("ok"),
        "reason": np.array(""),
        "features": result.features,
        "mel": normalise_spectrogram(result.mel_db).astype(np.float16),
    }


def reference_features(y: np.ndarray, sr: int = 22050) -> tuple[np.ndarray, np.ndarray]:
    """The reference project's way: each librosa feature called on the waveform (own STFTs).

    Kept as the independent baseline for tests and ``benchmarks/``; never used by the pipelines.
    """
    mfcc = librosa.feature.mfcc(y=y, sr=sr, n_mfcc=20)
    feats = np.concatenate(
        [
            mfcc.mean(axis=1),
            mfcc.var(axis=1),
            [
                librosa.feature.spectral_centroid(y=y, sr=sr).mean(),
                librosa.feature.spectral_bandwidth(y=y, sr=sr).mean(),
                librosa.feature.spectral_rolloff(y=y, sr=sr).mean(),
                librosa.feature.zero_crossing_rate(y).mean(),
            ],
            [float(np.atleast_1d(librosa.feature.tempo(y=y, sr=sr))[0])],
            librosa.feature.chroma_stft(y=y, sr=sr).mean(axis=1),
        ]
    )
    mel = librosa.feature.melspectrogram(y=y, sr=sr, n_mels=128)
    return feats, librosa.power_to_db(mel, ref=np.max)


# --------------------------------------------------------------------------------------------
# Rich track features (issue 8): the reference's 57 plus variances, deltas, contrast, tonnetz and
# segment statistics, all from ONE STFT. The ``reference`` configuration keeps the 57 alone.
# --------------------------------------------------------------------------------------------

N_CONTRAST_BANDS = 7  # librosa's spectral_contrast: 6 bands + the residual


def rich_feature_names(params: ExtractionParams, segment_s: float = 3.0) -> list[str]:
    """Column names of :func:`rich_features`: ``FEATURE_NAMES`` first, then the extras."""
    m, c = params.n_mfcc, params.n_chroma
    names = list(FEATURE_NAMES)
    names += [f"mfcc{i}_delta_mean" for i in range(1, m + 1)]
    names += [f"mfcc{i}_delta_var" for i in range(1, m + 1)]
    names += [f"{s.removesuffix('_mean')}_var" for s in SPECTRAL]
    names += [f"contrast{i}_{s}" for s in ("mean", "var") for i in range(1, N_CONTRAST_BANDS + 1)]
    names += ["flatness_mean", "flatness_var", "rms_mean", "rms_var"]
    names += [f"chroma{i}_var" for i in range(1, c + 1)]
    names += [f"tonnetz{i}_{s}" for s in ("mean", "var") for i in range(1, 7)]
    if segment_s:
        # how much a track changes along its length: sd over segments of the segment means
        names += [f"mfcc{i}_segment_sd" for i in range(1, m + 1)]
        names += [f"{s.removesuffix('_mean')}_segment_sd" for s in SPECTRAL[:3]]
    return names


def rich_features(y: np.ndarray, params: ExtractionParams, segment_s: float = 3.0) -> np.ndarray:
    """The rich feature vector of one fixed-length signal, in :func:`rich_feature_names` order.

    The first 57 values are the reference features, computed with the same librosa calls as
    :func:`analyse` (``tests/evaluation`` checks they agree). ``segment_s`` (0 disables) sets the
    segment length for the segment statistics.
    """
    sr, hop, n_fft = params.sample_rate, params.hop_length, params.n_fft
    magnitude = np.abs(librosa.stft(y, n_fft=n_fft, hop_length=hop))
    power = magnitude**2
    mel_db = mel_db_from_power(power, params)
    mfcc = librosa.feature.mfcc(S=mel_db, n_mfcc=params.n_mfcc)
    centroid = librosa.feature.spectral_centroid(S=magnitude, sr=sr, n_fft=n_fft)[0]
    bandwidth = librosa.feature.spectral_bandwidth(S=magnitude, sr=sr, n_fft=n_fft)[0]
    rolloff = librosa.feature.spectral_rolloff(
        S=magnitude, sr=sr, n_fft=n_fft, roll_percent=params.rolloff_percent)[0]
    zcr = librosa.feature.zero_crossing_rate(y, frame_length=n_fft, hop_length=hop)[0]
    onset_env = librosa.onset.onset_strength(S=mel_db, sr=sr, hop_length=hop)
    tempo = librosa.feature.tempo(onset_envelope=onset_env, sr=sr, hop_length=hop)
    chroma = librosa.feature.chroma_stft(
        S=power, sr=sr, n_fft=n_fft, n_chroma=params.n_chroma,
        tuning=None if params.estimate_tuning else 0.0)
    delta = librosa.feature.delta(mfcc)
    contrast = librosa.feature.spectral_contrast(S=magnitude, sr=sr, n_fft=n_fft)
    flatness = librosa.feature.spectral_flatness(S=magnitude)[0]
    rms = librosa.feature.rms(S=magnitude, frame_length=n_fft)[0]
    tonnetz = librosa.feature.tonnetz(chroma=chroma, sr=sr)
    parts = [
        mfcc.mean(axis=1), mfcc.var(axis=1),
        [centroid.mean(), bandwidth.mean(), rolloff.mean(), zcr.mean()],
        [float(np.atleast_1d(tempo)[0])],
        chroma.mean(axis=1),
        delta.mean(axis=1), delta.var(axis=1),
        [centroid.var(), bandwidth.var(), rolloff.var(), zcr.var()],
        contrast.mean(axis=1), contrast.var(axis=1),
        [flatness.mean(), flatness.var(), rms.mean(), rms.var()],
        chroma.var(axis=1),
        tonnetz.mean(axis=1), tonnetz.var(axis=1),
    ]
    if segment_s:
        seg = max(1, int(round(segment_s * sr / hop)))
        n_seg = max(1, mfcc.shape[1] // seg)
        frames = n_seg * seg

        def seg_sd(x: np.ndarray) -> np.ndarray:
            x = np.atleast_2d(x)[:, :frames]
            return x.reshape(x.shape[0], n_seg, seg).mean(axis=2).std(axis=1)

        parts += [seg_sd(mfcc), seg_sd(np.stack([centroid, bandwidth, rolloff]))]
    return np.concatenate([np.asarray(p, np.float64).ravel() for p in parts])
