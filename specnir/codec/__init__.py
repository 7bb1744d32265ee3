"""The ``.snir`` codec: a set of spectrogram images in one file, decoded bit for bit.

Two layers, pointing one way. **The bitstream** (everything a decoder needs; it imports no training code):
:mod:`~specnir.codec.container` (the bytes: magic, version, header, payload, CRC; the format written down),
:mod:`~specnir.codec.compact` (the binary header's bytes), :mod:`~specnir.codec.header` (what the header
says, checked), :mod:`~specnir.codec.portable` (probability tables every machine computes alike),
:mod:`~specnir.codec.weights` (weights as integers, range-coded), :mod:`~specnir.codec.residual` (the
predictive coding loop), :mod:`~specnir.codec.latents` (the latent mode's integer entropy path),
:mod:`~specnir.codec.modes` (the coding modes and their registry), :mod:`~specnir.codec.decoders` (shared
decoder files, read and found) and :mod:`~specnir.codec.decode`.

**The encoder** (it fits): :mod:`~specnir.codec.nnquant` (which grid each weight tensor gets),
:mod:`~specnir.codec.networks` (where a set's networks come from), :mod:`~specnir.codec.encode`
(``compress``: build → fit → quantise → code → verify), :mod:`~specnir.codec.report` (what a file cost)
and :mod:`~specnir.codec.decoder_fit` (fitting a shared decoder).

``compress`` lives in :mod:`specnir.codec.encode`: ``import specnir.codec`` to decode loads no trainer.
"""

from specnir.codec.container import MAGIC, VERSION, pack, read, unpack, write
from specnir.codec.decode import Decoded, decode
from specnir.codec.header import describe
from specnir.codec.modes import MODES, QUALITIES

__all__ = [
    "MAGIC",
    "MODES",
    "QUALITIES",
    "VERSION",
    "Decoded",
    "decode",
    "describe",
    "pack",
    "read",
    "unpack",
    "write",
]
