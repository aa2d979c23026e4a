"""TensorFlow's side of ``benchmarks.hotloop``, run as a subprocess of the same interpreter.

    python -m benchmarks._tf_hotloop --device cpu --shapes tiny,tutorial --min-run-time 0.5

It never imports Keras, so the parent keeps Keras on torch, and TensorFlow's
thread pools never share a process with the torch cases.  The inputs are the
parent's (:func:`benchmarks.hotloop.make_inputs`, same seed), handed to
TensorFlow as NumPy arrays, and the timer is the parent's (``torch.utils.benchmark``
on a Python statement; on a GPU the statement ends with
``tf.test.experimental.sync_devices()``).

The op is ``tf.reduce_mean(tf.nn.embedding_lookup(w, ids), axis=1)`` inside a
``tf.function`` (graph mode, as Keras's ``fit`` runs it), ``w`` a ``tf.Variable``.
``forward_backward`` records it on a ``GradientTape`` and asks for the gradient
with ``output_gradients=upstream``; TensorFlow returns ``IndexedSlices`` (one row
per occurrence), which ``tf.convert_to_tensor`` densifies to ``(V, D)`` (an
unsorted segment sum) so the work matches the torch cases.  A ``tf.function``
cannot keep a tape between calls, so ``backward`` is the difference of the two
medians (``method`` says so; it has no IQR).  One JSON object goes to stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any

import torch

from benchmarks._hotloop_impls import embedding_mean, make_inputs, memory_skip
from benchmarks.common import derived_backward, measure
from benchmarks.hotloop import MIN_RUN_TIME, SHAPES, WARMUP


def _tf_case(tf: Any, shape: tuple[int, int, int, int], device: torch.device,
             min_run_time: float) -> tuple[dict[str, Any], dict[str, Any]]:
    """Time TensorFlow's forward and forward+backward at one shape, check them against torch."""
    ids, weight, upstream = make_inputs(shape, torch.device("cpu"))
    ref_w = weight.clone().requires_grad_()
    ref_out = embedding_mean(ids, ref_w)
    (ref_grad,) = torch.autograd.grad(ref_out, (ref_w,), upstream)
    name = "/GPU:0" if device.type == "cuda" else "/CPU:0"
    sync: Callable[[], None] = (tf.test.experimental.sync_devices if device.type == "cuda"
                                else (lambda: None))
    with tf.device(name):
        w = tf.Variable(weight.numpy())
        ids_t = tf.constant(ids.numpy())
        up_t = tf.constant(upstream.numpy())

        @tf.function
        def forward(ids: Any) -> Any:
            return tf.reduce_mean(tf.nn.embedding_lookup(w, ids), axis=1)  # (B, T) -> (B, D)

        @tf.function
        def forward_backward(ids: Any, upstream: Any) -> tuple[Any, Any]:
            with tf.GradientTape() as tape:
                out = tf.reduce_mean(tf.nn.embedding_lookup(w, ids), axis=1)
            grad = tape.gradient(out, w, output_gradients=upstream)  # IndexedSlices
            return out, tf.convert_to_tensor(grad)  # (B*T, D) slices -> (V, D)

        out, grad = forward_backward(ids_t, up_t)
        check = {
            "forward_max_abs_diff": float(abs(out.numpy() - ref_out.detach().numpy()).max()),
            "grad_max_abs_diff": float(abs(grad.numpy() - ref_grad.numpy()).max()),
            "note": f"tensorflow {tf.__version__}, tf.function, dense gradient",
        }

        def run_forward() -> None:
            forward(ids_t)
            sync()

        def run_forward_backward() -> None:
            forward_backward(ids_t, up_t)
            sync()

        fwd = measure(run_forward, min_run_time, WARMUP)
        both = measure(run_forward_backward, min_run_time, WARMUP)
    fwd["method"] = both["method"] = "timed"
    backward = derived_backward(fwd, both, "a tf.function cannot keep a tape between calls")
    return {"forward": fwd, "backward": backward, "forward_backward": both}, check


def main(argv: Sequence[str] | None = None) -> int:
    """Time every shape and print ``{"tensorflow", "results", "checks"}`` as one JSON line.

    Args:
        argv (Sequence[str] | None): command-line arguments. Default: ``sys.argv[1:]``.

    Returns:
        int: 0, or 1 when TensorFlow cannot be imported or sees no GPU for ``--device cuda``.
    """
    parser = argparse.ArgumentParser(prog="python -m benchmarks._tf_hotloop")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--shapes", default="tiny")
    parser.add_argument("--min-run-time", type=float, default=MIN_RUN_TIME)
    args = parser.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    device = torch.device(args.device)
    if device.type == "cuda" and not tf.config.list_physical_devices("GPU"):
        print(f"TensorFlow {tf.__version__} sees no GPU", file=sys.stderr)
        return 1
    results: dict[str, Any] = {}
    checks: dict[str, Any] = {}
    for shape_name in args.shapes.split(","):
        shape = SHAPES[shape_name]
        skip = memory_skip("tf", shape, device)
        if skip:
            results[shape_name] = {p: {"skipped": skip} for p in
                                   ("forward", "backward", "forward_backward")}
            checks[shape_name] = {"skipped": skip}
            continue
        results[shape_name], checks[shape_name] = _tf_case(tf, shape, device, args.min_run_time)
    print(json.dumps({"tensorflow": tf.__version__, "results": results, "checks": checks}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
