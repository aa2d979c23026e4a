"""The text engine: TensorFlow's ``TextVectorization`` on raw bytes, free of torch.

:mod:`embeddings.text.vectorizer` holds the layer's logic (NumPy and Arrow);
:mod:`embeddings.text.native` its compiled kernels.  Nothing here imports torch,
Keras or TensorFlow.
"""

from embeddings.text.vectorizer import (
    OOV_TOKEN,
    PAD_TOKEN,
    STANDARDIZE_MODES,
    TextLike,
    TextVectorization,
)

__all__ = ["OOV_TOKEN", "PAD_TOKEN", "STANDARDIZE_MODES", "TextLike", "TextVectorization"]
