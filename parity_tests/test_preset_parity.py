"""Presets past the tutorial: ``--preset bigrams`` gives TensorFlow's history, epoch for epoch.

``fixtures/preset_history.json`` holds TensorFlow's seed-0 history of every preset but the
tutorial (``reference/make_reference.py``, ``record_presets``): the tutorial's code with
the preset's settings, i.e. ``TextVectorization(ngrams=(1, 2))`` over a 300,000-token
vocabulary, ``Embedding(mask_zero=True)`` with ``GlobalAveragePooling1D`` averaging each
review's own n-grams, batch 128, Adam at 0.003, 4 epochs.

Both PyTorch backends are trained through the backend contract with
:meth:`RunConfig.from_preset` and held to the tutorial's bounds (``test_training_parity``):
``accuracy`` and ``val_accuracy`` exactly equal in every epoch, ``loss`` and ``val_loss``
within 1e-6 relative.  The masked mean is TensorFlow's to the bit (same summation order,
divided by the count); what rounds otherwise is, as for the tutorial, the 16 -> 1 matmul
and the loss reduction (PARITY.md section 8).  Measured: 3.1e-7 (torch), both accuracies
equal in all 4 epochs.  With the ``tf`` extra (``parity_live``), ``--backend tf`` is held
to the recorded history as well.
"""

from __future__ import annotations

from typing import Any

import pytest
import torch

from embeddings import backends
from embeddings.config import PRESETS, RunConfig
from embeddings.data import Splits, load_splits
from embeddings.ops import bag
from parity_tests.conftest import Report, hold_history, load_fixture, tensorflow_histories

pytestmark = pytest.mark.imdb
NAMES = [name for name in PRESETS if name != "tutorial"]
_SPLITS: dict[int, Splits] = {}


@pytest.fixture(scope="module")
def recorded() -> dict[str, Any]:
    return load_fixture("preset_history.json")["presets"]


def _train(name: str, backend: str) -> dict[str, list[float]]:
    config = RunConfig.from_preset(name, device="cpu", backend=backend)
    batch = config.train.batch_size
    if batch not in _SPLITS:
        _SPLITS[batch] = load_splits(validation_split=config.data.validation_split,
                                     seed=config.data.split_seed, batch_size=batch)
    return backends.get(backend).train(config, _SPLITS[batch], backends.Hooks()).history


def test_the_fixture_records_the_presets_of_today(recorded: dict[str, Any]) -> None:
    """A preset changed without re-recording TensorFlow would be compared with another
    model's history."""
    assert set(recorded) == set(NAMES)
    for name in NAMES:
        assert recorded[name]["settings"] == PRESETS[name]
        assert len(recorded[name]["history"]["loss"]) == PRESETS[name]["epochs"]


@pytest.mark.parametrize("backend", ["torch", "keras"])
@pytest.mark.parametrize("name", NAMES)
def test_preset_gives_tensorflows_history(recorded: dict[str, Any], report: Report,
                                          name: str, backend: str) -> None:
    if backend == "keras":
        pytest.importorskip("embeddings.keras_model", reason="the keras extra is not installed")
    hold_history(report, f"preset {name}", backend, _train(name, backend),
                 recorded[name]["history"])


def test_negative_twin_padding_in_the_mean_breaks_the_bigrams_history(
        recorded: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    """The preset's mask must reach the op: the same run averaging padding too (the
    tutorial's mean) does not give TensorFlow's history."""
    stock = bag.embedding_bag_mean

    def unmasked(weight: torch.Tensor, ids: torch.Tensor, offsets: None = None,
                 **kwargs: Any) -> torch.Tensor:
        return stock(weight, ids, offsets, **{**kwargs, "mask_zero": False})

    monkeypatch.setattr(bag, "embedding_bag_mean", unmasked)
    ours = _train("bigrams", "torch")
    assert ours["val_accuracy"] != recorded["bigrams"]["history"]["val_accuracy"]


@pytest.mark.tf
def test_tensorflow_backend_gives_the_recorded_histories(recorded: dict[str, Any],
                                                         report: Report) -> None:
    """``--backend tf --preset NAME`` is the recorded TensorFlow run itself."""
    histories = tensorflow_histories({name: (name, {}) for name in NAMES})
    for name, history in histories.items():
        hold_history(report, f"preset {name}", "tf", history, recorded[name]["history"])
