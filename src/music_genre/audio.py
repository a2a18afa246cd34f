"""The one audio/DSP module of the project: decoding, probing, fixing length, features, spectrograms.

Training pipelines and the prediction service both call these functions, so a track is analysed
the same way wherever it comes from. Nothing here knows about Kedro.

Feature recipe (the reference's 57 columns), all from ONE short-time Fourier transform per track:

* ``|STFT|`` (n_fft 2048, hop 512, Hann, centred) gives the spectral centroid, bandwidth and rolloff;
* ``|STFT|**2`` projected on 128 mel bands gives the dB mel spectrogram; its DCT gives the 20 MFCCs,
  its onset envelope gives the tempo, and min-max normalised it is the CNN's input;
* ``|STFT|**2`` on chroma filters (tuning estimated once from the same spectrogram) gives chroma;
* the zero-crossing rate comes from the waveform frames.

The MFCCs, onset envelope, deltas and tonnetz are librosa's own calls with ``S=`` the shared
spectrogram; the STFT magnitude, centroid, bandwidth, rolloff, zero-crossing rate, tuning,
chroma, spectral contrast, flatness and RMS are exact re-implementations of librosa's
definitions (compiled passes, no repeated copies or sorts; bit-identical except centroid and
bandwidth, summed in another order: ``tests/test_audio_fast.py`` checks each against librosa's
function, ``tests/test_audio.py`` checks the whole against librosa called separately on the
waveform and against the Kaggle feature table on real GTZAN tracks).

Length policy: a clip is cut or padded to exactly ``duration_s`` (30 s → 661 500 samples at
22 050 Hz → 1292 frames). Longer clips keep their first ``duration_s``; shorter ones are looped
(wrap padding) so a short clip does not turn into mostly silence. The service cuts long files into
consecutive windows with :func:`windows` and pads the last one the same way.
"""

from __future__ import annotations

import functools
import io
import json
import os
import re
import struct
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, field
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
                f"{label}: cannot decode audio ({decoder_message(exc)}). Supported: WAV, AU, "
                "FLAC, OGG, MP3; convert the file to one of these and send it again."
            ) from None
    if y.size == 0:
        raise AudioError(f"{label}: the file decodes to no samples")
    if not np.all(np.isfinite(y)):
        raise AudioError(f"{label}: the decoded signal contains NaN or infinite samples")
    if native_sr != sr:
        y = librosa.resample(y, orig_sr=native_sr, target_sr=sr, res_type="soxr_hq")
    return y.astype(np.float32, copy=False)


def decoder_message(exc: BaseException) -> str:
    """A decoder's error without Python reprs (``Error opening <_io.BytesIO object at 0x...>:
    Format not recognised.`` → ``format not recognised``): messages name the file themselves."""
    text = re.sub(r"<[^<>]*\bobject at 0x[0-9a-fA-F]+>", "", str(exc))
    text = re.sub(r"^\s*Error opening\s*(''|\"\")?\s*:?\s*", "", text).strip(" .:")
    return (text[:1].lower() + text[1:]) if text else exc.__class__.__name__


#: highest sample rate and channel count :func:`decode_bounded` accepts (beyond: not music)
MAX_DECODE_RATE = 384_000
MAX_DECODE_CHANNELS = 64


@dataclass
class DecodedAudio:
    """The beginning of a file, decoded as a stream (see :func:`decode_bounded`)."""

    y: np.ndarray  # mono float32 at ``sample_rate`` (native), at most the bound
    sample_rate: int
    #: the whole file's length (header), or the decoded length when the header does not say
    duration_s: float
    #: decoding stopped at the bound: the file holds more than ``y``
    truncated: bool
    _at: dict = field(default_factory=dict, repr=False)  # resampled copies (one per rate)

    @property
    def decoded_s(self) -> float:
        return len(self.y) / self.sample_rate

    def resampled(self, sr: int) -> np.ndarray:
        """``y`` at ``sr`` Hz, resampled exactly as :func:`load_audio` resamples (once per
        rate: the ensemble's members and the spectrogram share it)."""
        if sr == self.sample_rate:
            return self.y
        if sr not in self._at:
            self._at[sr] = librosa.resample(self.y, orig_sr=self.sample_rate, target_sr=sr,
                                            res_type="soxr_hq").astype(np.float32, copy=False)
        return self._at[sr]


def decode_bounded(
    source: str | os.PathLike | bytes | BinaryIO, max_seconds: float | None,
    name: str | None = None, max_samples: int | None = None, block_s: float = 5.0,
) -> DecodedAudio:
    """Decode at most the first ``max_seconds`` (and ``max_samples`` samples, all channels
    counted) of a file, block by block: memory and time are O(bound), not O(file).

    Each block is averaged to mono as it is read, so the kept signal equals the beginning of
    :func:`load_audio`'s before resampling (resample with :meth:`DecodedAudio.resampled`).
    libsndfile decodes WAV, AU, FLAC, OGG and MP3 (libsndfile ≥ 1.1) as a stream; what it cannot
    open goes to librosa/audioread with ``duration=`` (also bounded).
    """
    label = name or (str(source) if isinstance(source, (str, os.PathLike)) else "uploaded audio")
    if isinstance(source, bytes):
        source = io.BytesIO(source)
    try:
        handle = sf.SoundFile(source)
    except Exception as exc:
        return _decode_bounded_fallback(source, max_seconds, label, exc)
    with handle:
        sr, channels = int(handle.samplerate), int(handle.channels)
        if not 0 < sr <= MAX_DECODE_RATE or not 0 < channels <= MAX_DECODE_CHANNELS:
            raise AudioError(f"{label}: {channels} channel(s) at {sr} Hz is not music audio this "
                             f"service reads (at most {MAX_DECODE_CHANNELS} channels, "
                             f"{MAX_DECODE_RATE} Hz); convert it to stereo 44.1 kHz")
        limit = np.iinfo(np.int64).max if max_seconds is None else int(max_seconds * sr)
        if max_samples is not None:
            limit = min(limit, max(1, int(max_samples) // channels))
        block = max(1024, int(block_s * sr))
        parts, kept = [], 0
        try:
            while kept < limit:
                data = handle.read(min(block, limit - kept), dtype="float32", always_2d=True)
                if len(data) == 0:
                    break
                parts.append(data.mean(axis=1) if channels > 1 else data[:, 0].copy())
                kept += len(data)
                del data
            more = kept >= limit and len(handle.read(1, dtype="float32")) > 0
        except Exception as exc:
            raise AudioError(f"{label}: the audio stream is damaged after {kept / sr:.1f} s "
                             f"({decoder_message(exc)}); re-encode or re-download it") from None
        declared = handle.frames if 0 < handle.frames < 2**62 else None
    y = np.concatenate(parts) if parts else np.zeros(0, np.float32)
    del parts
    _check_decoded(y, label)
    duration = max(declared or 0, len(y) + int(more)) / sr
    return DecodedAudio(np.ascontiguousarray(y, dtype=np.float32), sr, duration, bool(more))


def _decode_bounded_fallback(source, max_seconds, label: str, exc: Exception) -> DecodedAudio:
    # libsndfile cannot open it: librosa's audioread path, asked for at most max_seconds
    if hasattr(source, "seek"):
        source.seek(0)
    try:
        y, sr = librosa.load(source, sr=None, mono=True, duration=max_seconds)
    except Exception:
        raise AudioError(
            f"{label}: cannot decode audio ({decoder_message(exc)}). Supported: WAV, AU, FLAC, "
            "OGG, MP3; convert the file to one of these and send it again."
        ) from None
    y = np.asarray(y, dtype=np.float32)
    _check_decoded(y, label)
    truncated = max_seconds is not None and len(y) >= int(max_seconds * sr) - 1
    return DecodedAudio(y, int(sr), len(y) / sr, truncated)


def _check_decoded(y: np.ndarray, label: str) -> None:
    if y.size == 0:
        raise AudioError(f"{label}: the file decodes to no samples; check that it plays")
    if not np.all(np.isfinite(y)):
        raise AudioError(f"{label}: the decoded signal contains NaN or infinite samples; "
                         "re-encode it")


def level_dbfs(y: np.ndarray) -> float:
    """RMS level of a signal in dB relative to full scale (−inf for digital silence)."""
    if y.size == 0:
        return float("-inf")
    rms = float(np.sqrt(np.mean(np.square(y, dtype=np.float64))))
    return 20.0 * np.log10(rms) if rms > 0 else float("-inf")


def band_limit_hz(y: np.ndarray, sr: int, n_fft: int = 4096, max_seconds: float = 60.0,
                  drop_db: float = 70.0) -> float:
    """Where the spectrum ends: the highest frequency whose mean power is within ``drop_db`` of
    the loudest band (smoothed over ~1/3 octave... of bins). A full-band 44.1 kHz file gives
    ~20 kHz, an MP3 16-19 kHz, phone audio resampled up 4 kHz or 8 kHz."""
    y = y[: int(max_seconds * sr)]
    if len(y) < n_fft:
        return 0.0
    hop = n_fft // 2
    frames = 1 + (len(y) - n_fft) // hop
    window = np.hanning(n_fft).astype(np.float32)
    power = np.zeros(n_fft // 2 + 1)
    for start in range(0, frames, 256):  # bounded working set
        idx = np.arange(start, min(frames, start + 256))[:, None] * hop + np.arange(n_fft)
        spec = np.fft.rfft(y[idx] * window, axis=1)
        power += np.sum(np.abs(spec) ** 2, axis=0)
    smooth = np.convolve(power, np.ones(9) / 9, mode="same")
    db = 10 * np.log10(smooth + 1e-30)
    above = np.nonzero(db >= db.max() - drop_db)[0]
    return float(above[-1] * sr / n_fft) if above.size else 0.0


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
    rich: np.ndarray | None = None  # rich_feature_names order, when asked for


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


def _spectral_shape(magnitude: np.ndarray, freqs: np.ndarray,
                    roll_percent: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(centroid, bandwidth p=2, rolloff) per frame from ONE compiled pass over the frame-major
    spectrogram (librosa's STFT is Fortran-ordered: each frame's bins are contiguous).

    Centroid and bandwidth: librosa's ``Σ f·S/ΣS`` and ``sqrt(Σ (f-c)²·S/ΣS)``, a frame whose ΣS
    is below float32's ``tiny`` left unnormalised (silence gives 0, not NaN), computed in float64
    from the first three spectral moments as ``(m2 - 2c·m1 + c²·m0)/ΣS`` instead of librosa's
    normalised copy and (n_bins × n_frames) deviation matrix; agreement relative 1e-6 (librosa
    rounds its normalised spectrogram to float32). Rolloff: ``librosa.feature.spectral_rolloff``
    exactly — the lowest bin whose cumulative energy (summed bin by bin in the spectrogram's
    dtype, as ``np.cumsum`` does) reaches ``roll_percent`` of the frame's total; the cumulative
    sum never decreases, so that bin is the count of bins below it (no cumulative array, NaN
    mask or ``nanmin``). Checked against librosa in tests/test_audio_fast.py."""
    roll = np.asarray([roll_percent], dtype=magnitude.dtype)
    moments, below = _numba_kernels()["shape"](np.ascontiguousarray(magnitude.T),
                                               np.asarray(freqs, np.float64), roll)
    centroid, bandwidth = _centroid_bandwidth_from_moments(*moments, magnitude.dtype)
    return centroid, bandwidth, freqs[below]


def _centroid_bandwidth_from_moments(m0, m1, m2, dtype) -> tuple[np.ndarray, np.ndarray]:
    length = np.where(m0 < np.finfo(dtype).tiny, 1.0, m0)
    centroid = m1 / length
    variance = (m2 - 2.0 * centroid * m1 + centroid**2 * m0) / length
    return centroid, np.sqrt(np.maximum(variance, 0.0))


@functools.cache
def _numba_kernels():
    import numba

    @numba.njit(cache=True, nogil=True)
    def shape(frames, freqs, roll):  # pragma: no cover - compiled
        # per frame, in ONE read of it: the float64 moments Σx, Σf·x, Σf²·x, and the rolloff's
        # total and running sum in the spectrogram's dtype, bin by bin as np.cumsum adds (an
        # int 0 would widen: `roll[0] - roll[0]` is 0 in that dtype); the independent sums
        # overlap in the CPU
        n_frames, n_bins = frames.shape
        out = np.zeros((3, n_frames))
        count = np.zeros(n_frames, np.int64)
        for t in range(n_frames):
            total = roll[0] - roll[0]
            m0 = m1 = m2 = 0.0
            for i in range(n_bins):
                v = frames[t, i]
                total += v
                x = np.float64(v)
                fx = freqs[i] * x
                m0 += x
                m1 += fx
                m2 += freqs[i] * fx
            out[0, t], out[1, t], out[2, t] = m0, m1, m2
            threshold = roll[0] * total
            running = roll[0] - roll[0]
            for i in range(n_bins):
                running += frames[t, i]
                if running < threshold:
                    count[t] += 1
                else:
                    break
        return out, count

    @numba.njit(cache=True, nogil=True)
    def band_peaks(frames, lo, hi, fraction):  # pragma: no cover - compiled
        # (row, frame) of every local maximum of rows lo+1 .. hi-2 of S * (S > fraction * the
        # frame's maximum): np.max, the float32 product and the comparisons of
        # _estimate_tuning's numpy version, one frame at a time
        n_frames, n_bins = frames.shape
        rows = np.empty(n_frames * (hi - lo), np.int64)
        cols = np.empty(n_frames * (hi - lo), np.int64)
        n = 0
        for t in range(n_frames):
            top = frames[t, 0]
            for i in range(1, n_bins):
                if frames[t, i] > top:
                    top = frames[t, i]
            ref = fraction[0] * top
            for r in range(lo + 1, hi - 1):
                centre = frames[t, r] if frames[t, r] > ref else 0.0 * frames[t, r]
                if centre == 0:
                    continue  # 0 > a masked neighbour (>= 0) never holds
                before = frames[t, r - 1] if frames[t, r - 1] > ref else 0.0 * frames[t, r]
                after = frames[t, r + 1] if frames[t, r + 1] > ref else 0.0 * frames[t, r]
                if centre > before and centre >= after:
                    rows[n] = r
                    cols[n] = t
                    n += 1
        return rows[:n], cols[:n]

    @numba.njit(cache=True, nogil=True)
    def zcr(y, frame_length, hop_length, tiny):  # pragma: no cover - compiled
        half = frame_length // 2
        n = len(y)
        n_padded = n + 2 * half
        # counts[j]: crossings among the pairs (0, 1) ... (j-1, j) of the edge-padded signal
        counts = np.zeros(n_padded, np.int64)
        previous = y[0] < -tiny[0]
        c = 0
        for j in range(1, n_padded):
            k = min(max(j - half, 0), n - 1)
            current = y[k] < -tiny[0]
            if current != previous:
                c += 1
            counts[j] = c
            previous = current
        n_frames = 1 + (n_padded - frame_length) // hop_length
        out = np.empty(n_frames)
        for t in range(n_frames):
            # pairs (s, s+1) ... (s+L-2, s+L-1) of the frame starting at s (librosa pads the
            # first pair of each frame False)
            s = t * hop_length
            out[t] = (counts[s + frame_length - 1] - counts[s]) / frame_length
        return out

    @numba.njit(cache=True, nogil=True)
    def band_extremes(frames, starts, stops, counts):  # pragma: no cover - compiled
        # per frame and band: the mean of the `count` smallest and of the `count` largest
        # values, each summed in ascending order in the spectrogram's dtype (numpy's mean over
        # the rows of librosa's sorted, C-ordered sub-band) and divided as np.mean divides
        # (float32 sum / int64 count in float64, rounded to float32). Music spectra fall with
        # frequency: the k largest are looked for from the band's bottom up and the k smallest
        # from its top down, so that most bins are rejected by one comparison.
        n_frames, n_bands = frames.shape[0], len(starts)
        valley = np.empty((n_bands, n_frames))
        peak = np.empty((n_bands, n_frames))
        low = np.empty(counts.max(), frames.dtype)
        high = np.empty(counts.max(), frames.dtype)
        for t in range(n_frames):
            row = frames[t]
            for b in range(n_bands):
                k, lo, hi = counts[b], starts[b], stops[b]
                for j in range(k):  # the first k, sorted ascending
                    x = row[lo + j]
                    m = j
                    while m > 0 and high[m - 1] > x:
                        high[m] = high[m - 1]
                        m -= 1
                    high[m] = x
                floor = high[0]
                for i in range(lo + k, hi):
                    x = row[i]
                    if x > floor:  # drop the smallest of the k largest
                        m = 0
                        while m < k - 1 and high[m + 1] < x:
                            high[m] = high[m + 1]
                            m += 1
                        high[m] = x
                        floor = high[0]
                for j in range(k):  # the last k, sorted ascending
                    x = row[hi - 1 - j]
                    m = j
                    while m > 0 and low[m - 1] > x:
                        low[m] = low[m - 1]
                        m -= 1
                    low[m] = x
                ceiling = low[k - 1]
                for i in range(hi - 1 - k, lo - 1, -1):
                    x = row[i]
                    if x < ceiling:  # drop the largest of the k smallest
                        m = k - 1
                        while m > 0 and low[m - 1] > x:
                            low[m] = low[m - 1]
                            m -= 1
                        low[m] = x
                        ceiling = low[k - 1]
                total = low[0]
                for j in range(1, k):
                    total += low[j]
                valley[b, t] = np.float32(np.float64(total) / k)
                total = high[0]
                for j in range(1, k):
                    total += high[j]
                peak[b, t] = np.float32(np.float64(total) / k)
        return valley, peak

    return {"zcr": zcr,
            "band_extremes": band_extremes, "shape": shape, "band_peaks": band_peaks}


@functools.lru_cache(maxsize=8)
def _contrast_bands(sr: int, n_fft: int, n_bands: int = 6, fmin: float = 200.0,
                    quantile: float = 0.02) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(first bin, stop bin, count) of each of librosa's spectral-contrast sub-bands, built
    with librosa's own rules (octave bands from ``fmin``, one bin below each band, the last
    band up to Nyquist, the top bin of the others dropped, ``rint(quantile × band size)``)."""
    freq = _fft_frequencies(sr, n_fft)
    octa = np.zeros(n_bands + 2)
    octa[1:] = fmin * (2.0 ** np.arange(0, n_bands + 1))
    starts, stops, counts = [], [], []
    for k, (f_low, f_high) in enumerate(zip(octa[:-1], octa[1:])):
        current_band = np.logical_and(freq >= f_low, freq <= f_high)
        idx = np.flatnonzero(current_band)
        if k > 0:
            current_band[idx[0] - 1] = True
        if k == n_bands:
            current_band[idx[-1] + 1:] = True
        rows = np.flatnonzero(current_band)
        if k < n_bands:
            rows = rows[:-1]
        assert np.all(np.diff(rows) == 1)  # the bins are sorted: each band is one run
        starts.append(rows[0])
        stops.append(rows[-1] + 1)
        counts.append(int(np.maximum(np.rint(quantile * np.sum(current_band)), 1)))
    return (np.array(starts, np.int64), np.array(stops, np.int64), np.array(counts, np.int64))


def _spectral_contrast(magnitude: np.ndarray, sr: int, n_fft: int) -> np.ndarray:
    """``librosa.feature.spectral_contrast(S=magnitude, sr=sr, n_fft=n_fft)`` bit for bit.

    librosa copies each sub-band and sorts it whole along frequency to average its lowest and
    highest 2 % (9 of the 431 bins of the top band at 22 kHz). Here one compiled pass per
    frame keeps the k smallest and k largest values of each band in order (insertion into
    k-long buffers: most bins are rejected after one comparison) and averages them in the
    same order and precision as numpy's mean over the sorted rows. No copy, no sort: 1.7×
    less time. (``np.partition`` + sorting the selected rows is also exact but 1.6× SLOWER
    than librosa's sort: numpy's sort is SIMD, its introselect is not.)
    tests/test_audio_fast.py checks equality with librosa's function.
    """
    starts, stops, counts = _contrast_bands(sr, n_fft)
    if stops[-1] != magnitude.shape[0] or np.any(2 * counts > stops - starts):
        return librosa.feature.spectral_contrast(S=magnitude, sr=sr, n_fft=n_fft)
    valley, peak = _numba_kernels()["band_extremes"](np.ascontiguousarray(magnitude.T),
                                                     starts, stops, counts)
    return librosa.power_to_db(peak) - librosa.power_to_db(valley)


@functools.lru_cache(maxsize=256)
def _chroma_basis(sr: int, n_fft: int, n_chroma: int, tuning: float) -> np.ndarray:
    # per track only through the tuning, which librosa rounds to 1/100 of a bin: ~100 values
    basis = librosa.filters.chroma(sr=sr, n_fft=n_fft, tuning=tuning, n_chroma=n_chroma)
    basis.flags.writeable = False  # shared between tracks
    return basis


def _chroma_stft(power: np.ndarray, sr: int, n_chroma: int, tuning: float) -> np.ndarray:
    """``librosa.feature.chroma_stft(S=power, sr=sr, n_chroma=n_chroma, tuning=tuning)`` bit
    for bit (the same einsum and normalisation) with the filter bank built once per tuning
    value instead of once per track (~0.9 ms)."""
    n_fft = 2 * (power.shape[-2] - 1)  # as librosa infers it from S
    raw = np.einsum("cf,...ft->...ct", _chroma_basis(sr, n_fft, n_chroma, float(tuning)),
                    power, optimize=True)
    return librosa.util.normalize(raw, norm=np.inf, axis=-2)


def _spectral_flatness(power: np.ndarray, amin: float = 1e-10) -> np.ndarray:
    """``librosa.feature.spectral_flatness(S=magnitude)[0]`` bit for bit from the power
    spectrogram already computed (librosa squares the magnitude again: ``S**2.0`` is the same
    ``np.square``); same layout, so the same reductions."""
    thresholded = np.maximum(amin, power)
    gmean = np.exp(np.mean(np.log(thresholded), axis=-2, keepdims=True))
    amean = np.mean(thresholded, axis=-2, keepdims=True)
    return (gmean / amean)[0]


def _rms_consuming_power(power: np.ndarray, frame_length: int) -> np.ndarray:
    """``librosa.feature.rms(S=magnitude, frame_length=frame_length)[0]`` bit for bit, using
    (and OVERWRITING: its first and last rows are halved) the power spectrogram, which librosa
    would recompute as a copy (``abs2(S)``). Call it after every other reader of ``power``."""
    if power.shape[-2] != frame_length // 2 + 1:
        raise ValueError(f"power has {power.shape[-2]} bins; frame_length {frame_length} "
                         f"needs {frame_length // 2 + 1}")
    power[..., 0, :] *= 0.5
    if frame_length % 2 == 0:
        power[..., -1, :] *= 0.5
    return np.sqrt(2 * np.sum(power, axis=-2, keepdims=True) / frame_length**2)[0]


def _zero_crossing_rate(y: np.ndarray, frame_length: int, hop_length: int) -> np.ndarray:
    """``librosa.feature.zero_crossing_rate(y, frame_length, hop_length)`` exactly.

    librosa frames the edge-padded signal and tests every adjacent pair inside each frame
    (|x| <= 1e-10 counts as +0); frames overlap 4×, so each pair is tested 4 times. Here each
    pair is tested once and a cumulative sum counts the crossings per frame (integer counts,
    the same division by ``frame_length``).
    """
    # |x| <= 1e-10 (in y's dtype) counts as +0, so "negative" is x < -1e-10; the signal is
    # edge-padded by frame_length // 2 on both sides (librosa's centring)
    tiny_amp = np.asarray([1e-10], dtype=y.dtype)
    return _numba_kernels()["zcr"](np.ascontiguousarray(y), int(frame_length), int(hop_length),
                                   tiny_amp)


def _estimate_tuning(power: np.ndarray, sr: int, n_fft: int, bins_per_octave: int) -> float:
    """``librosa.estimate_tuning(S=power, sr, n_fft, bins_per_octave)`` exactly.

    ``piptrack`` interpolates and peak-picks every bin of the spectrogram, then keeps the peaks
    between fmin=150 Hz and fmax=4 kHz (~1/3 of the bins at 22 kHz). The stencils are local
    (one bin either side), so evaluating them on that band plus one bin of margin gives the same
    pitches and magnitudes, and the interpolation is needed at the local maxima only; only the
    per-frame reference (10 % of the frame's maximum) needs every bin.
    """
    freqs = _fft_frequencies(sr, n_fft)
    fmin, fmax = 150.0, min(4000.0, float(sr) / 2)
    band = np.flatnonzero((fmin <= freqs) & (freqs < fmax))
    if band.size == 0:
        return librosa.pitch_tuning(np.zeros(0), bins_per_octave=bins_per_octave)
    lo, hi = int(band[0]) - 1, int(band[-1]) + 2
    # librosa's stencils (localmax, parabolic shift, gradient) evaluated only where needed:
    # local maxima of the band rows of ``S * (S > 10 % of the frame's maximum)`` (one compiled
    # pass per frame over the frame-major spectrogram: the same comparisons, in float32), then
    # the shift and slope at those peaks alone, with the same arithmetic in the same precision
    # (numba's stencil computes the shift in float64 from float32 sums and rounds it to
    # float32; np.gradient halves in the array's dtype). freqs[0] = 0 < fmin and fmax <= sr/2
    # (strict <): the band never touches a spectrum edge, so every band row has both
    # neighbours. |power| is power (>= 0). The peaks come frame by frame, not row by row: the
    # median and histogram below do not depend on the order.
    rows, cols = _numba_kernels()["band_peaks"](np.ascontiguousarray(power.T), lo, hi,
                                                np.asarray([0.1], power.dtype))
    up, mid, down = power[rows + 1, cols], power[rows, cols], power[rows - 1, cols]
    a = (up + down).astype(np.float64) - 2 * mid.astype(np.float64)
    b = (up - down).astype(np.float64) / 2
    with np.errstate(divide="ignore", invalid="ignore"):
        shift = np.where(np.abs(b) >= np.abs(a), 0.0, -b / a).astype(power.dtype)
    slope = (up - down) / 2.0  # np.gradient's interior formula, in S's dtype
    pitch = ((rows + shift) * float(sr) / n_fft).astype(power.dtype)
    mag = (mid + (0.5 * slope * shift)).astype(power.dtype)
    positive = pitch > 0
    threshold = np.median(mag[positive]) if positive.any() else 0.0
    return librosa.pitch_tuning(pitch[(mag >= threshold) & positive], resolution=0.01,
                                bins_per_octave=bins_per_octave)


def _tempo(onset_env: np.ndarray, sr: int, hop_length: int) -> float:
    """``librosa.feature.tempo(onset_envelope=onset_env, sr, hop_length)`` (its defaults: 8 s
    autocorrelation windows, mean over time, log-normal prior around 120 BPM).

    librosa autocorrelates every frame's windowed onset envelope (one FFT and one inverse FFT per
    frame), normalises each by its lag-0 value, then averages over frames. The inverse FFT is
    linear, so the average of the normalised autocorrelations is ONE inverse FFT of the average
    normalised power spectrum: half the FFTs. The tempogram then differs from librosa's in the
    last bits only; the tempo (the arg-max bin) is checked equal on every real track.
    """
    import scipy.fft

    win_length = int(librosa.time_to_frames(8.0, sr=sr, hop_length=hop_length).item())
    window = librosa.filters.get_window("hann", win_length, fftbins=True)
    n = onset_env.shape[-1]
    padded = np.pad(onset_env, win_length // 2, mode="linear_ramp", end_values=[0, 0])
    frames = np.lib.stride_tricks.sliding_window_view(padded, win_length)[:n] * window
    n_pad = scipy.fft.next_fast_len(2 * win_length - 1, real=True)
    power = librosa.util.abs2(np.fft.rfft(frames, n=n_pad, axis=-1))
    lag0 = np.einsum("ij,ij->i", frames, frames)  # each frame's autocorrelation at lag 0 (max)
    lag0[lag0 < np.finfo(lag0.dtype).tiny] = 1.0  # librosa.util.normalize leaves these as is
    mean_ac = np.fft.irfft((power / lag0[:, None]).mean(axis=0), n=n_pad)[:win_length]
    return float(librosa.feature.tempo(tg=mean_ac[:, None], sr=sr, hop_length=hop_length)[0])


@dataclass
class _Spectra:
    """One STFT of a fixed-length signal and everything every output reads from it."""

    y: np.ndarray
    magnitude: np.ndarray  # |STFT|, float32 (n_fft/2+1, n_frames)
    power: np.ndarray  # |STFT|**2
    mel_db: np.ndarray  # dB mel spectrogram (n_mels, n_frames)


def _spectra(y: np.ndarray, params: ExtractionParams) -> _Spectra:
    magnitude, power = _stft_magnitude(y, params.n_fft, params.hop_length, with_power=True)
    mel_db = librosa.power_to_db(_mel_power(power, params))
    return _Spectra(y, magnitude, power, mel_db)


@functools.lru_cache(maxsize=8)
def _stft_window(n_fft: int) -> np.ndarray:
    return librosa.filters.get_window("hann", n_fft, fftbins=True)


#: frames per block of :func:`_stft_magnitude` (64 × 2048 float64 = 1 MiB: stays in cache)
STFT_BLOCK_FRAMES = 64


def _stft_magnitude(y: np.ndarray, n_fft: int, hop_length: int, with_power: bool = False):
    """``np.abs(librosa.stft(y, n_fft=n_fft, hop_length=hop_length))`` bit for bit, 1.3× faster.

    The same arithmetic as librosa (centred constant padding, the float64 Hann window times
    the float32 frames, a float64 real FFT by librosa's FFT library, rounded to complex64, then
    ``np.abs``), but each block of frames is transformed along its contiguous axis (librosa
    transforms its (n_fft, frames) view along the strided axis, in small blocks) and written
    straight into the magnitude (no complex64 spectrogram). Returned Fortran-ordered, (n_bins,
    n_frames), as librosa's is, so every later reduction runs in the same order.
    tests/test_audio_fast.py checks equality with librosa's STFT.
    """
    if len(y) <= n_fft // 2 or y.ndim != 1:  # librosa's head/tail special cases: use it
        return np.abs(librosa.stft(y, n_fft=n_fft, hop_length=hop_length))
    fft = librosa.get_fftlib()
    window = _stft_window(n_fft)
    padded = np.pad(y, n_fft // 2)
    frames = np.lib.stride_tricks.sliding_window_view(padded, n_fft)[::hop_length]
    n_frames = frames.shape[0]
    complex_dtype = librosa.util.dtype_r2c(y.dtype)  # complex64 for float32 audio
    magnitude = np.empty((n_frames, n_fft // 2 + 1), librosa.util.dtype_c2r(complex_dtype))
    power = np.empty_like(magnitude) if with_power else None
    block = np.empty((STFT_BLOCK_FRAMES, n_fft))
    for start in range(0, n_frames, STFT_BLOCK_FRAMES):
        stop = min(n_frames, start + STFT_BLOCK_FRAMES)
        windowed = np.multiply(frames[start:stop], window, out=block[: stop - start])
        spectrum = fft.rfft(windowed, axis=-1).astype(complex_dtype, copy=False)
        np.abs(spectrum, out=magnitude[start:stop])
        if with_power:
            np.square(magnitude[start:stop], out=power[start:stop])  # = magnitude**2
    return (magnitude.T, power.T) if with_power else magnitude.T


@dataclass
class _Frames:
    """Per-frame features of one track (the 57 reference features are their means)."""

    mfcc: np.ndarray
    centroid: np.ndarray
    bandwidth: np.ndarray
    rolloff: np.ndarray
    zcr: np.ndarray
    tempo: float
    chroma: np.ndarray


def _frame_features(spec: _Spectra, params: ExtractionParams) -> _Frames:
    """The per-frame features behind the reference's 57, all from the one shared STFT.

    MFCCs and the onset envelope are librosa's own calls with ``S=`` the shared spectrogram;
    the tempo, chroma, centroid, bandwidth, rolloff, zero-crossing rate and tuning come from the
    exact helpers above (same definitions, several times less time per track).
    """
    sr, hop = params.sample_rate, params.hop_length
    freqs = _fft_frequencies(sr, params.n_fft)
    mfcc = librosa.feature.mfcc(S=spec.mel_db, n_mfcc=params.n_mfcc)
    centroid, bandwidth, rolloff = _spectral_shape(spec.magnitude, freqs, params.rolloff_percent)
    zcr = _zero_crossing_rate(spec.y, params.n_fft, hop)
    onset_env = librosa.onset.onset_strength(S=spec.mel_db, sr=sr, hop_length=hop)
    tempo = _tempo(onset_env, sr, hop)
    tuning = (_estimate_tuning(spec.power, sr, params.n_fft, params.n_chroma)
              if params.estimate_tuning else 0.0)
    chroma = _chroma_stft(spec.power, sr, params.n_chroma, tuning)
    return _Frames(mfcc, centroid, bandwidth, rolloff, zcr, tempo, chroma)


def _reference57(fr: _Frames) -> np.ndarray:
    """The reference's 57 features (``FEATURE_NAMES`` order) from the per-frame features."""
    return np.concatenate(
        [
            fr.mfcc.mean(axis=1),
            fr.mfcc.var(axis=1),
            [fr.centroid.mean(), fr.bandwidth.mean(), fr.rolloff.mean(), fr.zcr.mean()],
            [fr.tempo],
            fr.chroma.mean(axis=1),
        ]
    ).astype(np.float64)


def _rich_extras(spec: _Spectra, fr: _Frames, params: ExtractionParams,
                 segment_s: float) -> np.ndarray:
    """The rich features after the first 57 (:func:`rich_feature_names` order)."""
    sr, n_fft = params.sample_rate, params.n_fft
    delta = librosa.feature.delta(fr.mfcc)
    contrast = _spectral_contrast(spec.magnitude, sr, n_fft)
    flatness = _spectral_flatness(spec.power)
    tonnetz = librosa.feature.tonnetz(chroma=fr.chroma, sr=sr)
    # last reader of the power spectrogram: the RMS halves its edge rows in place
    rms = _rms_consuming_power(spec.power, n_fft)
    spec.power = None
    parts = [
        delta.mean(axis=1), delta.var(axis=1),
        [fr.centroid.var(), fr.bandwidth.var(), fr.rolloff.var(), fr.zcr.var()],
        contrast.mean(axis=1), contrast.var(axis=1),
        [flatness.mean(), flatness.var(), rms.mean(), rms.var()],
        fr.chroma.var(axis=1),
        tonnetz.mean(axis=1), tonnetz.var(axis=1),
    ]
    if segment_s:
        seg = max(1, int(round(segment_s * sr / params.hop_length)))
        n_seg = max(1, fr.mfcc.shape[1] // seg)
        frames = n_seg * seg

        def seg_sd(x: np.ndarray) -> np.ndarray:
            x = np.atleast_2d(x)[:, :frames]
            return x.reshape(x.shape[0], n_seg, seg).mean(axis=2).std(axis=1)

        parts += [seg_sd(fr.mfcc), seg_sd(np.stack([fr.centroid, fr.bandwidth, fr.rolloff]))]
    return np.concatenate([np.asarray(p, np.float64).ravel() for p in parts])


def analyse(y: np.ndarray, params: ExtractionParams, with_features: bool = True,
            rich_segment_s: float | None = None) -> TrackAnalysis:
    """The 57 features and the dB mel spectrogram of one fixed-length signal (and, with
    ``rich_segment_s`` set, its rich features), all from ONE STFT.

    This is the one implementation of every feature: the pipelines' ``features``,
    ``rich_features`` and ``degraded_features`` tables and the prediction service all come
    through it, so the rich vector's first 57 values ARE the 57 features, bit for bit.
    """
    spec = _spectra(y, params)
    mel_db = spec.mel_db.astype(np.float32)
    if not with_features:
        return TrackAnalysis(np.empty(0), mel_db)
    fr = _frame_features(spec, params)
    features = _reference57(fr)
    rich = None
    if rich_segment_s is not None:
        rich = np.concatenate([features, _rich_extras(spec, fr, params, rich_segment_s)])
    return TrackAnalysis(features, mel_db, rich)


def analyse_file(path: str | os.PathLike, params: ExtractionParams) -> TrackAnalysis:
    """Decode, fix the length and analyse one file: what the pipelines do for each track."""
    return analyse(_decode_fixed(path, params), params)


def _decode_fixed(path: str | os.PathLike, params: ExtractionParams) -> np.ndarray:
    y = load_audio(path, sr=params.sample_rate)
    if len(y) < params.sample_rate * params.min_duration_s:
        raise AudioError(
            f"{path}: only {len(y) / params.sample_rate:.2f} s of audio; at least "
            f"{params.min_duration_s:g} s are needed (truncated file?)"
        )
    return fix_length(y, params.n_samples)


@functools.cache
def warm_up(params: ExtractionParams) -> None:
    """Compile (or load from ``NUMBA_CACHE_DIR``) librosa's numba code in this process.

    Called before worker processes start: two workers compiling into an empty cache at once can
    leave it corrupt (measured here: every later worker then segfaults in librosa's tuning
    estimate), while workers that find it filled only load it.
    """
    rng = np.random.default_rng(0)
    y = (0.1 * rng.standard_normal(int(params.sample_rate * 4))).astype(np.float32)
    analyse(y, params, rich_segment_s=1.0)


_WARM_MARKER = "music_genre_warm.json"


def _numba_cache_stamp() -> dict[str, Any]:
    """What numba's on-disk cache entries depend on (its index is keyed by each compiled
    function's source file, size and mtime, and by the CPU): the interpreter, numba and
    llvmlite, the host CPU, and the size and mtime of every source file with cached functions
    (librosa's and this module). Any change: a worker could compile, so warm up again."""
    import platform

    import llvmlite
    import llvmlite.binding as llvm
    import numba

    sources = sorted(Path(librosa.__file__).parent.rglob("*.py")) + [Path(__file__).resolve()]
    files = {}
    for path in sources:
        st = path.stat()
        files[str(path)] = [st.st_size, st.st_mtime_ns]
    return {"python": platform.python_version(), "numba": numba.__version__,
            "llvmlite": llvmlite.__version__, "cpu": llvm.get_host_cpu_name(),
            "cpu_features": llvm.get_host_cpu_features().flatten(), "sources": files}


def warm_up_once(params: ExtractionParams) -> bool:
    """:func:`warm_up` unless this installation already filled ``NUMBA_CACHE_DIR``: a marker
    in that folder records the :func:`_numba_cache_stamp` of the last warm-up and the cache
    folders it left. While both still hold, workers only load the cache (no compile, so no
    race) and this process skips the warm-up's imports and analysis (~1.4 s of a first
    extraction run on 2 cores). Returns whether it warmed up."""
    import numba

    cache = Path(numba.config.CACHE_DIR or ".")  # where this process's numba reads and writes
    marker = cache / _WARM_MARKER
    stamp = _numba_cache_stamp()
    try:
        recorded = json.loads(marker.read_text())
        if recorded["stamp"] == stamp and all((cache / d).is_dir() for d in recorded["dirs"]):
            return False
    except (OSError, ValueError, KeyError, TypeError):
        pass  # no marker (first run, or the cache was emptied), or an unreadable one
    warm_up(params)
    if cache.is_dir():
        dirs = sorted(p.name for p in cache.iterdir() if p.is_dir())
        tmp = marker.with_name(f".{marker.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps({"stamp": stamp, "dirs": dirs}))
        os.replace(tmp, marker)
    return True


def worker_imports() -> int:
    """The imports of an extraction worker that compile nothing (librosa's numba code is
    compiled, or loaded from the cache, on first use, which :func:`warm_up` does first in the
    parent): run while the parent warms up. Returns the worker's process id."""
    import numba  # noqa: F401
    import scipy.fft  # noqa: F401
    import scipy.signal  # noqa: F401

    return os.getpid()


@functools.cache
def _blas_controller():
    from threadpoolctl import ThreadpoolController

    return ThreadpoolController()


def _one_blas_thread():
    # one BLAS thread, as in joblib and Dask workers: multi-threaded OpenBLAS sums in another
    # order (last-bit differences), and a track must give the same numbers wherever it runs
    return _blas_controller().limit(limits=1, user_api="blas")


def track_entry(
    path: str,
    params: ExtractionParams,
    segment_s: float = 3.0,
    chains: tuple[str, ...] = (),
    previous: Mapping[str, np.ndarray] | None = None,
) -> dict[str, np.ndarray]:
    """One track's extraction-cache entry, never raising: ONE decode and ONE STFT give the 57
    features, the float16 normalised spectrogram and the rich features; each degradation
    chain in ``chains`` adds the rich features of the degraded copy (one more STFT: it is
    another signal). With ``previous`` (an entry that lacks some chains) only the missing
    chains are computed and added to it.

    It lives here, not in the pipeline's node module, because joblib/Dask workers import the
    module of the function they run: this one costs them librosa alone, the node module also
    pandas and Kedro (~1 s of start-up per worker process).
    """
    try:
        with _one_blas_thread():
            y = _decode_fixed(path, params)
            if previous is None:
                result = analyse(y, params, rich_segment_s=segment_s)
                entry = {
                    "status": np.array("ok"),
                    "reason": np.array(""),
                    "features": result.features,
                    "mel": normalise_spectrogram(result.mel_db).astype(np.float16),
                    "rich": result.rich,
                }
                del result
            else:
                entry = dict(previous)
            have = [str(c) for c in entry.get("degraded_chains", np.array([], dtype=str))]
            rows = list(entry.get("degraded", np.zeros((0, len(entry["rich"])))))
            errors = [str(e) for e in entry.get("degraded_errors", np.array([""] * len(have)))]
            for chain in chains:
                if chain in have:
                    continue
                try:
                    low = degrade(y, params.sample_rate, chain)
                    rows.append(analyse(low, params, rich_segment_s=segment_s).rich)
                    errors.append("")
                except Exception as exc:  # one chain failing must not cost the track
                    rows.append(np.full(len(entry["rich"]), np.nan))
                    errors.append(f"{path}: degradation '{chain}': {exc!r}")
                have.append(chain)
            entry["degraded_chains"] = np.array(have, dtype=str)
            entry["degraded"] = np.array(rows, np.float64).reshape(len(have), len(entry["rich"]))
            entry["degraded_errors"] = np.array(errors, dtype=str)
            return entry
    except AudioError as exc:
        return {"status": np.array("excluded"), "reason": np.array(str(exc))}
    except Exception as exc:  # a decoder crash on one file must not cost the others
        return {"status": np.array("excluded"), "reason": np.array(f"{path}: {exc!r}")}


def track_entry_job(job: tuple[str, Mapping[str, np.ndarray] | None],
                    **kwargs: Any) -> dict[str, np.ndarray]:
    """:func:`track_entry` of ``job = (path, previous entry or None)``: one argument, as Dask's
    ``client.map`` passes it."""
    path, previous = job
    return track_entry(path, previous=previous, **kwargs)


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


def reference_rich_features(y: np.ndarray, sr: int = 22050,
                            segment_s: float = 3.0) -> tuple[np.ndarray, np.ndarray]:
    """The reference way extended to every output of the data processing: the rich features
    (:func:`rich_feature_names` order) with each librosa feature function called on the
    waveform, and the dB mel spectrogram. The independent baseline of ``benchmarks/`` for
    the one-pass extraction; never used by the pipelines."""
    mfcc = librosa.feature.mfcc(y=y, sr=sr, n_mfcc=20)
    centroid = librosa.feature.spectral_centroid(y=y, sr=sr)[0]
    bandwidth = librosa.feature.spectral_bandwidth(y=y, sr=sr)[0]
    rolloff = librosa.feature.spectral_rolloff(y=y, sr=sr)[0]
    zcr = librosa.feature.zero_crossing_rate(y)[0]
    tempo = float(np.atleast_1d(librosa.feature.tempo(y=y, sr=sr))[0])
    chroma = librosa.feature.chroma_stft(y=y, sr=sr)
    delta = librosa.feature.delta(mfcc)
    contrast = librosa.feature.spectral_contrast(y=y, sr=sr)
    flatness = librosa.feature.spectral_flatness(y=y)[0]
    # the project's RMS is the spectrogram-domain one (``rms(S=|STFT|)``): the same, own STFT
    rms = librosa.feature.rms(S=np.abs(librosa.stft(y)), frame_length=2048)[0]
    tonnetz = librosa.feature.tonnetz(chroma=librosa.feature.chroma_stft(y=y, sr=sr), sr=sr)
    parts = [
        mfcc.mean(axis=1), mfcc.var(axis=1),
        [centroid.mean(), bandwidth.mean(), rolloff.mean(), zcr.mean()], [tempo],
        chroma.mean(axis=1), delta.mean(axis=1), delta.var(axis=1),
        [centroid.var(), bandwidth.var(), rolloff.var(), zcr.var()],
        contrast.mean(axis=1), contrast.var(axis=1),
        [flatness.mean(), flatness.var(), rms.mean(), rms.var()],
        chroma.var(axis=1), tonnetz.mean(axis=1), tonnetz.var(axis=1),
    ]
    if segment_s:
        seg = max(1, int(round(segment_s * sr / 512)))
        n_seg = max(1, mfcc.shape[1] // seg)

        def seg_sd(x: np.ndarray) -> np.ndarray:
            x = np.atleast_2d(x)[:, : n_seg * seg]
            return x.reshape(x.shape[0], n_seg, seg).mean(axis=2).std(axis=1)

        parts += [seg_sd(mfcc), seg_sd(np.stack([centroid, bandwidth, rolloff]))]
    mel = librosa.feature.melspectrogram(y=y, sr=sr, n_mels=128)
    return (np.concatenate([np.asarray(x, np.float64).ravel() for x in parts]),
            librosa.power_to_db(mel, ref=np.max))


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

    The first 57 values are the reference features of :func:`analyse` (the same computation,
    so equal bit for bit). ``segment_s`` (0 disables) sets the segment length for the segment
    statistics.
    """
    return analyse(y, params, rich_segment_s=segment_s).rich
