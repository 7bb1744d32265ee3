"""Benchmarks run by ``specnir bench``: :mod:`~specnir.bench.rd` (bytes and PSNR against the image codecs)
and :mod:`~specnir.bench.speech` (listening scores of the decodes and of Opus)."""

from specnir.bench.rd import METHODS, bd_rate, bench_rd, run_classical

__all__ = ["METHODS", "bd_rate", "bench_rd", "run_classical"]
