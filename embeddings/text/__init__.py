"""The text engine: Keras's ``TextVectorization`` on raw bytes, free of torch, Keras and
TensorFlow.

:mod:`~embeddings.text.tokens` standardizes, splits and makes n-grams;
:mod:`~embeddings.text.vocabulary` counts, ranks and weighs tokens;
:mod:`~embeddings.text.vectorizer` is the layer's logic and its outputs;
:mod:`~embeddings.text.native` its compiled kernels.  The Keras layer on top is
:mod:`embeddings.layers`.
"""

from embeddings.text.tokens import SPLIT_MODES, STANDARDIZE_MODES, TextLike
from embeddings.text.vectorizer import OUTPUT_MODES, TextVectorization
from embeddings.text.vocabulary import OOV_TOKEN, PAD_TOKEN

__all__ = ["OOV_TOKEN", "OUTPUT_MODES", "PAD_TOKEN", "SPLIT_MODES", "STANDARDIZE_MODES",
           "TextLike", "TextVectorization"]
