"""Time the hot loop, embedding lookup + mean over positions ("bag mean"), per implementation.

Usage::

    python -m benchmarks.hotloop [--device cpu|cuda] [--shapes tiny,tutorial,medium,large]
                                 [--phases PHASE,...] [--impls IMPL,...] [--out REPORT.json]
                                 [--min-run-time S]

Implementations (``weight (V, D)``, ``ids (B, T)`` -> ``(B, D)``):

* ``embedding_mean``: ``F.embedding(ids, w).mean(1)``;
* ``embeddingbag``: ``F.embedding_bag(ids, w, mode="mean")`` on the dense 2-D ids;
* ``ours``: :func:`embeddings.ops.embedding_bag_mean` (the compiled CPU kernels when
  :func:`embeddings.ops.cpu.available`, the Triton kernels on CUDA; its backward also
  fills the squared-gradient sink, as in training);
* ``ours_deterministic``: the same with ``deterministic=True`` (CUDA only: the sorted
  backward instead of atomic adds; on the CPU it would repeat ``ours``);
* ``ours_torch``: the same op on its pure-torch reference (``embeddings.ops.use``);
* ``ours_compiled``: ``torch.compile(dynamic=False)`` of ``F.embedding(ids, w).mean(1)``;
* ``keras_eager`` / ``keras_jit``: Keras 3 on torch, ``Embedding(V, D)`` then
  ``GlobalAveragePooling1D()`` on the ids, eager and under ``torch.compile``
  (what ``jit_compile=True`` means on that backend);
* ``tf``: ``tf.nn.embedding_lookup`` + ``tf.reduce_mean(axis=1)`` in a
  ``tf.function``, gradient by ``GradientTape`` densified to ``(V, D)``.  It runs in a
  subprocess of this interpreter (``benchmarks/_tf_hotloop.py``) so that Keras stays
  on torch here and TensorFlow's thread pools never share the process with the
  torch cases; without TensorFlow it is recorded as skipped.

The implementations, inputs and memory guard live in ``benchmarks/_hotloop_impls.py``.

Phases: ``forward`` (autograd recording, as in training), ``backward`` (the graph of
one forward is kept with ``retain_graph=True`` and only ``torch.autograd.grad`` is
timed; ``tf`` has no kept tape, so its backward is the difference of the medians)
and ``forward_backward``; and ``step`` (``--phases step``, its own implementations
``ours``, ``ours_rows``, ``embeddingbag``, ``embeddingbag_sparse``: forward, backward
and optimizer update, ``benchmarks/_hotloop_step.py``, which also holds its bytes model
and the bound: bytes over the copy bandwidth of the same run).  The gradient goes
through ``torch.autograd.grad(out, leaves, upstream)``, the same gradient as
``(out * upstream).sum().backward()`` without that extra elementwise product and without
accumulating into ``w.grad`` (for ours the leaves are the table and its squared-gradient
sink).

Ids: Zipf with exponent 1 (``p(id) ~ 1/id`` over ``1..V-1``, so small ids are frequent as
in a frequency-sorted vocabulary; word frequencies in English text follow exponents near
1) with 4% padding zeros, fixed seed.  Every case gets a
warm-up, then ``torch.utils.benchmark.Timer(...).blocked_autorange`` (which
synchronises CUDA) on all of torch's threads.  Bytes model: forward moves
``B*T*8`` (ids) ``+ B*T*D*4`` (rows gathered) ``+ B*D*4`` (output); backward
``B*T*8 + B*D*4 + B*T*D*4`` (scatter); the zero fill of the ``(V, D)``
gradient is left out.  GB/s = bytes / median, compared with a ``dst.copy_(src)``
of 256 MiB float32 (bytes = 2 * size) timed in the same run.  Timings are
reported, never asserted.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from benchmarks import common
from benchmarks._hotloop_impls import (
    IMPLS,
    PAD_FRACTION,
    SEED,
    Forward,
    build,
    device_skip,
    embedding_mean,
    make_inputs,
    memory_skip,
    tf_cases,
    torch_path,
)
from benchmarks._hotloop_step import STEP_IMPLS, step_cases, step_ratios
from benchmarks.common import derived_backward, measure
from embeddings.errors import ArgumentParser

# Defaults.  Shapes are (B batch, T length, V vocabulary, D width).
SHAPES = {
    "tiny": (32, 100, 10_000, 16),
    "tutorial": (1024, 100, 10_000, 16),
    "medium": (1024, 256, 100_000, 64),
    "large": (4096, 512, 1_000_000, 128),
}
CPU_SHAPES = ("tiny", "tutorial", "medium")  # large only when asked for, or on CUDA
PHASES = ("forward", "backward", "forward_backward")
ALL_PHASES = (*PHASES, "step")
MIN_RUN_TIME = 1.0  # seconds per blocked_autorange
WARMUP = 3
COPY_BYTES = 256 * 2**20
DTYPE = torch.float32
NOTES = {
    "bytes_model": "forward B*T*8 + B*T*D*4 + B*D*4; backward B*T*8 + B*D*4 + B*T*D*4; "
                   "forward_backward their sum; (V, D) zero fill excluded; step: "
                   "benchmarks/_hotloop_step.py (bound_s = bytes / copy bandwidth)",
    "backward": "graph of one forward kept (retain_graph=True); only "
                "torch.autograd.grad(out, leaves, upstream) timed; tf: median difference",
    "ids": "Zipf, exponent 1: p(id) ~ 1/id over 1..V-1, 4% padding zeros, fixed seed",
    "ours_backward_extra": "ours/ours_torch also produce the squared sums (V, D), the "
                           "gradient of their sink",
    "step": "forward + backward of (means * upstream).sum() + optimizer step, one call per "
            "step, the table training on; checks: the table after the first step against "
            "today's exact path (dense gradient + adam_update) from the same start",
}


def case_bytes(shape: tuple[int, int, int, int], phase: str) -> int:
    """Bytes a phase moves under the model of the module docstring."""
    batch, length, _, dim = shape
    forward = batch * length * 8 + batch * length * dim * 4 + batch * dim * 4
    backward = batch * length * 8 + batch * dim * 4 + batch * length * dim * 4
    return {"forward": forward, "backward": backward, "forward_backward": forward + backward}[phase]


def copy_bandwidth(device: torch.device, min_run_time: float) -> dict[str, Any]:
    """``dst.copy_(src)`` of ``COPY_BYTES`` float32; bytes = 2 * size (read + write)."""
    src = torch.ones(COPY_BYTES // 4, dtype=DTYPE, device=device)
    dst = torch.empty_like(src)
    result = measure(lambda: dst.copy_(src), max(min_run_time, 1.0))
    result["bytes"] = 2 * COPY_BYTES
    result["gbps"] = result["bytes"] / result["median_s"] / 1e9
    return result


def _grad(out: torch.Tensor, leaves: tuple[torch.Tensor, ...], upstream: torch.Tensor,
          retain: bool) -> torch.Tensor:
    """The weight's gradient (the first leaf's; the others are computed and dropped)."""
    return torch.autograd.grad(out, leaves, upstream, retain_graph=retain)[0]


def _measure_backward(forward: Forward, leaves: tuple[torch.Tensor, ...],
                      upstream: torch.Tensor, min_run_time: float) -> dict[str, Any]:
    """Time the backward alone: one forward's graph is kept and differentiated repeatedly."""
    kept = forward()
    return measure(lambda: _grad(kept, leaves, upstream, retain=True), min_run_time, WARMUP)


def run_impl(impl: str, shape_name: str, ids: torch.Tensor, weight: torch.Tensor,
             upstream: torch.Tensor, reference: tuple[torch.Tensor, torch.Tensor],
             min_run_time: float) -> tuple[dict[str, Any], dict[str, Any]]:
    """Time one implementation's three phases at one shape.

    Returns:
        tuple[dict[str, Any], dict[str, Any]]: ``{phase: timing or {"skipped": why}}`` and
        a check against ``reference`` (forward output and gradient of ``embedding_mean``).
    """
    shape = (ids.shape[0], ids.shape[1], weight.shape[0], weight.shape[1])
    skip = device_skip(impl, ids.device) or memory_skip(impl, shape, ids.device)
    if skip:
        return {p: {"skipped": skip} for p in PHASES}, {"skipped": skip}
    guard = torch_path() if impl == "ours_torch" else contextlib.nullcontext()
    with guard:
        try:
            forward, leaves, note = build(impl, ids, weight)
            out = forward()  # compiles, for the compiled cases
            grad = _grad(out, leaves, upstream, retain=False)
        except Exception as err:  # a compiler or Keras failure: recorded, not fatal
            why = f"skipped: {type(err).__name__}: {str(err).strip().splitlines()[0][:300]}"
            return {p: {"skipped": why} for p in PHASES}, {"skipped": why}
        check = {
            "forward_max_abs_diff": float((out.detach() - reference[0]).abs().max()),
            "grad_max_abs_diff": float((grad - reference[1]).abs().max()),
            "note": note,
        }
        del out, grad
        timings = {"forward": measure(forward, min_run_time, WARMUP)}
        timings["forward_backward"] = measure(
            lambda: _grad(forward(), leaves, upstream, retain=False), min_run_time, WARMUP)
        for timing in timings.values():
            timing["method"] = "timed"
        try:
            timings["backward"] = _measure_backward(forward, leaves, upstream, min_run_time)
            timings["backward"]["method"] = "timed (retain_graph=True)"
        except RuntimeError as err:  # compiled backwards with donated buffers refuse retain_graph
            timings["backward"] = derived_backward(timings["forward"],
                                                   timings["forward_backward"], str(err))
    return timings, check


def _line(device: str, shape: tuple[int, int, int, int], impl: str, phase: str,
          case: dict[str, Any]) -> str:
    batch, length, vocab, dim = shape
    head = (f"device={device} dtype=float32 B={batch} T={length} V={vocab} D={dim} "
            f"impl={impl:<14} phase={phase:<16}")
    if case.get("skipped"):
        return f"{head} {case['skipped']}"
    return f"{head} median_ms={case['median_s'] * 1e3:10.4f} GB/s={case['gbps']:7.2f}"


def speedups(cases: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Median ratios baseline / impl (> 1: impl faster) for ours and ours_deterministic vs
    embeddingbag and vs ours_torch, per shape and phase, where both were measured."""
    medians = {(c["shape"], c["impl"], c["phase"]): c["median_s"] for c in cases
               if c.get("median_s")}
    out = []
    for shape in dict.fromkeys(c["shape"] for c in cases):
        for phase in PHASES:
            for impl in ("ours", "ours_deterministic"):
                for baseline in ("embeddingbag", "ours_torch"):
                    ours, base = medians.get((shape, impl, phase)), medians.get(
                        (shape, baseline, phase))
                    if ours and base:
                        out.append({"shape": shape, "phase": phase, "impl": impl,
                                    "baseline": baseline, "speedup": base / ours})
    return out


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Parse the command line (see the module docstring).

    Raises:
        SystemExit: an unknown flag, shape, phase or implementation, an implementation with
            none of the phases, or CUDA asked for without one.
    """
    parser = ArgumentParser(prog="python -m benchmarks.hotloop",
                            description=__doc__.splitlines()[0])
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--shapes", default=None,
                        help=f"comma-separated from {','.join(SHAPES)} (default: "
                             f"{','.join(CPU_SHAPES)} on cpu, all on cuda)")
    parser.add_argument("--phases", default=",".join(PHASES),
                        help=f"comma-separated from {','.join(ALL_PHASES)} (default: "
                             f"{','.join(PHASES)})")
    parser.add_argument("--impls", default=None,
                        help=f"comma-separated subset of {','.join(IMPLS)} (forward and "
                             f"backward phases) and {','.join(STEP_IMPLS)} (step) (default: "
                             "those of the phases)")
    parser.add_argument("--out", type=Path, default=None,
                        help="report path (default: benchmarks/reports/hotloop-<device>-<host>-"
                             "<date>.json)")
    parser.add_argument("--min-run-time", type=float, default=MIN_RUN_TIME,
                        help="seconds of measurement per case")
    args = parser.parse_args(argv)
    shapes = args.shapes or ",".join(CPU_SHAPES if args.device == "cpu" else SHAPES)
    args.shapes = [s.strip() for s in shapes.split(",") if s.strip()]
    args.phases = [s.strip() for s in args.phases.split(",") if s.strip()]
    offered = [*(IMPLS if set(args.phases) & set(PHASES) else ()),
               *(STEP_IMPLS if "step" in args.phases else ())]
    impls = ",".join(dict.fromkeys(offered)) if args.impls is None else args.impls
    args.impls = [s.strip() for s in impls.split(",") if s.strip()]
    for flag, names, valid in (("--shapes", args.shapes, SHAPES),
                               ("--phases", args.phases, ALL_PHASES),
                               ("--impls", args.impls, offered)):
        bad = [n for n in names if n not in valid]
        if bad or not names:
            parser.error(f"{flag} takes names from {','.join(dict.fromkeys(valid))} (with "
                         f"--phases {','.join(args.phases)}). Received: {flag}="
                         f"{','.join(names)}")
    if args.min_run_time <= 0:
        parser.error(f"--min-run-time must be positive. Received: {args.min_run_time}")
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error(f"--device cuda: torch {torch.__version__} sees no CUDA GPU. "
                     "Received: --device=cuda; use --device cpu.")
    return args


def _case(shape_name: str, impl: str, phase: str, device: str, timing: dict[str, Any],
          copy_gbps: float) -> dict[str, Any]:
    """One case of the report: its shape, the timing, bytes, GB/s and their share of the
    copy bandwidth; a step also gets its ``bound_s``, bytes at copy speed."""
    shape = SHAPES[shape_name]
    case = {"kind": "hotloop", "shape": shape_name, **dict(zip("BTVD", shape, strict=True)),
            "impl": impl, "phase": phase, "device": device, "dtype": "float32",
            "median_s": None, "iqr_s": None, "runs": None,
            "bytes": None if phase == "step" else case_bytes(shape, phase), "gbps": None,
            "fraction_of_copy": None, **timing}
    if case["median_s"]:
        case["gbps"] = case["bytes"] / case["median_s"] / 1e9
        case["fraction_of_copy"] = case["gbps"] / copy_gbps
        if phase == "step":
            case["bound_s"] = case["bytes"] / copy_gbps / 1e9
    return case


def _forward_cases(shape_name: str, ids: torch.Tensor, weight: torch.Tensor,
                   upstream: torch.Tensor, args: argparse.Namespace, tf: dict[str, Any]
                   ) -> list[tuple[str, dict[str, Any], dict[str, Any]]]:
    """``(impl, {phase: timing}, check)`` of the forward and backward phases' impls."""
    ref_weight = weight.clone().requires_grad_()
    ref_out = embedding_mean(ids, ref_weight)
    reference = (ref_out.detach(), _grad(ref_out, (ref_weight,), upstream, retain=False))
    del ref_weight, ref_out
    out = []
    for impl in (i for i in args.impls if i in IMPLS):
        if impl == "tf":
            skipped = tf.get("skipped")
            timings = ({p: {"skipped": skipped} for p in PHASES} if skipped
                       else tf["results"][shape_name])
            check = {"skipped": skipped} if skipped else tf["checks"][shape_name]
        else:
            timings, check = run_impl(impl, shape_name, ids, weight, upstream, reference,
                                      args.min_run_time)
        out.append((impl, timings, check))
        gc.collect()
    return out


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark, print one line per case and write the report.

    Args:
        argv (Sequence[str] | None): command-line arguments. Default: ``sys.argv[1:]``.

    Returns:
        int: 0.
    """
    args = parse_args(argv)
    device = torch.device(args.device)
    out = args.out or common.default_out(f"hotloop-{args.device}")
    load_before = os.getloadavg()
    copy = copy_bandwidth(device, args.min_run_time)
    print(f"device={args.device} copy 256 MiB float32: median_ms={copy['median_s'] * 1e3:.3f} "
          f"GB/s={copy['gbps']:.2f}")
    tf = tf_cases(args.device, args.shapes, args.min_run_time) if "tf" in args.impls else {}
    cases: list[dict[str, Any]] = []
    checks: list[dict[str, Any]] = []
    for shape_name in args.shapes:
        ids, weight, upstream = make_inputs(SHAPES[shape_name], device)
        results = []
        if set(args.phases) & set(PHASES):
            results += _forward_cases(shape_name, ids, weight, upstream, args, tf)
        if "step" in args.phases:
            results += step_cases(ids, weight, upstream, args.impls, args.min_run_time, WARMUP)
        for impl, timings, check in results:
            checks.append({"shape": shape_name, "impl": impl, **check})
            for phase in (p for p in args.phases if p in timings):
                case = _case(shape_name, impl, phase, args.device, timings[phase],
                             copy["gbps"])
                cases.append(case)
                print(_line(args.device, SHAPES[shape_name], impl, phase, case), flush=True)
        del ids, weight, upstream, results
    report: dict[str, Any] = {
        "benchmark": "hotloop",
        "environment": {**common.environment(), "tensorflow_run": tf.get("tensorflow")},
        "config": {"device": args.device, "dtype": "float32", "shapes": args.shapes,
                   "phases": args.phases, "impls": args.impls,
                   "min_run_time_s": args.min_run_time, "warmup": WARMUP, "seed": SEED,
                   "pad_fraction": PAD_FRACTION},
        "notes": NOTES,
        "kernels_available": _kernels_available(),
        "copy": copy,
        "cases": cases,
        "checks": checks,
        "speedups": speedups(cases) + step_ratios(cases),
        "loadavg": {"before": list(load_before), "after": list(os.getloadavg())},
    }
    common.write_json(out, report)
    for s in report["speedups"]:
        print(f"speedup {s['impl']:<18} vs {s['baseline']:<19} shape={s['shape']:<8} "
              f"phase={s['phase']:<16} {s['speedup']:.2f}x")
    print(f"report: {out}")
    return 0


def _kernels_available() -> bool:
    from embeddings.ops import cpu

    return cpu.available()


if __name__ == "__main__":
    sys.exit(main())
