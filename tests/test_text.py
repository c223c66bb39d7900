"""CharTokenizer: fit, encode/decode, JSON save/load, helpful errors."""

import os

import numpy as np
import pytest

from hadamard_zoo.text import CharTokenizer

TEXT = "First Citizen:\nBefore we proceed any further, hear me speak.\n"


def test_fit_encode_decode_roundtrip():
    tok = CharTokenizer.from_text(TEXT)
    assert tok.vocab == sorted(set(TEXT)) and tok.vocab_size == len(set(TEXT)) == len(tok)
    ids = tok.encode(TEXT)
    assert ids.dtype == np.int32 and ids.shape == (len(TEXT),)
    assert tok.decode(ids) == TEXT
    assert tok.decode(ids.tolist()) == TEXT
    assert tok.encode("").shape == (0,) and tok.decode([]) == ""
    assert tok.encode("\n")[0] == 0  # sorted by code point: newline first


def test_save_load_json(tmp_path):
    tok = CharTokenizer.from_text(TEXT + "éß")
    path = tmp_path / "tok.json"
    tok.save(path)
    again = CharTokenizer.load(path)
    assert again == tok and again.encode("éß").tolist() == tok.encode("éß").tolist()
    (tmp_path / "bad.json").write_text('{"vocab": ["a"]}')
    with pytest.raises(ValueError, match="not a CharTokenizer JSON"):
        CharTokenizer.load(tmp_path / "bad.json")
    (tmp_path / "broken.json").write_text("{")
    with pytest.raises(ValueError, match="not a CharTokenizer JSON"):
        CharTokenizer.load(tmp_path / "broken.json")


def test_unknown_characters_error_names_them():
    tok = CharTokenizer.from_text("abc")
    with pytest.raises(ValueError, match=r"2 character\(s\) not in the vocabulary of 3: 'x', 'z' \(first at position 1\)"):
        tok.encode("axbz")
    with pytest.raises(ValueError, match=r"'😀' \(first at position 2\)"):  # beyond the lookup table
        tok.encode("ab😀")
    assert CharTokenizer.from_text("ab😀").encode("😀a").tolist() == [2, 0]


def test_bad_inputs():
    with pytest.raises(ValueError, match="empty vocabulary"):
        CharTokenizer().encode("a")
    with pytest.raises(ValueError, match="non-empty string"):
        CharTokenizer().fit("")
    with pytest.raises(ValueError, match="duplicate"):
        CharTokenizer("aba")
    with pytest.raises(ValueError, match="one character"):
        CharTokenizer(["ab", "c"])
    tok = CharTokenizer("abc")
    with pytest.raises(ValueError, match=r"out of range \[0, 3\)"):
        tok.decode([0, 3])
    with pytest.raises(ValueError, match="1-D"):
        tok.decode([[0, 1]])
    with pytest.raises(ValueError, match="expects a string"):
        tok.encode(["a"])


@pytest.mark.data
def test_tiny_shakespeare_has_65_characters(shared_datasets):
    path = os.path.join(shared_datasets, "text", "tinyshakespeare.txt")
    if not os.path.exists(path):
        pytest.skip(f"{path} not found")
    with open(path, encoding="utf-8") as f:
        text = f.read()
    tok = CharTokenizer.from_text(text)
    assert tok.vocab_size == 65
    assert tok.decode(tok.encode(text[:2000])) == text[:2000]
