"""The ``.snir`` codec: a set of spectrogram images in one file, decoded bit for bit.

One job per module: :mod:`~specnir.codec.container` (the bytes: magic, version, header, payload, CRC),
:mod:`~specnir.codec.compact` (the version-2/3 header's bytes), :mod:`~specnir.codec.header` (what the
header says, checked), :mod:`~specnir.codec.portable` (probability tables every machine computes alike),
:mod:`~specnir.codec.weights` (quantisation and weight coding), :mod:`~specnir.codec.residual` (the
predictive coding loop), :mod:`~specnir.codec.latents` (the latent mode's integer entropy path),
:mod:`~specnir.codec.modes` (``model``, ``residual``, ``latent``), :mod:`~specnir.codec.pipeline`
(``compress``, ``compress_sets`` and ``decode``) and :mod:`~specnir.codec.shared` (a decoder shared by a
corpus's sets).
"""

from specnir.codec.container import MAGIC, VERSION, pack, read, unpack, write
from specnir.codec.header import describe
from specnir.codec.modes import MODES, QUALITIES
from specnir.codec.pipeline import Compressed, Decoded, Settings, compress, compress_sets, decode, eight_bit

__all__ = [
    "MAGIC",
    "MODES",
    "QUALITIES",
    "VERSION",
    "Compressed",
    "Decoded",
    "Settings",
    "compress",
    "compress_sets",
    "decode",
    "describe",
    "eight_bit",
    "pack",
    "read",
    "unpack",
    "write",
]
