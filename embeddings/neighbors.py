"""Nearest words in a trained embedding table: ``python -m embeddings.neighbors --run DIR
WORD [WORD ...] [-k 10] [--analogy A B C]``.

:func:`nearest` returns the ``k`` tokens whose vectors have the highest cosine similarity
with a word's vector, and :func:`analogy` those nearest to ``b - a + c`` (``man woman
king`` asks "man is to woman as king is to ?"), what the Embedding Projector's users do
by hand with ``vectors.tsv``.  Both read a run directory (:func:`embeddings.runs.load_run`);
:class:`NeighborIndex` serves many queries from one table.

The rules, the same for every query:

* Cosine similarities are computed in float64 from the float32 table.
* The candidates are the vocabulary's rows except the padding row 0 (the Projector never
  sees it), rows past the vocabulary, and the query's own word (an analogy's three
  words).  ``'[UNK]'`` is a candidate like any token.
* A row of zeros has no cosine: it is never a candidate, and asking for its neighbours is
  an error.
* Ties are broken by id (the lower id first); ``k`` is clipped to the number of candidates.
* A word is looked up as given, then as the run's vectorizer standardizes text (the
  tutorial's lowercases and strips punctuation, so ``Beautiful!`` finds ``beautiful``).
  A word outside the vocabulary is an :class:`~embeddings.errors.InvalidInput` naming
  its closest spellings in it (:func:`difflib.get_close_matches`).

The command line prints one ``token<TAB>similarity`` line per neighbour (similarity with
six decimals), and with several queries a ``# word`` (``# b - a + c``) line before each.
"""

from __future__ import annotations

import difflib
import os
import sys
from collections.abc import Sequence

import numpy as np

from embeddings.errors import ArgumentParser, InvalidInput, cli, exit_now
from embeddings.runs import RUN_HELP, Run, load_run, run_flag
from embeddings.text import OOV_TOKEN, PAD_TOKEN, TextVectorization

EMBEDDING = "embedding.embeddings"
SUGGESTIONS = 5  # closest spellings named for a word outside the vocabulary


def _check_k(k: int) -> None:
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise InvalidInput(f"k (-k) is the number of neighbours and must be an integer of at "
                           f"least 1. Received: k={k!r}; pass -k 1 or more.")


class NeighborIndex:
    """A run's embedding table ready for cosine queries: its rows as float64 unit vectors.

    Args:
        run (Run | str | os.PathLike): a loaded run or its directory.

    Raises:
        RunFormatError: the run directory is missing a file or holds a malformed one.
    """

    def __init__(self, run: Run | str | os.PathLike[str]) -> None:
        loaded = run if isinstance(run, Run) else load_run(run)
        self.run = loaded
        self.tokens: list[str] = list(loaded.vocabulary)
        self._ids = {token: i for i, token in reversed(list(enumerate(self.tokens)))}
        table = loaded.weights[EMBEDDING][: len(self.tokens)].astype(np.float64)  # (N, D)
        norms = np.linalg.norm(table, axis=1)  # (N,)
        self._valid = norms > 0  # a zero row has no cosine
        self._valid[0] = False  # the padding row
        self.unit = np.zeros_like(table)  # (N, D): rows of norm 1, zero rows stay zero
        self.unit[self._valid] = table[self._valid] / norms[self._valid, None]

    def __len__(self) -> int:
        """The number of tokens (padding and ``'[UNK]'`` included)."""
        return len(self.tokens)

    def _standardized(self, word: str) -> str:
        """``word`` as the run's vectorizer standardizes it, as one token."""
        vectorizer = TextVectorization(standardize=self.run.standardize, split=None)
        vectorizer.adapt([word])
        found = vectorizer.get_vocabulary()[2:]
        return found[0] if found else ""

    def lookup(self, word: str) -> int:
        """The id of ``word``: as given, else as the run's vectorizer standardizes it.

        Args:
            word (str): a token of the vocabulary, or text that standardizes to one.

        Returns:
            int: its row in the table (never 0, the padding).

        Raises:
            InvalidInput: ``word`` is not in the vocabulary; the message names its closest
                spellings that are.
        """
        if word != PAD_TOKEN and word in self._ids:
            return self._ids[word]
        key = self._standardized(word)
        if key != PAD_TOKEN and key in self._ids:
            return self._ids[key]
        shown = repr(word) if key == word else f"{word!r} (looked up as {key!r})"
        words = [t for t in self.tokens if t not in (PAD_TOKEN, OOV_TOKEN)]
        close = difflib.get_close_matches(key or word, words, n=SUGGESTIONS)
        hint = (f"did you mean: {', '.join(close)}?" if close
                else "no word in it is spelled closely.")
        raise InvalidInput(f"{shown} is not in the vocabulary of the run {self.run.path} "
                           f"({len(words)} words); {hint} Pass a word of its vocabulary.json.")

    def _unit(self, word: str) -> tuple[int, np.ndarray]:
        row = self.lookup(word)
        if not self._valid[row]:
            raise InvalidInput(f"The vector of {self.tokens[row]!r} is all zeros, so it has "
                               f"no cosine similarity. Received: word={word!r}; ask for "
                               "another word.")
        return row, self.unit[row]

    def closest(self, vector: np.ndarray, *, exclude: Sequence[int] = (),
                k: int = 10) -> list[tuple[str, float]]:
        """The ``k`` tokens of highest cosine similarity with ``vector``.

        Args:
            vector (np.ndarray): ``(D,)`` query, not all zeros.
            exclude (Sequence[int]): ids that are not candidates. Default: ``()``.
            k (int): how many, at least 1; clipped to the candidates. Default: ``10``.

        Returns:
            list[tuple[str, float]]: ``(token, similarity)``, most similar first, ties by id.

        Raises:
            InvalidInput: ``k`` is below 1, or ``vector`` is all zeros.
        """
        _check_k(k)
        query = np.asarray(vector, dtype=np.float64)
        norm = float(np.linalg.norm(query))
        if not norm > 0:
            raise InvalidInput("The query vector is all zeros, so it has no cosine "
                               "similarity. Received: a zero vector; use another query.")
        similarity = self.unit @ (query / norm)  # (N, D) @ (D,) -> (N,)
        allowed = self._valid.copy()
        allowed[list(exclude)] = False
        candidates = np.flatnonzero(allowed)  # in id order, so the stable sort keeps ties so
        best = candidates[np.argsort(-similarity[candidates], kind="stable")[:k]]
        return [(self.tokens[i], float(similarity[i])) for i in best]

    def nearest(self, word: str, k: int = 10) -> list[tuple[str, float]]:
        """See :func:`nearest`."""
        _check_k(k)
        row, vector = self._unit(word)
        return self.closest(vector, exclude=[row], k=k)

    def analogy(self, a: str, b: str, c: str, k: int = 10) -> list[tuple[str, float]]:
        """See :func:`analogy`."""
        _check_k(k)
        (ra, ua), (rb, ub), (rc, uc) = self._unit(a), self._unit(b), self._unit(c)
        target = ub - ua + uc  # (D,)
        if not np.linalg.norm(target) > 0:
            raise InvalidInput(f"b - a + c is all zeros for a={a!r}, b={b!r}, c={c!r}, so it "
                               "has no cosine similarity; ask another analogy.")
        return self.closest(target, exclude=[ra, rb, rc], k=k)


def nearest(run: Run | str | os.PathLike[str], word: str,
            k: int = 10) -> list[tuple[str, float]]:
    """The ``k`` tokens nearest to ``word`` by cosine similarity (see the module's rules).

    Args:
        run (Run | str | os.PathLike): a loaded run or its directory.
        word (str): a token of the run's vocabulary, or text that standardizes to one.
        k (int): how many, at least 1; clipped to the vocabulary. Default: ``10``.

    Returns:
        list[tuple[str, float]]: ``(token, cosine similarity)``, most similar first.

    Raises:
        InvalidInput: ``word`` is not in the vocabulary (the message names its closest
            spellings), its vector is all zeros, or ``k`` is below 1.
        RunFormatError: the run directory is missing a file or holds a malformed one.
    """
    return NeighborIndex(run).nearest(word, k)


def analogy(run: Run | str | os.PathLike[str], a: str, b: str, c: str,
            k: int = 10) -> list[tuple[str, float]]:
    """The ``k`` tokens nearest to ``b - a + c``, the sum of the words' unit vectors
    ("``a`` is to ``b`` as ``c`` is to ?"), by cosine similarity; the three words are not
    candidates.

    Args:
        run (Run | str | os.PathLike): a loaded run or its directory.
        a (str): the word taken away.
        b (str): the word added.
        c (str): the word the answer relates to as ``b`` to ``a``.
        k (int): how many, at least 1; clipped to the vocabulary. Default: ``10``.

    Returns:
        list[tuple[str, float]]: ``(token, cosine similarity)``, most similar first.

    Raises:
        InvalidInput: a word is not in the vocabulary or has a zero vector, ``b - a + c``
            is zero, or ``k`` is below 1.
        RunFormatError: the run directory is missing a file or holds a malformed one.
    """
    return NeighborIndex(run).analogy(a, b, c, k)


def _write(lines: list[str]) -> None:
    """Print ``lines``, tokens of invalid UTF-8 as their original bytes."""
    text = "".join(line + "\n" for line in lines)
    stream = getattr(sys.stdout, "buffer", None)
    if stream is None:
        sys.stdout.write(text)
        return
    sys.stdout.flush()
    stream.write(text.encode("utf-8", "surrogateescape"))
    stream.flush()


def main(argv: Sequence[str] | None = None) -> int:
    """The command line: ``token<TAB>similarity`` lines, a ``# query`` line before each
    query's when there are several."""
    parser = ArgumentParser(prog="python -m embeddings.neighbors",
                            description=__doc__.splitlines()[0], allow_abbrev=False)
    parser.add_argument("--run", required=True, help=RUN_HELP)
    parser.add_argument("words", nargs="*", metavar="WORD", help="words to find neighbours of")
    parser.add_argument("-k", type=int, default=10, help="neighbours per query (default: 10)")
    parser.add_argument("--analogy", nargs=3, metavar=("A", "B", "C"),
                        help="also the neighbours of B - A + C (A is to B as C is to ?)")
    args = parser.parse_args(argv)

    def body() -> int:
        _check_k(args.k)
        if not args.words and not args.analogy:
            raise InvalidInput("Nothing to look up. Received: no WORD and no --analogy; pass "
                               "words, e.g. `--run DIR beautiful`, or `--analogy A B C`.")
        index = NeighborIndex(run_flag(args.run))
        queries: list[tuple[str, list[tuple[str, float]]]] = []
        for word in args.words:
            token = index.tokens[index.lookup(word)]
            if token != word:
                print(f"note: {word!r} is looked up as {token!r}, as the run's vectorizer "
                      "standardizes text", file=sys.stderr)
            queries.append((token, index.nearest(word, args.k)))
        if args.analogy:
            a, b, c = (index.tokens[index.lookup(w)] for w in args.analogy)
            queries.append((f"{b} - {a} + {c}", index.analogy(a, b, c, args.k)))
        lines: list[str] = []
        for label, found in queries:
            if len(queries) > 1:
                lines.append(f"# {label}")
            lines.extend(f"{token}\t{similarity:.6f}" for token, similarity in found)
        _write(lines)
        return 0

    return cli(body)


if __name__ == "__main__":
    exit_now(main())
