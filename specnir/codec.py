"""Compress a set of spectrogram images into one ``.snir`` file and decode it back, bit for bit.

What is coded is the 8-bit image of each spectrogram (``round(255 · normalised)``), the same pixels the
classical codecs see. Two modes:

- ``model``: the fitted network (``gru`` or ``siren``) *is* the code; its weights are quantised and
  range-coded, and the decoder runs it. ``--quality`` sets its size.
- ``residual`` (``gru`` only): a :class:`~specnir.models.predictor.PredictiveGRU` predicts every pixel from
  the already decoded ones; the file holds its weights and the quantised prediction residuals, range-coded
  with the Laplace distribution it predicts. Every decoded pixel is within ``max_error`` grey levels of
  the truth; ``--quality`` sets that bound.

Determinism: the encoder runs the decoder's own loop. Everything that feeds the range coder is an
integer (the rounded prediction) or an entry of a fixed table (the Laplace scale), computed in float64 on
one thread from weights that are exact multiples of powers of two; the decoder therefore sees the same
distributions as the encoder. ``compress`` decodes its own file before returning and refuses to write a
file that does not decode to the encoder's reconstruction.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import math
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import constriction
import numpy as np
import torch

from specnir.data import ImageSet, load_image_set
from specnir.errors import SpecnirError
from specnir.fit import FitConfig, fit
from specnir.models import MODELS, SpectrogramModel
from specnir.models.predictor import (
    LOG_SCALE_STEP,
    SCALE_LEVELS,
    SCALE_MIN,
    PredictiveGRU,
    PredictorConfig,
)
from specnir.quantize import (
    choose_exponents,
    freeze_quantized,
    from_integers,
    quantization_aware,
    to_integers,
)
from specnir.snir import pack, unpack
from specnir.spectrogram import SpecParams, Spectrogram

MODES = ("model", "residual")
QUALITIES = range(1, 9)
# model mode: about 500 · 2^Q weights; residual mode: the largest error in grey levels.
MODEL_WEIGHTS = {q: 500 * 2**q for q in QUALITIES}
MAX_ERROR = {1: 16, 2: 10, 3: 6, 4: 4, 5: 3, 6: 2, 7: 1, 8: 0}
SIZE_KNOB = {"siren": "width", "gru": "hidden"}
# Relative loss increases tried for weight quantisation before fine-tuning, coarse to fine; the last is
# also what the fine-tuned result must meet (model: MSE up 1 dB, then 0.1 dB; residual: bits).
QUANT_TRIES = {
    "model": (10 ** (1.0 / 10) - 1, 10 ** (0.1 / 10) - 1),
    "residual": (0.03, 0.005),
}
SCALE_TABLE = SCALE_MIN * np.exp(np.arange(SCALE_LEVELS) * LOG_SCALE_STEP)
LIMITS = {"images": 1024, "width": 1 << 17, "pixels": 1 << 27, "config": 4096, "weights": 1 << 24}


def sized_config(arch: str, target: int, shape: tuple[int, int, int], **fixed):
    """The config of ``arch`` whose weight count is nearest ``target``, varying its size knob."""
    cls = MODELS[arch]
    n, h, w = shape
    best = None
    for size in range(2, 1000):
        cfg = cls.Config(**{**fixed, SIZE_KNOB[arch]: size})
        count = cls(cfg, n_images=n, height=h, width=w).n_weights()
        if best is None or abs(count - target) < abs(best[1] - target):
            best = (cfg, count)
        if count > target:
            break
    return best[0]


@contextlib.contextmanager
def one_thread() -> Iterator[None]:
    """Run torch on one thread (reductions then do not depend on the thread count)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def eight_bit(data: ImageSet) -> ImageSet:
    """The set with its target rounded to the 8-bit grey levels that are coded."""
    return dataclasses.replace(data, target=torch.round(data.target * 255) / 255)


# --- weights --------------------------------------------------------------------------------------------


def _weight_header(model: SpectrogramModel, exponents: dict[str, int]) -> tuple[list[dict], list]:
    """Per tensor ``{name, shape, exponent, min, max, scale}`` and the integers to code."""
    entries, ints = [], []
    for name, param in model.named_parameters():
        q = to_integers(param, exponents[name]).reshape(-1).numpy()
        scale = max(float(np.mean(np.abs(q))), 0.1) if q.size else 1.0
        entries.append(
            {
                "name": name,
                "shape": list(param.shape),
                "exponent": exponents[name],
                "min": int(q.min()) if q.size else 0,
                "max": int(q.max()) if q.size else 0,
                "scale": float(f"{scale:.6g}"),
            }
        )
        ints.append(q)
    return entries, ints


def _encode_weights(encoder, entries: list[dict], ints: list[np.ndarray]) -> None:
    for entry, q in zip(entries, ints, strict=True):
        if q.size and entry["min"] < entry["max"]:
            family = constriction.stream.model.QuantizedLaplace(
                entry["min"], entry["max"], 0.0, entry["scale"]
            )
            encoder.encode(q.astype(np.int32), family)


def _decode_weights(decoder, entries: list[dict]) -> dict[str, torch.Tensor]:
    state = {}
    for entry in entries:
        size = math.prod(entry["shape"])
        if size and entry["min"] < entry["max"]:
            family = constriction.stream.model.QuantizedLaplace(
                entry["min"], entry["max"], 0.0, entry["scale"]
            )
            q = decoder.decode(family, size)
        else:
            q = np.full(size, entry["min"], np.int64)
        ints = torch.from_numpy(np.asarray(q, np.int64)).reshape(entry["shape"])
        state[entry["name"]] = from_integers(ints, entry["exponent"])
    return state


# --- the predictive coding loop -------------------------------------------------------------------------

Coder = Callable[[int, int, np.ndarray, np.ndarray, np.ndarray, np.ndarray], np.ndarray]


def residual_symbol_range(max_error: int) -> tuple[int, int]:
    """Symbols ``σ`` of the residual coder: reconstruction levels counted from the lowest useful one, up
    to the most levels any grid offset ``ρ`` needs to reach 255."""
    delta = 2 * max_error + 1
    return 0, max((255 - rho + max_error) // delta + (rho + max_error) // delta for rho in range(delta))


def _grid(centre: np.ndarray, delta: int, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Reconstruction levels ``u = t·Δ + ρ`` around ``centre``: ``(ρ, t0)``, ``t0`` the lowest level whose
    interval ``[u − K, u + K]`` reaches 0."""
    rho = centre % delta
    return rho, -((rho + k) // delta)


def predictive_loop(model: PredictiveGRU, widths: list[int], coder: Coder) -> np.ndarray:
    """Run the decoder: every pixel, lowest bin first, column by column; returns ``(N, H, W)`` uint8 grey
    levels in image orientation (padding 0).

    For each bin ``f`` of column ``x`` it computes, for all images, the prediction (rounded to 1/16 grey
    level), the integer ``centre`` that places the grid and the Laplace scale (a table entry), and asks
    ``coder(x, f, active, centre, mean, scale)`` for the symbols ``σ = t − t0`` of the images still
    running (``active``); ``mean`` and ``scale`` are the coder's distribution in units of ``Δ = 2K + 1``.
    """
    cfg = model.config
    n, h, w = len(widths), model.height, max(widths)
    delta, k, c = model.step_size, cfg.max_error, cfg.context
    decoded = np.zeros((n, h, w))
    log_min = math.log(SCALE_MIN)
    with torch.no_grad(), one_thread():
        model = copy.deepcopy(model).double()
        state = torch.zeros(n * h, cfg.hidden, dtype=torch.float64)
        previous = torch.zeros(n, h, dtype=torch.float64)
        for x in range(w):
            coefs, state = model.step(previous, state)
            co = coefs.numpy()
            active = np.array([width > x for width in widths])
            prev = decoded[:, :, x - 1] if x else np.zeros((n, h))
            change = np.zeros((n, h + c))  # change[:, c + f] = d[f, x] − d[f, x−1]
            err = np.zeros((n, h + 2))  # err[:, 2 + f] = |d[f, x] − mean_f| in grey levels
            for f in range(h):
                mean = co[:, f, 0].copy()
                for j in range(1, c + 1):
                    mean += co[:, f, 2 + j] * change[:, c + f - j]
                recent = 0.5 * (err[:, f + 1] + err[:, f])
                log_b = co[:, f, 1] + co[:, f, 2] * np.log1p(recent)
                index = np.clip(np.rint((log_b - log_min) / LOG_SCALE_STEP), 0, SCALE_LEVELS - 1)
                scale = SCALE_TABLE[index.astype(np.int64)]
                grey = np.rint(mean * 255 * 16) / 16  # 1/16 grey level: exact in binary
                centre = np.clip(np.rint(grey), 0, 255).astype(np.int64)
                rho, t0 = _grid(centre, delta, k)
                sigma = coder(x, f, active, centre, (grey - rho) / delta - t0, scale / delta)
                u = np.clip((sigma + t0) * delta + rho, 0, 255) * active
                decoded[:, f, x] = u / 255
                change[:, c + f] = decoded[:, f, x] - prev[:, f]
                err[:, 2 + f] = np.abs(decoded[:, f, x] - mean) * 255
            previous = torch.from_numpy(decoded[:, :, x].copy())
    return np.rint(decoded[:, ::-1] * 255).astype(np.uint8)


def _residual_family(max_error: int):
    lo, hi = residual_symbol_range(max_error)
    return constriction.stream.model.QuantizedLaplace(lo, hi)


def encode_residuals(model: PredictiveGRU, data: ImageSet, encoder) -> np.ndarray:
    """Code ``data``'s 8-bit images with the predictor; returns the decoder's reconstruction (uint8)."""
    truth = np.rint(data.target.numpy()[:, ::-1] * 255).astype(np.int64)  # bin 0 lowest
    delta, k = model.step_size, model.config.max_error
    symbols, means, scales = [], [], []

    def coder(x, f, active, centre, mean, scale):
        rho, t0 = _grid(centre, delta, k)
        sigma = np.where(active, (truth[:, f, x] - rho + k) // delta - t0, 0)
        symbols.append(sigma[active])
        means.append(mean[active])
        scales.append(scale[active])
        return sigma

    recon = predictive_loop(model, data.widths, coder)
    if symbols:
        encoder.encode(
            np.concatenate(symbols).astype(np.int32),
            _residual_family(k),
            np.concatenate(means),
            np.concatenate(scales),
        )
    return recon


def decode_residuals(model: PredictiveGRU, widths: list[int], decoder) -> np.ndarray:
    family = _residual_family(model.config.max_error)

    def coder(x, f, active, centre, mean, scale):
        sigma = np.zeros(len(active), np.int64)
        if active.any():
            sigma[active] = decoder.decode(family, mean[active], scale[active])
        return sigma

    return predictive_loop(model, widths, coder)


# --- files ----------------------------------------------------------------------------------------------


@dataclass
class Decoded:
    """A decoded ``.snir`` file: the header, the images and their spectrograms."""

    header: dict
    names: list[str]
    pixels: list[np.ndarray]  # per image (H, W_k) uint8, image orientation (row 0 = highest frequency)
    specs: list[Spectrogram]


@dataclass
class Compressed:
    blob: bytes
    decoded: Decoded
    report: dict


def _check(condition: bool, problem: str) -> None:
    if not condition:
        raise SpecnirError(problem)


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _layout(header: dict) -> tuple[SpecParams, list[dict], int]:
    """Validate the header's image layout; ``(params, images, height)``."""
    params = SpecParams.from_dict(header["params"])
    images, height = header["images"], header["height"]
    _check(isinstance(images, list) and 0 < len(images) <= LIMITS["images"], "bad image list")
    _check(_is_int(height) and height == params.n_bins, "height disagrees with the spectrogram parameters")
    for im in images:
        _check(isinstance(im, dict) and isinstance(im.get("name"), str), "bad image entry")
        _check(_is_int(im.get("width")) and 0 < im["width"] <= LIMITS["width"], f"bad width of {im['name']}")
        _check(
            all(isinstance(im.get(key), int | float) for key in ("db_min", "db_max"))
            and math.isfinite(im["db_min"])
            and math.isfinite(im["db_max"])
            and im["db_min"] < im["db_max"],
            f"bad dB range of {im['name']}",
        )
        _check(im.get("length") is None or (_is_int(im["length"]) and im["length"] >= 0), "bad length")
        if im.get("length") is not None:  # a centred STFT has 1 + length // hop_length frames
            frames = 1 + im["length"] // params.hop_length
            _check(
                im["width"] == frames, f"width of {im['name']} disagrees with its length ({frames} frames)"
            )
    _check(height * sum(im["width"] for im in images) <= LIMITS["pixels"], "too many pixels")
    return params, images, height


def _model_from_header(header: dict) -> SpectrogramModel:
    arch, mode, config = header["arch"], header["mode"], header["model_config"]
    _check(mode in MODES, f"unknown mode {mode!r}")
    _check(arch in MODELS and (mode == "model" or arch == "gru"), f"unknown architecture {arch!r} for {mode}")
    _check(isinstance(config, dict), "bad model config")
    for value in config.values():
        _check(
            not isinstance(value, int | float) or abs(value) <= LIMITS["config"], "model config out of range"
        )
    _, images, height = _layout(header)
    cls = PredictiveGRU if mode == "residual" else MODELS[arch]
    names = {f.name for f in dataclasses.fields(cls.Config)}
    _check(set(config) <= names, f"unknown model config keys {sorted(set(config) - names)}")
    width = max(im["width"] for im in images)
    return cls(cls.Config(**config), n_images=len(images), height=height, width=width)


def _check_tensors(model: SpectrogramModel, entries) -> None:
    expected = {name: list(p.shape) for name, p in model.named_parameters()}
    _check(isinstance(entries, list), "bad tensor list")
    got = {}
    for e in entries:
        _check(isinstance(e, dict) and isinstance(e.get("name"), str), "bad tensor entry")
        _check(
            isinstance(e.get("shape"), list) and all(_is_int(d) for d in e["shape"]),
            f"bad shape of {e['name']}",
        )
        _check(
            all(_is_int(e.get(key)) for key in ("exponent", "min", "max")), f"bad quantisation of {e['name']}"
        )
        _check(0 <= e["exponent"] <= 30 and e["min"] <= e["max"], f"bad quantisation of {e['name']}")
        _check(max(abs(e["min"]), abs(e["max"])) < 2**24, f"bad quantisation of {e['name']}")
        _check(isinstance(e.get("scale"), int | float) and 0 < e["scale"] < 1e9, f"bad scale of {e['name']}")
        got[e["name"]] = e["shape"]
    _check(got == expected, "weight shapes disagree with the model the header describes")
    _check([e["name"] for e in entries] == list(expected), "weight tensors out of order")


def decode(blob: bytes, *, source: str = "<bytes>") -> Decoded:
    """Decode a ``.snir`` file's bytes; any damage raises :class:`SpecnirError` naming ``source``."""
    header, words = unpack(blob, source=source)
    try:
        _check(header.get("format") == "snir", "header is not a specnir header")
        with torch.device("meta"):  # shapes first, without allocating what a lying header asks for
            _check_tensors(_model_from_header(header), header["tensors"])
        _check(sum(math.prod(e["shape"]) for e in header["tensors"]) <= LIMITS["weights"], "too many weights")
        model = _model_from_header(header)
        params, images, _ = _layout(header)
        decoder = constriction.stream.queue.RangeDecoder(words)
        model.load_state_dict(_decode_weights(decoder, header["tensors"]))
        model.eval()
        widths = [im["width"] for im in images]
        if header["mode"] == "residual":
            padded = decode_residuals(model, widths, decoder)
        else:
            with torch.no_grad(), one_thread():
                values = model().clamp(0, 1).numpy()
            padded = np.rint(values * 255).astype(np.uint8)
    except SpecnirError as exc:
        raise SpecnirError(f"{source}: malformed .snir header: {exc}") from None
    except (  # constriction raises AssertionError on a payload its model cannot decode
        KeyError,
        TypeError,
        ValueError,
        AttributeError,
        RuntimeError,
        OverflowError,
        IndexError,
        ZeroDivisionError,
        AssertionError,
    ) as exc:
        raise SpecnirError(f"{source}: malformed .snir file ({type(exc).__name__})") from None
    pixels = [padded[i, :, : im["width"]] for i, im in enumerate(images)]
    specs = [
        Spectrogram.from_normalized(
            np.flipud(p).astype(np.float32) / 255,
            Spectrogram(
                np.zeros((1, 1), np.float32), params, float(im["db_min"]), float(im["db_max"]), im["length"]
            ),
        )
        for p, im in zip(pixels, images, strict=True)
    ]
    return Decoded(header, [im["name"] for im in images], pixels, specs)


def describe(header: dict) -> dict:
    """What ``specnir info`` prints for a ``.snir`` header."""
    weights = sum(math.prod(e["shape"]) for e in header["tensors"])
    return {
        "arch": header["arch"],
        "mode": header["mode"],
        "quality": header.get("quality"),
        "max_error": header["model_config"].get("max_error"),
        "weights": weights,
        "images": [f"{im['name']} ({header['height']}×{im['width']})" for im in header["images"]],
        "model_config": header["model_config"],
        "params": header["params"],
        "exponents": {e["name"]: e["exponent"] for e in header["tensors"]},
    }


def compress(
    inputs: list[str | os.PathLike],
    *,
    arch: str = "gru",
    mode: str = "model",
    quality: int = 4,
    max_error: int | None = None,
    steps: int = 1000,
    seed: int = 0,
    device: str = "cpu",
    params: SpecParams | None = None,
    progress: bool = True,
) -> Compressed:
    """Fit, quantise, entropy-code and verify; nothing is written (see :func:`specnir.snir.write`)."""
    if mode not in MODES:
        raise SpecnirError(f"--mode must be one of {', '.join(MODES)}")
    if mode == "residual" and arch != "gru":
        raise SpecnirError("--mode residual needs --arch gru (the predictor is the GRU)")
    if quality not in QUALITIES:
        raise SpecnirError(f"--quality must be an integer from {QUALITIES[0]} to {QUALITIES[-1]}")
    if max_error is not None and (mode != "residual" or not 0 <= max_error <= 127):
        raise SpecnirError("--max-error K needs --mode residual and 0 ≤ K ≤ 127")
    if device == "cuda" and not torch.cuda.is_available():
        raise SpecnirError("--device cuda: no CUDA device is available")
    data = eight_bit(load_image_set(inputs, params=params or SpecParams()))
    shape = tuple(data.target.shape)
    torch.manual_seed(seed)
    if mode == "residual":
        k = MAX_ERROR[quality] if max_error is None else max_error
        model = PredictiveGRU(
            PredictorConfig(max_error=k), n_images=shape[0], height=shape[1], width=shape[2]
        )
        model.bind(data.target)
    else:
        config = sized_config(arch, MODEL_WEIGHTS[quality], shape)
        model = MODELS[arch](config, n_images=shape[0], height=shape[1], width=shape[2])
    start = time.perf_counter()
    lr = type(model).default_lr
    fit_config = FitConfig(
        arch=arch, steps=steps, lr=lr, seed=seed, device=device, eval_every=max(steps // 5, 1)
    )
    fit(model, data, fit_config, progress=progress)
    model.cpu().eval()
    target, mask = data.target, data.mask

    def loss_now() -> float:
        with torch.no_grad():
            return float(model.loss(target, mask))

    float_loss, float_state = loss_now(), copy.deepcopy(model.state_dict())
    tune = dataclasses.replace(
        fit_config, steps=max(steps // 8, 25), lr=lr / 5, eval_every=max(steps // 40, 5)
    )
    # Coarse steps first; straight-through fine-tuning often wins the loss back. Finer if it does not.
    for attempt, tolerance in enumerate(QUANT_TRIES[mode]):
        if attempt:
            model.load_state_dict(float_state)
        exponents = choose_exponents(model, loss_now, tolerance=tolerance)
        freeze_quantized(model, exponents)  # plain rounding, kept if fine-tuning does not beat it
        rounded_loss, rounded_state = loss_now(), copy.deepcopy(model.state_dict())
        quantization_aware(model, exponents)
        fit(model, data, tune, progress=False)
        model.cpu().eval()
        freeze_quantized(model, exponents)
        quantized_loss = loss_now()
        if rounded_loss < quantized_loss:
            model.load_state_dict(rounded_state)
            quantized_loss = rounded_loss
        if quantized_loss <= float_loss * (1 + QUANT_TRIES[mode][-1]):
            break
    fit_seconds = time.perf_counter() - start

    header = {
        "format": "snir",
        "arch": arch,
        "mode": mode,
        "quality": quality,
        "model_config": dataclasses.asdict(model.config),
        "params": data.params.to_dict(),
        "height": shape[1],
        "images": [
            {"name": n, "width": w, "db_min": s.db_min, "db_max": s.db_max, "length": s.length}
            for n, w, s in zip(data.names, data.widths, data.specs, strict=True)
        ],
    }
    header["tensors"], ints = _weight_header(model, exponents)
    encoder = constriction.stream.queue.RangeEncoder()
    _encode_weights(encoder, header["tensors"], ints)
    weight_bits = encoder.num_bits()
    start = time.perf_counter()
    if mode == "residual":
        recon = encode_residuals(model, data, encoder)
    else:
        with torch.no_grad(), one_thread():
            recon = np.rint(model().clamp(0, 1).numpy() * 255).astype(np.uint8)
    blob = pack(header, encoder.get_compressed())
    decoded = decode(blob, source="the new file")
    for k, (width, pixels) in enumerate(zip(data.widths, decoded.pixels, strict=True)):
        if not np.array_equal(recon[k, :, :width], pixels):
            raise RuntimeError(
                f"internal error: {data.names[k]} does not decode to the encoder's reconstruction"
            )
    code_seconds = time.perf_counter() - start
    truth = [np.rint(t * 255).astype(np.int64) for t in data.images(data.target)]
    extra = {
        "weight_bits": weight_bits,
        "float_loss": float_loss,
        "quantized_loss": quantized_loss,
        "fit_seconds": round(fit_seconds, 2),
        "code_seconds": round(code_seconds, 2),
    }
    return Compressed(blob, decoded, _report(blob, truth, decoded, header, extra))


def _report(blob: bytes, truth: list[np.ndarray], decoded: Decoded, header: dict, extra: dict) -> dict:
    """Bytes, bits per pixel, PSNR on the 8-bit images, largest error."""
    pixels = sum(t.size for t in truth)
    errors = [p.astype(np.int64) - t for p, t in zip(decoded.pixels, truth, strict=True)]
    sq = sum(float((e**2).sum()) for e in errors)
    per = [float((e**2).mean()) for e in errors]
    to_db = lambda mse: 10 * math.log10(255**2 / mse) if mse > 0 else math.inf  # noqa: E731
    weights = sum(math.prod(e["shape"]) for e in header["tensors"])
    return {
        "bytes": len(blob),
        "pixels": pixels,
        "bpp": len(blob) * 8 / pixels,
        "psnr": to_db(sq / pixels),
        "psnr_per_image": [to_db(m) for m in per],
        "max_error": int(max(np.abs(e).max() for e in errors)),
        "weights": weights,
        "weight_bpp": extra["weight_bits"] / pixels,
        **extra,
    }
