"""FFT-based 1-D convolution, a drop-in for `nn.Conv1d` (stride 1) with long kernels.

Hand-written because torch has no FFT convolution: `nn.Conv1d` always runs a direct
(im2col/implicit-GEMM) algorithm on CPU and leaves the choice to cuDNN on GPUs. A direct
convolution costs O(L·K) per channel pair; the FFT route costs O(L log L) for the transforms
plus O(L) per channel pair, which wins once the kernel is long (see bench/conv_algos.py).

`FFTConv1d` subclasses `nn.Conv1d`: same parameters (`weight` (out, in, K), `bias`), same state
dict, same initialisation, so a checkpoint trained with either loads into the other, and
`swap_long_convs` can convert a built network in place. `AutoConv1d` (`conv_impl="auto"`, the
networks' default) picks by analytic FLOPs when they differ widely, else times both algorithms
on its first call and keeps the faster.
"""
from __future__ import annotations

import logging
import math
import time

import torch
import torch.nn.functional as F
from torch import nn

from raylab.errors import ConfigError

try:  # pocketfft: strided transforms (see `_rfft`); scipy comes with librosa and scikit-learn
    import scipy.fft as _scipy_fft
except ImportError:  # pragma: no cover
    _scipy_fft = None

log = logging.getLogger(__name__)

CONV_IMPLS = ("direct", "fft", "auto")
AUTOTUNE_REPEATS = 2            # timed calls of each algorithm, after one untimed call of each
FFT_MARGIN = 0.9                # FFT only when clearly faster: near-ties keep the direct algorithm
# Analytic FLOP ratios (direct / FFT route) beyond which AutoConv1d decides without timing. Per
# FLOP the FFT route (transforms, small batched matmuls: memory-bound) runs 3-10x slower than
# the direct convolution's large GEMMs on this project's CPU (~5-15 % of the fp32 peak against
# 30-55 %; bench/long_conv.py) and no faster on GPUs, so with 20x fewer FLOPs it wins by >= 2x,
# and with more FLOPs than the direct convolution (ratio < 1/2, with a margin for cuDNN's
# weaker long-kernel algorithms) it cannot win. Between the two, both are timed. At the
# paper-scale conv2 (40 -> 40, K 4000) the ratio is ~300: timing the direct convolution there
# would cost minutes of CPU per signature before training starts.
FLOPS_PICK_FFT = 20.0
FLOPS_PICK_DIRECT = 0.5


def fast_fft_length(n: int) -> int:
    """The smallest 2·3·5-smooth integer ≥ n (sizes pocketfft, MKL and cuFFT handle fastest)."""
    if n < 1:
        raise ValueError(f"FFT length must be positive, got {n}")
    best = 1 << (n - 1).bit_length()
    p5 = 1
    while p5 < best:
        p35 = p5
        while p35 < best:
            m = p35
            while m < n:
                m *= 2
            best = min(best, m)
            p35 *= 3
        p5 *= 5
    return best


def block_length(kernel: int, length: int, in_channels: int = 1) -> int:
    """FFT size of one overlap-save block, at most the whole input (and at least 1024).

    One input channel: ~8 kernels, so the K-1 overlap costs an eighth of each block. Several:
    ~4 kernels, because the weight spectrum (C_out·C_in·block/2 bins) and the per-bin channel
    mixing then dominate, against 1/4 of each block lost to the overlap. From a sweep of the
    40 -> 40, K 4000 layer at batch 15, forward+backward, process CPU time on one thread of a
    loaded machine (`python bench/long_conv.py --blocks ...` prints it): 16 000 samples beat
    10 000-12 000 and 20 000-32 000 by ~10-40 %.
    """
    factor = 8 if in_channels == 1 else 4
    return min(fast_fft_length(max(factor * kernel, 1024)), fast_fft_length(length))


def _transform_flops(n: int) -> float:
    """Real FLOPs of one length-n real FFT (forward or inverse), by the usual convention of
    2.5·n·log2(n) (half the 5·n·log2(n) of a complex transform of the same length)."""
    return 2.5 * n * math.log2(n) if n > 1 else 0.0


def fft_conv_flops(batch: int, cin: int, cout: int, length: int, kernel: int,
                   block: int | None = None, backward: bool = True,
                   grads: tuple[bool, bool] = (True, True)) -> float:
    """Analytic FLOPs of `fft_conv1d` on x (batch, cin, length) (already padded), weight
    (cout, cin, kernel): its transforms and its channel mixing, forward and (with `backward`)
    the backward of `grads` = (grad-input, grad-weight); bias and copies are not counted.

    Transforms: 2.5·n·log2(n) each (`_transform_flops`); forward rfft of B·C_in·S blocks and of
    C_out·C_in weights, irfft of B·C_out·S blocks; backward rfft of the B·C_out·S output-grad
    blocks, irfft of B·C_in·S (grad-input) and of C_out·C_in (grad-weight). Mixing, as the real
    matmuls that compute it: (F, B·S, 2·C_in) x (F, 2·C_in, 2·C_out) = 8·F·B·S·C_in·C_out per
    product, one forward and one per gradient; one input channel: a complex product, 6 FLOPs
    per output bin (and per gradient bin).
    """
    out_len = length - kernel + 1
    n = block or block_length(kernel, length, cin)
    step = n - kernel + 1
    blocks = -(-out_len // step)
    bins = n // 2 + 1
    mix = 8.0 * bins * batch * blocks * cin * cout if cin > 1 else 6.0 * bins * batch * blocks * cout
    t = _transform_flops(n)
    flops = (batch * blocks * (cin + cout) + cout * cin) * t + mix
    if backward:
        flops += batch * blocks * cout * t                       # rfft of the output gradient
        if grads[0]:
            flops += mix + batch * blocks * cin * t
        if grads[1]:
            flops += mix + cout * cin * t
    return flops


def direct_conv_flops(batch: int, cin: int, cout: int, length: int, kernel: int,
                      backward: bool = True, grads: tuple[bool, bool] = (True, True)) -> float:
    """FLOPs of the direct convolution (one multiply-add = 2): 2·B·C_out·C_in·K per output
    sample forward, as much again for each of grad-input and grad-weight."""
    forward = 2.0 * batch * cout * cin * kernel * (length - kernel + 1)
    return forward * (1 + (sum(grads) if backward else 0))


def _rfft(x: torch.Tensor, n: int, dim: int) -> torch.Tensor:
    """rfft of real `x` along `dim` (zero-padded to n), returned C-contiguous in x's dimension
    order, whatever x's strides: so a permuted view of x yields a transposed spectrum in one pass.

    On CPU by pocketfft (`scipy.fft`), which reads and writes strided axes in the transform
    itself; torch's CPU FFT (MKL) would need a separate transpose copy, and on this project's
    AMD CPU its transforms alone take ~1.8x pocketfft's time (see bench/long_conv.py). On GPUs
    cuFFT through torch.fft, then a copy to the contiguous layout.
    """
    if x.device.type == "cpu" and _scipy_fft is not None:
        return torch.from_numpy(_scipy_fft.rfft(x.detach().numpy(), n=n, axis=dim,
                                                workers=torch.get_num_threads()))
    return torch.fft.rfft(x, n=n, dim=dim).contiguous()


def _irfft(x: torch.Tensor, n: int, dim: int) -> torch.Tensor:
    """irfft of complex `x` along `dim` to n real samples, C-contiguous in x's dimension order."""
    if x.device.type == "cpu" and _scipy_fft is not None:
        return torch.from_numpy(_scipy_fft.irfft(x.detach().numpy(), n=n, axis=dim,
                                                 workers=torch.get_num_threads()))
    return torch.fft.irfft(x, n=n, dim=dim).contiguous()


def _mix_weight(weight: torch.Tensor, n: int) -> torch.Tensor:
    """The weight spectrum as the real matrices that mix interleaved complex channels.

    weight (C_out, C_in, K) -> W (F, 2·C_in, 2·C_out), F = n/2+1, with, for Wf = rfft(weight, n)
    = p + iq: W[f, 2c, 2o] = p, W[f, 2c, 2o+1] = -q, W[f, 2c+1, 2o] = q, W[f, 2c+1, 2o+1] = p.
    A complex spectrum X (F, M, C_in) viewed as real is (F, M, 2·C_in) with Re and Im interleaved,
    so `X @ W` is Σ_c X·conj(Wf) (a correlation) already interleaved as a complex (F, M, C_out):
    one real batched matmul with no complex <-> real copies (torch's complex `bmm` on CPU runs
    ~50x slower). Its transpose mixes the other way: `G @ Wᵀ` is Σ_o G·Wf (backward's grad-input).
    """
    cout, cin = weight.shape[:2]
    wf = torch.view_as_real(_rfft(weight.permute(2, 1, 0), n, 0))   # (F, C_in, C_out, 2)
    bins = wf.shape[0]
    w = weight.new_empty(bins, cin, 2, cout, 2)                # (F, C_in, 2, C_out, 2)
    torch.mul(wf, wf.new_tensor([1.0, -1.0]), out=w[:, :, 0])  # rows 2c:   (p, -q) per o
    w[:, :, 1, :, 0] = wf[..., 1]                              # rows 2c+1: (q, p) per o
    w[:, :, 1, :, 1] = wf[..., 0]
    return w.view(bins, 2 * cin, 2 * cout)


def _padded(x: torch.Tensor, length: int) -> torch.Tensor:
    """x (..., L) zero-padded at the end to `length`, in one pass (F.pad fills, then copies)."""
    if x.shape[-1] == length:
        return x
    out = x.new_empty(*x.shape[:-1], length)
    out[..., :x.shape[-1]] = x
    out[..., x.shape[-1]:] = 0
    return out


def _spectra(x: torch.Tensor, n: int, step: int, blocks: int) -> torch.Tensor:
    """Overlap-save blocks' spectra, frequency-major: x (B, C, L) -> (F, B·S, 2·C) real, Re/Im
    interleaved per channel, S = `blocks` blocks of n samples starting every `step`."""
    batch, channels, _ = x.shape
    segments = _padded(x, (blocks - 1) * step + n).unfold(-1, n, step)   # (B, C, S, n)
    xf = _rfft(segments.permute(3, 0, 2, 1), n, 0)             # (F, B, S, C)
    return torch.view_as_real(xf).view(xf.shape[0], batch * blocks, 2 * channels)


def _signals(spectra: torch.Tensor, batch: int, n: int) -> torch.Tensor:
    """Inverse of `_spectra`'s layout: (F, B·S, 2·C) -> irfft blocks (B, C, S, n)."""
    bins, m, c2 = spectra.shape
    yf = torch.view_as_complex(spectra.view(bins, batch, m // batch, c2 // 2, 2))  # (F, B, S, C)
    return _irfft(yf.permute(1, 3, 2, 0), n, -1)               # (B, C, S, n)


def _overlap_add(blocks: torch.Tensor, step: int) -> torch.Tensor:
    """Σ of blocks (B, C, S, n) placed every `step` samples -> (B, C, (S-1)·step + n)."""
    batch, channels, count, n = blocks.shape
    if 2 * step < n:      # tails overlap more than the next block's head: general col2im
        return F.fold(blocks.permute(0, 1, 3, 2).reshape(batch, channels * n, count),
                      (1, (count - 1) * step + n), (1, n), stride=(1, step)).view(
                          batch, channels, -1)
    out = blocks.new_empty(batch, channels, count + 1, step)    # (B, C, S+1, step)
    out[:, :, :count] = blocks[..., :step]                     # each block's head ...
    out[:, :, count] = 0
    out[:, :, 1:, :n - step] += blocks[..., step:]             # ... plus the previous one's tail
    return out.view(batch, channels, -1)[..., :(count - 1) * step + n]


class _FFTCorrelation(torch.autograd.Function):
    """y = conv1d(x, weight, bias) (no padding) by overlap-save, with a backward that stays in the
    frequency domain: it reuses the blocks' spectra and the weight spectrum of the forward;
    grad-input is Σ_o G·Wf per block (a circular convolution), overlap-added; grad-weight is
    irfft(Σ_blocks X·conj(G)), first K samples. Autograd through the forward's ops would instead
    differentiate the unfold, permutes and complex views one by one, with a copy each."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
                n: int) -> torch.Tensor:
        batch, cin, length = x.shape
        cout, k = weight.shape[0], weight.shape[-1]
        out_len = length - k + 1
        step = n - k + 1                      # valid outputs per block (no circular wrap-around)
        blocks = -(-out_len // step)
        xs = _spectra(x, n, step, blocks)                          # (F, B·S, 2·C_in)
        w = _mix_weight(weight, n)                                 # (F, 2·C_in, 2·C_out)
        y = _signals(torch.bmm(xs, w), batch, n)[..., :step]       # (B, C_out, S, step)
        # One pass that trims the blocks' wrap-around, adds the bias and makes y contiguous.
        out = y.new_empty(batch, cout, blocks, step)
        torch.add(y, bias[:, None, None], out=out) if bias is not None else out.copy_(y)
        ctx.save_for_backward(xs, w)
        ctx.shape = (batch, cin, length, cout, k, n, step, blocks)
        return out.view(batch, cout, blocks * step)[..., :out_len]   # (B, C_out, L-K+1)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad: torch.Tensor):
        xs, w = ctx.saved_tensors
        batch, cin, length, cout, k, n, step, blocks = ctx.shape
        # The output gradient's blocks: `step` samples each, zero-padded to n by rfft.
        g = _padded(grad, blocks * step).view(batch, cout, blocks, step)
        gf = _rfft(g.permute(3, 0, 2, 1), n, 0)                        # (F, B, S, C_out)
        gs = torch.view_as_real(gf).view(gf.shape[0], batch * blocks, 2 * cout)
        grad_x = grad_w = grad_b = None
        if ctx.needs_input_grad[0]:
            # Each block's grad is the circular convolution of its output grad with the weight.
            gx = _signals(torch.bmm(gs, w.transpose(1, 2)), batch, n)   # (B, C_in, S, n)
            grad_x = _overlap_add(gx, step)[..., :length]              # (B, C_in, L)
        if ctx.needs_input_grad[1]:
            # r[f, 2c+i, 2o+j] = Σ_blocks (Re,Im)_i X[c] · (Re,Im)_j G[o], so the weight's grad
            # spectrum Σ X·conj(G) is (r[0,0] + r[1,1]) + i(r[1,0] - r[0,1]).
            r = torch.bmm(xs.transpose(1, 2), gs).view(-1, cin, 2, cout, 2)
            zf = r.new_empty(r.shape[0], cin, cout, 2)               # (F, C_in, C_out, 2)
            torch.add(r[:, :, 0, :, 0], r[:, :, 1, :, 1], out=zf[..., 0])
            torch.sub(r[:, :, 1, :, 0], r[:, :, 0, :, 1], out=zf[..., 1])
            zf = torch.view_as_complex(zf).permute(2, 1, 0)           # (C_out, C_in, F) view
            grad_w = _irfft(zf, n, -1)[..., :k]                        # (C_out, C_in, K)
        if ctx.needs_input_grad[2]:
            grad_b = grad.sum((0, 2))
        return grad_x, grad_w, grad_b, None


def fft_conv1d(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None,
               padding: int = 0, block: int | None = None) -> torch.Tensor:
    """Cross-correlation as `F.conv1d(x, weight, bias, stride=1, padding=padding)`, via rFFT.

    x (B, C_in, L), weight (C_out, C_in, K) -> (B, C_out, L + 2·padding - K + 1).
    Overlap-save: the input is cut into blocks of `block` samples (default `block_length`)
    overlapping by K-1, so the weight spectrum is C_out·C_in·block/2 bins, not ·L/2. Several
    input channels are mixed per frequency by one real batched matmul (`_mix_weight`) in a
    custom autograd function (`_FFTCorrelation`); one input channel by a broadcast product.
    Runs in float32 (or float64): cuFFT and pocketfft have no bfloat16 transforms, so under
    autocast the inputs are upcast and the output is float32.
    """
    if padding:
        x = F.pad(x, (padding, padding))
    batch, cin, length = x.shape
    cout, k = weight.shape[0], weight.shape[-1]
    out_len = length - k + 1
    if out_len < 1:
        raise ValueError(f"input length {length} is shorter than the kernel {k}")
    n = block or block_length(k, length, cin)
    if n < k:
        raise ValueError(f"FFT block {n} is shorter than the kernel {k}")
    dtype = torch.promote_types(x.dtype, torch.float32)
    with torch.autocast(device_type=x.device.type, enabled=False):
        x, weight = x.to(dtype), weight.to(dtype)
        if cin > 1:
            return _FFTCorrelation.apply(x, weight, None if bias is None else bias.to(dtype),
                                         n)                        # (B, C_out, L-K+1)
        # One input channel: no mixing, a broadcast product; autograd differentiates it.
        step = n - k + 1
        blocks = -(-out_len // step)
        x = F.pad(x, (0, (blocks - 1) * step + n - length))
        xf = torch.fft.rfft(x.unfold(-1, n, step))                 # (B, 1, S, n/2+1)
        wf = torch.fft.rfft(weight, n=n)                           # (C_out, 1, n/2+1)
        yf = xf * wf[:, 0].conj().unsqueeze(1)                     # (B, C_out, S, n/2+1)
        y = torch.fft.irfft(yf, n=n)[..., :step]                   # (B, C_out, S, step)
        # Adding the bias before the reshape: one pass over the trimmed blocks, not two.
        y = y + bias.to(dtype)[:, None, None] if bias is not None else y
        return y.reshape(batch, cout, blocks * step)[..., :out_len]   # (B, C_out, L-K+1)


class FFTConv1d(nn.Conv1d):
    """`nn.Conv1d` computed by FFT; stride 1, no dilation, one group, zero padding only."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int,
                 padding: int = 0, bias: bool = True, device=None, dtype=None,
                 block: int | None = None) -> None:
        super().__init__(in_channels, out_channels, kernel_size, stride=1, padding=padding,
                         bias=bias, device=device, dtype=dtype)
        self.block = block        # overlap-save FFT size; None: `block_length`
        if not isinstance(self.padding, tuple) or not isinstance(self.padding[0], int):
            raise ConfigError(f"FFTConv1d: padding must be an integer, got {padding!r}")

    def _conv_forward(self, input: torch.Tensor, weight: torch.Tensor,
                      bias: torch.Tensor | None) -> torch.Tensor:
        return fft_conv1d(input, weight, bias, padding=self.padding[0], block=self.block)

    @classmethod
    def from_conv(cls, conv: nn.Conv1d) -> "FFTConv1d":
        """An FFTConv1d that shares `conv`'s parameters (no copy: training one trains both)."""
        bad = {"stride": conv.stride, "dilation": conv.dilation, "groups": conv.groups,
               "padding": conv.padding, "padding_mode": conv.padding_mode}
        ok = {"stride": (1,), "dilation": (1,), "groups": 1, "padding_mode": "zeros"}
        bad = {k: v for k, v in bad.items()
               if (k == "padding" and isinstance(v, str)) or (k in ok and v != ok[k])}
        if bad:
            raise ConfigError(f"FFTConv1d needs stride 1, dilation 1, groups 1 and integer zero "
                              f"padding; this Conv1d has {bad}")
        new = cls(conv.in_channels, conv.out_channels, conv.kernel_size[0],
                  padding=conv.padding[0], bias=conv.bias is not None, device="meta")
        new.weight = conv.weight
        if conv.bias is not None:
            new.bias = conv.bias
        return new.train(conv.training)


_CHOICES: dict[tuple, str] = {}  # autotuned algorithm per call signature, for the process


def conv_choices() -> dict[tuple, str]:
    """What `AutoConv1d` chose so far: signature (see `AutoConv1d`) -> "direct" or "fft"."""
    return dict(_CHOICES)


def _seconds(fn, device: torch.device) -> float:
    """Best wall seconds of AUTOTUNE_REPEATS calls, after one untimed call (cuDNN's own
    autotuning, oneDNN's primitive creation and the FFT plans happen in that one); the best,
    because other work on the machine only ever adds time."""
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda *_: None)
    fn()
    times = []
    for _ in range(AUTOTUNE_REPEATS):
        sync(device)
        start = time.perf_counter()
        fn()
        sync(device)
        times.append(time.perf_counter() - start)
    return min(times)


class AutoConv1d(FFTConv1d):
    """`nn.Conv1d` computed by whichever of the direct algorithm (oneDNN; cuDNN on GPUs) and
    `fft_conv1d` is faster for the call it gets, as `cudnn.benchmark` picks among cuDNN's own.

    The first call with a new signature (device, dtype, input and weight shapes, padding, FFT
    block, which operands need gradients, autocast dtype) decides for the rest of the process.
    When the analytic FLOPs already decide (direct / FFT route >= `FLOPS_PICK_FFT` or <=
    `FLOPS_PICK_DIRECT`; `direct_conv_flops`, `fft_conv_flops`) it takes that algorithm without
    running either; otherwise it runs both (forward, plus backward when gradients are on) on
    detached copies and keeps the faster (FFT only if faster by `FFT_MARGIN`; direct if the FFT
    runs out of memory). The two
    agree to float rounding (tests/test_fftconv.py), so the choice changes speed, not the
    network; `conv_impl="direct"` gives bit-for-bit repeatable runs instead. Inside code that
    `torch.compile` traces it always runs direct (pick `conv_impl="fft"` explicitly there).
    """

    def _conv_forward(self, input: torch.Tensor, weight: torch.Tensor,
                      bias: torch.Tensor | None) -> torch.Tensor:
        if torch.compiler.is_compiling():
            return nn.Conv1d._conv_forward(self, input, weight, bias)
        grads = (torch.is_grad_enabled() and input.requires_grad,
                 torch.is_grad_enabled() and weight.requires_grad)
        device = input.device.type
        autocast = torch.get_autocast_dtype(device) if torch.is_autocast_enabled(device) else None
        key = (str(input.device), input.dtype, tuple(input.shape), tuple(weight.shape),
               self.padding[0], self.block, grads, autocast)
        impl = _CHOICES.get(key) or self._choose(key, input, weight, bias, grads)
        if impl == "fft":
            return fft_conv1d(input, weight, bias, padding=self.padding[0], block=self.block)
        return nn.Conv1d._conv_forward(self, input, weight, bias)

    def _choose(self, key: tuple, input: torch.Tensor, weight: torch.Tensor,
                bias: torch.Tensor | None, grads: tuple[bool, bool]) -> str:
        backward = any(grads) or (bias is not None and bias.requires_grad
                                  and torch.is_grad_enabled())
        pad = self.padding[0]
        batch, cin, length = input.shape
        cout, kernel = weight.shape[0], weight.shape[-1]
        ratio = (direct_conv_flops(batch, cin, cout, length + 2 * pad, kernel, backward, grads)
                 / fft_conv_flops(batch, cin, cout, length + 2 * pad, kernel, self.block,
                                  backward, grads))
        if ratio >= FLOPS_PICK_FFT or ratio <= FLOPS_PICK_DIRECT:
            _CHOICES[key] = "fft" if ratio >= FLOPS_PICK_FFT else "direct"
            log.debug("conv %s on %s: direct/FFT FLOPs %.3g -> %s without timing",
                      tuple(weight.shape), tuple(input.shape), ratio, _CHOICES[key])
            return _CHOICES[key]
        x = input.detach().requires_grad_(grads[0])
        w = weight.detach().requires_grad_(grads[1])
        b = None if bias is None else bias.detach().requires_grad_(backward and bias.requires_grad)
        algorithms = {"direct": lambda: nn.Conv1d._conv_forward(self, x, w, b),
                      "fft": lambda: fft_conv1d(x, w, b, padding=pad, block=self.block)}

        def run(algorithm) -> None:
            y = algorithm()
            if backward:
                y.backward(torch.ones_like(y))

        seconds = {"direct": _seconds(lambda: run(algorithms["direct"]), input.device)}
        try:
            seconds["fft"] = _seconds(lambda: run(algorithms["fft"]), input.device)
        except torch.OutOfMemoryError:
            seconds["fft"] = float("inf")
        _CHOICES[key] = "fft" if seconds["fft"] < FFT_MARGIN * seconds["direct"] else "direct"
        log.debug("conv %s on %s: direct %.2f ms, fft %.2f ms -> %s", tuple(weight.shape),
                  tuple(input.shape), 1e3 * seconds["direct"], 1e3 * seconds["fft"],
                  _CHOICES[key])
        return _CHOICES[key]


def swap_long_convs(model: nn.Module, min_kernel: int) -> list[str]:
    """Replace, in place, every plain `nn.Conv1d` with kernel ≥ `min_kernel` by an FFTConv1d
    sharing its parameters; returns the names of the modules swapped.

    The state dict, parameter identities (so an optimizer built before still works) and the
    module names stay the same, so checkpoints load either way; hooks registered on the old
    modules are not carried over (swap before registering them).
    """
    if min_kernel < 1:
        raise ConfigError(f"min_kernel must be ≥ 1, got {min_kernel}")
    swapped = []
    for parent_name, parent in list(model.named_modules()):
        for child_name, child in list(parent.named_children()):
            if type(child) is nn.Conv1d and child.kernel_size[0] >= min_kernel:
                setattr(parent, child_name, FFTConv1d.from_conv(child))
                swapped.append(f"{parent_name}.{child_name}" if parent_name else child_name)
    return swapped


def make_conv1d(in_channels: int, out_channels: int, kernel_size: int, impl: str = "direct",
                padding: int = 0, bias: bool = True) -> nn.Conv1d:
    """The conv layer a network builds for `conv_impl` ("direct" -> nn.Conv1d, "fft", "auto")."""
    if impl == "auto":
        return AutoConv1d(in_channels, out_channels, kernel_size, padding=padding, bias=bias)
    if impl == "direct":
        return nn.Conv1d(in_channels, out_channels, kernel_size, padding=padding, bias=bias)
    if impl == "fft":
        return FFTConv1d(in_channels, out_channels, kernel_size, padding=padding, bias=bias)
    raise ConfigError(f"conv_impl must be one of {', '.join(CONV_IMPLS)}; got {impl!r}")
