"""Benchmarks run by ``specnir bench``: :mod:`~specnir.bench.rd` (bytes and PSNR against the image codecs of
:mod:`~specnir.bench.codecs`, BD-rates by :mod:`~specnir.bench.bdrate`, plots by
:mod:`~specnir.bench.figures`) and :mod:`~specnir.bench.speech` (listening scores of the decodes and of
Opus, :mod:`~specnir.bench.opus`; the page of :mod:`~specnir.bench.listen`)."""
