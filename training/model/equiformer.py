"""EquiformerV2-style equivariant graph network: configuration, backbone, encoder, decoder.

One backbone serves as the ConditionCDVAE+ encoder (crystal -> ``mu``, ``logvar``) and as
its score decoder (noisy crystal + ``z_c`` -> coordinate score, type logits). The decoder
injects ``z_c`` into the atom embeddings and into every edge's radial input (paper
Eq. 3). Both compile with ``torch.jit.script``.

References: Liao et al., "EquiformerV2" (ICLR 2024); ConditionCDVAE+ paper, Methods, Eq. 3.
"""

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from training.data.graph import batch_index, edge_vectors, radius_graph_pbc
from training.model.equiformer_layers import (
    EdgeDegreeEmbedding,
    EquivariantGraphAttention,
    FeedForward,
    GaussianRadialBasis,
    cosine_envelope,
)
from training.model.so3 import EquivariantLayerNorm, WignerD, m_major_indices, num_coefficients


@dataclass(frozen=True)
class EquiformerConfig:
    """Hyper-parameters of the EquiformerV2-style network (defaults: small CPU model).

    Attributes:
        num_layers: transformer blocks.
        sphere_channels: channels per SH coefficient of node features.
        lmax: largest degree of node features.
        mmax: largest order kept in the SO(2) convolutions (``<= lmax``).
        num_heads: attention heads.
        attn_alpha_channels: invariant channels per head for the attention logits.
        attn_value_channels: channels per head of the attention values.
        attn_hidden_channels: channels between the two SO(2) convolutions of a message.
        ffn_hidden_channels: hidden channels of the feed-forward block.
        edge_channels: hidden width of radial MLPs and size of the type embeddings on edges.
        cutoff: graph radius in Å.
        max_neighbors: most incoming edges per atom (nearest kept).
        num_distance_basis: Gaussian radial basis functions on ``[0, cutoff]``.
        num_elements: element-embedding table size (atomic numbers 1..num_elements).
        grid_resolution: S2 grid points per angle (grid_resolution x grid_resolution).
        use_envelope: multiply messages by a smooth cosine cutoff envelope.
    """

    num_layers: int = 2
    sphere_channels: int = 32
    lmax: int = 2
    mmax: int = 1
    num_heads: int = 4
    attn_alpha_channels: int = 8
    attn_value_channels: int = 8
    attn_hidden_channels: int = 32
    ffn_hidden_channels: int = 64
    edge_channels: int = 32
    cutoff: float = 7.0
    max_neighbors: int = 20
    num_distance_basis: int = 64
    num_elements: int = 100
    grid_resolution: int = 18
    use_envelope: bool = True

    def __post_init__(self) -> None:
        if self.lmax < 0 or not 0 <= self.mmax <= self.lmax:
            raise ValueError(f"need 0 <= mmax <= lmax, got lmax={self.lmax}, mmax={self.mmax}")
        for name in ("num_layers", "sphere_channels", "num_heads", "attn_alpha_channels", "attn_value_channels",
                     "attn_hidden_channels", "ffn_hidden_channels", "edge_channels", "max_neighbors",
                     "num_distance_basis", "num_elements"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.cutoff <= 0:
            raise ValueError(f"cutoff must be > 0 Å, got {self.cutoff}")
        if self.grid_resolution < 2 * (self.lmax + 1):
            raise ValueError(
                f"grid_resolution must be >= 2 (lmax + 1) = {2 * (self.lmax + 1)}, got {self.grid_resolution}"
            )

    @classmethod
    def paper(cls) -> "EquiformerConfig":
        """The configuration of the ConditionCDVAE+ paper / reference (GPU-size)."""
        return cls(
            num_layers=8,
            sphere_channels=128,
            lmax=4,
            mmax=2,
            num_heads=8,
            attn_alpha_channels=64,
            attn_value_channels=16,
            attn_hidden_channels=64,
            ffn_hidden_channels=128,
            edge_channels=128,
            cutoff=7.0,
            max_neighbors=20,
            num_distance_basis=600,
            num_elements=100,
            grid_resolution=18,
        )


class EquiformerBackbone(nn.Module):
    """Periodic graph + EquiformerV2 blocks on node features (N, (lmax+1)^2, C).

    Edge invariant input = [Gaussian basis of the distance, source and target type
    embeddings, optional per-crystal condition vector]; it feeds the edge-degree
    embedding and the radial MLP of every attention block.

    Shapes:
        frac_coords (N, 3), type_weights (N, T) (one-hot or soft types), node_scalars (N, C)
        (extra l=0 input, e.g. a projected latent), lattice (B, 3, 3), num_atoms (B,),
        edge_condition (B, D) (D = ``edge_condition_dim``; width 0 allowed) ->
        features (N, (lmax+1)^2, C), batch (N,).
    """

    def __init__(self, config: EquiformerConfig, num_types: int, edge_condition_dim: int = 0) -> None:
        super().__init__()
        c = config
        self.lmax = c.lmax
        self.channels = c.sphere_channels
        self.cutoff = c.cutoff
        self.max_neighbors = c.max_neighbors
        self.use_envelope = c.use_envelope
        self.edge_condition_dim = edge_condition_dim
        self.type_embedding = nn.Linear(num_types, c.sphere_channels, bias=False)
        self.source_embedding = nn.Linear(num_types, c.edge_channels, bias=False)
        self.target_embedding = nn.Linear(num_types, c.edge_channels, bias=False)
        self.distance_basis = GaussianRadialBasis(c.num_distance_basis, c.cutoff)
        edge_features = c.num_distance_basis + 2 * c.edge_channels + edge_condition_dim
        self.wigner = WignerD(c.lmax)
        self.register_buffer("kept", torch.tensor(m_major_indices(c.lmax, c.mmax), dtype=torch.long))
        self.edge_degree = EdgeDegreeEmbedding(
            c.lmax, c.sphere_channels, edge_features, c.edge_channels, float(c.max_neighbors)
        )
        self.attention_norms = nn.ModuleList(
            [EquivariantLayerNorm(c.lmax, c.sphere_channels) for _ in range(c.num_layers)]
        )
        self.attentions = nn.ModuleList(
            [
                EquivariantGraphAttention(
                    c.sphere_channels, c.lmax, c.mmax, c.num_heads, c.attn_alpha_channels, c.attn_value_channels,
                    c.attn_hidden_channels, edge_features, c.edge_channels,
                )
                for _ in range(c.num_layers)
            ]
        )
        self.ffn_norms = nn.ModuleList([EquivariantLayerNorm(c.lmax, c.sphere_channels) for _ in range(c.num_layers)])
        self.ffns = nn.ModuleList(
            [
                FeedForward(c.sphere_channels, c.ffn_hidden_channels, c.lmax, c.grid_resolution)
                for _ in range(c.num_layers)
            ]
        )
        self.final_norm = EquivariantLayerNorm(c.lmax, c.sphere_channels)

    def forward(
        self,
        frac_coords: Tensor,
        type_weights: Tensor,
        node_scalars: Tensor,
        lattice: Tensor,
        num_atoms: Tensor,
        edge_condition: Tensor,
    ) -> tuple[Tensor, Tensor]:
        num_nodes = frac_coords.size(0)
        batch = batch_index(num_atoms)
        with torch.no_grad():
            edge_index, offsets, _ = radius_graph_pbc(
                frac_coords.detach(), lattice.detach(), num_atoms, self.cutoff, self.max_neighbors
            )
        vectors = edge_vectors(frac_coords, lattice, batch, edge_index, offsets).to(type_weights.dtype)
        distances = torch.linalg.vector_norm(vectors, dim=1)
        source = edge_index[0]
        target = edge_index[1]
        parts = [
            self.distance_basis(distances),
            self.source_embedding(type_weights).index_select(0, source),
            self.target_embedding(type_weights).index_select(0, target),
        ]
        if self.edge_condition_dim > 0:
            parts.append(edge_condition.index_select(0, batch.index_select(0, target)))
        edge_features = torch.cat(parts, dim=1)
        if self.use_envelope:
            envelope = cosine_envelope(distances, self.cutoff)
        else:
            envelope = torch.ones_like(distances)
        rotation = self.wigner.to_edge_frame(vectors)  # (E, L, L)
        rotation_in = rotation.index_select(1, self.kept)  # (E, K, L)
        rotation_back = rotation_in.transpose(1, 2)  # (E, L, K)

        scalars = self.type_embedding(type_weights) + node_scalars
        x = torch.zeros(
            num_nodes, num_coefficients(self.lmax), self.channels, dtype=scalars.dtype, device=scalars.device
        )
        x = torch.cat([scalars.unsqueeze(1), x[:, 1:]], dim=1)
        x = x + self.edge_degree(edge_features, rotation_back, envelope, target, num_nodes)
        for attention_norm, attention, ffn_norm, ffn in zip(
            self.attention_norms, self.attentions, self.ffn_norms, self.ffns
        ):
            x = x + attention(attention_norm(x), edge_features, rotation_in, rotation_back, envelope, edge_index)
            x = x + ffn(ffn_norm(x))
        return self.final_norm(x), batch


class EquiformerEncoder(nn.Module):
    """ConditionCDVAE+ encoder: crystal -> invariant ``mu``, ``logvar``.

    Atom types are atomic numbers ``1..num_elements`` (one-hot on the element table).
    The ``l = 0`` features are mean-pooled per crystal, then a small MLP and two linear
    heads give ``mu`` and ``logvar``.

    Shapes:
        frac_coords (N, 3), atom_types (N,) long, lattice (B, 3, 3), num_atoms (B,) ->
        mu (B, latent_dim), logvar (B, latent_dim).
    """

    def __init__(self, config: EquiformerConfig, latent_dim: int = 256) -> None:
        super().__init__()
        self.config = config
        self.num_elements = config.num_elements
        self.channels = config.sphere_channels
        self.backbone = EquiformerBackbone(config, config.num_elements, 0)
        self.readout = nn.Sequential(nn.Linear(config.sphere_channels, config.sphere_channels), nn.SiLU())
        self.mu = nn.Linear(config.sphere_channels, latent_dim)
        self.logvar = nn.Linear(config.sphere_channels, latent_dim)

    def forward(
        self, frac_coords: Tensor, atom_types: Tensor, lattice: Tensor, num_atoms: Tensor
    ) -> tuple[Tensor, Tensor]:
        if atom_types.numel() > 0 and (int(atom_types.min()) < 1 or int(atom_types.max()) > self.num_elements):
            raise ValueError(f"atom_types must be atomic numbers in 1..{self.num_elements}")
        dtype = lattice.dtype
        one_hot = torch.nn.functional.one_hot(atom_types.long() - 1, self.num_elements).to(dtype)
        zeros = torch.zeros(frac_coords.size(0), self.channels, dtype=dtype, device=lattice.device)
        no_condition = torch.zeros(lattice.size(0), 0, dtype=dtype, device=lattice.device)
        x, batch = self.backbone(frac_coords.to(dtype), one_hot, zeros, lattice, num_atoms, no_condition)
        sums = torch.zeros(lattice.size(0), self.channels, dtype=dtype, device=lattice.device).index_add(
            0, batch, x[:, 0]
        )
        pooled = sums / num_atoms.to(dtype).clamp(min=1.0).unsqueeze(-1)
        hidden = self.readout(pooled)
        return self.mu(hidden), self.logvar(hidden)


class EquiformerDecoder(nn.Module):
    """ConditionCDVAE+ score network: noisy crystal + ``z_c`` -> coordinate score, type logits.

    ``z_c`` enters (paper Eq. 3) the atom embeddings through ``latent_to_node`` (added to
    the type embedding, i.e. a linear map of their concatenation) and every edge's
    radial input: ``latent_to_edge`` projects it once per crystal to ``edge_channels``
    values, which are concatenated with the distance basis and the type embeddings of
    each of the crystal's edges (the radial MLPs' first layer is linear, so this equals
    feeding all of ``z_c`` through a rank-``edge_channels`` weight, at a fraction of the
    memory traffic: edges outnumber crystals ~160 to 1).
    The coordinate score is a linear map over channels of the ``l = 1`` coefficients;
    in e3nn 0.6 those are ordered (x, y, z), so the score is Cartesian as it stands.

    Shapes:
        frac_coords (N, 3), type_probs (N, num_types), lattice (B, 3, 3), num_atoms (B,),
        z_c (B, latent_dim) -> coord_score (N, 3) Cartesian, type_logits (N, num_types).
    """

    def __init__(self, config: EquiformerConfig, latent_dim: int = 256, num_types: int = 100) -> None:
        super().__init__()
        if config.lmax < 1:
            raise ValueError("the decoder needs lmax >= 1 for its l = 1 coordinate score")
        self.config = config
        self.num_types = num_types
        self.latent_dim = latent_dim
        self.backbone = EquiformerBackbone(config, num_types, config.edge_channels)
        self.latent_to_node = nn.Linear(latent_dim, config.sphere_channels)
        self.latent_to_edge = nn.Linear(latent_dim, config.edge_channels)
        self.score_head = nn.Linear(config.sphere_channels, 1, bias=False)
        self.type_head = nn.Sequential(
            nn.Linear(config.sphere_channels, config.sphere_channels),
            nn.SiLU(),
            nn.Linear(config.sphere_channels, num_types),
        )

    def forward(
        self, frac_coords: Tensor, type_probs: Tensor, lattice: Tensor, num_atoms: Tensor, z_c: Tensor
    ) -> tuple[Tensor, Tensor]:
        if type_probs.dim() != 2 or type_probs.size(1) != self.num_types:
            raise ValueError(f"type_probs must have shape (N, {self.num_types}), got {type_probs.shape}")
        if z_c.dim() != 2 or z_c.size(0) != lattice.size(0) or z_c.size(1) != self.latent_dim:
            raise ValueError(f"z_c must have shape (B, {self.latent_dim}), got {z_c.shape}")
        dtype = lattice.dtype
        batch = batch_index(num_atoms)
        node_latent = self.latent_to_node(z_c.to(dtype)).index_select(0, batch)
        edge_latent = self.latent_to_edge(z_c.to(dtype))
        x, _ = self.backbone(frac_coords.to(dtype), type_probs.to(dtype), node_latent, lattice, num_atoms, edge_latent)
        coord_score = self.score_head(x[:, 1:4]).squeeze(-1)  # (N, 3), e3nn l=1 order is (x, y, z)
        type_logits = self.type_head(x[:, 0])
        return coord_score, type_logits
