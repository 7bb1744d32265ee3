"""Opus, the codec a listener would use instead, through PyAV's bundled libopus (the ``bench`` extra).

:func:`opus_round_trip` codes a waveform as an Ogg/Opus file in memory and decodes it back aligned with
the input: the decoder runs at 48 kHz and drops the pre-skip (the encoder's look-ahead, stored in the
OpusHead), the decode is resampled to the input's rate, and the alignment is checked by cross-correlation,
because STOI does not align for itself.
"""

from __future__ import annotations

import io
import struct
from dataclasses import dataclass

import librosa
import numpy as np

OPUS_RATES = (8000, 12000, 16000, 24000, 48000)  # what libopus takes without resampling


@dataclass
class OpusResult:
    """One coded clip: the Ogg file's bytes, its packets' bytes, and the decode ``(n_samples,)`` float32."""

    ogg_bytes: int
    packet_bytes: int
    decoded: np.ndarray
    pre_skip: int  # samples at 48 kHz that the decoder dropped (the encoder's look-ahead)
    lag: int  # samples by which the trimmed decode still trails the input (0 when aligned)


def opus_round_trip(waveform: np.ndarray, *, sample_rate: int, kbps: float) -> OpusResult:
    """Encode ``waveform`` ``(n_samples,)`` as Ogg/Opus at ``kbps`` and decode it, aligned with the input."""
    import av

    waveform = np.asarray(waveform, dtype=np.float32)
    length = len(waveform)
    # Opus takes 8, 12, 16, 24 or 48 kHz; any other rate is coded at 48 kHz (resampled there and back).
    rate = sample_rate if sample_rate in OPUS_RATES else 48000
    pcm = waveform
    if rate != sample_rate:
        pcm = librosa.resample(pcm, orig_sr=sample_rate, target_sr=rate)
    pcm = np.clip(pcm, -1, 1)[None, :]
    buffer = io.BytesIO()
    packet_bytes = 0
    with av.open(buffer, "w", format="ogg") as container:
        stream = container.add_stream("libopus", rate=rate, layout="mono")
        stream.bit_rate = int(kbps * 1000)
        frame = av.AudioFrame.from_ndarray(pcm, format="flt", layout="mono")
        frame.sample_rate = rate
        for packet in [*stream.encode(frame), *stream.encode(None)]:
            packet_bytes += packet.size
            container.mux(packet)
    data = buffer.getvalue()
    pre_skip = _pre_skip(data)  # at 48 kHz, the rate the decoder always runs at
    chunks = []
    with av.open(io.BytesIO(data), "r", format="ogg") as container:
        for frame in container.decode(audio=0):
            chunks.append(frame.to_ndarray().reshape(-1).astype(np.float32))
    decoded = np.concatenate(chunks)
    # FFmpeg drops the pre-skip itself (the stream starts at pts = pre-skip); trim it here only if it
    # did not, which the decoded length says.
    if len(decoded) - pcm.shape[1] * (48000 // rate) >= pre_skip:
        decoded = decoded[pre_skip:]
    if sample_rate != 48000:
        decoded = librosa.resample(decoded, orig_sr=48000, target_sr=sample_rate)
    decoded = decoded[:length].astype(np.float32)
    if len(decoded) < length:  # resampling may come up a sample short
        decoded = np.pad(decoded, (0, length - len(decoded)))
    return OpusResult(len(data), packet_bytes, decoded, pre_skip, _lag(waveform, decoded))


def _pre_skip(ogg: bytes) -> int:
    """The OpusHead's pre-skip (samples at 48 kHz)."""
    at = ogg.find(b"OpusHead")
    if at < 0:
        raise ValueError("no OpusHead in the Ogg stream")
    return struct.unpack_from("<H", ogg, at + 10)[0]


def _lag(reference: np.ndarray, decoded: np.ndarray, search: int = 2000) -> int:
    """The shift (samples) of ``decoded`` against ``reference`` that correlates best, within ±search."""
    n = min(len(reference), len(decoded))
    ref, dec = reference[:n].astype(np.float64), decoded[:n].astype(np.float64)
    size = 1 << int(np.ceil(np.log2(2 * n)))
    corr = np.fft.irfft(np.fft.rfft(dec, size) * np.conj(np.fft.rfft(ref, size)), size)
    lags = np.r_[np.arange(0, search + 1), np.arange(-search, 0)]
    return int(lags[np.argmax(corr[lags])])
