"""The audio front end: what turns a clip of 16 kHz samples into what a keyword spotter is fed.

Log-mel: frames of ``win_length`` samples every ``hop_length`` (no centring, as TensorFlow's
``tf.signal.stft``: the first frame starts at sample 0 and the last one ends inside the clip), a
periodic Hann window, zero-padded to ``n_fft`` for the FFT, the power spectrum, triangular filters
spaced on the HTK mel scale (``2595 log10(1 + f / 700)``, unnormalized, as ``torchaudio``'s
``melscale_fbanks(norm=None, mel_scale="htk")``), then ``log(energy + log_offset)``. MFCC: the
orthonormal DCT-II of the log-mel frame, first ``n_mfcc`` coefficients. Waveform: the clip itself.

The parameters are stored with the :class:`~workbench.datasets.DatasetRef` and in a bundle's manifest,
so a device computes the features the measured figures were computed on. numpy only.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

CHUNK = 64  # clips transformed at a time: bounds the [clips, frames, bins] spectrum in memory


def hz_to_mel(hz: np.ndarray | float) -> np.ndarray:
    """HTK mel scale."""
    return 2595.0 * np.log10(1.0 + np.asarray(hz, dtype=np.float64) / 700.0)


def mel_to_hz(mel: np.ndarray | float) -> np.ndarray:
    return 700.0 * (10.0 ** (np.asarray(mel, dtype=np.float64) / 2595.0) - 1.0)


class AudioFrontEnd(BaseModel):
    """Declared audio features; ``features`` computes them for a batch of clips."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["log-mel", "mfcc", "waveform"] = Field(
        "log-mel", description="log-mel spectrogram, MFCCs of it, or the waveform itself"
    )
    sample_rate: int = Field(16000, ge=1000, le=384_000, description="samples per second the clips must have")
    clip_seconds: float = Field(1.0, gt=0, le=600, description="every clip is padded with zeros or cut to this length")
    n_fft: int = Field(512, ge=16, le=65536, description="FFT size; frames are zero-padded to it")
    win_length: int = Field(480, ge=16, le=65536, description="samples per frame (480: 30 ms at 16 kHz)")
    hop_length: int = Field(160, ge=1, le=65536, description="samples between frame starts (160: 10 ms at 16 kHz)")
    n_mels: int = Field(40, ge=1, le=512, description="mel filters")
    n_mfcc: int = Field(10, ge=1, le=512, description="MFCC coefficients kept (kind mfcc)")
    f_min: float = Field(20.0, ge=0, description="lowest filter edge, Hz")
    f_max: float | None = Field(
        7600.0, gt=0, description="highest filter edge, Hz; None, or above sample_rate/2: sample_rate/2"
    )
    log_offset: float = Field(1e-6, gt=0, description="added to mel energies before the log")
    window: Literal["hann"] = Field("hann", description="window applied to each frame (periodic)")
    channel_axis: bool = Field(
        True, description="give the model a channel axis: [N, 1, frames, features] (NCHW) or [N, frames, features, 1]"
    )

    @model_validator(mode="after")
    def _consistent(self) -> AudioFrontEnd:
        if self.win_length > self.n_fft:
            raise ValueError(f"win_length {self.win_length} is longer than n_fft {self.n_fft}")
        if self.f_min >= self.upper_frequency:
            raise ValueError(f"f_min {self.f_min:g} Hz is not below the highest frequency {self.upper_frequency:g} Hz")
        if self.kind == "mfcc" and self.n_mfcc > self.n_mels:
            raise ValueError(f"n_mfcc {self.n_mfcc} exceeds n_mels {self.n_mels}")
        if self.kind != "waveform" and self.clip_samples < self.win_length:
            raise ValueError(f"a clip of {self.clip_samples} samples is shorter than one frame ({self.win_length})")
        return self

    @property
    def upper_frequency(self) -> float:
        nyquist = self.sample_rate / 2
        return nyquist if self.f_max is None else min(float(self.f_max), nyquist)

    @property
    def clip_samples(self) -> int:
        return round(self.clip_seconds * self.sample_rate)

    def frame_count(self, samples: int | None = None) -> int:
        samples = self.clip_samples if samples is None else samples
        return 1 + max(0, samples - self.win_length) // self.hop_length

    def feature_shape(self) -> tuple[int, ...]:
        """One clip's features: (frames, n_mels or n_mfcc), or (samples,) for the waveform."""
        if self.kind == "waveform":
            return (self.clip_samples,)
        return (self.frame_count(), self.n_mfcc if self.kind == "mfcc" else self.n_mels)

    def describe(self) -> str:
        if self.kind == "waveform":
            return f"waveform, {self.clip_seconds:g} s at {self.sample_rate} Hz"
        ms = 1000 / self.sample_rate
        size = f"{self.n_mfcc} MFCC of {self.n_mels} mels" if self.kind == "mfcc" else f"{self.n_mels} mels"
        return (
            f"{self.kind} {size}, {self.win_length * ms:g} ms window / {self.hop_length * ms:g} ms hop, "
            f"{self.f_min:g}-{self.upper_frequency:g} Hz, {self.clip_seconds:g} s at {self.sample_rate} Hz"
        )

    # --- the transform --------------------------------------------------------------------------------
    def window_values(self) -> np.ndarray:
        n = np.arange(self.win_length)
        return (0.5 - 0.5 * np.cos(2 * np.pi * n / self.win_length)).astype(np.float64)  # periodic Hann

    def mel_filterbank(self) -> np.ndarray:
        """[n_mels, n_fft // 2 + 1] triangular filters on the HTK mel scale, peak 1, unnormalized."""
        edges = mel_to_hz(np.linspace(hz_to_mel(self.f_min), hz_to_mel(self.upper_frequency), self.n_mels + 2))
        bins = np.arange(self.n_fft // 2 + 1) * self.sample_rate / self.n_fft
        lower, center, upper = edges[:-2, None], edges[1:-1, None], edges[2:, None]
        rising = (bins[None] - lower) / (center - lower)
        falling = (upper - bins[None]) / (upper - center)
        return np.maximum(0.0, np.minimum(rising, falling))

    def dct_matrix(self) -> np.ndarray:
        """[n_mfcc, n_mels] orthonormal DCT-II rows."""
        n, k = np.arange(self.n_mels), np.arange(self.n_mfcc)[:, None]
        matrix = np.sqrt(2.0 / self.n_mels) * np.cos(np.pi / self.n_mels * (n + 0.5) * k)
        matrix[0] /= np.sqrt(2.0)
        return matrix

    def fit_clips(self, waveforms: np.ndarray) -> np.ndarray:
        """[N, clip_samples]: each clip cut to the clip length or padded with zeros at its end."""
        waveforms = np.asarray(waveforms, dtype=np.float32)
        length = self.clip_samples
        if waveforms.shape[1] >= length:
            return np.ascontiguousarray(waveforms[:, :length])
        out = np.zeros((len(waveforms), length), np.float32)
        out[:, : waveforms.shape[1]] = waveforms
        return out

    def features(self, waveforms: np.ndarray) -> np.ndarray:
        """[N, samples] float waveforms in [-1, 1] -> [N, frames, n_mels or n_mfcc] float32
        (the waveform kind returns the clips as they are, [N, samples])."""
        waveforms = np.asarray(waveforms, dtype=np.float32)
        if waveforms.ndim != 2:
            raise ValueError(f"features take [clips, samples] waveforms, got shape {list(waveforms.shape)}")
        if self.kind == "waveform":
            return waveforms.copy()
        if waveforms.shape[1] < self.win_length:  # shorter than one frame: one zero-padded frame
            padded = np.zeros((len(waveforms), self.win_length), np.float32)
            padded[:, : waveforms.shape[1]] = waveforms
            waveforms = padded
        window, filters = self.window_values(), self.mel_filterbank().T
        dct = self.dct_matrix().T if self.kind == "mfcc" else None
        width = self.n_mfcc if dct is not None else self.n_mels
        out = np.empty((len(waveforms), self.frame_count(waveforms.shape[1]), width), np.float32)
        for start in range(0, len(waveforms), CHUNK):
            chunk = waveforms[start : start + CHUNK].astype(np.float64)
            frames = np.lib.stride_tricks.sliding_window_view(chunk, self.win_length, axis=1)[:, :: self.hop_length]
            spectrum = np.fft.rfft(frames * window, n=self.n_fft, axis=-1)
            power = spectrum.real**2 + spectrum.imag**2
            values = np.log(power @ filters + self.log_offset)
            out[start : start + CHUNK] = values @ dct if dct is not None else values
        return out

    def model_input(self, waveforms: np.ndarray, layout: Literal["NCHW", "NHWC"] = "NCHW") -> np.ndarray:
        """What the model is fed: the features, with a channel axis where ``layout`` puts it
        (unless ``channel_axis`` is off)."""
        values = self.features(self.fit_clips(waveforms))
        if not self.channel_axis:
            return values
        return values[:, None] if layout == "NCHW" else values[..., None]
