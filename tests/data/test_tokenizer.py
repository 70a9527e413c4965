"""Tokenizers of text datasets: learned deterministically on the given texts, reloadable, truncating."""

from __future__ import annotations

import json

import pytest

from mtlrun.data.formats.tokenizer import (
    CLS,
    SEP,
    UNK,
    ByteTokenizer,
    learn_tokenizer,
    load_tokenizer,
)
from mtlrun.errors import ConfigError

CORPUS = [
    "Wel come to the Tok en izers libr ary.",
    "the dress fits well and the fabric is soft",
    "runs small, order a size up; lovely colour",
    "returned it: the zipper broke after one wash",
] * 3


def test_wordpiece_learning_is_deterministic():
    # the tokenizers trainer alone gives `##` tokens hash-map-order ids and can pick other merges
    # on ties (huggingface/tokenizers#1794): twenty learnings in one process must agree
    files = {learn_tokenizer("wordpiece", CORPUS, 60, 1, True).to_json() for _ in range(20)}
    assert len(files) == 1


@pytest.mark.parametrize("kind", ["wordpiece", "bpe", "char", "byte"])
def test_specials_template_and_reload(kind, tmp_path):
    tokenizer = learn_tokenizer(kind, CORPUS, 80, 1, True)
    encoded = tokenizer.encode(["The dress", ""], None, 32)
    assert all(row[0] == CLS for row in encoded.ids)
    assert encoded.ids[1] == [CLS]  # an empty text is its [CLS] alone
    assert tokenizer.pad_id == 0
    path = tmp_path / "tokenizer.json"
    path.write_text(tokenizer.to_json(), encoding="utf-8")
    again = load_tokenizer(str(tmp_path))  # the folder holding it
    texts = ["The zipper broke", "soft fabric, lovely"]
    assert again.encode(texts, None, 32).ids == tokenizer.encode(texts, None, 32).ids
    assert again.vocab_size == tokenizer.vocab_size and again.source == str(path)


def test_vocabulary_comes_from_the_given_texts_only():
    train = ["aaa bbb", "bbb aaa"]
    char = learn_tokenizer("char", train, 100, 1, False)
    assert char.encode(["abz"], None, 8).ids == [[CLS, char.index["a"], char.index["b"], UNK]]
    wordpiece = learn_tokenizer("wordpiece", train, 100, 1, False)
    vocab = wordpiece.tokenizer.get_vocab()
    assert "aaa" in vocab and not any("z" in token for token in vocab)


def test_byte_ids_and_truncation_of_single_texts_and_pairs():
    tokenizer = ByteTokenizer(lowercase=False)
    assert tokenizer.encode(["Aé"], None, 10).ids == [[CLS, 4 + 65, 4 + 0xC3, 4 + 0xA9]]
    cut = tokenizer.encode(["abcdef"], None, 4)
    assert cut.ids == [[CLS, 4 + 97, 4 + 98, 4 + 99]] and cut.truncated == 1
    # longest first: the longer text loses ids until both fit in max_length - 2
    pair = tokenizer.encode(["abcdef"], ["xy"], 7)
    assert pair.ids == [[CLS, 4 + 97, 4 + 98, 4 + 99, SEP, 4 + 120, 4 + 121]] and pair.truncated == 1


def test_library_truncation_keeps_max_length():
    tokenizer = learn_tokenizer("wordpiece", CORPUS, 80, 1, True)
    encoded = tokenizer.encode([CORPUS[1]], [CORPUS[2]], 6)
    assert len(encoded.ids[0]) == 6 and encoded.ids[0][0] == CLS and SEP in encoded.ids[0]
    assert encoded.truncated == 1


def test_bad_tokenizer_values_are_one_line(tmp_path):
    with pytest.raises(ConfigError, match="dataset.tokenizer=.*no such file"):
        load_tokenizer(str(tmp_path / "missing.json"))
    (tmp_path / "tokenizer.json").write_text(json.dumps([1, 2]))
    with pytest.raises(ConfigError, match="not a tokenizer"):
        load_tokenizer(str(tmp_path))
    with pytest.raises(ConfigError, match="dataset.tokenizer=sentencepiece is not valid"):
        learn_tokenizer("sentencepiece", CORPUS, 80, 1, True)
