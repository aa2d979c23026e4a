"""The pictures of a run: ``curves.png`` (the training history) and ``embedding-map.png``
(where the most frequent words sit, and which way each one pulls a review).

``curves.png`` (1200 x 500 px) has two panels, loss and accuracy, each with the training
and validation value of every epoch.  A run without history (a converted model) has no
``curves.png``.  ``embedding-map.png`` (1000 x 1000 px) projects the embeddings of the
:data:`MAP_WORDS` most frequent words (ids 2 on: the vocabulary is in frequency order
after ``''`` and ``'[UNK]'``) onto their first two principal components and colours each
word by :func:`word_logits`, the logit the model gives a review made of that word alone:
on a diverging map whose white is the logit of the empty review (all padding), red
below it (the word pulls the review negative), blue above.  With T - 1 of the T
positions padding, every one-word review of the tutorial's run scores above 0, so 0
would leave the map all blue; the empty review is the neutral point.

PCA rather than t-SNE or UMAP: it is deterministic (an SVD, each axis's sign fixed) and
needs nothing beyond NumPy.  Its axes are drawn on an asinh scale (linear near 0,
logarithmic in the tails), so that the crowd of common words spreads out while the
outliers stay on the map; a label that would cover another is left out, the more neutral
word giving way.

Drawing uses matplotlib's ``Figure`` and Agg canvas directly, imported only when a
picture is drawn; ``pyplot`` and its global figures are never touched, and the default
style is used whatever the user's ``matplotlibrc`` says.  The PNGs carry no software
name or date, so the same run always gives the same bytes.  Every file is written
atomically.
"""

from __future__ import annotations

import io
import os
import warnings
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import numpy as np

from embeddings.files import atomic_write_bytes

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

CURVES_FILE = "curves.png"
MAP_FILE = "embedding-map.png"
DPI = 100
CURVES_SIZE = (1200, 500)  # pixels, width x height
MAP_SIZE = (1000, 1000)
MAP_WORDS = 300
FIRST_WORD = 2  # ids 0 and 1 are padding and '[UNK]'
SPLITS = (("training", ""), ("validation", "val_"))  # label, history key prefix
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def word_logits(weights: Mapping[str, Any], ids: Sequence[int] | np.ndarray,
                sequence_length: int, mask_padding: bool = False) -> np.ndarray:
    """The model's logit for a review made of one word alone, for each id in ``ids``.

    The vectorizer pads such a review to ``[id, 0, ..., 0]``, and the model averages all
    T positions, padding included, so the pooled vector is
    ``(E[id] + (T - 1) * E[0]) / T``; with ``mask_padding`` the padding is left out and it
    is ``E[id]``.  It then goes through ``Dense(H, relu)`` and ``Dense(1)``.  Computed in
    float32 with NumPy.

    Args:
        weights (Mapping[str, Any]): arrays (or tensors) under the native names.
        ids (Sequence[int] | np.ndarray): ``(N,)`` token ids.
        sequence_length (int): T, the run's ``text.sequence_length``.
        mask_padding (bool): the run's ``model.mask_padding``. Default: ``False``.

    Returns:
        np.ndarray: ``(N,)`` float32 logits (positive: the model leans positive).

    Raises:
        ValueError: ``sequence_length`` is not a positive integer.
    """
    if not isinstance(sequence_length, int) or sequence_length < 1:
        raise ValueError("sequence_length must be a positive integer. Received: "
                         f"sequence_length={sequence_length!r}; pass the run's "
                         "text.sequence_length.")
    table = _float32(weights["embedding.embeddings"])
    rows = table[np.asarray(ids, dtype=np.int64)]  # (N, D)
    if mask_padding:
        return pooled_logits(weights, rows)
    t = np.float32(sequence_length)
    return pooled_logits(weights, (rows + (t - 1) * table[0]) / t)


def pooled_logits(weights: Mapping[str, Any], pooled: np.ndarray) -> np.ndarray:
    """The logits of ``(N, D)`` pooled vectors: ``Dense(H, relu)`` then ``Dense(1)``, in
    float32 with NumPy."""
    k1, b1, k2, b2 = (_float32(weights[name]) for name in (
        "dense.kernel", "dense.bias", "dense_1.kernel", "dense_1.bias"))
    hidden = np.maximum(pooled @ k1 + b1, np.float32(0))  # (N, D) -> (N, H)
    return (hidden @ k2 + b2)[:, 0]  # (N, H) -> (N, 1) -> (N,)


def project(vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The first two principal components of ``vectors`` (PCA by SVD of the centred rows).

    Each axis's sign is fixed so that its largest-magnitude coordinate is positive, which
    makes the result a function of the set of points alone.  Missing axes (fewer than
    two points or dimensions) are zero.

    Args:
        vectors (np.ndarray): ``(N, D)`` points.

    Returns:
        tuple[np.ndarray, np.ndarray]: ``(N, 2)`` float64 coordinates, and ``(2,)`` the
        share of the variance along each axis.
    """
    centred = np.asarray(vectors, dtype=np.float64)
    centred = centred - centred.mean(axis=0) if len(centred) else centred
    coords = np.zeros((len(centred), 2))
    share = np.zeros(2)
    if centred.size == 0:
        return coords, share
    u, s, _ = np.linalg.svd(centred, full_matrices=False)
    k = min(2, len(s))
    coords[:, :k] = u[:, :k] * s[:k]  # (N, D) -> (N, k)
    for axis in range(k):
        if coords[np.argmax(np.abs(coords[:, axis])), axis] < 0:
            coords[:, axis] *= -1
    total = float(np.sum(s**2))
    if total > 0:
        share[:k] = s[:k] ** 2 / total
    return coords, share


def has_curves(history: Mapping[str, Sequence[float]]) -> bool:
    """Whether ``history`` holds at least one epoch (a converted model's is ``{}``)."""
    return any(len(history.get(p + m, ())) for _, p in SPLITS for m in ("loss", "accuracy"))


def run_name(out_dir: str | os.PathLike[str]) -> str:
    """The run's folder name, also while it is staged as ``.<name>.partial-...``."""
    name = Path(out_dir).resolve().name
    if name.startswith(".") and ".partial-" in name:
        return name[1:name.rindex(".partial-")]
    return name


def curves_png(histories: Sequence[tuple[str, Mapping[str, Sequence[float]]]], *,
               title: str) -> bytes:
    """Loss and accuracy per epoch, training (solid) and validation (dashed), as a PNG of
    :data:`CURVES_SIZE`.

    One history is drawn in two colours, one per split; several are overlaid with a
    colour and a marker per history, named in the legend.

    Args:
        histories (Sequence[tuple[str, Mapping[str, Sequence[float]]]]): ``(name,
            history)`` pairs; a history holds per-epoch lists ``loss``, ``accuracy``,
            ``val_loss``, ``val_accuracy`` (missing ones are left out).
        title (str): the figure's title.

    Returns:
        bytes: the PNG.
    """
    with _drawing():
        fig = _figure(CURVES_SIZE)
        # Fixed margins, where a layout engine took half the drawing's time.
        fig.subplots_adjust(left=0.055, right=0.99, bottom=0.1, top=0.875, wspace=0.16)
        panels = fig.subplots(1, 2)
        colours = [f"C{i % 10}" for i in range(max(2, len(histories)))]
        markers = "osD^vP*Xph"
        for panel, metric in zip(panels, ("loss", "accuracy"), strict=True):
            for i, (name, history) in enumerate(histories):
                for j, (split, prefix) in enumerate(SPLITS):
                    values = [float(v) for v in history.get(prefix + metric, ())]
                    if not values:
                        continue
                    single = len(histories) == 1
                    label = f"{split} (last {values[-1]:.4f})"
                    panel.plot(range(1, len(values) + 1), values,
                               color=colours[j] if single else colours[i],
                               linestyle="-" if j == 0 else "--",
                               marker=markers[0 if single else i % len(markers)],
                               markersize=5 if single else 7 - i % 4,
                               alpha=1.0 if single else 0.85,
                               label=label if single else f"{name}: {label}")
            panel.set_title("loss (binary cross-entropy)" if metric == "loss" else "accuracy")
            panel.set_xlabel("epoch")
            panel.set_ylabel(metric)
            panel.grid(alpha=0.3)
            _integer_epochs(panel, max((len(v) for _, h in histories for v in h.values()),
                                       default=1))
            if panel.lines:
                panel.legend(fontsize="small" if len(histories) < 4 else "x-small")
        fig.suptitle(title)
        return _png(fig)


def embedding_map_png(weights: Mapping[str, Any], vocabulary: Sequence[str],
                      sequence_length: int, *, title: str, words: int = MAP_WORDS,
                      mask_padding: bool = False) -> bytes:
    """The ``words`` most frequent words on the first two principal components of their
    embeddings, coloured by :func:`word_logits`, as a PNG of :data:`MAP_SIZE`.

    The diverging colour map is centred (white) at the logit of the empty review, all
    padding: a word whose one-word review scores the same says nothing either way.  (The
    padding fills T - 1 of the T positions, so that logit, not 0, is the neutral point:
    in the tutorial's run every one-word review scores above 0.)  With ``mask_padding``
    the empty review has no mean (0 / 0), and the neutral point is the logit of the zero
    vector, a review whose words cancel out.  Each point is labelled
    with its word where the label fits without covering another label, the words
    furthest from neutral first.

    Args:
        weights (Mapping[str, Any]): arrays (or tensors) under the native names.
        vocabulary (Sequence[str]): tokens in id order, ``''`` and ``'[UNK]'`` first.
        sequence_length (int): T, the run's ``text.sequence_length``.
        title (str): the figure's title.
        words (int): how many words, from id 2 on. Default: ``300``.
        mask_padding (bool): the run's ``model.mask_padding``. Default: ``False``.

    Returns:
        bytes: the PNG.
    """
    from matplotlib.colors import TwoSlopeNorm

    ids = np.arange(FIRST_WORD, min(len(vocabulary), FIRST_WORD + words))
    table = _float32(weights["embedding.embeddings"])
    coords, share = project(table[ids])  # (N, D) -> (N, 2)
    scores = word_logits(weights, ids, sequence_length, mask_padding)
    neutral = float(pooled_logits(weights, np.zeros((1, table.shape[1]), np.float32))[0]
                    if mask_padding else word_logits(weights, [0], sequence_length)[0])
    reach = float(np.max(np.abs(scores - neutral), initial=0.0)) or 1.0
    low = min(float(scores.min(initial=neutral)), neutral - 1e-3 * reach)
    high = max(float(scores.max(initial=neutral)), neutral + 1e-3 * reach)
    with _drawing():
        fig = _figure(MAP_SIZE)
        ax = fig.add_axes((0.08, 0.06, 0.76, 0.86))
        bar = fig.add_axes((0.86, 0.06, 0.025, 0.86))
        norm = TwoSlopeNorm(vcenter=neutral, vmin=low, vmax=high)
        points = ax.scatter(coords[:, 0], coords[:, 1], c=scores, cmap="RdBu", norm=norm,
                            s=16, edgecolors="0.3", linewidths=0.4, zorder=2)
        colourbar = fig.colorbar(points, cax=bar)
        empty = "the zero vector" if mask_padding else "the empty review"
        colourbar.set_label(f"logit of the word alone (white: {empty}, {neutral:.3g})")
        colourbar.ax.axhline(neutral, color="0.3", linewidth=0.8)
        _frame(ax, coords)
        order = np.argsort(-np.abs(scores - neutral), kind="stable")
        shown = _label(fig, ax, coords[order], [vocabulary[i] for i in ids[order]])
        ax.set_xlabel(f"principal component 1 ({share[0]:.0%} of the variance; asinh scale)")
        ax.set_ylabel(f"principal component 2 ({share[1]:.0%} of the variance; asinh scale)")
        ax.grid(alpha=0.2)
        ax.set_title(f"{title}\n{shown} of {len(ids)} points labelled (where two labels "
                     "would overlap, the more neutral word's is left out)", fontsize="medium")
        return _png(fig)


def write_pictures(out_dir: str | os.PathLike[str], *, weights: Mapping[str, Any],
                   vocabulary: Sequence[str], config: Mapping[str, Any],
                   history: Mapping[str, Sequence[float]]) -> list[str]:
    """Write a run's pictures, each atomically: ``curves.png`` and ``embedding-map.png``.

    A run without history (a converted model's is ``{}``) gets no ``curves.png``: there
    is nothing to draw.  Takes the arguments of
    :func:`embeddings.runs.directory.write_run`.

    Args:
        out_dir (str | os.PathLike): the run's (staging) folder; its name titles the
            pictures.
        weights (Mapping[str, Any]): arrays (or tensors) under the native names.
        vocabulary (Sequence[str]): tokens in id order.
        config (Mapping[str, Any]): the content of ``config.json``.
        history (Mapping[str, Sequence[float]]): per-epoch values (``{}`` for none).

    Returns:
        list[str]: the names of the files written.
    """
    out = Path(out_dir)
    name, run = run_name(out), config.get("run", {})
    sequence_length = int(config["text"]["sequence_length"])
    mask_padding = bool(config.get("model", {}).get("mask_padding", False))
    written = []
    if has_curves(history):
        what = ", ".join(str(run[k]) for k in ("backend", "device") if run.get(k))
        title = f"{name} ({what})" if what else name
        atomic_write_bytes(out / CURVES_FILE, curves_png([(name, history)], title=title))
        written.append(CURVES_FILE)
    count = max(0, min(len(vocabulary), FIRST_WORD + MAP_WORDS) - FIRST_WORD)
    dim = _float32(weights["embedding.embeddings"]).shape[1]
    alone = ("padding left out of the mean" if mask_padding
             else f"padded to T={sequence_length}")
    title = (f"{name}: the {count} most frequent words, PCA of their {dim}-dim embeddings\n"
             f"colour: the model's logit for a review of that word alone, {alone}")
    atomic_write_bytes(out / MAP_FILE, embedding_map_png(weights, vocabulary, sequence_length,
                                                         title=title, mask_padding=mask_padding))
    written.append(MAP_FILE)
    return written


def png_size(data: bytes) -> tuple[int, int]:
    """``(width, height)`` in pixels from a PNG's header.

    Raises:
        ValueError: ``data`` is not a PNG.
    """
    if data[:8] != PNG_SIGNATURE or data[12:16] != b"IHDR":
        raise ValueError(f"not a PNG file. Received: data starting {data[:16]!r}")
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


# Drawing ---------------------------------------------------------------------------------


@contextmanager
def _drawing() -> Iterator[None]:
    """matplotlib's default style, whatever ``matplotlibrc`` says, and no warning for a
    glyph a token uses that the font lacks (it is drawn as a box)."""
    import matplotlib.style

    with matplotlib.style.context("default"), warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Glyph .* missing from", category=UserWarning)
        yield


def _figure(size: tuple[int, int]) -> Figure:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(size[0] / DPI, size[1] / DPI), dpi=DPI)
    FigureCanvasAgg(fig)
    return fig


def _png(fig: Figure) -> bytes:
    """The figure as PNG bytes, without the metadata that would vary (software, date)."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI, metadata={"Software": None})
    return buffer.getvalue()


def _integer_epochs(ax: Axes, epochs: int) -> None:
    """Whole-number epoch ticks, with half an epoch of room at each end."""
    from matplotlib.ticker import MaxNLocator

    ax.set_xlim(0.5, max(epochs, 1) + 0.5)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))


def _frame(ax: Axes, coords: np.ndarray) -> None:
    """asinh scales (linear near 0, logarithmic in the tails), so that the crowd of common
    words at the centre spreads out while the outliers stay on the map; limits with room
    for the labels beside the outermost points; a few plain, well-spaced ticks."""
    from matplotlib.ticker import FixedLocator, FormatStrFormatter, NullLocator

    for axis, which in ((0, ax.xaxis), (1, ax.yaxis)):
        values = coords[:, axis] if len(coords) else np.array([-1.0, 1.0])
        width = float(np.median(np.abs(values))) or 1.0
        (ax.set_xscale if axis == 0 else ax.set_yscale)("asinh", linear_width=width)
        lo, hi = np.arcsinh(values.min() / width), np.arcsinh(values.max() / width)
        margin = (0.08 if axis == 0 else 0.03) * ((hi - lo) or 1.0)
        lo, hi = lo - margin, hi + margin
        (ax.set_xlim if axis == 0 else ax.set_ylim)(width * np.sinh(lo), width * np.sinh(hi))
        magnitudes = 10.0 ** np.arange(np.floor(np.log10(width)) - 1,
                                       np.ceil(np.log10(width * np.sinh(max(-lo, hi)))) + 1)
        ticks: list[float] = []
        for tick in (0.0, *(v for m in magnitudes for f in (1, 2, 5) for v in (f * m, -f * m))):
            at = np.arcsinh(tick / width)
            if lo <= at <= hi and all(abs(at - np.arcsinh(t / width)) > 0.1 * (hi - lo)
                                      for t in ticks):
                ticks.append(tick)
        which.set_major_locator(FixedLocator(sorted(ticks)))
        which.set_major_formatter(FormatStrFormatter("%g"))
        which.set_minor_locator(NullLocator())


def _label(fig: Figure, ax: Axes, coords: np.ndarray, words: Sequence[str]) -> int:
    """Label the points, in order, each beside its point where the label covers no earlier
    label and stays inside the axes; returns how many were labelled.

    Each label is measured once, in its first place: the other places are the same box
    moved by whole offsets (about half the labelling's time)."""
    renderer = cast("FigureCanvasAgg", fig.canvas).get_renderer()  # set by _figure
    inside = ax.get_window_extent(renderer)
    points = renderer.points_to_pixels(1.0)
    placed = np.zeros((len(words), 4))  # (N, 4): x0, y0, x1, y1 of the labels placed
    count = 0
    places = ((3, 1, "left", "bottom"), (-3, 1, "right", "bottom"),
              (3, -1, "left", "top"), (-3, -1, "right", "top"))
    for (x, y), word in zip(coords, words, strict=True):
        # Bytes that are not UTF-8 (kept by surrogateescape) are drawn as \xNN.
        word = word.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
        text = word if len(word) <= 18 else word[:17] + "\u2026"
        # Every point lies inside the axes (_frame): the annotation's check that it does,
        # a third of the labelling's time, is left out.
        label = ax.annotate(text, (x, y), xytext=places[0][:2], textcoords="offset points",
                            ha=places[0][2], va=places[0][3], fontsize=7, color="0.1",
                            zorder=3, parse_math=False, annotation_clip=False)
        first = label.get_window_extent(renderer)
        for dx, dy, ha, va in places:
            x0 = first.x0 + (dx - places[0][0]) * points - (first.width if ha == "right" else 0)
            y0 = first.y0 + (dy - places[0][1]) * points - (first.height if va == "top" else 0)
            x1, y1 = x0 + first.width, y0 + first.height
            taken = placed[:count]
            free = not np.any((x1 + 1 >= taken[:, 0]) & (x0 - 1 <= taken[:, 2])
                              & (y1 + 1 >= taken[:, 1]) & (y0 - 1 <= taken[:, 3]))
            if free and inside.contains(x0, y0) and inside.contains(x1, y1):
                placed[count] = x0, y0, x1, y1
                count += 1
                label.xyann = (dx, dy)
                label.set(horizontalalignment=ha, verticalalignment=va)
                break
        else:
            label.remove()
    return count


def _float32(value: Any) -> np.ndarray:
    if hasattr(value, "detach"):  # a torch tensor
        value = value.detach().cpu().numpy()
    return np.asarray(value, dtype=np.float32)
