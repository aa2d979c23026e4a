"""Use a trained run on raw text: ``python -m embeddings.predict --run DIR "text" ...``.

:func:`predict` returns, for each text, the probability that the review is positive
(the sigmoid of the logit), from a run directory read and validated by
:func:`embeddings.runs.load_run` (safetensors and JSON: nothing is unpickled).  The
command line takes ``--run latest`` for the newest run under ``runs/``
(:func:`embeddings.runs.latest_run`), and reads reviews from its arguments, from a file
(:func:`embeddings.review_input.read_reviews`: one per line, or a ``text`` field of JSON
Lines or CSV) or, one per line, from standard input.  Empty and whitespace-only lines and
rows are skipped.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

import torch

from embeddings.backends.native import resolve_device
from embeddings.config import DEVICES
from embeddings.errors import ArgumentParser, InvalidInput, cli, exit_now
from embeddings.model import SentimentClassifier
from embeddings.review_input import FORMATS, STDIN, input_format, read_reviews, shown
from embeddings.runs import RUN_HELP, Run, load_run, run_flag
from embeddings.text import TextLike

BACKENDS = ("torch", "keras")


def check_backend(backend: str) -> None:
    """Refuse a backend that cannot run a trained model.

    Raises:
        InvalidInput: ``backend`` is not one of :data:`BACKENDS`.
    """
    if backend not in BACKENDS:
        raise InvalidInput(f"backend must be one of {BACKENDS}. Received: backend={backend!r}")


def logits(
    texts: Sequence[TextLike],
    run: Run | str | os.PathLike[str],
    *,
    backend: str = "torch",
    device: str = "cpu",
    batch_size: int = 1024,
) -> torch.Tensor:
    """The model's output for each text: the logit that the review is positive.

    Args:
        texts (Sequence[str | bytes]): raw reviews.
        run (Run | str | os.PathLike): a loaded run or its directory.
        backend (str): ``"torch"`` (the native vectorizer and model) or ``"keras"``
            (Keras 3 on torch: :func:`embeddings.keras_model.text_model`, the Keras
            ``TextVectorization`` layer feeding the Keras model). Default: ``"torch"``.
        device (str): ``"cpu"``, ``"cuda"`` or ``"auto"``. Default: ``"cpu"``.
        batch_size (int): texts per forward pass. Default: ``1024``.

    Returns:
        torch.Tensor: ``(N,)`` float32 logits on the CPU.

    Raises:
        InvalidInput: an unknown backend.
        RunFormatError: the run directory is missing a file or holds a malformed one.
        Unavailable: ``device="cuda"`` without a GPU.
    """
    check_backend(backend)
    loaded = run if isinstance(run, Run) else load_run(run)
    target = resolve_device(device)
    texts = list(texts)
    if backend == "keras":  # the whole path in Keras: its TextVectorization layer, then the model
        from embeddings import keras_model

        with keras_model.keras.device(keras_model.keras_device(target)), torch.no_grad():
            model = keras_model.text_model(loaded, probabilities=False)
            parts = [model(texts[i:i + batch_size])[:, 0].cpu()  # (B, 1) -> (B,)
                     for i in range(0, len(texts), batch_size)]
        return torch.cat(parts).float() if parts else torch.zeros(0)
    ids = torch.from_numpy(loaded.vectorizer()(texts))  # (N, T)
    native = SentimentClassifier.from_weights(
        loaded.weights, str(loaded.path), loaded.settings.model.mask_padding).to(target)
    with torch.no_grad():
        parts = [native(ids[i:i + batch_size].to(target)).cpu()
                 for i in range(0, len(ids), batch_size)]
    return torch.cat(parts) if parts else torch.zeros(0)


def predict(
    texts: Sequence[TextLike],
    run: Run | str | os.PathLike[str],
    *,
    backend: str = "torch",
    device: str = "cpu",
    batch_size: int = 1024,
) -> torch.Tensor:
    """Probability that each text is a positive review: the sigmoid of :func:`logits`,
    which takes the same arguments.

    Returns:
        torch.Tensor: ``(N,)`` float32 probabilities on the CPU.
    """
    return torch.sigmoid(logits(texts, run, backend=backend, device=device,
                                batch_size=batch_size))


# Reading reviews ------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    """The command line: one ``probability<TAB>text`` line per review."""
    parser = ArgumentParser(prog="python -m embeddings.predict",
                            description=__doc__.splitlines()[0], allow_abbrev=False)
    parser.add_argument("--run", required=True, help=RUN_HELP)
    parser.add_argument("--backend", choices=BACKENDS, default="torch")
    parser.add_argument("--device", choices=DEVICES, default="cpu")
    parser.add_argument("--input", metavar="FILE",
                        help="read the reviews from FILE ('-': standard input): one per line, "
                             "or the 'text' field of a .jsonl or .csv file; empty lines and "
                             "rows are skipped")
    parser.add_argument("--format", choices=FORMATS, default="auto",
                        help="how --input holds the reviews (default: by its suffix; "
                             "standard input: lines)")
    parser.add_argument("texts", nargs="*",
                        help="reviews; none: read --input, else one per line from stdin")
    args = parser.parse_args(argv)

    def body() -> int:
        if args.texts and (args.input is not None or args.format != "auto"):
            raise InvalidInput(
                "reviews given as arguments cannot be combined with --input or --format. "
                f"Received: {len(args.texts)} argument(s) and --input={args.input!r}, "
                f"--format={args.format!r}; pass the reviews one way."
            )
        run = load_run(run_flag(args.run))
        if args.texts:
            texts = list(args.texts)
        else:
            source = STDIN if args.input is None else args.input
            texts, skipped = read_reviews(source, args.format)
            name = "standard input" if source == STDIN else source
            kind = "rows" if input_format(source, args.format) == "csv" else "lines"
            if not texts:
                raise InvalidInput(
                    f"{name} holds no reviews ({skipped} empty {kind}). Received: nothing to "
                    "score; give reviews as arguments, with --input FILE, or one per line on "
                    "standard input."
                )
            if skipped:
                print(f"note: skipped {skipped} empty {kind} in {name}", file=sys.stderr)
        probabilities = predict(texts, run, backend=args.backend, device=args.device)
        encoding = getattr(sys.stdout, "encoding", None) or "utf-8"
        for p, text in zip(probabilities.tolist(), texts, strict=True):
            line = f"{p:.6f}\t{shown(text)}"
            print(line.encode(encoding, "backslashreplace").decode(encoding))
        return 0

    return cli(body)


if __name__ == "__main__":
    exit_now(main())
