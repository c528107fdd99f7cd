"""The audio front end against references computed here: a DFT written as a sum, mel filters from the
HTK formula, and scipy's DCT for MFCC."""

from __future__ import annotations

import numpy as np
import pytest
from pydantic import ValidationError

from workbench.data.audio_features import AudioFrontEnd
from workbench.datasets import DatasetRef

RATE = 16000


def _sine(hz: float, seconds: float = 1.0, amplitude: float = 0.5) -> np.ndarray:
    t = np.arange(round(seconds * RATE)) / RATE
    return (amplitude * np.sin(2 * np.pi * hz * t)).astype(np.float32)


def _reference_filters(n_mels: int, f_min: float, f_max: float, n_fft: int) -> tuple[np.ndarray, np.ndarray]:
    """Triangles between consecutive points equally spaced in HTK mel, evaluated at the FFT bins; and
    the centre frequencies."""
    mel = lambda hz: 2595 * np.log10(1 + hz / 700)  # noqa: E731
    hz = lambda m: 700 * (10 ** (m / 2595) - 1)  # noqa: E731
    points = [hz(m) for m in np.linspace(mel(f_min), mel(f_max), n_mels + 2)]
    bins = np.arange(n_fft // 2 + 1) * RATE / n_fft
    filters = np.zeros((n_mels, len(bins)))
    for i in range(n_mels):
        low, centre, high = points[i], points[i + 1], points[i + 2]
        for k, f in enumerate(bins):
            if low < f <= centre:
                filters[i, k] = (f - low) / (centre - low)
            elif centre < f < high:
                filters[i, k] = (high - f) / (high - centre)
    return filters, np.asarray(points[1:-1])


def _reference_log_mel_frame(frame: np.ndarray, front_end: AudioFrontEnd) -> np.ndarray:
    n = np.arange(front_end.win_length)
    window = 0.5 * (1 - np.cos(2 * np.pi * n / front_end.win_length))  # periodic Hann
    windowed = frame.astype(np.float64) * window
    spectrum = np.array(
        [
            np.sum(windowed * np.exp(-2j * np.pi * k * n / front_end.n_fft))  # the zero padding adds nothing
            for k in range(front_end.n_fft // 2 + 1)
        ]
    )
    filters, _centres = _reference_filters(front_end.n_mels, front_end.f_min, front_end.f_max, front_end.n_fft)
    return np.log(filters @ np.abs(spectrum) ** 2 + front_end.log_offset)


def test_log_mel_matches_a_dft_written_out_and_peaks_in_the_sines_mel_band():
    # setup
    front_end = AudioFrontEnd()
    clips = np.stack([_sine(1000), _sine(3000)])
    # execute
    features = front_end.features(clips)
    # assert
    assert features.shape == (2, 98, 40) and features.dtype == np.float32  # 1 + (16000 - 480) // 160 frames
    assert front_end.feature_shape() == (98, 40)
    for clip, row in zip(clips, features, strict=True):
        for frame in (0, 37):
            start = frame * front_end.hop_length
            expected = _reference_log_mel_frame(clip[start : start + front_end.win_length], front_end)
            np.testing.assert_allclose(row[frame], expected, rtol=1e-4, atol=1e-3)
    _filters, centres = _reference_filters(40, 20, 7600, 512)
    assert abs(centres[features[0, 10].argmax()] - 1000) < 60
    assert abs(centres[features[1, 10].argmax()] - 3000) < 150


def test_mfcc_is_the_orthonormal_dct_of_the_log_mel():
    from scipy.fft import dct

    clips = np.stack([_sine(440), np.random.default_rng(0).uniform(-0.3, 0.3, RATE).astype(np.float32)])
    log_mel = AudioFrontEnd(kind="log-mel").features(clips)
    mfcc = AudioFrontEnd(kind="mfcc", n_mfcc=10).features(clips)
    assert mfcc.shape == (2, 98, 10)
    np.testing.assert_allclose(
        mfcc, dct(log_mel.astype(np.float64), type=2, norm="ortho", axis=-1)[..., :10], atol=2e-3
    )


def test_silence_is_the_log_offset_and_waveforms_pass_through():
    silence = np.zeros((1, RATE), np.float32)
    np.testing.assert_allclose(AudioFrontEnd().features(silence), np.log(1e-6), rtol=1e-6)
    clip = _sine(200)[None]
    np.testing.assert_array_equal(AudioFrontEnd(kind="waveform").features(clip), clip)


def test_clips_are_padded_or_cut_and_shaped_for_the_model():
    front_end = AudioFrontEnd()
    short, long = np.ones((1, 8000), np.float32), np.ones((1, 20000), np.float32)
    assert front_end.fit_clips(short).shape == (1, RATE) and front_end.fit_clips(short)[0, 8000:].max() == 0
    assert front_end.fit_clips(long).shape == (1, RATE)
    assert front_end.model_input(short, "NCHW").shape == (1, 1, 98, 40)
    assert front_end.model_input(short, "NHWC").shape == (1, 98, 40, 1)
    assert AudioFrontEnd(channel_axis=False).model_input(short).shape == (1, 98, 40)
    assert AudioFrontEnd(kind="waveform", channel_axis=False).model_input(long).shape == (1, RATE)
    assert AudioFrontEnd(f_max=None).upper_frequency == 8000 and AudioFrontEnd(f_max=9000).upper_frequency == 8000


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"win_length": 600}, "longer than n_fft"),
        ({"f_min": 8000}, "not below"),
        ({"kind": "mfcc", "n_mfcc": 41}, "exceeds n_mels"),
        ({"clip_seconds": 0.01}, "shorter than one frame"),
    ],
)
def test_inconsistent_front_ends_are_refused(fields, reason):
    with pytest.raises(ValidationError, match=reason):
        AudioFrontEnd(**fields)


def test_the_front_end_is_stored_with_the_ref_and_old_refs_still_parse():
    ref = DatasetRef(kind="speech-commands", path="/data/sc", front_end=AudioFrontEnd(kind="mfcc", n_mels=32))
    assert DatasetRef.model_validate_json(ref.model_dump_json()) == ref
    assert DatasetRef(kind="speech-commands", path="/data/sc").front_end == AudioFrontEnd()  # never left implicit
    old = DatasetRef.model_validate({"kind": "npz", "path": "d.npz", "split": "test", "limit": 5})
    assert old.front_end is None and old.split == "evaluation"
    assert "mfcc 10 MFCC of 32 mels, 30 ms window / 10 ms hop" in ref.describe()
