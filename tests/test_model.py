"""The native classifier: Keras initial weights, padding in the mean, loss and metric."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from embeddings import weights
from embeddings.model import (
    Dense,
    SentimentClassifier,
    binary_crossentropy_from_logits,
    glorot_limit,
    keras_init_,
    keras_predictions,
)
from embeddings.testing import assert_close


def test_seed_gives_tensorflows_initial_weights() -> None:
    # PARITY.md section 8: the tutorial's weights after keras.utils.set_random_seed(0).
    model = SentimentClassifier(10000, 16, 16)
    keras_init_(model, 0)
    expected = {
        "embedding.embeddings": ([0.0015684366, -0.0190938, 0.033890437, -0.039339818],
                                 lambda w: w[0, :4]),
        "dense.kernel": ([-0.15347576, -0.2628184, -0.19051446], lambda w: w[0, :3]),
        "dense_1.kernel": ([0.18918467, -0.49683052, 0.4965483], lambda w: w[:3, 0]),
    }
    state = model.state_dict()
    for name, (values, pick) in expected.items():
        assert pick(state[name]).tolist() == np.array(values, dtype=np.float32).tolist(), name
    assert not state["dense.bias"].any() and not state["dense_1.bias"].any()


def test_different_seeds_give_different_weights() -> None:
    a, b = SentimentClassifier(50), SentimentClassifier(50)
    keras_init_(a, 0)
    keras_init_(b, 1)
    assert not torch.equal(a.embedding.embeddings, b.embedding.embeddings)


def test_parameter_names_map_one_to_one_to_keras() -> None:
    model = SentimentClassifier(20, 4, 3)
    shapes = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    assert list(shapes) == list(weights.NAMES)
    assert shapes == weights.shapes(20, 4, 3) == {
        "embedding.embeddings": (20, 4), "dense.kernel": (4, 3), "dense.bias": (3,),
        "dense_1.kernel": (3, 1), "dense_1.bias": (1,)}


def test_glorot_limit_matches_keras() -> None:
    assert np.float32(glorot_limit(16, 16)) == np.float32(0.4330127)
    assert np.float32(glorot_limit(16, 1)) == np.float32(0.59408855)


def test_dense_is_matmul_then_bias() -> None:
    layer = Dense(2, 1)
    with torch.no_grad():
        layer.kernel.copy_(torch.tensor([[2.0], [-1.0]]))
        layer.bias.fill_(0.5)
    assert layer(torch.tensor([[3.0, 4.0]])).tolist() == [[2.5]]


def test_padding_counts_in_the_forward_mean() -> None:
    model = SentimentClassifier(10, 4, 3)
    one_token = torch.tensor([[7] + [0] * 9])
    padded_more = torch.tensor([[7] + [0] * 19])
    # Without a mask, more padding pulls the mean towards the padding row.
    assert not torch.allclose(model.embedding(one_token), model.embedding(padded_more))
    table = model.embedding.embeddings
    pooled = (table[7] + 9 * table[0]) / 10
    expected = model.dense_1(torch.relu(model.dense(pooled[None])))[:, 0]
    assert_close(model(one_token), expected, rtol=1e-6, atol=1e-7)


def test_loss_equals_bce_with_logits() -> None:
    logits = torch.tensor([-30.0, -2.0, -0.1, 0.0, 0.3, 4.0, 25.0])
    labels = torch.tensor([0, 1, 0, 1, 1, 0, 1])
    expected = torch.nn.functional.binary_cross_entropy_with_logits(logits, labels.float())
    # Same quantity, different float32 formulas: a few ulps apart (PARITY.md section 8).
    assert_close(binary_crossentropy_from_logits(logits, labels), expected, rtol=1e-6, atol=1e-7)


def test_loss_gradient_is_sigmoid_minus_label_over_batch() -> None:
    logits = torch.tensor([-2.0, 0.0, 3.0], requires_grad=True)
    labels = torch.tensor([1, 0, 1])
    binary_crossentropy_from_logits(logits, labels).backward()
    assert_close(logits.grad, (torch.sigmoid(logits) - labels) / 3, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize(("logit", "positive"), [(0.49, 0), (0.5, 0), (0.51, 1), (0.2, 0)])
def test_keras_accuracy_thresholds_the_logit_at_half(logit: float, positive: int) -> None:
    assert keras_predictions(torch.tensor([logit])).tolist() == [positive]
