"""The shared encoders of the benchmark papers, as :class:`StagedEncoder` s.

- ``lenet``: Sener & Koltun's MultiLeNet for MultiMNIST (NeurIPS 2018);
- ``resnet18``: the ResNet-18 trunk Sener & Koltun use for CelebA (He et al. 2016);
- ``tabular_embedding``: MMoE's input layer for Census-Income (Ma et al., KDD 2018): one learned
  embedding per categorical column, concatenated with the numeric columns, then an MLP;
- ``mpnn``: the QM9 message-passing network of Gilmer et al. (ICML 2017) in the form LibMTL and
  Nash-MTL use (edge-conditioned convolution, GRU update, Set2Set readout), on padded dense
  molecules with plain torch.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mtlrun.errors import ConfigError
from mtlrun.models.embedded import EmbeddingInput
from mtlrun.models.encoders import ENCODERS, StagedEncoder
from mtlrun.models.pretrained import load_weights
from mtlrun.registry import positive


def _need_image(name: str, input_shape: tuple[int, ...]) -> tuple[int, int, int]:
    if len(input_shape) != 3:
        raise ConfigError(
            f"encoder={name} needs image inputs (C, H, W); this dataset's inputs have shape {input_shape}"
        )
    c, h, w = (int(v) for v in input_shape)
    return c, h, w


@ENCODERS.register("lenet")
def lenet(input_shape: tuple[int, ...], dropout: float = 0.5, features: int = 50) -> StagedEncoder:
    """MultiLeNet's shared part (Sener & Koltun 2018, ``multi_lenet.py``): conv 5x5 to 10 channels,
    max-pool 2, ReLU; conv 5x5 to 20 channels, 2-D dropout, max-pool 2, ReLU; a linear layer to
    ``features`` (50) with ReLU. Three stages. (The original draws one channel mask per batch and
    does not rescale; standard ``Dropout2d`` is used here.)"""
    c, h, w = _need_image("lenet", input_shape)
    positive("encoder", features=features)
    if not 0 <= dropout < 1:
        raise ConfigError(f"encoder.dropout={dropout} must lie in [0, 1)")
    h1, w1 = (h - 4) // 2, (w - 4) // 2
    h2, w2 = (h1 - 4) // 2, (w1 - 4) // 2
    if min(h2, w2) < 1:
        raise ConfigError(f"encoder=lenet needs images of at least 16x16; this dataset's are {h}x{w}")
    stages = [
        nn.Sequential(nn.Conv2d(c, 10, 5), nn.MaxPool2d(2), nn.ReLU()),
        nn.Sequential(nn.Conv2d(10, 20, 5), nn.Dropout2d(dropout), nn.MaxPool2d(2), nn.ReLU()),
        nn.Sequential(nn.Flatten(), nn.Linear(20 * h2 * w2, features), nn.ReLU()),
    ]
    return StagedEncoder(stages, [(10, h1, w1), (20, h2, w2), (features,)])


class BasicBlock(nn.Module):
    """ResNet's two 3x3 convolutions with a (projected) identity shortcut (He et al., CVPR 2016)."""

    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out))

    def forward(self, x: Tensor) -> Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.bn2(self.conv2(out)) + self.shortcut(x))


@ENCODERS.register("resnet18")
def resnet18(
    input_shape: tuple[int, ...], width: int = 64, blocks: list[int] = (2, 2, 2, 2), weights: str | None = None
) -> StagedEncoder:
    """The ResNet-18 trunk of Sener & Koltun's CelebA model (``multi_faces_resnet.py``): a 3x3 stem,
    four stages of basic blocks with widths ``width`` x (1, 2, 4, 8) and strides (1, 2, 2, 2), 4x4
    average pooling, flattened (2,048 features for 64x64 images). One stage per block group.
    ``weights``: a local state-dict file of this encoder to start from (e.g. saved from an earlier
    run); a file that does not fit is a one-line error naming the first mismatching tensor."""
    c, h, w = _need_image("resnet18", input_shape)
    positive("encoder", width=width, **{f"blocks[{i}]": b for i, b in enumerate(blocks)})
    if len(blocks) != 4:
        raise ConfigError(f"encoder.blocks={list(blocks)} must list 4 block counts (one per stage)")
    stages: list[nn.Module] = []
    shapes: list[tuple[int, ...]] = []
    c_in = width
    for i, count in enumerate(blocks):
        c_out, stride = width * 2**i, 1 if i == 0 else 2
        layers: list[nn.Module] = []
        if i == 0:
            layers += [nn.Conv2d(c, width, 3, 1, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU()]
        for j in range(count):
            layers.append(BasicBlock(c_in, c_out, stride if j == 0 else 1))
            c_in = c_out
        h, w = (h + stride - 1) // stride, (w + stride - 1) // stride
        stages.append(nn.Sequential(*layers))
        shapes.append((c_out, h, w))
    pool = min(4, h, w)  # Sener & Koltun's 4x4 average pooling: 2x2x512 = 2048 features at 64x64
    stages[-1] = nn.Sequential(*stages[-1], nn.AvgPool2d(pool), nn.Flatten())
    shapes[-1] = (c_in * (h // pool) * (w // pool),)
    encoder = StagedEncoder(stages, shapes)
    if weights is not None:
        load_weights(encoder, weights)
    return encoder


class TabularEmbedding(EmbeddingInput):
    """Inputs ``(N, K + M)``: K categorical codes (as floats; -1 = unseen) then M numeric columns.

    Each categorical column has its own embedding table (one extra row for unseen values); the
    embeddings and the numeric columns are concatenated (Ma et al. 2018, Section 5.2)."""

    def __init__(self, cardinalities: Sequence[int], numeric: int, dim: int) -> None:
        super().__init__()
        self.cardinalities = [int(c) for c in cardinalities]
        self.numeric = numeric
        self.tables = nn.ModuleList(nn.Embedding(c + 1, dim) for c in self.cardinalities)

    @property
    def out_dim(self) -> int:
        return len(self.tables) * (self.tables[0].embedding_dim if self.tables else 0) + self.numeric

    def forward(self, x: Tensor) -> Tensor:
        k = len(self.tables)
        codes = x[:, :k].long()
        parts = [
            table(torch.where(codes[:, i] < 0, self.cardinalities[i], codes[:, i]))
            for i, table in enumerate(self.tables)
        ]
        return torch.cat([*parts, x[:, k:].float()], dim=1)


@ENCODERS.register("tabular_embedding")
def tabular_embedding(
    input_shape: tuple[int, ...],
    cardinalities: list[int] = (),
    embedding_dim: int = 4,
    hidden: list[int] = (64,),
) -> StagedEncoder:
    """Categorical embeddings + numeric columns, then ReLU layers of widths ``hidden``.

    ``cardinalities`` (one per leading categorical column) come from the dataset; with
    ``arch=mmoe`` each expert is one such network, the setting of MMoE's Census experiments."""
    if len(input_shape) != 1:
        raise ConfigError(f"encoder=tabular_embedding needs vector inputs; this dataset's have shape {input_shape}")
    if not hidden:
        raise ConfigError("encoder.hidden must list at least one layer width")
    positive("encoder", embedding_dim=embedding_dim, **{f"hidden[{i}]": h for i, h in enumerate(hidden)})
    numeric = int(input_shape[0]) - len(cardinalities)
    if numeric < 0:
        raise ConfigError(
            f"encoder.cardinalities lists {len(cardinalities)} columns but the inputs have only {input_shape[0]}"
        )
    embed = TabularEmbedding(cardinalities, numeric, embedding_dim)
    in_dim = embed.out_dim
    stages, shapes = [], []
    for i, width in enumerate(hidden):
        layers: list[nn.Module] = [embed] if i == 0 else []
        layers += [nn.Linear(in_dim, width), nn.ReLU()]
        stages.append(nn.Sequential(*layers))
        shapes.append((width,))
        in_dim = width
    return StagedEncoder(stages, shapes)


# ----------------------------------------------------------------------------------------------
# QM9: message passing on padded molecules. Inputs (N, A, 4): atomic number Z (0 = padding), x, y, z.

ELEMENTS = (1, 6, 7, 8, 9)  # H, C, N, O, F: the elements of QM9


def atom_features(z: Tensor) -> Tensor:
    """(N, A) atomic numbers -> (N, A, 6): one-hot over H, C, N, O, F, and Z / 9."""
    onehot = torch.stack([(z == e) for e in ELEMENTS], dim=-1).float()
    return torch.cat([onehot, (z / 9.0).unsqueeze(-1)], dim=-1)


def distance_features(pos: Tensor, rbf: int, cutoff: float) -> Tensor:
    """(N, A, 3) positions in Angstrom -> (N, A, A, rbf + 1): the distance and Gaussian radial basis
    functions of it, centred on ``rbf`` points in [0, cutoff] (SchNet-style, Schütt et al. 2017)."""
    d = torch.cdist(pos, pos)
    centres = torch.linspace(0.0, cutoff, rbf, device=pos.device, dtype=pos.dtype)
    gamma = 1.0 / (centres[1] - centres[0]) ** 2 if rbf > 1 else 1.0
    return torch.cat([d.unsqueeze(-1), torch.exp(-gamma * (d.unsqueeze(-1) - centres) ** 2)], dim=-1)


def edge_mask(z: Tensor) -> Tensor:
    """(N, A, A) float: 1 for every ordered pair of distinct real atoms (the complete graph)."""
    real = (z > 0).float()
    mask = real.unsqueeze(-1) * real.unsqueeze(-2)
    return mask * (1.0 - torch.eye(z.shape[1], device=z.device, dtype=mask.dtype))


def mean_aggregate(h: Tensor, weights: Tensor, mask: Tensor) -> Tensor:
    """Edge-conditioned convolution with mean aggregation (Gilmer et al. 2017, eq. for "edge network"):
    ``m_i = (1 / |N(i)|) sum_{j in N(i)} W(e_ij) h_j`` with ``weights`` (N, A, A, D, D) = W(e_ij),
    ``h`` (N, A, D) and ``mask`` (N, A, A) the neighbourhoods."""
    messages = torch.einsum("nijde,nje->nijd", weights, h) * mask.unsqueeze(-1)
    degree = mask.sum(-1, keepdim=True).clamp(min=1.0)
    return messages.sum(2) / degree


class Set2Set(nn.Module):
    """Set2Set readout (Vinyals et al. 2016): ``steps`` rounds of LSTM-driven attention over the atoms;
    returns ``[q, r]`` of size 2D."""

    def __init__(self, dim: int, steps: int) -> None:
        super().__init__()
        self.dim, self.steps = dim, steps
        self.lstm = nn.LSTMCell(2 * dim, dim)

    def forward(self, h: Tensor, real: Tensor) -> Tensor:
        n = h.shape[0]
        q_star = h.new_zeros(n, 2 * self.dim)
        state = (h.new_zeros(n, self.dim), h.new_zeros(n, self.dim))
        for _ in range(self.steps):
            state = self.lstm(q_star, state)
            q = state[0]
            scores = (h * q.unsqueeze(1)).sum(-1).masked_fill(real == 0, -math.inf)
            attention = torch.softmax(scores, dim=1).unsqueeze(-1)
            r = (attention * h).sum(1)
            q_star = torch.cat([q, r], dim=-1)
        return q_star


class EdgeConv(nn.Module):
    """PyG's ``NNConv`` with mean aggregation, on padded dense molecules:
    ``m_i = root(h_i) + mean_j W(e_ij) h_j`` with ``W(e) = reshape(A2 relu(A1 e + b1) + b2)``.

    ``W(e_ij)`` is never materialised (it is D x D per pair): since it is linear in the hidden edge
    vector u_ij = relu(A1 e_ij + b1), ``W(e_ij) h_j = sum_k u_ijk (A2_k h_j) + B2 h_j``, which needs
    only (N, A, 128, D) intermediates."""

    def __init__(self, edge_dim: int, dim: int, edge_hidden: int = 128) -> None:
        super().__init__()
        self.dim = dim
        self.edge_in = nn.Linear(edge_dim, edge_hidden)
        self.edge_out = nn.Linear(edge_hidden, dim * dim)
        self.root = nn.Linear(dim, dim)

    def edge_weights(self, edges: Tensor) -> Tensor:
        """The explicit (..., D, D) matrices W(e) (for checks; ``forward`` avoids building them)."""
        return self.edge_out(F.relu(self.edge_in(edges))).unflatten(-1, (self.dim, self.dim))

    def forward(self, h: Tensor, edges: Tensor, mask: Tensor) -> Tensor:
        u = F.relu(self.edge_in(edges)) * mask.unsqueeze(-1)  # (N, A, A, K), zero off the graph
        a2 = self.edge_out.weight.view(self.dim, self.dim, -1)  # (D_out, D_in, K)
        b2 = self.edge_out.bias.view(self.dim, self.dim)
        projected = torch.einsum("dek,nje->njkd", a2, h)  # A2_k h_j: (N, A, K, D)
        summed = torch.einsum("nijk,njkd->nid", u, projected) + mask @ h @ b2.T
        degree = mask.sum(-1, keepdim=True).clamp(min=1.0)
        return self.root(h) + summed / degree


class MessagePassing(nn.Module):
    """Gilmer et al.'s MPNN as in PyG's QM9 example used by LibMTL: atom embedding, ``steps``
    rounds of edge-network convolution + GRU (shared weights), Set2Set readout, a linear layer.

    Departures, because no chemistry toolkit is required: edges are the complete graph of each
    molecule with the distance and its radial basis expansion as features (no bond types), and
    atoms are described by their element alone."""

    def __init__(self, dim: int, steps: int, rbf: int, cutoff: float) -> None:
        super().__init__()
        self.dim, self.steps, self.rbf, self.cutoff = dim, steps, rbf, cutoff
        self.embed = nn.Linear(len(ELEMENTS) + 1, dim)
        self.conv = EdgeConv(rbf + 1, dim)
        self.gru = nn.GRUCell(dim, dim)
        self.readout = Set2Set(dim, steps=3)
        self.out = nn.Linear(2 * dim, dim)

    def forward(self, x: Tensor) -> Tensor:
        z, pos = x[..., 0].round(), x[..., 1:4].float()
        n, a = z.shape
        mask = edge_mask(z)
        edges = distance_features(pos, self.rbf, self.cutoff)
        h = F.relu(self.embed(atom_features(z)))
        hidden = h.reshape(n * a, self.dim)
        for _ in range(self.steps):
            m = F.relu(self.conv(h, edges, mask))
            hidden = self.gru(m.reshape(n * a, self.dim), hidden)
            h = hidden.view(n, a, self.dim)
        return F.relu(self.out(self.readout(h, (z > 0).float())))


@ENCODERS.register("mpnn")
def mpnn(
    input_shape: tuple[int, ...], dim: int = 64, steps: int = 3, rbf: int = 16, cutoff: float = 10.0
) -> StagedEncoder:
    """The QM9 message-passing encoder; one stage giving a ``dim`` molecule vector."""
    if len(input_shape) != 2 or input_shape[1] != 4:
        raise ConfigError(
            f"encoder=mpnn needs molecules (atoms, 4: Z, x, y, z); this dataset's inputs have shape {input_shape}"
        )
    positive("encoder", dim=dim, steps=steps, rbf=rbf, cutoff=cutoff)
    return StagedEncoder([MessagePassing(dim, steps, rbf, cutoff)], [(dim,)])
