"""The CUDA kernels of Keras's Adam, in Triton (re-exported by :mod:`embeddings.ops.cuda`).

One program per block of elements applies Keras's update in float32 with IEEE's correctly
rounded square root and division (``sqrt_rn``, ``div_rn``), compiled without fused
multiply-adds (``enable_fp_fusion=False``), so that each element rounds as the C kernel
and TensorFlow do: over a dense gradient (:func:`adam_update`), or from the sums of the
rows a sparse backward touched (:func:`adam_rows`), over every row of the table (the
others with a zero gradient) or over those rows only.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

ADAM_BLOCK = 1024  # elements per program of the Adam update


@triton.jit
def _gradient(grad, grad_sq, where, mask, HAS_SQ: tl.constexpr):
    """The gradient at ``where`` and its squared sums (its square without them); 0 off
    ``mask``."""
    g = tl.load(grad + where, mask=mask, other=0.0)
    if HAS_SQ:
        g2 = tl.load(grad_sq + where, mask=mask, other=0.0)
    else:
        g2 = g * g
    return g, g2


@triton.jit
def _apply(param, m, v, at, inside, g, g2, alpha, c1, c2, epsilon):
    """Keras's update of the elements ``at`` of ``param``, ``m`` and ``v``."""
    mi = tl.load(m + at, mask=inside, other=0.0)
    vi = tl.load(v + at, mask=inside, other=0.0)
    mi = mi + (g - mi) * c1
    vi = vi + (g2 - vi) * c2
    p = tl.load(param + at, mask=inside, other=0.0)
    p = p - tl.math.div_rn(mi * alpha, tl.math.sqrt_rn(vi) + epsilon)
    tl.store(m + at, mi, mask=inside)
    tl.store(v + at, vi, mask=inside)
    tl.store(param + at, p, mask=inside)


@triton.jit
def _adam_update(param, grad, grad_sq, m, v, n, alpha, c1, c2, epsilon,
                 HAS_SQ: tl.constexpr, BLOCK: tl.constexpr):
    i = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    inside = i < n
    g, g2 = _gradient(grad, grad_sq, i, inside, HAS_SQ)
    _apply(param, m, v, i, inside, g, g2, alpha, c1, c2, epsilon)


@triton.jit
def _adam_rows(param, rows, slot, grad, grad_sq, m, v, n, dim, alpha, c1, c2, epsilon,
               EVERY_ROW: tl.constexpr, HAS_SQ: tl.constexpr, BLOCK: tl.constexpr):
    i = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    inside = i < n
    col = i % dim
    if EVERY_ROW:  # i walks the table; slot[row] is the row's place in the sums, or -1
        at = i
        k = tl.load(slot + i // dim, mask=inside, other=-1)
        touched = inside & (k >= 0)
    else:  # i walks the sums
        k = i // dim
        at = tl.load(rows + k, mask=inside, other=0) * dim + col
        touched = inside
    g, g2 = _gradient(grad, grad_sq, k * dim + col, touched, HAS_SQ)  # 0: an untouched row
    _apply(param, m, v, at, inside, g, g2, alpha, c1, c2, epsilon)


def adam_update(param: torch.Tensor, grad: torch.Tensor, grad_sq: torch.Tensor | None,
                m: torch.Tensor, v: torch.Tensor, alpha: float, c1: float, c2: float,
                epsilon: float) -> None:
    """In place: ``m += (g - m) c1``, ``v += (g2 - v) c2``, ``p -= m alpha / (sqrt(v) + eps)``
    in float32 (``g2`` is ``grad_sq``, or ``grad ** 2`` when ``None``), element by element
    as the C kernel rounds it."""
    n = param.numel()
    if n == 0:
        return
    grid = (triton.cdiv(n, ADAM_BLOCK),)
    _adam_update[grid](param, grad.contiguous(), grad_sq if grad_sq is not None else grad, m,
                       v, n, alpha, c1, c2, epsilon, HAS_SQ=grad_sq is not None,
                       BLOCK=ADAM_BLOCK, enable_fp_fusion=False)


def adam_rows(param: torch.Tensor, rows: torch.Tensor, grad: torch.Tensor,
              grad_sq: torch.Tensor | None, m: torch.Tensor, v: torch.Tensor, alpha: float,
              c1: float, c2: float, epsilon: float, every_row: bool) -> None:
    """Keras's Adam on a ``(V, D)`` table from the ``(R, D)`` sums of its increasing ``(R,)``
    ``rows``: every row, the others with a zero gradient (``every_row``, as
    :func:`adam_update` of the dense gradient rounds it), or those rows only."""
    dim = param.shape[1]
    n = param.numel() if every_row else grad.numel()
    if n == 0:
        return
    slot = rows  # read only with every_row: each table row's place in the sums, or -1
    if every_row:
        slot = torch.full((param.shape[0],), -1, dtype=torch.int64, device=param.device)
        slot[rows] = torch.arange(len(rows), device=param.device)
    _adam_rows[(triton.cdiv(n, ADAM_BLOCK),)](
        param, rows, slot, grad.contiguous(), grad_sq if grad_sq is not None else grad, m, v,
        n, dim, alpha, c1, c2, epsilon, EVERY_ROW=every_row, HAS_SQ=grad_sq is not None,
        BLOCK=ADAM_BLOCK, enable_fp_fusion=False)
