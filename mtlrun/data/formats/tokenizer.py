"""Tokenizers for text datasets: trained on the train split only, saved as ``tokenizer.json``.

Four kinds (``dataset.tokenizer``), or a path to a ``tokenizer.json`` (or a folder holding one: a
previous run folder, a pretrained checkpoint) to reuse:

- ``wordpiece`` and ``bpe``: subword vocabularies learned with the ``tokenizers`` library (WordPiece
  as BERT, Devlin et al. 2019; byte-pair encoding, Sennrich et al. 2016) over BERT's normalizer
  (optional lowercasing) and pre-tokenizer (whitespace and punctuation);
- ``byte``: the UTF-8 bytes (256 ids, nothing learned, no library);
- ``char``: the train split's characters by frequency (no library).

Every kind maps a text to ``[CLS] tokens`` and a pair to ``[CLS] a [SEP] b``, keeps at most
``max_length`` ids (the longer text of a pair is cut first) and reserves ids 0-3 for ``[PAD]``,
``[UNK]``, ``[CLS]`` and ``[SEP]``. A loaded ``tokenizer.json`` keeps its own specials and template.

Learning a WordPiece vocabulary with ``tokenizers`` is not deterministic by itself: the trainer gives
continuing-subword tokens (``##x``) their ids in hash-map order, and those ids break ties between
merges (huggingface/tokenizers#1794). Every ``##x`` of the train alphabet is therefore declared
up front, in sorted order, and the learned vocabulary is rebuilt into a clean tokenizer: the same
train split always gives the same ``tokenizer.json``.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mtlrun.errors import ConfigError, choices_error

#: the special tokens of the tokenizers mtlrun builds, with ids 0..3 in this order
SPECIALS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]")
PAD, UNK, CLS, SEP = range(4)
#: the kinds ``dataset.tokenizer`` may name; anything else is read as a path
KINDS = ("wordpiece", "bpe", "byte", "char")
#: the file a tokenizer is saved as in the run folder (and looked up in a folder)
FILE = "tokenizer.json"
#: the key of mtlrun's own JSON form of the byte and char tokenizers
OWN_KEY = "mtlrun_tokenizer"
#: what a loaded tokenizer may call its padding token
PAD_NAMES = ("[PAD]", "<pad>", "<PAD>", "[pad]")


@dataclass
class Encoded:
    """The ids of every text of a split (one list per text) and how many were cut to fit."""

    ids: list[list[int]]
    truncated: int


class TextTokenizer(ABC):
    """The interface the text pipeline uses: ids for texts (or pairs), the pad id, the vocabulary
    size, and the JSON that reloads it."""

    kind: str = ""
    #: the file this tokenizer was read from (None when it was learned in this run)
    source: str | None = None

    @property
    def pad_id(self) -> int:
        return PAD

    @property
    @abstractmethod
    def vocab_size(self) -> int:
        """How many ids there are, the special ones included (the embedding table's size)."""

    @abstractmethod
    def encode(self, texts: Sequence[str], pairs: Sequence[str] | None, max_length: int) -> Encoded:
        """The ids of each text (or of each text joined with its pair), cut to ``max_length``."""

    @abstractmethod
    def to_json(self) -> str:
        """The JSON that :func:`load_tokenizer` reads back into the same tokenizer."""


def _truncate_pair(a: list[int], b: list[int], room: int) -> tuple[list[int], list[int], bool]:
    """Cut the longer of ``a`` and ``b`` one id at a time until both fit in ``room`` ids."""
    cut = len(a) + len(b) > room
    while len(a) + len(b) > room:
        if len(a) >= len(b):
            a = a[:-1]
        else:
            b = b[:-1]
    return a, b, cut


class _OwnTokenizer(TextTokenizer):
    """The byte and char kinds: a text's ids are computed here, with the shared special ids."""

    def __init__(self, lowercase: bool) -> None:
        self.lowercase = lowercase

    @abstractmethod
    def ids(self, text: str) -> list[int]:
        """The ids of one text, without the special ids around it."""

    def encode(self, texts: Sequence[str], pairs: Sequence[str] | None, max_length: int) -> Encoded:
        out, truncated = [], 0
        for i, text in enumerate(texts):
            first = self.ids(text.lower() if self.lowercase else text)
            if pairs is None:
                cut = len(first) > max_length - 1
                out.append([CLS, *first[: max_length - 1]])
            else:
                second = self.ids(pairs[i].lower() if self.lowercase else pairs[i])
                first, second, cut = _truncate_pair(first, second, max_length - 2)
                out.append([CLS, *first, SEP, *second])
            truncated += cut
        return Encoded(out, truncated)


class ByteTokenizer(_OwnTokenizer):
    """UTF-8 bytes: id ``4 + b`` for byte ``b``."""

    kind = "byte"

    @property
    def vocab_size(self) -> int:
        return len(SPECIALS) + 256

    def ids(self, text: str) -> list[int]:
        return [len(SPECIALS) + b for b in text.encode("utf-8")]

    def to_json(self) -> str:
        return json.dumps({OWN_KEY: "byte", "lowercase": self.lowercase})


class CharTokenizer(_OwnTokenizer):
    """Characters: id ``4 + i`` for the i-th character of ``chars``; others are ``[UNK]``."""

    kind = "char"

    def __init__(self, chars: Sequence[str], lowercase: bool) -> None:
        super().__init__(lowercase)
        self.chars = list(chars)
        self.index = {c: len(SPECIALS) + i for i, c in enumerate(self.chars)}

    @classmethod
    def learn(cls, texts: Sequence[str], vocab_size: int, min_frequency: int, lowercase: bool) -> CharTokenizer:
        """The most frequent characters of ``texts`` (ties by code point), at most ``vocab_size`` ids in all."""
        counts: Counter[str] = Counter()
        for text in texts:
            counts.update(text.lower() if lowercase else text)
        ranked = sorted((c for c, n in counts.items() if n >= min_frequency), key=lambda c: (-counts[c], c))
        return cls(ranked[: max(0, vocab_size - len(SPECIALS))], lowercase)

    @property
    def vocab_size(self) -> int:
        return len(SPECIALS) + len(self.chars)

    def ids(self, text: str) -> list[int]:
        return [self.index.get(c, UNK) for c in text]

    def to_json(self) -> str:
        return json.dumps({OWN_KEY: "char", "lowercase": self.lowercase, "chars": self.chars}, ensure_ascii=False)


class LibraryTokenizer(TextTokenizer):
    """A ``tokenizers.Tokenizer`` (learned here or read from a ``tokenizer.json``)."""

    def __init__(self, tokenizer: Any, kind: str, source: str | None = None) -> None:
        self.tokenizer, self.kind, self.source = tokenizer, kind, source
        tokenizer.no_padding()  # padding is the split's job (per batch), never the tokenizer's
        pad = next((tokenizer.token_to_id(t) for t in PAD_NAMES if tokenizer.token_to_id(t) is not None), None)
        if pad is None:
            raise ConfigError(
                f"dataset.tokenizer={source}: the tokenizer has no padding token (one of {', '.join(PAD_NAMES)})"
            )
        self._pad = int(pad)
        self._fallback = tokenizer.token_to_id(SPECIALS[UNK])

    @property
    def pad_id(self) -> int:
        return self._pad

    @property
    def vocab_size(self) -> int:
        return int(self.tokenizer.get_vocab_size(with_added_tokens=True))

    def encode(self, texts: Sequence[str], pairs: Sequence[str] | None, max_length: int) -> Encoded:
        self.tokenizer.enable_truncation(max_length=max_length, strategy="longest_first")
        inputs: list[Any] = list(texts) if pairs is None else list(zip(texts, pairs))
        encodings = self.tokenizer.encode_batch(inputs, add_special_tokens=True)
        ids, truncated = [], 0
        fallback = self._fallback if self._fallback is not None else self._pad
        for encoding in encodings:
            row = list(encoding.ids)
            ids.append(row or [fallback])  # a template without specials gives an empty text nothing
            truncated += bool(encoding.overflowing)
        return Encoded(ids, truncated)

    def to_json(self) -> str:
        self.tokenizer.no_truncation()  # the length limit is the dataset's (max_length), not the file's
        return str(self.tokenizer.to_str())


def _library() -> Any:
    try:
        import tokenizers
    except ImportError:
        raise ConfigError(
            "dataset.tokenizer=wordpiece|bpe needs the tokenizers package: pip install tokenizers "
            "(or use dataset.tokenizer=byte or char, which need none)"
        ) from None
    return tokenizers


def _pipeline(tokenizer: Any, lowercase: bool) -> None:
    """BERT's normalizer and pre-tokenizer, and the ``[CLS] a [SEP] b`` template."""
    from tokenizers import normalizers, pre_tokenizers, processors

    tokenizer.normalizer = normalizers.BertNormalizer(lowercase=lowercase, strip_accents=False)
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tokenizer.post_processor = processors.TemplateProcessing(
        single=f"{SPECIALS[CLS]} $A",
        pair=f"{SPECIALS[CLS]} $A {SPECIALS[SEP]} $B",
        special_tokens=[(SPECIALS[CLS], CLS), (SPECIALS[SEP], SEP)],
    )


def _learn_library(kind: str, texts: Sequence[str], vocab_size: int, min_frequency: int, lowercase: bool) -> Any:
    tk = _library()
    from tokenizers import decoders, models, normalizers, trainers

    if kind == "bpe":
        tokenizer = tk.Tokenizer(models.BPE(unk_token=SPECIALS[UNK]))
        _pipeline(tokenizer, lowercase)
        trainer = trainers.BpeTrainer(
            vocab_size=vocab_size, min_frequency=min_frequency, special_tokens=list(SPECIALS), show_progress=False
        )
        tokenizer.train_from_iterator(texts, trainer)
    else:
        normalizer = normalizers.BertNormalizer(lowercase=lowercase, strip_accents=False)
        # every continuing-subword token declared up front, sorted: see the module docstring
        alphabet = sorted({c for text in texts for c in normalizer.normalize_str(text) if not c.isspace()})
        draft = tk.Tokenizer(models.WordPiece(unk_token=SPECIALS[UNK]))
        _pipeline(draft, lowercase)
        trainer = trainers.WordPieceTrainer(
            vocab_size=vocab_size,
            min_frequency=min_frequency,
            special_tokens=[*SPECIALS, *(f"##{c}" for c in alphabet)],
            show_progress=False,
        )
        draft.train_from_iterator(texts, trainer)
        tokenizer = tk.Tokenizer(models.WordPiece(vocab=draft.get_vocab(), unk_token=SPECIALS[UNK]))
        tokenizer.decoder = decoders.WordPiece()
        _pipeline(tokenizer, lowercase)
        tokenizer.add_special_tokens(list(SPECIALS))
    for i, token in enumerate(SPECIALS):
        if tokenizer.token_to_id(token) != i:  # the trainer puts the specials first; relied on by the template
            raise RuntimeError(f"{kind} tokenizer gave {token} id {tokenizer.token_to_id(token)}, not {i}")
    return tokenizer


def learn_tokenizer(
    kind: str, texts: Sequence[str], vocab_size: int, min_frequency: int, lowercase: bool
) -> TextTokenizer:
    """A tokenizer of ``kind`` learned on ``texts`` (the train split's), deterministic in them."""
    if kind not in KINDS:
        raise choices_error("dataset.tokenizer", kind, [*KINDS, "PATH (a tokenizer.json or a folder with one)"])
    if kind == "byte":
        return ByteTokenizer(lowercase)
    if kind == "char":
        return CharTokenizer.learn(texts, vocab_size, min_frequency, lowercase)
    return LibraryTokenizer(_learn_library(kind, texts, vocab_size, min_frequency, lowercase), kind)


def tokenizer_file(path: str) -> Path:
    """The ``tokenizer.json`` that ``dataset.tokenizer=PATH`` names (the file, or one in the folder)."""
    from mtlrun.data.own.table import resolve_path

    resolved = resolve_path(path, "dataset.tokenizer")
    if resolved.is_dir():
        resolved = resolved / FILE
    if not resolved.is_file():
        valid = ", ".join(KINDS)
        raise ConfigError(
            f"dataset.tokenizer={path}: no such file ({resolved}); give one of {valid} or a tokenizer.json "
            "(or a folder holding one)"
        )
    return resolved


def load_tokenizer(path: str) -> TextTokenizer:
    """The tokenizer saved at ``path``: mtlrun's byte/char JSON or a ``tokenizers`` tokenizer.json."""
    file = tokenizer_file(path)
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as ex:
        raise ConfigError(
            f"dataset.tokenizer={path}: {file} is not a readable JSON file ({type(ex).__name__})"
        ) from None
    if not isinstance(data, dict):
        raise ConfigError(f"dataset.tokenizer={path}: {file} is not a tokenizer (not a JSON object)")
    tokenizer: TextTokenizer
    if OWN_KEY in data:
        lowercase = bool(data.get("lowercase", False))
        if data[OWN_KEY] == "byte":
            tokenizer = ByteTokenizer(lowercase)
        elif data[OWN_KEY] == "char" and isinstance(data.get("chars"), list):
            tokenizer = CharTokenizer([str(c) for c in data["chars"]], lowercase)
        else:
            raise ConfigError(f"dataset.tokenizer={path}: {file} is not a byte or char tokenizer of mtlrun")
    else:
        tk = _library()
        try:
            loaded = tk.Tokenizer.from_str(json.dumps(data))
        except Exception as ex:
            first = str(ex).strip().splitlines()[0] if str(ex).strip() else type(ex).__name__
            raise ConfigError(f"dataset.tokenizer={path}: {file} is not a tokenizers tokenizer.json: {first}") from None
        tokenizer = LibraryTokenizer(loaded, "file", str(file))
    tokenizer.source = str(file)
    return tokenizer
