"""IMDb reviews in the tutorial's split and order.

:func:`load_imdb` returns the training and validation subsets that
``keras.utils.text_dataset_from_directory(..., validation_split=0.2, seed=123)``
makes, each as a :class:`datasets.Dataset` whose rows are already in the order
the tutorial's cached tf.data pipeline yields them in every epoch
(``PARITY.md`` section 6).  The training loop only walks the rows.

Sources, tried in this order when none is given: ``$EMBEDDINGS_DATA``, the local
cache (``$EMBEDDINGS_CACHE``, default ``~/.cache/embeddings``), the Hugging Face
dataset ``stanfordnlp/imdb``, and the original Stanford archive.  Nothing is ever
extracted, and only regular files are read.

The modules, each importing only those above it:

* :mod:`~embeddings.data.reviews`: the :class:`Review` record, :class:`DataSourceError`,
  the Keras sorted-walk order, and folders (:func:`read_directory`).
* :mod:`~embeddings.data.tarball`: tarballs read in place, whole or not at all
  (:func:`read_tarball`).
* :mod:`~embeddings.data.hub`: the Hugging Face dataset with its file names restored
  (:func:`read_hub`, :func:`write_index`).
* :mod:`~embeddings.data.download`: the verified, content-addressed download cache
  (:func:`read_url`, :func:`imdb_cache`, :func:`download_timeout`).
* :mod:`~embeddings.data.sources`: the choice of source and the fallbacks
  (:func:`read_source`).
* :mod:`~embeddings.data.order`: the Keras split and the tf.data order of each pass
  (:func:`split_indices`, :func:`tfdata_order`, :func:`epoch_pass`, :func:`pass_order`,
  :func:`split_order`).
* :mod:`~embeddings.data.columns`: a user's corpus (Parquet, Arrow, JSON Lines, CSV, a
  folder of them, a hub dataset) and its text and label columns (:func:`corpus_source`,
  :func:`read_corpus`).
* :mod:`~embeddings.data.corpus`: both subsets as one table read in chunks
  (:class:`Corpus`, :func:`split_rows`, :func:`labels`).
* :mod:`~embeddings.data.splits`: the two subsets as datasets (:func:`load_splits`,
  :func:`load_imdb`, :func:`exact_texts`), and the test reviews (:func:`load_test`).

Every reader takes ``subset``, ``"train"`` (the default: ``aclImdb/train``, which the
tutorial splits into training and validation) or ``"test"`` (``aclImdb/test``, the hub's
``test`` split); :data:`SUBSETS` lists them.

The constants re-exported here are copies: code reads each in its own module
(:data:`MAX_REVIEW_BYTES` in ``reviews``, :data:`IMDB_URL` and :data:`IMDB_SHA256` in
``download``), which is where a test patches them.  The native and Keras backends look
``epoch_pass`` up here at call time (:mod:`embeddings.backends.vectorized`), so a patch of
``embeddings.data.epoch_pass`` reaches them.
"""

from embeddings.data.columns import corpus_source, read_corpus
from embeddings.data.corpus import CHUNK_ROWS, Corpus, split_rows
from embeddings.data.corpus import dataset_labels as labels
from embeddings.data.download import (
    DOWNLOAD_TIMEOUT,
    IMDB_SHA256,
    IMDB_URL,
    download_timeout,
    imdb_cache,
    read_url,
)
from embeddings.data.hub import HUB_DATASET, read_hub, write_index
from embeddings.data.order import epoch_pass, pass_order, split_indices, split_order, tfdata_order
from embeddings.data.reviews import (
    CLASSES,
    MAX_REVIEW_BYTES,
    SUBSETS,
    DataSourceError,
    Review,
    read_directory,
)
from embeddings.data.sources import read_source
from embeddings.data.splits import Splits, exact_texts, load_imdb, load_splits, load_test
from embeddings.data.tarball import read_tarball

__all__ = [
    "CHUNK_ROWS", "CLASSES", "Corpus", "DOWNLOAD_TIMEOUT", "HUB_DATASET", "IMDB_SHA256",
    "IMDB_URL", "MAX_REVIEW_BYTES",
    "SUBSETS", "DataSourceError", "Review", "Splits", "download_timeout", "epoch_pass",
    "exact_texts", "imdb_cache", "labels", "load_imdb", "load_splits", "load_test", "pass_order",
    "corpus_source", "read_corpus", "read_directory", "read_hub", "split_rows",
    "read_source", "read_tarball", "read_url", "split_indices", "split_order", "tfdata_order",
    "write_index",
]
