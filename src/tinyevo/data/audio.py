"""A keyword-spotting front end in numpy / scipy: waveform -> log-mel or MFCC "image" of shape (1, frames,
bins).

The defaults follow the usual tinyML KWS pipeline (e.g. the MLPerf Tiny DS-CNN): 1 s clips, 30 ms Hann window,
20 ms hop, 40 mel bands, 10 MFCCs -> 49 x 10 features per clip. Clips are padded with zeros or cropped to a
fixed length first, so every clip gives the same shape.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Literal

import numpy as np

from tinyevo.errors import ConfigError, DataError

MAX_SAMPLE_RATE = 384_000
"""The highest sample rate (Hz) of a clip or of the feature front end."""
MAX_CLIP_SECONDS = 60.0
"""The longest clip the front end cuts or pads to (keyword spotting uses about 1 s)."""


@dataclass(frozen=True)
class AudioFrontEnd:
    """Settings of the feature extraction (keyword-only, all with KWS defaults)."""

    features: Literal["mfcc", "logmel"] = "mfcc"
    sample_rate: int | None = None  # None: the most common rate of the clips; others are resampled to it
    clip_seconds: float = 1.0
    window_ms: float = 30.0
    hop_ms: float = 20.0
    n_mels: int = 40
    n_mfcc: int = 10
    fmin: float = 20.0
    fmax: float | None = None  # None: Nyquist

    def __post_init__(self) -> None:
        if self.sample_rate is not None and not 1 <= self.sample_rate <= MAX_SAMPLE_RATE:
            raise ConfigError(f"sample_rate must be in 1..{MAX_SAMPLE_RATE} Hz, got {self.sample_rate}")
        if not self.clip_seconds <= MAX_CLIP_SECONDS:
            raise ConfigError(f"clip_seconds must be at most {MAX_CLIP_SECONDS}, got {self.clip_seconds}")
        if not 1 <= self.n_mels <= 1024 or self.n_mfcc < 1:
            raise ConfigError(f"n_mels must be in 1..1024 and n_mfcc >= 1, got {self.n_mels} and {self.n_mfcc}")
        if self.features not in ("mfcc", "logmel"):
            raise ConfigError(f"audio features must be 'mfcc' or 'logmel', got {self.features!r}")
        if self.clip_seconds <= 0 or self.window_ms <= 0 or self.hop_ms <= 0:
            raise ConfigError("clip_seconds, window_ms and hop_ms must be positive")
        if self.n_mfcc > self.n_mels:
            raise ConfigError(f"n_mfcc ({self.n_mfcc}) cannot exceed n_mels ({self.n_mels})")

    def frames(self, sample_rate: int) -> int:
        n = int(round(self.clip_seconds * sample_rate))
        win, hop = self._win_hop(sample_rate)
        return 1 + max(n - win, 0) // hop

    def _win_hop(self, sample_rate: int) -> tuple[int, int]:
        return int(round(self.window_ms * sample_rate / 1000)), int(round(self.hop_ms * sample_rate / 1000))


def read_wav(data: bytes, what: str) -> tuple[int, np.ndarray]:
    """(sample_rate, mono float waveform in [-1, 1]) of WAV bytes; a :class:`DataError` naming ``what`` if the
    bytes are not a readable WAV file or declare a sample rate outside 1 .. :data:`MAX_SAMPLE_RATE` Hz (the
    features of a clip are computed at its rate: a header's 2**31 Hz would ask for hundreds of GiB)."""
    from scipy.io import wavfile  # lazy: image and array data never load scipy

    try:
        rate, wav = wavfile.read(io.BytesIO(data))
    except Exception as exc:  # noqa: BLE001 - scipy raises ValueError, EOFError, struct.error ...
        raise DataError(f"cannot read audio file {what}: {exc}") from None
    if not 1 <= int(rate) <= MAX_SAMPLE_RATE:
        raise DataError(f"audio file {what} declares a sample rate of {int(rate)} Hz; tinyevo reads clips of "
                        f"1..{MAX_SAMPLE_RATE} Hz")
    wav = np.asarray(wav)
    if wav.ndim == 2:
        wav = wav.mean(axis=1)
    if wav.dtype == np.uint8:
        wav = (wav.astype(np.float32) - 128.0) / 128.0
    elif np.issubdtype(wav.dtype, np.integer):
        wav = wav.astype(np.float32) / float(np.iinfo(wav.dtype).max + 1)
    else:
        wav = wav.astype(np.float32)
    if wav.size == 0:
        raise DataError(f"audio file {what} holds no samples")
    return int(rate), wav


def mel_filterbank(sample_rate: int, n_fft: int, n_mels: int, fmin: float, fmax: float) -> np.ndarray:
    """Triangular HTK-mel filters, shape ``(n_mels, n_fft // 2 + 1)``."""

    def hz_to_mel(f: np.ndarray | float) -> np.ndarray:
        return 2595.0 * np.log10(1.0 + np.asarray(f) / 700.0)

    def mel_to_hz(m: np.ndarray) -> np.ndarray:
        return 700.0 * (10.0 ** (m / 2595.0) - 1.0)

    edges = mel_to_hz(np.linspace(hz_to_mel(fmin), hz_to_mel(fmax), n_mels + 2))
    bins = np.fft.rfftfreq(n_fft, 1.0 / sample_rate)
    fb = np.zeros((n_mels, len(bins)), dtype=np.float64)
    for i in range(n_mels):
        lo, mid, hi = edges[i], edges[i + 1], edges[i + 2]
        up = (bins - lo) / max(mid - lo, 1e-9)
        down = (hi - bins) / max(hi - mid, 1e-9)
        fb[i] = np.maximum(0.0, np.minimum(up, down))
    return fb


def features(wav: np.ndarray, sample_rate: int, front: AudioFrontEnd) -> np.ndarray:
    """Features of one mono clip at ``sample_rate``: float32 ``(1, frames, n_mfcc | n_mels)``."""
    n = int(round(front.clip_seconds * sample_rate))
    clip = np.zeros(n, dtype=np.float64)
    clip[: min(n, len(wav))] = wav[:n]
    win, hop = front._win_hop(sample_rate)
    if win > n:
        raise ConfigError(f"window of {front.window_ms} ms is longer than the clip ({front.clip_seconds} s)")
    frames = 1 + (n - win) // hop
    idx = np.arange(win)[None, :] + hop * np.arange(frames)[:, None]
    n_fft = 1 << (win - 1).bit_length()
    from scipy import signal  # lazy: image and array data never load scipy

    spec = np.fft.rfft(clip[idx] * signal.get_window("hann", win, fftbins=True), n=n_fft, axis=1)
    power = (np.abs(spec) ** 2) / n_fft
    fmax = front.fmax if front.fmax is not None else sample_rate / 2
    mel = power @ mel_filterbank(sample_rate, n_fft, front.n_mels, front.fmin, fmax).T
    logmel = np.log(mel + 1e-6)
    out = logmel
    if front.features == "mfcc":
        from scipy import fft as sfft

        out = sfft.dct(logmel, type=2, axis=1, norm="ortho")[:, : front.n_mfcc]
    return out.astype(np.float32)[None]


def resample(wav: np.ndarray, rate: int, target: int) -> np.ndarray:
    """Polyphase resampling of ``wav`` from ``rate`` to ``target`` Hz."""
    if rate == target:
        return wav
    g = np.gcd(rate, target)
    from scipy import signal

    return signal.resample_poly(wav, target // g, rate // g).astype(np.float32)
