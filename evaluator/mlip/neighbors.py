"""Neighbour lists for a whole batch of periodic structures in one set of tensor operations.

torch-sim 0.3.0's model wrappers build one neighbour list per structure in a Python
loop, through a vesin wrapper that copies positions to the CPU in float64: on a GPU
that is a host round trip per structure per step. :func:`batched_neighbor_list`
builds the lists of all structures at once on the tensors' device (no per-structure
Python loop, no host copy apart from one scalar: the largest image count).

Method: positions are wrapped into their cells; every structure's candidate pairs
(i, j, image shift n) are enumerated for shifts ``|n_d| <= ceil(cutoff / d_d)`` (d_d:
spacing of the lattice planes), which covers every pair within ``cutoff`` of wrapped
positions; pairs at distance ``< cutoff`` (and not an atom with itself in the home
cell) are kept. Same edges as vesin / ASE's ``neighbor_list`` (full list, both
directions).
"""

from __future__ import annotations

import torch


def wrap_positions(positions: torch.Tensor, row_cells: torch.Tensor, system_idx: torch.Tensor) -> torch.Tensor:
    """Positions moved into their cell (fractional coordinates in [0, 1))."""
    inv = torch.linalg.inv(row_cells)
    frac = torch.bmm(positions.unsqueeze(1), inv[system_idx]).squeeze(1)
    frac = frac - torch.floor(frac)
    return torch.bmm(frac.unsqueeze(1), row_cells[system_idx]).squeeze(1)


def batched_neighbor_list(positions: torch.Tensor, row_cells: torch.Tensor, counts: torch.Tensor,
                          cutoff: float, chunk_pairs: int = 16_000_000) -> tuple[torch.Tensor, torch.Tensor]:
    """Full neighbour list of a batch of periodic structures.

    ``positions`` (n_atoms, 3) Cartesian, **already wrapped** (:func:`wrap_positions`);
    ``row_cells`` (n_systems, 3, 3), rows = lattice vectors; ``counts`` atoms per structure.
    Returns ``edge_index`` (2, n_edges) of global atom indices (sender ``[0]``, receiver
    ``[1]`` as ASE's i, j) and ``unit_shifts`` (n_edges, 3) integer image shifts (in
    positions' dtype), so that ``vec = pos[j] - pos[i] + unit_shifts @ cell``.
    Candidates are processed in chunks of about ``chunk_pairs`` (bounded memory).
    """
    device, dtype = positions.device, positions.dtype
    n_sys = row_cells.shape[0]
    counts = counts.to(torch.long)
    # image counts per structure and direction
    recip_norm = torch.linalg.inv(row_cells).transpose(1, 2).norm(dim=2)  # 1 / plane spacing
    reps = torch.ceil(cutoff * recip_norm).to(torch.long)  # (n_sys, 3)
    r_max = int(reps.max()) if n_sys else 0
    rng = torch.arange(-r_max, r_max + 1, device=device)
    shifts = torch.cartesian_prod(rng, rng, rng).view(-1, 3)  # (K, 3)
    # pairs (i, j) inside each structure
    offsets = torch.cumsum(counts, 0) - counts
    n_pairs = counts * counts
    pair_sys = torch.repeat_interleave(torch.arange(n_sys, device=device), n_pairs)
    local = torch.arange(int(n_pairs.sum()), device=device) - torch.repeat_interleave(
        torch.cumsum(n_pairs, 0) - n_pairs, n_pairs)
    c = counts[pair_sys]
    pi = offsets[pair_sys] + local // c
    pj = offsets[pair_sys] + local % c
    cut2 = cutoff * cutoff
    edges, unit = [], []
    k = shifts.shape[0]
    step = max(1, chunk_pairs // max(k, 1))
    for lo in range(0, pi.shape[0], step):
        i, j, s = pi[lo:lo + step], pj[lo:lo + step], pair_sys[lo:lo + step]
        ok_shift = (shifts.abs().unsqueeze(0) <= reps[s].unsqueeze(1)).all(-1)  # (p, K)
        shift_cart = torch.einsum("kd,pde->pke", shifts.to(dtype), row_cells[s])  # (p, K, 3)
        vec = (positions[j] - positions[i]).unsqueeze(1) + shift_cart
        d2 = (vec * vec).sum(-1)
        self_home = (i == j).unsqueeze(1) & (shifts == 0).all(-1).unsqueeze(0)
        keep = ok_shift & (d2 < cut2) & ~self_home
        p_idx, k_idx = keep.nonzero(as_tuple=True)
        edges.append(torch.stack([i[p_idx], j[p_idx]]))
        unit.append(shifts[k_idx].to(dtype))
    if not edges:
        return torch.zeros((2, 0), dtype=torch.long, device=device), torch.zeros((0, 3), dtype=dtype, device=device)
    return torch.cat(edges, dim=1), torch.cat(unit, dim=0)
