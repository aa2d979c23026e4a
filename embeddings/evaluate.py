"""Score a trained run on labelled reviews: ``python -m embeddings.evaluate --run DIR``.

:func:`evaluate` runs the model of a run directory (trained by any backend, or converted
from TensorFlow) over one labelled split and returns an :class:`Evaluation`: accuracy,
precision, recall, F1 and ROC AUC of the probability (the sigmoid of the logit, positive
when above 0.5), the confusion matrix, and the accuracy as Keras reports it for this model
(positive when the *logit* is above 0.5: ``history.json``'s ``accuracy`` and
``val_accuracy``).  The metrics are torchmetrics' binary ones.

The splits:

* ``validation`` (the default): the validation subset the run trained with, rebuilt from
  its own settings (``--validation-split``, ``--split-seed``) and data source, so its
  ``keras_accuracy`` is the last ``val_accuracy`` of ``history.json``, exactly.
* ``test``: the held-out ``aclImdb/test`` reviews (:func:`embeddings.data.load_test`),
  for the final figure only; never tune on them.

The data source is ``--data``, else the run's own ``--data`` when it recorded one, else
``$EMBEDDINGS_DATA`` and the fallbacks, as in training.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
from torchmetrics.functional.classification import (
    binary_accuracy,
    binary_auroc,
    binary_confusion_matrix,
    binary_f1_score,
    binary_precision,
    binary_recall,
)

from embeddings import data as imdb
from embeddings.config import DEVICES
from embeddings.errors import ArgumentParser, InvalidInput, cli, exit_now
from embeddings.model import keras_predictions
from embeddings.predict import BACKENDS, check_backend, logits
from embeddings.runs import HISTORY_FILE, RUN_HELP, Run, load_run, run_flag

if TYPE_CHECKING:
    import datasets

log = logging.getLogger(__name__)

SPLITS = ("validation", "test")
THRESHOLD = 0.5  # on the probability; Keras's accuracy puts the same 0.5 on the logit
# The metrics in the order they are printed; ``--json`` adds ``reviews`` and ``split``.
METRICS = ("accuracy", "keras_accuracy", "precision", "recall", "f1", "roc_auc",
           "confusion_matrix")


@dataclass(frozen=True)
class Evaluation:
    """A run's scores on one split.

    ``roc_auc`` is ``None`` when the reviews hold one class only (it is undefined then).
    ``confusion_matrix`` is ``[[tn, fp], [fn, tp]]``: rows the true class, columns the
    predicted one, negative first.
    """

    split: str
    reviews: int
    accuracy: float
    keras_accuracy: float
    precision: float
    recall: float
    f1: float
    roc_auc: float | None
    confusion_matrix: list[list[int]]
    source: str = ""  # where the reviews came from

    def as_dict(self) -> dict[str, Any]:
        """The metrics, ``reviews`` and ``split``: the object ``--json`` prints."""
        return {**{name: getattr(self, name) for name in METRICS},
                "reviews": self.reviews, "split": self.split}


def score(outputs: torch.Tensor, labels: torch.Tensor, split: str = "",
          source: str = "") -> Evaluation:
    """The metrics of the logits ``outputs`` against ``labels``.

    ``keras_accuracy`` is computed as the training backends compute ``val_accuracy``
    (:func:`embeddings.model.keras_predictions` into torchmetrics' ``BinaryAccuracy``), so
    the two are the same float32 value.

    Args:
        outputs (torch.Tensor): ``(N,)`` float logits.
        labels (torch.Tensor): ``(N,)`` labels in {0, 1}.
        split (str): the split's name, recorded. Default: ``""``.
        source (str): where the reviews came from, recorded. Default: ``""``.

    Returns:
        Evaluation: the scores.

    Raises:
        InvalidInput: no reviews, shapes that differ, or a label other than 0 and 1.
    """
    if outputs.ndim != 1 or outputs.shape != labels.shape or len(labels) == 0:
        raise InvalidInput("outputs and labels must be two non-empty (N,) tensors. Received: "
                           f"outputs.shape={tuple(outputs.shape)}, "
                           f"labels.shape={tuple(labels.shape)}")
    target = labels.to(torch.int64)
    if not bool(((target == 0) | (target == 1)).all()):
        raise InvalidInput(f"labels must be 0 (neg) or 1 (pos). Received: "
                           f"{sorted(set(target.tolist()))}")
    probabilities = torch.sigmoid(outputs.float())  # (N,)
    matrix = binary_confusion_matrix(probabilities, target, threshold=THRESHOLD)  # (2, 2)
    both_classes = bool(target.min() != target.max())
    return Evaluation(
        split=split,
        reviews=len(target),
        accuracy=float(binary_accuracy(probabilities, target, threshold=THRESHOLD)),
        keras_accuracy=float(binary_accuracy(keras_predictions(outputs), target)),
        precision=float(binary_precision(probabilities, target, threshold=THRESHOLD)),
        recall=float(binary_recall(probabilities, target, threshold=THRESHOLD)),
        f1=float(binary_f1_score(probabilities, target, threshold=THRESHOLD)),
        roc_auc=float(binary_auroc(probabilities, target)) if both_classes else None,
        confusion_matrix=[[int(v) for v in row] for row in matrix.tolist()],
        source=source,
    )


def split_reviews(run: Run, split: str = "validation",
                  data: str | os.PathLike[str] | None = None) -> tuple[datasets.Dataset, str]:
    """The labelled reviews of ``split`` for ``run``, and where they came from.

    Args:
        run (Run): the loaded run; its settings rebuild the validation subset.
        split (str): ``"validation"`` or ``"test"``. Default: ``"validation"``.
        data (str | os.PathLike | None): the source. Default: the run's ``--data`` when it
            recorded one, else ``$EMBEDDINGS_DATA`` and the fallbacks.

    Returns:
        tuple[datasets.Dataset, str]: the reviews (see :func:`embeddings.data.load_splits`)
        and the source's description.

    Raises:
        InvalidInput: an unknown ``split``.
        DataSourceError: the source is unusable or, for ``"test"``, has no test split.
    """
    if split not in SPLITS:
        raise InvalidInput(f"split must be one of {SPLITS}. Received: split={split!r}; "
                           "use 'validation' (the run's own) or 'test' (aclImdb/test).")
    settings = run.settings
    source = data if data is not None else settings.data.data
    if split == "test":
        return imdb.load_test(source)
    splits = imdb.load_splits(source, validation_split=settings.data.validation_split,
                              seed=settings.data.split_seed,
                              batch_size=settings.train.batch_size,
                              text_column=settings.data.text_column,
                              label_column=settings.data.label_column)
    trained_on = run.config.get("run", {}).get("data_source")
    if trained_on is not None and trained_on != splits.source:
        log.warning("The run trained on %s, these reviews come from %s: the validation "
                    "subset is the run's only if both hold the same training files.",
                    trained_on, splits.source)
    return splits.val, splits.source


def evaluate(
    run: Run | str | os.PathLike[str],
    *,
    split: str = "validation",
    data: str | os.PathLike[str] | None = None,
    backend: str = "torch",
    device: str = "cpu",
    batch_size: int | None = None,
) -> Evaluation:
    """Score ``run`` on the labelled reviews of ``split``.

    Args:
        run (Run | str | os.PathLike): a loaded run or its directory.
        split (str): ``"validation"`` (the run's validation subset) or ``"test"``
            (``aclImdb/test``). Default: ``"validation"``.
        data (str | os.PathLike | None): the source; see :func:`split_reviews`.
            Default: ``None``.
        backend (str): ``"torch"`` (native model) or ``"keras"`` (Keras 3 on torch).
            Default: ``"torch"``.
        device (str): ``"cpu"``, ``"cuda"`` or ``"auto"``. Default: ``"cpu"``.
        batch_size (int | None): reviews per forward pass. Default: the run's
            ``--batch-size``, as training evaluated.

    Returns:
        Evaluation: the scores.

    Raises:
        InvalidInput: an unknown split or backend.
        RunFormatError: ``run`` does not exist, misses a file or holds a malformed one.
        DataSourceError: the source is unusable or lacks the split.
        Unavailable: ``device="cuda"`` without a GPU.
    """
    check_backend(backend)  # before the reviews are read
    if not isinstance(run, Run):
        run = load_run(run)
    reviews, source = split_reviews(run, split, data)
    labels = torch.from_numpy(imdb.labels(reviews))  # (N,)
    outputs = logits(imdb.exact_texts(reviews), run, backend=backend, device=device,
                     batch_size=batch_size or run.settings.train.batch_size)  # (N,)
    return score(outputs, labels, split, source)


def last_val_accuracy(run: Run) -> float | None:
    """The last ``val_accuracy`` of the run's ``history.json``; ``None`` when it has none
    (a converted model)."""
    values = run.history.get("val_accuracy") or []
    return float(values[-1]) if values else None


def report(result: Evaluation, run: Run) -> list[str]:
    """The labelled lines the command line prints for ``result``."""
    tn_fp, fn_tp = result.confusion_matrix
    keras_note = "logit > 0.5, as Keras reports it"
    recorded = last_val_accuracy(run) if result.split == "validation" else None
    if recorded is not None:
        keras_note += (f"; equals {HISTORY_FILE}'s last val_accuracy" if recorded ==
                       result.keras_accuracy else f"; {HISTORY_FILE}'s last val_accuracy is "
                       f"{recorded:.4f}")
    auc = "n/a (one class only)" if result.roc_auc is None else f"{result.roc_auc:.4f}"
    return [
        f"run               {run.path}",
        f"split             {result.split}: {result.reviews:,} reviews from {result.source}",
        f"accuracy          {result.accuracy:.4f}  (probability > 0.5)",
        f"keras_accuracy    {result.keras_accuracy:.4f}  ({keras_note})",
        f"precision         {result.precision:.4f}",
        f"recall            {result.recall:.4f}",
        f"f1                {result.f1:.4f}",
        f"roc_auc           {auc}",
        f"confusion_matrix  [[tn, fp], [fn, tp]] = [{tn_fp}, {fn_tp}]",
    ]


def main(argv: Sequence[str] | None = None) -> int:
    """The command line: labelled metrics, or one JSON object with ``--json``."""
    parser = ArgumentParser(prog="python -m embeddings.evaluate",
                            description=__doc__.splitlines()[0], allow_abbrev=False)
    parser.add_argument("--run", required=True, help=RUN_HELP)
    parser.add_argument("--data", default=None,
                        help="IMDb source (folder, tarball, 'hub' or URL). Default: the run's "
                        "--data, else $EMBEDDINGS_DATA and the fallbacks, as in training")
    parser.add_argument("--split", choices=SPLITS, default="validation",
                        help="the run's validation subset (default) or aclImdb/test")
    parser.add_argument("--backend", choices=BACKENDS, default="torch")
    parser.add_argument("--device", choices=DEVICES, default="cpu")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    def body() -> int:
        run = load_run(run_flag(args.run))
        result = evaluate(run, split=args.split, data=args.data, backend=args.backend,
                          device=args.device)
        if args.json:
            print(json.dumps(result.as_dict()))
        else:
            print("\n".join(report(result, run)))
        return 0

    return cli(body)


if __name__ == "__main__":
    exit_now(main())
