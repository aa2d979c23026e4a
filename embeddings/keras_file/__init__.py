"""Keras files read as data: the tutorial model's weights, config and vocabulary.

:func:`read_keras` reads a ``.keras`` archive (with or without a ``TextVectorization``
inside) or a ``.weights.h5`` file; :func:`read_vocabulary` a ``vocabulary.json`` or a
text file, one token a line.  Nothing is unpickled and no code from the file runs: the
archive's JSON config and HDF5 weights are parsed directly, and only what the model
needs is read.  Refused, each with a one-line error that names the file and the fix
(:class:`~embeddings.errors.InvalidInput`):

* HDF5 external links and soft links, datasets with external storage (bytes of another
  file), virtual datasets, and filtered (compressed) or chunked datasets: Keras writes
  its weights uncompressed and contiguous (:mod:`.hdf5`);
* a dataset whose stored bytes differ from its declared shape, weights that are not
  float32, hold NaN or infinity, or whose shapes do not fit together, and a model that
  would need more memory than is available, all checked before anything is allocated;
* archive members larger than their limit (:data:`CONFIG_LIMIT`,
  :data:`VOCABULARY_LIMIT`, available memory for the weights), and every member the
  model does not need is never read (:mod:`.reader`);
* a ``config.json`` that is not the tutorial model's (the field at fault is named), a
  ``standardize`` that is not one of Keras's built-ins or a custom function, an
  ``ngrams`` other than ``(1, ..., N)`` (``[2]`` or ``[1, 3]``: a run trains single words
  up to N-grams), and a sequence length or N outside
  :class:`~embeddings.config.TextConfig`'s bounds (:mod:`.architecture`).

Besides the weights, a ``.keras`` file says the embedding's ``mask_zero`` (padding left
out of the mean) and, with a ``TextVectorization``, its vocabulary, sequence length,
standardization and n-grams (:class:`KerasModelFile`).
"""

from embeddings.keras_file.architecture import checked_ngrams, checked_sequence_length
from embeddings.keras_file.reader import (
    CONFIG_LIMIT,
    CONFIG_MEMBER,
    VOCABULARY_LIMIT,
    WEIGHTS_MEMBER,
    KerasModelFile,
    read_keras,
    read_vocabulary,
)

__all__ = ["CONFIG_LIMIT", "CONFIG_MEMBER", "VOCABULARY_LIMIT", "WEIGHTS_MEMBER",
           "KerasModelFile", "checked_ngrams", "checked_sequence_length", "read_keras",
           "read_vocabulary"]
