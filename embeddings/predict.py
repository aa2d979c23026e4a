"""Use a trained run on raw text: ``python -m embeddings.predict --run DIR "text" ...``.

:func:`load_run` reads a run directory (weights from safetensors, vocabulary and
config from JSON: nothing is unpickled) and :func:`predict` returns, for each
text, the probability that the review is positive (the sigmoid of the logit).
Texts come from the command line or, one per line, from standard input.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file

from embeddings.export import CONFIG_FILE, VOCABULARY_FILE, WEIGHTS_FILE, read_json
from embeddings.model import KERAS_NAMES, SentimentClassifier
from embeddings.text import TextLike, TextVectorization

BACKENDS = ("torch", "keras")


@dataclass
class Run:
    """A loaded run: its vectorizer, weights (native names) and config."""

    vectorizer: TextVectorization
    weights: dict[str, torch.Tensor]
    config: dict[str, Any]

    def native_model(self, device: torch.device | str = "cpu") -> SentimentClassifier:
        """The native model with this run's weights."""
        vocab_size, dim = self.weights["embedding.embeddings"].shape
        model = SentimentClassifier(vocab_size, dim, self.weights["dense.kernel"].shape[1])
        model.load_state_dict(self.weights)
        return model.to(device).eval()


def load_run(run_dir: str | os.PathLike[str]) -> Run:
    """Read a run directory written by ``python -m embeddings.train`` or ``embeddings.convert``.

    Raises:
        FileNotFoundError: a file of the run is missing (the message names it).
        ValueError: the weights do not have the tutorial model's names.
    """
    run_dir = Path(run_dir)
    for name in (WEIGHTS_FILE, VOCABULARY_FILE, CONFIG_FILE):
        if not (run_dir / name).is_file():
            raise FileNotFoundError(
                f"{run_dir} is not a run directory: {name} is missing. Pass --run a folder "
                "written by `python -m embeddings.train` or `python -m embeddings.convert`."
            )
    weights = load_file(run_dir / WEIGHTS_FILE)
    if set(weights) != set(KERAS_NAMES):
        raise ValueError(
            f"{run_dir / WEIGHTS_FILE} does not hold the tutorial model's weights. "
            f"Received: names={sorted(weights)}; expected {sorted(KERAS_NAMES)}."
        )
    config = read_json(run_dir / CONFIG_FILE)
    vectorizer = TextVectorization(
        max_tokens=None,
        standardize=config.get("run", {}).get("standardize", "tutorial"),
        output_sequence_length=config["text"]["sequence_length"],
        vocabulary=read_json(run_dir / VOCABULARY_FILE),
    )
    return Run(vectorizer, weights, config)


def predict(
    texts: Sequence[TextLike],
    run: Run | str | Path,
    *,
    backend: str = "torch",
    device: str = "cpu",
    batch_size: int = 1024,
) -> torch.Tensor:
    """Probability that each text is a positive review.

    Args:
        texts (Sequence[str | bytes]): raw reviews.
        run (Run | str | Path): a loaded run or its directory.
        backend (str): ``"torch"`` (native model) or ``"keras"`` (Keras 3 on torch).
            Default: ``"torch"``.
        device (str): torch device. Default: ``"cpu"``.
        batch_size (int): texts per forward pass. Default: ``1024``.

    Returns:
        torch.Tensor: ``(N,)`` float32 probabilities on the CPU.

    Raises:
        ValueError: an unknown backend.
    """
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}. Received: backend={backend!r}")
    loaded = run if isinstance(run, Run) else load_run(run)
    ids = loaded.vectorizer(list(texts))  # (N, T)
    if backend == "keras":
        from embeddings import keras_model

        vocab_size, dim = loaded.weights["embedding.embeddings"].shape
        model = keras_model.build_model(vocab_size, dim, loaded.weights["dense.kernel"].shape[1],
                                        sequence_length=ids.shape[1], exact_embedding=False)
        keras_model.set_native_weights(model, loaded.weights)
        output = model.predict(ids.numpy(), batch_size=batch_size, verbose=0)  # (N, 1)
        return torch.sigmoid(torch.as_tensor(output)[:, 0].float())
    native = loaded.native_model(device)
    with torch.no_grad():
        parts = [native(ids[i:i + batch_size].to(device)).cpu()
                 for i in range(0, len(ids), batch_size)]
    return torch.sigmoid(torch.cat(parts)) if parts else torch.zeros(0)


def main(argv: Sequence[str] | None = None) -> int:
    """The command line: one ``probability<TAB>text`` line per input text."""
    parser = argparse.ArgumentParser(prog="python -m embeddings.predict",
                                     description=__doc__.splitlines()[0], allow_abbrev=False)
    parser.add_argument("--run", required=True, help="run directory to load")
    parser.add_argument("--backend", choices=BACKENDS, default="torch")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("texts", nargs="*", help="reviews; none: read one per line from stdin")
    args = parser.parse_args(argv)
    texts = args.texts or [line.rstrip("\n") for line in sys.stdin]
    try:
        probabilities = predict(texts, args.run, backend=args.backend, device=args.device)
    except (FileNotFoundError, ValueError, ImportError, RuntimeError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    for p, text in zip(probabilities.tolist(), texts, strict=True):
        shown = text if len(text) <= 80 else text[:77] + "..."
        print(f"{p:.6f}\t{shown}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
