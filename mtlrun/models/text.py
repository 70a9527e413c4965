"""Text encoders: token ids (N, C, L) in, one feature vector per example out.

Each of the C text columns is encoded by the same module and the features are concatenated
(N, C*D). Every encoder masks the padding (id ``vocab.pad_id``), so an example's features do not
depend on how much padding its batch carries (length buckets trim batches to their longest text).
Stage 0 is the whole sequence encoder (features between stages are vectors, so cross-stitch,
MTAN and branching work on text as on vectors); ``hidden > 0`` adds a Linear+ReLU stage on top.

- ``text_cnn``: Kim (EMNLP 2014), parallel convolutions of several widths over the embeddings,
  ReLU, max-over-time pooling, dropout: ``c_i = relu(w · x_{i:i+h-1} + b)``, ``ĉ = max_i c_i``.
- ``bilstm``: a bidirectional LSTM over packed sequences (no step sees a pad), pooled by the
  final states of both directions (``last``) or the masked mean or max of their outputs.
- ``transformer``: ``torch.nn.TransformerEncoder`` (Vaswani et al. 2017; pre-norm) on token plus
  learned position embeddings (as BERT), a key padding mask, mean or first-token (``[CLS]``) pooling.
  ``encoder.weights=PATH``: an mtlrun state dict of this encoder, or a local ``transformers``
  checkpoint folder (``config.json`` + weights; the ``text`` extra), whose own tokenizer the data
  must use (``dataset.tokenizer=PATH``). Nothing is downloaded.
"""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mtlrun.data.base import MultiTaskDataset
from mtlrun.data.text import DEFAULT_TEXT_ENCODER, TEXT_CONTEXT, TextVocab, is_text
from mtlrun.errors import ConfigError
from mtlrun.models.encoders import ENCODERS, StagedEncoder
from mtlrun.registry import positive

#: the built-in text encoders (a user's encoder reads text when its signature takes ``vocab``)
TEXT_ENCODERS = ("text_cnn", "bilstm", "transformer")
#: architectures whose gates read the raw input, which for text is token ids
INPUT_GATED_ARCHS = ("mmoe", "cgc", "ple", "dselect_k")
TEXT_DATASETS = "dataset=text or dataset=clothing_reviews"


def _require_vocab(name: str, input_shape: tuple[int, ...], vocab: TextVocab | None) -> TextVocab:
    if vocab is None or len(input_shape) != 2:
        raise ConfigError(f"encoder={name} reads token ids; use it with a text dataset ({TEXT_DATASETS})")
    return vocab


def masked_mean(values: Tensor, mask: Tensor) -> Tensor:
    """Mean over time of ``values`` (B, L, D) at the positions where ``mask`` (B, L) is true."""
    weights = mask.unsqueeze(-1).to(values.dtype)
    return (values * weights).sum(1) / weights.sum(1).clamp(min=1.0)


def masked_max(values: Tensor, mask: Tensor) -> Tensor:
    """Max over time of ``values`` (B, L, D) at the positions where ``mask`` (B, L) is true."""
    return values.masked_fill(~mask.unsqueeze(-1), float("-inf")).amax(1)


class PerColumn(nn.Module):
    """Encode each column of ``ids`` (N, C, L) with the one ``body`` ((B, L) -> (B, D)) and concatenate."""

    def __init__(self, body: nn.Module) -> None:
        super().__init__()
        self.body = body

    def forward(self, ids: Tensor) -> Tensor:
        n, c, length = ids.shape
        features = self.body(ids.reshape(n * c, length))
        return features.reshape(n, -1)


class KimCNN(nn.Module):
    """Kim (2014): embeddings, one Conv1d per width, ReLU, max over the windows that start inside
    the text, dropout. A text shorter than the widest filter is padded (zero vectors) to its width."""

    def __init__(self, vocab: TextVocab, embedding_dim: int, widths: list[int], filters: int, dropout: float) -> None:
        super().__init__()
        self.pad_id = vocab.pad_id
        self.embedding = nn.Embedding(vocab.size, embedding_dim, padding_idx=vocab.pad_id)
        self.convs = nn.ModuleList(nn.Conv1d(embedding_dim, filters, w) for w in widths)
        self.widths = list(widths)
        self.dropout = nn.Dropout(dropout)

    def forward(self, ids: Tensor) -> Tensor:
        lengths = (ids != self.pad_id).sum(1)
        widest = max(self.widths)
        if ids.shape[1] < widest:
            ids = F.pad(ids, (0, widest - ids.shape[1]), value=self.pad_id)
        x = self.embedding(ids).transpose(1, 2)  # (B, E, L); the pad embedding is the zero vector
        pooled = []
        for width, conv in zip(self.widths, self.convs):
            h = torch.relu(conv(x))  # (B, F, L - w + 1)
            # window i holds tokens i..i+w-1: keep i <= len - w (and window 0 of a shorter text)
            last = (lengths - width).clamp(min=0)
            valid = torch.arange(h.shape[-1], device=h.device).unsqueeze(0) <= last.unsqueeze(1)
            pooled.append(h.masked_fill(~valid.unsqueeze(1), float("-inf")).amax(-1))
        return self.dropout(torch.cat(pooled, dim=1))


class BiLSTM(nn.Module):
    """A bidirectional LSTM over packed sequences; ``pooling`` last, mean or max of both directions."""

    def __init__(
        self, vocab: TextVocab, embedding_dim: int, hidden_size: int, layers: int, pooling: str, dropout: float
    ) -> None:
        super().__init__()
        self.pad_id, self.pooling = vocab.pad_id, pooling
        self.embedding = nn.Embedding(vocab.size, embedding_dim, padding_idx=vocab.pad_id)
        self.lstm = nn.LSTM(
            embedding_dim,
            hidden_size,
            num_layers=layers,
            batch_first=True,
            bidirectional=True,
            dropout=dropout if layers > 1 else 0.0,
        )
        self.dropout = nn.Dropout(dropout)

    def forward(self, ids: Tensor) -> Tensor:
        mask = ids != self.pad_id
        lengths = mask.sum(1).clamp(min=1)
        packed = nn.utils.rnn.pack_padded_sequence(
            self.embedding(ids), lengths.cpu(), batch_first=True, enforce_sorted=False
        )
        outputs, (h_n, _) = self.lstm(packed)
        if self.pooling == "last":  # the forward state after the last token, the backward one after the first
            return self.dropout(torch.cat([h_n[-2], h_n[-1]], dim=1))
        padded, _ = nn.utils.rnn.pad_packed_sequence(outputs, batch_first=True, total_length=ids.shape[1])
        valid = torch.arange(ids.shape[1], device=ids.device).unsqueeze(0) < lengths.unsqueeze(1)
        pool = masked_mean if self.pooling == "mean" else masked_max
        return self.dropout(pool(padded, valid))


class SmallTransformer(nn.Module):
    """Token + learned position embeddings, a pre-norm ``nn.TransformerEncoder`` with a key
    padding mask, then mean over the text's tokens or the first token."""

    def __init__(
        self,
        vocab: TextVocab,
        max_length: int,
        dim: int,
        layers: int,
        heads: int,
        ff_dim: int,
        dropout: float,
        pooling: str,
    ) -> None:
        super().__init__()
        self.pad_id, self.pooling = vocab.pad_id, pooling
        self.tokens = nn.Embedding(vocab.size, dim, padding_idx=vocab.pad_id)
        self.positions = nn.Embedding(max_length, dim)
        self.dropout = nn.Dropout(dropout)
        layer = nn.TransformerEncoderLayer(
            dim, heads, ff_dim, dropout, activation="gelu", batch_first=True, norm_first=True
        )
        # no nested tensors: the same numbers in training and evaluation, whatever the padding
        self.encoder = nn.TransformerEncoder(layer, layers, norm=nn.LayerNorm(dim), enable_nested_tensor=False)

    def forward(self, ids: Tensor) -> Tensor:
        mask = ids != self.pad_id
        steps = torch.arange(ids.shape[1], device=ids.device)
        x = self.dropout(self.tokens(ids) + self.positions(steps).unsqueeze(0))
        out = self.encoder(x, src_key_padding_mask=~mask)
        return out[:, 0] if self.pooling == "cls" else masked_mean(out, mask)


class PretrainedText(nn.Module):
    """A ``transformers`` encoder read from a local checkpoint; mean or first-token pooling."""

    def __init__(self, model: nn.Module, pad_id: int, pooling: str) -> None:
        super().__init__()
        self.model, self.pad_id, self.pooling = model, pad_id, pooling

    def forward(self, ids: Tensor) -> Tensor:
        mask = ids != self.pad_id
        out = self.model(input_ids=ids, attention_mask=mask.long()).last_hidden_state
        return out[:, 0] if self.pooling == "cls" else masked_mean(out, mask)


def _staged(body: nn.Module, width: int, columns: int, hidden: int) -> StagedEncoder:
    """Stage 0: ``body`` on every column (C*width features); ``hidden > 0``: a Linear+ReLU stage."""
    stages: list[nn.Module] = [PerColumn(body)]
    shapes = [(columns * width,)]
    if hidden:
        positive("encoder", hidden=hidden)
        stages.append(nn.Sequential(nn.Linear(columns * width, hidden), nn.ReLU()))
        shapes.append((hidden,))
    return StagedEncoder(stages, shapes)


@ENCODERS.register("text_cnn")
def text_cnn(
    input_shape: tuple[int, ...],
    vocab: TextVocab | None = None,
    embedding_dim: int = 128,
    widths: list[int] = (3, 4, 5),
    filters: int = 100,
    dropout: float = 0.5,
    hidden: int = 0,
) -> StagedEncoder:
    """Kim's CNN for sentence classification (EMNLP 2014): ``filters`` feature maps per width."""
    vocab = _require_vocab("text_cnn", input_shape, vocab)
    if not widths:
        raise ConfigError("encoder.widths must list at least one filter width")
    positive(
        "encoder", embedding_dim=embedding_dim, filters=filters, **{f"widths[{i}]": w for i, w in enumerate(widths)}
    )
    body = KimCNN(vocab, embedding_dim, list(widths), filters, dropout)
    return _staged(body, filters * len(widths), input_shape[0], hidden)


@ENCODERS.register("bilstm")
def bilstm(
    input_shape: tuple[int, ...],
    vocab: TextVocab | None = None,
    embedding_dim: int = 128,
    hidden_size: int = 128,
    layers: int = 1,
    pooling: Literal["last", "mean", "max"] = "max",
    dropout: float = 0.0,
    hidden: int = 0,
) -> StagedEncoder:
    """A bidirectional LSTM (packed, so padding is never read) pooled over both directions."""
    vocab = _require_vocab("bilstm", input_shape, vocab)
    positive("encoder", embedding_dim=embedding_dim, hidden_size=hidden_size, layers=layers)
    body = BiLSTM(vocab, embedding_dim, hidden_size, layers, pooling, dropout)
    return _staged(body, 2 * hidden_size, input_shape[0], hidden)


@ENCODERS.register("transformer")
def transformer(
    input_shape: tuple[int, ...],
    vocab: TextVocab | None = None,
    dim: int = 128,
    layers: int = 2,
    heads: int = 4,
    ff_dim: int = 256,
    dropout: float = 0.1,
    pooling: Literal["mean", "cls"] = "mean",
    weights: str | None = None,
    hidden: int = 0,
) -> StagedEncoder:
    """A small Transformer encoder; ``weights``: a saved mtlrun encoder or a local transformers checkpoint."""
    vocab = _require_vocab("transformer", input_shape, vocab)
    columns, max_length = int(input_shape[0]), int(input_shape[1])
    if weights and Path(weights).expanduser().is_dir():
        model, width = load_pretrained(weights, vocab, max_length)
        return _staged(PretrainedText(model, vocab.pad_id, pooling), width, columns, hidden)
    positive("encoder", dim=dim, layers=layers, heads=heads, ff_dim=ff_dim)
    if dim % heads:
        raise ConfigError(f"encoder.dim={dim} must be a multiple of encoder.heads={heads}")
    body = SmallTransformer(vocab, max_length, dim, layers, heads, ff_dim, dropout, pooling)
    encoder = _staged(body, dim, columns, hidden)
    if weights:
        from mtlrun.models.pretrained import load_weights

        load_weights(encoder, weights)
    return encoder


def load_pretrained(weights: str, vocab: TextVocab, max_length: int) -> tuple[nn.Module, int]:
    """The ``transformers`` model saved in the folder ``weights`` (local files only) and its width."""
    folder = Path(weights).expanduser().resolve()
    if not (folder / "config.json").is_file():
        raise ConfigError(
            f"encoder.weights={weights}: a folder, but without config.json (not a transformers checkpoint)"
        )
    try:
        import transformers
    except ImportError:
        raise ConfigError(
            f"encoder.weights={weights} is a transformers checkpoint, which needs the transformers package: "
            "pip install 'mtlrun[text]'"
        ) from None
    if vocab.source is None or Path(vocab.source).resolve().parent != folder:
        raise ConfigError(
            f"encoder.weights={weights} has its own vocabulary: tokenize with it, dataset.tokenizer={weights}"
        )
    try:
        model = transformers.AutoModel.from_pretrained(str(folder), local_files_only=True)
    except Exception as ex:  # transformers' errors on a damaged or unknown checkpoint
        first = str(ex).strip().splitlines()[0] if str(ex).strip() else type(ex).__name__
        raise ConfigError(f"encoder.weights={weights}: cannot load the checkpoint: {first}") from None
    config = model.config
    positions = getattr(config, "max_position_embeddings", None)
    if positions is not None and max_length > positions:
        raise ConfigError(f"dataset.max_length={max_length} exceeds the checkpoint's {positions} positions")
    if vocab.size > int(config.vocab_size):
        raise ConfigError(
            f"dataset.tokenizer has {vocab.size} ids but the checkpoint {weights} embeds {config.vocab_size}"
        )
    return model, int(config.hidden_size)


# -- which encoders and architectures go with text -----------------------------------------


def reads_text(encoder: str) -> bool:
    """Whether encoder ``encoder`` (built-in or a user's) takes token ids: its signature has ``vocab``."""
    factory = ENCODERS.get(encoder)
    target = factory.__init__ if inspect.isclass(factory) else factory
    return "vocab" in inspect.signature(target).parameters


def text_context(encoder: str, arch: str, data: MultiTaskDataset) -> dict[str, Any] | None:
    """The context a text encoder gets from a text dataset (None for other data); refuses an
    encoder or architecture that does not go with the dataset's inputs, in one line."""
    text = is_text(data)
    if text and not reads_text(encoder):
        choices = ", ".join(f"encoder={n}" for n in TEXT_ENCODERS)
        raise ConfigError(
            f"encoder={encoder} does not read text, and this dataset's inputs are token ids; use {choices} "
            f"(encoder=auto: {DEFAULT_TEXT_ENCODER})"
        )
    if not text and reads_text(encoder):
        raise ConfigError(f"encoder={encoder} reads token ids; use it with a text dataset ({TEXT_DATASETS})")
    if text and arch in INPUT_GATED_ARCHS:
        raise ConfigError(
            f"arch={arch} gates on the raw input, which for text is token ids; use arch=hps, mtan, "
            "cross_stitch, branched, soft_sharing or single_task"
        )
    return dict(data.encoder_context[TEXT_CONTEXT]) if text else None
