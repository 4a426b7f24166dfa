"""Test fixture: synthetic frozen features with a known false-negative structure (VACSR tests, bench).

Images come in clusters (think "scenes of the same kind"). Each image has
``specific`` captions true of that image only and ``generic`` captions true of every image in
its cluster. Binary one-caption-one-image labels mark only the caption's own image, so a
generic caption against another image of its cluster is a *false negative* by construction;
``relevance`` is the extended ground truth.

Features: a signal part (cluster centre + image detail for images and specific captions,
cluster centre only for generic captions, plus small noise), a per-modality offset (a
modality gap) and ``noise_dims`` dimensions of independent noise (std ``noise_scale``) that carry no
information.
Cosine weighs every dimension alike, so a learned similarity on v ⊙ t can beat it.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor


@dataclass
class SyntheticPairs:
    img: Tensor            # (N, d) L2-normalised
    txt: Tensor            # (M, d) L2-normalised
    caption_image: Tensor  # (M,) labelled image of each caption
    labels: Tensor         # (N, M) bool, binary: caption's own image only
    relevance: Tensor      # (N, M) bool, extended ground truth
    cluster: Tensor        # (N,) cluster of each image


def make_synthetic(n_clusters: int = 50, per_cluster: int = 4, specific: int = 2, generic: int = 3,
                   signal_dims: int = 32, noise_dims: int = 96, detail: float = 0.8,
                   noise: float = 0.3, noise_scale: float = 1.0, gap: float = 0.5,
                   seed: int = 0) -> SyntheticPairs:
    """Draw one split; different seeds give disjoint clusters (a fresh test split)."""
    g = torch.Generator().manual_seed(seed)
    ds = signal_dims
    N = n_clusters * per_cluster
    cap_per = specific + generic
    centre = torch.randn(n_clusters, ds, generator=g)
    cluster = torch.arange(n_clusters).repeat_interleave(per_cluster)
    det = detail * torch.randn(N, ds, generator=g)
    img_sig = centre[cluster] + det + noise * torch.randn(N, ds, generator=g)
    caption_image = torch.arange(N).repeat_interleave(cap_per)
    is_generic = torch.arange(cap_per).repeat(N) >= specific
    M = N * cap_per
    txt_sig = centre[cluster[caption_image]] + det[caption_image] * (~is_generic).float().unsqueeze(1)
    txt_sig = txt_sig + noise * torch.randn(M, ds, generator=g)
    # a fixed modality gap direction, shared across seeds
    gap_dir = F.normalize(torch.randn(ds, generator=torch.Generator().manual_seed(12345)), dim=0)
    img_sig = img_sig + gap * (ds ** 0.5) * gap_dir
    txt_sig = txt_sig - gap * (ds ** 0.5) * gap_dir
    img = torch.cat([img_sig, noise_scale * torch.randn(N, noise_dims, generator=g)], 1)
    txt = torch.cat([txt_sig, noise_scale * torch.randn(M, noise_dims, generator=g)], 1)
    labels = torch.arange(N).unsqueeze(1) == caption_image.unsqueeze(0)
    same_cluster = cluster.unsqueeze(1) == cluster[caption_image].unsqueeze(0)
    relevance = labels | (same_cluster & is_generic.unsqueeze(0))
    return SyntheticPairs(F.normalize(img, dim=1), F.normalize(txt, dim=1), caption_image,
                          labels, relevance, cluster)
