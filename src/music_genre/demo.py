"""A synthetic, GTZAN-shaped collection for the offline demo and the tests.

Ten classes named like GTZAN's genres, each with its own tempo, pitch register, timbre (harmonic
profile), rhythm pattern and noise colour; every track varies those at random around its class
(seeded), so the classes overlap a little and a model has something to learn. Tracks are 30 s
mono at 22 050 Hz, written like GTZAN: ``genres_original/<genre>/<genre>.NNNNN.wav`` with the
first track of each genre as Sun ``.au``. One deliberately broken file (random bytes named
``.wav``) exercises the "skip and report" path, as ``jazz.00054.wav`` does in real GTZAN.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf

GENRES = ["blues", "classical", "country", "disco", "hiphop",
          "jazz", "metal", "pop", "reggae", "rock"]

# tempo (bpm), root pitch (Hz), harmonic decay (timbre), kick pattern over 8 eighths,
# hat density, noise level, note steps (scale)
_PROFILES = {
    "blues":     (72, 110.0, 0.55, [1, 0, 0, 0, 1, 0, 0, 0], 0.2, 0.02, [0, 3, 5, 6, 7, 10]),
    "classical": (60, 330.0, 0.25, [0, 0, 0, 0, 0, 0, 0, 0], 0.0, 0.005, [0, 2, 4, 5, 7, 9, 11]),
    "country":   (100, 196.0, 0.45, [1, 0, 1, 0, 1, 0, 1, 0], 0.3, 0.02, [0, 2, 4, 7, 9]),
    "disco":     (120, 262.0, 0.6, [1, 0, 1, 0, 1, 0, 1, 0], 1.0, 0.03, [0, 2, 3, 5, 7, 10]),
    "hiphop":    (90, 65.0, 0.7, [1, 0, 0, 1, 0, 0, 1, 0], 0.6, 0.04, [0, 3, 5, 7, 10]),
    "jazz":      (140, 147.0, 0.35, [0, 0, 1, 0, 0, 0, 1, 0], 0.8, 0.01, [0, 2, 3, 5, 7, 9, 10]),
    "metal":     (170, 82.0, 0.9, [1, 1, 1, 1, 1, 1, 1, 1], 1.0, 0.15, [0, 1, 5, 6, 7]),
    "pop":       (110, 294.0, 0.5, [1, 0, 0, 0, 1, 0, 0, 0], 0.5, 0.02, [0, 2, 4, 5, 7, 9]),
    "reggae":    (80, 123.0, 0.5, [0, 0, 1, 0, 0, 0, 1, 0], 0.4, 0.02, [0, 2, 4, 7, 9]),
    "rock":      (130, 110.0, 0.8, [1, 0, 1, 0, 1, 0, 1, 0], 0.7, 0.08, [0, 3, 5, 7, 10]),
}


def synth_track(genre: str, rng: np.random.Generator, duration_s: float = 30.0,
                sample_rate: int = 22050) -> np.ndarray:
    """One synthetic clip of ``genre`` (float32 mono in [-1, 1])."""
    bpm, root, decay, kicks, hats, noise, scale = _PROFILES[genre]
    bpm *= rng.uniform(0.93, 1.07)
    root *= 2 ** (rng.integers(-2, 3) / 12)
    n = int(sample_rate * duration_s)
    t = np.arange(n) / sample_rate
    eighth = 60.0 / bpm / 2
    y = np.zeros(n, dtype=np.float64)

    # melody: one note per eighth (classical: legato quarter notes), harmonic timbre
    note_len = eighth * (2 if genre == "classical" else 1)
    n_notes = int(np.ceil(duration_s / note_len))
    steps = rng.choice(scale, size=n_notes) + 12 * rng.integers(0, 2, size=n_notes)
    freqs = root * 2 ** (steps / 12)
    idx = np.minimum((t / note_len).astype(int), n_notes - 1)
    phase_t = t - idx * note_len
    f = freqs[idx]
    env = np.exp(-phase_t * (3.0 if genre != "classical" else 1.0))
    for h in range(1, 8):
        y += (decay ** (h - 1)) * np.sin(2 * np.pi * h * f * t) * env / h**0.5
    if genre in ("metal", "rock"):  # distortion
        y = np.tanh(3.0 * y)

    # drums: kick (decaying low sine) on the pattern, hats (filtered noise bursts)
    n_eighths = int(duration_s / eighth)
    for k in range(n_eighths):
        start = int(k * eighth * sample_rate)
        seg = min(int(0.15 * sample_rate), n - start)
        if seg <= 0:
            break
        tt = np.arange(seg) / sample_rate
        if kicks[k % 8]:
            y[start:start + seg] += 0.9 * np.sin(2 * np.pi * 55 * tt * (1 + 2 * np.exp(-tt * 30))) * np.exp(-tt * 20)
        if rng.random() < hats:
            burst = rng.standard_normal(seg) * np.exp(-tt * 60)
            y[start:start + seg] += 0.25 * np.diff(burst, prepend=0.0)

    y += noise * rng.standard_normal(n)
    y /= np.max(np.abs(y)) + 1e-9
    return (0.8 * y).astype(np.float32)


def write_demo_collection(
    root: str | Path,
    n_per_genre: int = 6,
    duration_s: float = 30.0,
    sample_rate: int = 22050,
    seed: int = 42,
    genres: list[str] | None = None,
    broken_file: bool = True,
) -> list[Path]:
    """Write the synthetic collection under ``root`` in the Kaggle GTZAN layout; returns paths."""
    root = Path(root)
    genres = list(genres or GENRES)
    written = []
    for g_i, genre in enumerate(genres):
        folder = root / "genres_original" / genre
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(n_per_genre):
            rng = np.random.default_rng([seed, g_i, i])
            y = synth_track(genre, rng, duration_s, sample_rate)
            suffix, fmt = (".au", "AU") if i == 0 else (".wav", "WAV")
            path = folder / f"{genre}.{i:05d}{suffix}"
            sf.write(path, y, sample_rate, subtype="PCM_16", format=fmt)
            written.append(path)
    if broken_file:
        bad = root / "genres_original" / genres[min(5, len(genres) - 1)]
        path = bad / f"{bad.name}.{n_per_genre + 48:05d}.wav"
        path.write_bytes(np.random.default_rng(seed).bytes(4096))
        written.append(path)
    return written
