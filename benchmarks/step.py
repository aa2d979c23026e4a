"""Time one training step of a preset at its real size, phase by phase, and weigh the
embedding table's memory.

Usage::

    python -m benchmarks.step [--data PATH] [--presets tutorial,bigrams] [--steps 30]
                              [--warmup 3] [--set FIELD=VALUE ...] [--out REPORT.json]

For each preset the benchmark builds ``RunConfig.from_preset(name, device="cpu", **sets)``
(``--set vocab_size=50`` overrides any field of :class:`embeddings.config.RunConfig`
for every preset, except ``device``, always ``cpu``, and ``data``: use ``--data``),
loads and vectorizes IMDb as ``--backend torch`` does
(:func:`embeddings.backends.vectorized.vectorize`), and builds the model and optimizer
exactly as :class:`~embeddings.backends.native.NativeBackend` and its ``fit`` do:
``SentimentClassifier(V, D, H, mask_padding=...)``, ``keras_init_``, the initial table,
``KerasAdam(model.parameters(), lr, squares=square_sinks(model))``.

It then trains ``--warmup`` + ``--steps`` real steps on the first full batches of the
training rows in the order of the first epoch (cycling over them when there are fewer)
and times each phase with ``time.perf_counter``:

* ``forward``: the model and ``binary_crossentropy_from_logits``;
* ``backward``: ``optimizer.zero_grad()`` and ``loss.backward()``, which writes the
  table's ``(V, D)`` gradient and squared-gradient sums (``ops.cpu.bag_scatter``,
  the ``grouped`` kernel from ``V * D >= 2**22``);
* ``adam``: ``optimizer.step()``, every parameter: Keras's Adam updates the whole
  ``(V, D)`` table, its ``m`` and its ``v`` every step (a dense sweep);
* ``step``: the sum of the three, per step.  The fit loop's metric updates are left out.

Within ``adam``, two measurements take the table's sweep apart:

* ``adam_parts``: ``--steps`` more real training steps whose Adam step is made by two
  :class:`~embeddings.optim.KerasAdam` sharing the optimizer's moments and step count, one
  over the table (with its sink) and one over the four Dense parameters
  (:func:`split_optimizers`: stepping both is ``optimizer.step()``, the same update in the
  same order); ``table`` and ``dense`` are timed in the step, between a real backward and
  the next forward, with the caches as training leaves them;
* ``isolated``: :func:`embeddings.optim.adam_update` alone, ``--steps`` times back to
  back on *copies* of the parameters and moments, with the last step's gradients and
  scalars: ``table``, ``dense``, and ``floor``, three in-place torch passes over copies of
  the same five arrays (``p += g``, ``m += g2``, ``v = -v``: the sweep's reads and writes
  without its arithmetic).

Every phase also records the process's minor page faults (``ru_minflt``, median per
step): fresh ``(V, D)`` gradient tensors are allocated by each backward.

Bytes model: the table's sweep reads the table, its gradient, the squared sums, ``m``
and ``v`` and writes the table, ``m`` and ``v``: ``8 * V * D * 4`` bytes per step.  Its
GB/s (``in_step`` and ``isolated``) is set against ``floor`` and against
``copy_bandwidth``, a 256 MiB ``dst.copy_(src)`` (:func:`benchmarks.hotloop.copy_bandwidth`,
bytes = 2 * size).

Memory is measured from the tensors after the last step (``numel * element_size``):
the table, its gradient, the sink and its gradient, Adam's ``m`` and ``v``, the Dense
parameters with their gradients and moments, and the id arrays; ``peak_rss_bytes`` is
the process's ``ru_maxrss`` after the preset (it includes earlier presets).

The JSON report (default ``benchmarks/reports/step-<host>-<date>.json``) holds the
environment, per preset the shape, phase statistics (:func:`benchmarks.common.stats`)
with shares, ``adam_parts`` and ``isolated``, the bytes model, the memory breakdown, and a
``summary`` per preset (``adam_share``, ``dominant_phase``, ...).  Timings are reported,
never asserted.
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import itertools
import math
import os
import resource
import statistics
import sys
import time
import typing
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

from benchmarks import common
from embeddings.backends.contract import initial_table
from embeddings.backends.vectorized import Vectorized, vectorize
from embeddings.config import PRESETS, FieldError, RunConfig
from embeddings.errors import ArgumentParser, InvalidInput, cli
from embeddings.model import SentimentClassifier, binary_crossentropy_from_logits, keras_init_
from embeddings.ops import square_sinks
from embeddings.optim import KerasAdam, adam_scalars, adam_update

STEPS = 30
WARMUP = 3
PHASES = ("forward", "backward", "adam")
ADAM_PARTS = ("table", "dense")
ADAM_PASSES = 8  # reads: table, grad, squares, m, v; writes: table, m, v
FLOAT_BYTES = 4
COPY_MIN_RUN_TIME = 1.0
REFUSED = {"device": "the benchmark runs on the CPU", "data": "use --data"}
KIND_NAMES = {int: "an integer", float: "a number", bool: "true or false", str: "a string"}
MB = 1e6


# --- the command line's settings ------------------------------------------------------------

def setting_types() -> dict[str, Any]:
    """The type of every field of :class:`RunConfig`'s sections, by field name."""
    hints = typing.get_type_hints(RunConfig)
    out: dict[str, Any] = {}
    for section in dataclasses.fields(RunConfig):
        section_cls = hints[section.name]
        if dataclasses.is_dataclass(section_cls):
            field_hints = typing.get_type_hints(section_cls)
            out.update({f.name: field_hints[f.name] for f in dataclasses.fields(section_cls)})
    return out


def parse_setting(text: str) -> tuple[str, Any]:
    """``FIELD=VALUE`` as the field and its value of the field's type.

    ``true``/``false`` (also ``1``/``0``, ``yes``/``no``) for yes-no fields; ``none`` for
    a field that may be unset.

    Args:
        text (str): e.g. ``"vocab_size=50"``.

    Returns:
        tuple[str, Any]: e.g. ``("vocab_size", 50)``.

    Raises:
        InvalidInput: no ``=``, an unknown or refused field, or a value of the wrong type.
    """
    name, sep, raw = text.partition("=")
    name = name.strip().replace("-", "_")
    if not sep or not name:
        raise InvalidInput(f"--set takes FIELD=VALUE, e.g. --set vocab_size=50. Received: "
                           f"--set {text}")
    types = setting_types()
    if name not in types:
        raise InvalidInput(f"--set names no setting. Received: --set {text}; settings are "
                           f"{', '.join(sorted(set(types) - set(REFUSED)))}")
    if name in REFUSED:
        raise InvalidInput(f"--set cannot change {name}: {REFUSED[name]}. Received: --set {text}")
    kinds = [a for a in typing.get_args(types[name]) if a is not type(None)] or [types[name]]
    kind, raw = kinds[0], raw.strip()
    if len(kinds) < len(typing.get_args(types[name])) and raw.lower() == "none":
        return name, None
    try:
        if kind is bool:
            value: Any = {"true": True, "1": True, "yes": True, "false": False, "0": False,
                          "no": False}[raw.lower()]
        else:
            value = kind(raw)
    except (KeyError, ValueError):
        raise InvalidInput(f"--set {name} takes {KIND_NAMES.get(kind, kind.__name__)}. "
                           f"Received: --set {text}") from None
    return name, value


def preset_configs(presets: Sequence[str], settings: dict[str, Any],
                   source: str | None) -> dict[str, RunConfig]:
    """``RunConfig.from_preset(name, device="cpu", data=source, **settings)`` per preset.

    Raises:
        InvalidInput: an unknown preset, or a setting that breaks its field's rule (the
            message names ``--set FIELD``).
    """
    unknown = [p for p in presets if p not in PRESETS]
    if unknown or not presets:
        raise InvalidInput(f"--presets takes names from {', '.join(PRESETS)}. Received: "
                           f"--presets={','.join(presets)}")
    configs = {}
    for name in presets:
        try:
            configs[name] = RunConfig.from_preset(name, device="cpu", data=source, **settings)
        except FieldError as err:
            raise InvalidInput(err.message(f"--set {err.name}")) from None
    return configs


# --- the model, the batches and the timings -------------------------------------------------

def build(config: RunConfig, vocabulary: list[str]) -> tuple[SentimentClassifier, KerasAdam]:
    """The model and optimizer of ``NativeBackend.train`` and ``fit``, on the CPU."""
    torch.manual_seed(config.train.seed)
    model = SentimentClassifier(config.text.vocab_size, config.model.embedding_dim,
                                config.model.hidden_units,
                                deterministic=config.train.deterministic or None,
                                mask_padding=config.model.mask_padding)
    keras_init_(model, config.train.seed)
    table, _ = initial_table(config, vocabulary,
                             model.embedding.embeddings.detach().numpy().copy())
    with torch.no_grad():
        model.embedding.embeddings.copy_(torch.from_numpy(table))
    optimizer = KerasAdam(model.parameters(), lr=config.train.learning_rate,
                          squares=square_sinks(model))
    return model, optimizer


def train_batches(rows: int, batch_size: int, count: int) -> list[slice]:
    """``count`` batches: the full batches of ``rows`` training rows from the first,
    cycled; the one partial batch when no batch is full."""
    full = [slice(i, i + batch_size) for i in range(0, rows - batch_size + 1, batch_size)]
    pool = full or [slice(0, rows)]
    return [pool[i % len(pool)] for i in range(count)]


def split_optimizers(model: SentimentClassifier,
                     optimizer: KerasAdam) -> dict[str, KerasAdam]:
    """Two :class:`KerasAdam` over the table (with its sink) and over the Dense parameters,
    sharing ``optimizer``'s moments and step count: stepping ``table`` then ``dense`` is
    ``optimizer.step()`` (each parameter's update is its own; the order is the same)."""
    table = model.embedding.embeddings
    (group,) = optimizer.param_groups
    hyper = {k: group[k] for k in ("lr", "beta_1", "beta_2", "epsilon")}
    parts = {"table": KerasAdam([table], squares=square_sinks(model), **hyper),
             "dense": KerasAdam([p for p in group["params"] if p is not table], **hyper)}
    for part in parts.values():
        part.iterations = optimizer.iterations
        for p in part.param_groups[0]["params"]:
            part.state[p] = optimizer.state[p]  # the same dict: the same m and v
    return parts


def time_steps(model: SentimentClassifier, optimizer: KerasAdam, ids: torch.Tensor,
               labels: torch.Tensor, parts: list[slice], warmup: int,
               split: bool = False) -> tuple[dict[str, list[float]], dict[str, list[int]],
                                             list[float]]:
    """Train one step per batch of ``parts``, timing each phase after ``warmup`` steps.

    Args:
        model (SentimentClassifier): the model, trained in place.
        optimizer (KerasAdam): its optimizer, as ``fit`` builds it.
        ids (torch.Tensor): ``(N, T)`` training ids.
        labels (torch.Tensor): ``(N,)`` labels.
        parts (list[slice]): the batch of each step.
        warmup (int): untimed steps first.
        split (bool): update with :func:`split_optimizers`, timing ``table`` and ``dense``
            instead of ``adam``. Default: ``False``.

    Returns:
        tuple: seconds per phase (``forward``, ``backward``, ``adam`` or ``table`` and
        ``dense``, and ``step``, their sum) of the timed steps, the process's minor page
        faults in each phase, and every step's loss.
    """
    if split:
        split_parts = split_optimizers(model, optimizer)
        updates = {name: part.step for name, part in split_parts.items()}
    else:
        updates = {"adam": optimizer.step}
    names = ("forward", "backward", *updates)
    times: dict[str, list[float]] = {name: [] for name in (*names, "step")}
    faults: dict[str, list[int]] = {name: [] for name in names}
    losses = []

    def mark() -> tuple[float, int]:
        return time.perf_counter(), resource.getrusage(resource.RUSAGE_SELF).ru_minflt

    for i, part in enumerate(parts):
        marks = [mark()]
        logits = model(ids[part])  # (B, T) -> (B,)
        loss = binary_crossentropy_from_logits(logits, labels[part])
        marks.append(mark())
        optimizer.zero_grad()
        loss.backward()
        marks.append(mark())
        for update in updates.values():
            update()
            marks.append(mark())
        losses.append(float(loss.detach()))
        if i >= warmup:
            spans = [b[0] - a[0] for a, b in itertools.pairwise(marks)]
            for name, span, (a, b) in zip(names, spans, itertools.pairwise(marks),
                                          strict=True):
                times[name].append(span)
                faults[name].append(b[1] - a[1])
            times["step"].append(sum(spans))
    if split:
        optimizer.iterations = split_parts["table"].iterations
    return times, faults, losses


def repeat(fn: Callable[[], object], times: int, warmup: int = 1) -> list[float]:
    """Seconds of ``times`` calls of ``fn`` after ``warmup`` untimed ones."""
    for _ in range(warmup):
        fn()
    out = []
    for _ in range(times):
        start = time.perf_counter()
        fn()
        out.append(time.perf_counter() - start)
    return out


def isolated(model: SentimentClassifier, optimizer: KerasAdam,
             reps: int) -> dict[str, list[float]]:
    """Seconds of :func:`~embeddings.optim.adam_update` back to back on copies: the table,
    the Dense parameters, and the same-traffic ``floor`` (see the module docstring)."""
    table = model.embedding.embeddings
    sink = square_sinks(model)[table]
    (group,) = optimizer.param_groups
    scalars = adam_scalars(group["lr"], group["beta_1"], group["beta_2"], group["epsilon"],
                           optimizer.iterations)

    def copies(p: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor,
                                         torch.Tensor]:
        state = optimizer.state[p]
        if p.grad is None:
            raise RuntimeError("isolated runs after a step, when every parameter has a grad")
        return p.grad, p.detach().clone(), state["m"].clone(), state["v"].clone()

    grad, p, m, v = copies(table)
    squares = sink.grad  # the per-occurrence squared sums
    if squares is None:
        raise RuntimeError("isolated runs after a step, when the table's sink has a grad")
    dense = [copies(q) for q in group["params"] if q is not table]

    def table_update() -> None:
        adam_update(p, grad, squares, m, v, scalars)

    def dense_update() -> None:
        for g, q, qm, qv in dense:
            adam_update(q, g, None, qm, qv, scalars)

    def floor() -> None:  # the sweep's reads and writes, without its arithmetic
        p.add_(grad)
        m.add_(squares)
        v.neg_()

    return {"table": repeat(table_update, reps), "dense": repeat(dense_update, reps),
            "floor": repeat(floor, reps)}


def nbytes(t: torch.Tensor | None) -> int:
    """Bytes of a tensor's elements (0 for ``None``)."""
    return 0 if t is None else t.numel() * t.element_size()


def memory(model: SentimentClassifier, optimizer: KerasAdam,
           inputs: Vectorized) -> dict[str, Any]:
    """Bytes of the table and everything of its shape, of the Dense layers and of the ids."""
    table = model.embedding.embeddings
    sink = square_sinks(model)[table]
    state = optimizer.state[table]
    out: dict[str, Any] = {
        "table": nbytes(table), "table_grad": nbytes(table.grad), "sink": nbytes(sink),
        "sink_grad": nbytes(sink.grad), "adam_m": nbytes(state["m"]),
        "adam_v": nbytes(state["v"]),
    }
    out["table_total"] = sum(out.values())
    dense = [p for p in model.parameters() if p is not table and p is not sink]
    out["dense_total"] = sum(nbytes(p) + nbytes(p.grad) + nbytes(optimizer.state[p]["m"])
                             + nbytes(optimizer.state[p]["v"]) for p in dense)
    out["total"] = out["table_total"] + out["dense_total"]
    out["ids"] = {name: nbytes(getattr(inputs, name))
                  for name in ("train_ids", "train_labels", "val_ids", "val_labels")}
    out["peak_rss_bytes"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return out


def with_shares(times: dict[str, list[float]], step: dict[str, Any],
                adam: dict[str, Any] | None = None,
                faults: dict[str, list[int]] | None = None) -> dict[str, dict[str, Any]]:
    """:func:`common.stats` per phase, with ``share`` (median / the step's median),
    ``share_of_adam`` (with ``adam``), and with ``faults`` (the phases' own steps)
    ``time_share`` (seconds / the steps' seconds: these sum to 1) and ``minor_faults``
    (median per step)."""
    out = {}
    for phase, spans in times.items():
        entry = common.stats(spans)
        entry["share"] = entry["median_s"] / step["median_s"]
        if adam is not None:
            entry["share_of_adam"] = entry["median_s"] / adam["median_s"]
        if faults is not None:
            entry["time_share"] = sum(spans) / sum(step["times_s"])
        if faults and phase in faults:
            entry["minor_faults"] = statistics.median(faults[phase])
        out[phase] = entry
    return out


def run_preset(config: RunConfig, steps: int, warmup: int,
               copy_gbps: float | None) -> dict[str, Any]:
    """Load, vectorize, build and time one preset (see the module docstring)."""
    from embeddings.data import load_splits
    from embeddings.ops import cpu, kernels_for

    start = time.perf_counter()
    splits = load_splits(config.data.data, validation_split=config.data.validation_split,
                         seed=config.data.split_seed, batch_size=config.train.batch_size)
    inputs = vectorize(config, splits, torch.device("cpu"))
    prepare_s = time.perf_counter() - start
    model, optimizer = build(config, inputs.vectorizer.get_vocabulary())
    batch, length = config.train.batch_size, config.text.sequence_length
    rows, dim = config.text.vocab_size, config.model.embedding_dim
    n_train = len(inputs.train_ids)
    parts = train_batches(n_train, batch, warmup + 2 * steps)
    gc.collect()
    times, faults, losses = time_steps(model, optimizer, inputs.train_ids,
                                       inputs.train_labels, parts[:warmup + steps], warmup)
    phases = with_shares(times, common.stats(times["step"]), faults=faults)
    split_times, split_faults, split_losses = time_steps(
        model, optimizer, inputs.train_ids, inputs.train_labels, parts[warmup + steps:], 0,
        split=True)
    adam_parts = with_shares({p: split_times[p] for p in ADAM_PARTS}, phases["step"],
                             phases["adam"])
    for part in ADAM_PARTS:
        adam_parts[part]["minor_faults"] = statistics.median(split_faults[part])
    alone = with_shares(isolated(model, optimizer, steps), phases["step"], phases["adam"])
    ops = kernels_for(model.embedding.embeddings).__name__.rsplit(".", 1)[-1]
    grouped = ops == "cpu" and rows * dim >= cpu.GROUPED_MIN_ELEMENTS
    sweep_bytes = ADAM_PASSES * rows * dim * FLOAT_BYTES
    gbps = {"in_step": sweep_bytes / adam_parts["table"]["median_s"] / 1e9,
            "isolated": sweep_bytes / alone["table"]["median_s"] / 1e9,
            "floor": sweep_bytes / alone["floor"]["median_s"] / 1e9}
    sweep: dict[str, Any] = {"bytes": sweep_bytes, "gbps": gbps,
                             "backward_table_bytes_written": 2 * rows * dim * FLOAT_BYTES}
    for which in ("in_step", "isolated"):
        sweep[f"{which}_fraction_of_floor"] = gbps[which] / gbps["floor"]
        sweep[f"{which}_fraction_of_copy"] = None if copy_gbps is None else \
            gbps[which] / copy_gbps
    shape = {"B": batch, "T": length, "V": rows, "D": dim, "H": config.model.hidden_units,
             "ngrams": config.text.ngrams, "mask_padding": config.model.mask_padding,
             "learning_rate": config.train.learning_rate, "n_train": n_train,
             "n_val": len(inputs.val_ids), "steps_per_epoch": math.ceil(n_train / batch),
             "vocabulary_used": len(inputs.vectorizer.get_vocabulary()),
             "batches_timed": len({(p.start, p.stop) for p in parts[warmup:warmup + steps]})}
    result = {
        "config": config.to_dict(), "shape": shape, "prepare_s": prepare_s,
        "kernels": {"ops": ops, "backward": "grouped" if grouped else
                    ("scatter" if ops == "cpu" else ops)},
        "iterations": optimizer.iterations,
        "loss": {"first": losses[0], "last": (losses + split_losses)[-1]},
        "phases": phases, "adam_parts": adam_parts, "isolated": alone, "sweep": sweep,
        "memory": memory(model, optimizer, inputs),
    }
    del inputs, model, optimizer
    gc.collect()
    return result


def summarize(result: dict[str, Any]) -> dict[str, Any]:
    """The answer for one preset: step median, the Adam step's and the table sweep's share
    of it, the phase with the largest median, and the sweep's speed."""
    phases = {p: result["phases"][p] for p in PHASES}
    sweep = result["sweep"]
    return {
        "step_median_s": result["phases"]["step"]["median_s"],
        "adam_share": phases["adam"]["share"],
        "table_sweep_share": result["adam_parts"]["table"]["share"],
        "dominant_phase": max(phases, key=lambda p: phases[p]["median_s"]),
        "table_sweep_gbps": sweep["gbps"]["in_step"],
        "fraction_of_floor": sweep["in_step_fraction_of_floor"],
        "fraction_of_copy": sweep["in_step_fraction_of_copy"],
        "table_total_bytes": result["memory"]["table_total"],
    }


# --- output --------------------------------------------------------------------------------

def format_preset(name: str, result: dict[str, Any], summary: dict[str, Any]) -> list[str]:
    """The printed lines of one preset."""
    s, mem, sweep = result["shape"], result["memory"], result["sweep"]
    lines = [f"preset={name} device=cpu dtype=float32 B={s['B']} T={s['T']} V={s['V']} "
             f"D={s['D']} ngrams={s['ngrams']} mask_padding={s['mask_padding']} "
             f"steps/epoch={s['steps_per_epoch']} step median_ms="
             f"{summary['step_median_s'] * 1e3:.3f} dominant={summary['dominant_phase']}",
             f"  {'phase':<16} {'median ms':>10} {'IQR ms':>8} {'of step':>8} {'of adam':>8} "
             f"{'faults':>7}"]
    rows = [(p, result["phases"][p]) for p in (*PHASES, "step")]
    rows[3:3] = [(f"  adam.{p}", result["adam_parts"][p]) for p in ADAM_PARTS]
    rows += [(f"isolated.{p}", result["isolated"][p]) for p in (*ADAM_PARTS, "floor")]
    for label, e in rows:
        of_adam = f"{e['share_of_adam']:8.1%}" if "share_of_adam" in e else f"{'':8}"
        faults = f"{e['minor_faults']:7.0f}" if "minor_faults" in e else ""
        lines.append(f"  {label:<16} {e['median_s'] * 1e3:10.3f} {e['iqr_s'] * 1e3:8.3f} "
                     f"{e['share']:8.1%} {of_adam} {faults}".rstrip())
    gbps = sweep["gbps"]
    copy = "" if sweep["in_step_fraction_of_copy"] is None else \
        f", {sweep['in_step_fraction_of_copy']:.0%} of the copy bandwidth"
    lines.append(f"  sweep: {sweep['bytes'] / MB:.3g} MB per step at {gbps['in_step']:.1f} "
                 f"GB/s in the step ({sweep['in_step_fraction_of_floor']:.0%} of the "
                 f"same-traffic floor's {gbps['floor']:.1f} GB/s{copy}); isolated "
                 f"{gbps['isolated']:.1f} GB/s")
    parts = ", ".join(f"{k} {mem[k] / MB:.3g}" for k in
                      ("table", "table_grad", "sink", "sink_grad", "adam_m", "adam_v"))
    lines.append(f"  memory MB: {parts}; dense {mem['dense_total'] / MB:.3g}; total "
                 f"{mem['total'] / MB:.4g}; ids {sum(mem['ids'].values()) / MB:.4g}; "
                 f"peak RSS {mem['peak_rss_bytes'] / 2**20:.0f} MiB")
    return lines


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Parse the command line (see the module docstring); presets and ``--set`` values
    are checked by :func:`run`.

    Raises:
        SystemExit: an unknown flag, or fewer than one step.
    """
    parser = ArgumentParser(prog="python -m benchmarks.step",
                            description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=None,
                        help="aclImdb directory or tarball (default: $EMBEDDINGS_DATA, then "
                             "the package's fallbacks)")
    parser.add_argument("--presets", default=",".join(PRESETS),
                        help=f"comma-separated from {','.join(PRESETS)}")
    parser.add_argument("--steps", type=int, default=STEPS, help=f"timed steps (default: {STEPS})")
    parser.add_argument("--warmup", type=int, default=WARMUP,
                        help=f"untimed steps first (default: {WARMUP})")
    parser.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                        dest="settings", help="override a RunConfig field for every preset, "
                        "e.g. --set vocab_size=50 (repeatable)")
    parser.add_argument("--out", type=Path, default=None,
                        help="report path (default: benchmarks/reports/step-<host>-<date>.json)")
    args = parser.parse_args(argv)
    if args.steps < 1:
        parser.error(f"--steps must be at least 1. Received: --steps={args.steps}")
    if args.warmup < 0:
        parser.error(f"--warmup must be at least 0. Received: --warmup={args.warmup}")
    args.presets = [p.strip() for p in args.presets.split(",") if p.strip()]
    return args


def run(args: argparse.Namespace) -> int:
    """Measure every preset, write the report and print the table."""
    from benchmarks.hotloop import copy_bandwidth
    from embeddings.ops import cpu

    source = args.data if args.data is not None else os.environ.get("EMBEDDINGS_DATA") or None
    settings = dict(parse_setting(text) for text in args.settings)
    configs = preset_configs(args.presets, settings, source)
    out = args.out or common.default_out("step")
    load_before = os.getloadavg()
    copy = copy_bandwidth(torch.device("cpu"), COPY_MIN_RUN_TIME)
    results = {name: run_preset(config, args.steps, args.warmup, copy["gbps"])
               for name, config in configs.items()}
    summary = {name: summarize(result) for name, result in results.items()}
    report = {
        "benchmark": "step",
        "environment": common.environment(),
        "kernels_available": cpu.available(),
        "data": {"source": source or "default fallbacks"},
        "config": {"presets": args.presets, "steps": args.steps, "warmup": args.warmup,
                   "settings": settings, "device": "cpu"},
        "notes": {
            "phases": "forward: model + loss; backward: zero_grad + loss.backward(); adam: "
                      "optimizer.step(); step: their sum; perf_counter per step",
            "share": "phase median / step median; time_share: phase seconds / step seconds",
            "adam_parts": "more real steps whose Adam step is two KerasAdam (table, dense) "
                          "sharing the moments; share_of_adam: median / adam median",
            "isolated": "embeddings.optim.adam_update back to back on copies of the "
                        "parameters and moments, last step's gradients and scalars; floor: "
                        "p += g, m += g2, v = -v on the same copies",
            "sweep": f"bytes = {ADAM_PASSES} * V * D * 4 (reads table, grad, squares, m, v; "
                     "writes table, m, v); gbps: in_step (adam_parts.table), isolated, floor",
            "minor_faults": "ru_minflt of the process during the phase, median per step",
            "copy_bandwidth": "dst.copy_(src) of 256 MiB float32, bytes = 2 * size",
            "memory": "numel * element_size of the tensors after the last step; peak_rss_bytes"
                      " is the process's ru_maxrss after the preset",
        },
        "copy_bandwidth": copy,
        "presets": results,
        "summary": summary,
        "loadavg": {"before": list(load_before), "after": list(os.getloadavg())},
    }
    common.write_json(out, report)
    for name, result in results.items():
        for line in format_preset(name, result, summary[name]):
            print(line)
    print(f"copy bandwidth: {copy['gbps']:.1f} GB/s (256 MiB dst.copy_(src))")
    print(f"report: {out}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark, print the table and write the report.

    Args:
        argv (Sequence[str] | None): command-line arguments. Default: ``sys.argv[1:]``.

    Returns:
        int: 0; 2 when a flag, a preset, a ``--set`` or the data is refused.
    """
    args = parse_args(argv)
    return cli(lambda: run(args))


if __name__ == "__main__":
    sys.exit(main())
