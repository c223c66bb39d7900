"""Character-level tokenization for the character language models (e.g. Tiny Shakespeare).

>>> tok = CharTokenizer.from_text(open("tinyshakespeare.txt").read())
>>> tok.vocab_size                      # 65 for Tiny Shakespeare
>>> ids = tok.encode("ROMEO:")          # numpy int32 array
>>> tok.decode(ids)
'ROMEO:'
>>> tok.save("tokenizer.json"); CharTokenizer.load("tokenizer.json")
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

_FORMAT = "hadamard_zoo.CharTokenizer"


class CharTokenizer:
    """Maps each distinct character of a text to an integer id (sorted by code point).

    Args:
        vocab: the characters, in id order (a string or a list of one-character
            strings); None creates an empty tokenizer to :meth:`fit`.
    """

    def __init__(self, vocab=None):
        self._set_vocab([] if vocab is None else list(vocab))

    def _set_vocab(self, chars):
        for ch in chars:
            if not isinstance(ch, str) or len(ch) != 1:
                raise ValueError(f"CharTokenizer: every vocabulary entry must be one character, got {ch!r}.")
        if len(set(chars)) != len(chars):
            dupes = sorted({c for c in chars if chars.count(c) > 1})
            raise ValueError(f"CharTokenizer: duplicate characters in the vocabulary: {dupes!r}.")
        self.vocab = list(chars)
        self._index = {ch: i for i, ch in enumerate(self.vocab)}
        self._max_code = max(map(ord, self.vocab), default=0)
        self._table = None  # code point -> id lookup for encode, built on first use

    # ----------------------------------------------------------------- building
    def fit(self, text: str) -> "CharTokenizer":
        """Set the vocabulary to the sorted distinct characters of ``text``; returns self."""
        if not isinstance(text, str) or not text:
            raise ValueError("CharTokenizer.fit needs a non-empty string.")
        self._set_vocab(sorted(set(text)))
        return self

    @classmethod
    def from_text(cls, text: str) -> "CharTokenizer":
        return cls().fit(text)

    @property
    def vocab_size(self) -> int:
        return len(self.vocab)

    def __len__(self):
        return self.vocab_size

    def __repr__(self):
        return f"CharTokenizer(vocab_size={self.vocab_size})"

    def __eq__(self, other):
        return isinstance(other, CharTokenizer) and self.vocab == other.vocab

    # ------------------------------------------------------------ encode/decode
    def encode(self, text: str) -> np.ndarray:
        """``text`` → int32 ids of shape ``(len(text),)``; unknown characters raise ValueError."""
        if not isinstance(text, str):
            raise ValueError(f"CharTokenizer.encode expects a string, got {type(text).__name__}.")
        if not self.vocab:
            raise ValueError("CharTokenizer has an empty vocabulary; call fit(text) or load(path) first.")
        codes = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)
        if codes.size == 0:
            return np.zeros((0,), np.int32)
        ids = self._code_table()[np.minimum(codes, self._max_code + 1)]
        if (ids < 0).any():
            unknown = sorted({ch for ch in text if ch not in self._index})
            first = int(np.argmax(ids < 0))
            shown = ", ".join(repr(c) for c in unknown[:10]) + (" ..." if len(unknown) > 10 else "")
            raise ValueError(
                f"CharTokenizer.encode: {len(unknown)} character(s) not in the vocabulary of "
                f"{self.vocab_size}: {shown} (first at position {first}). Fit the tokenizer on text "
                f"that contains them, or remove them from the input."
            )
        return ids

    def _code_table(self):
        """``table[code point] = id`` (-1 for characters outside the vocabulary), one slot past the last."""
        if self._table is None:
            self._table = np.full(self._max_code + 2, -1, np.int32)
            self._table[[ord(c) for c in self.vocab]] = np.arange(self.vocab_size, dtype=np.int32)
        return self._table

    def decode(self, ids) -> str:
        """int ids (any integer sequence or 1-D array) → string."""
        arr = np.asarray(ids)
        if arr.ndim != 1:
            raise ValueError(f"CharTokenizer.decode expects a 1-D sequence of ids, got shape {arr.shape}.")
        if arr.size and not np.issubdtype(arr.dtype, np.integer):
            raise ValueError(f"CharTokenizer.decode expects integer ids, got dtype {arr.dtype}.")
        bad = arr[(arr < 0) | (arr >= self.vocab_size)]
        if bad.size:
            raise ValueError(
                f"CharTokenizer.decode: id(s) {sorted(set(bad.tolist()))[:10]} out of range [0, {self.vocab_size})."
            )
        return "".join(self.vocab[i] for i in arr.tolist())

    # --------------------------------------------------------------- save/load
    def get_config(self) -> dict:
        return {"format": _FORMAT, "vocab": list(self.vocab)}

    @classmethod
    def from_config(cls, config: dict) -> "CharTokenizer":
        if not isinstance(config, dict) or "vocab" not in config:
            raise ValueError(f"Not a CharTokenizer config (needs a 'vocab' list): {config!r:.200}.")
        return cls(config["vocab"])

    def save(self, path) -> None:
        """Write the vocabulary as JSON (UTF-8)."""
        Path(path).write_text(json.dumps(self.get_config(), ensure_ascii=False), encoding="utf-8")

    @classmethod
    def load(cls, path) -> "CharTokenizer":
        try:
            config = json.loads(Path(path).read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise ValueError(f"{path}: not a CharTokenizer JSON file: {exc}") from exc
        if not isinstance(config, dict) or config.get("format") != _FORMAT:
            raise ValueError(f"{path}: not a CharTokenizer JSON file (format {_FORMAT!r} expected).")
        return cls.from_config(config)
