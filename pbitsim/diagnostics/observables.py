"""Observables of spin samples (time series for the autocorrelation and Q diagnostics).

Spins arrays are ``(..., n)`` of +-1 (int8 is fine); results keep the leading axes. Anything that
needs the model (energies, the model's edge list) takes the :class:`~pbitsim.samples.Samples` and
the :class:`~pbitsim.couplings.Couplings` together and refuses mismatched fingerprints.
"""

from __future__ import annotations

import numpy as np

from pbitsim.couplings import Couplings
from pbitsim.samples import Samples, check_fingerprint

__all__ = ["pair_list", "pair_products", "magnetisation", "edge_mean", "energies", "CHUNK"]

#: Draws processed at a time when a series is computed from (possibly memory-mapped) spins.
CHUNK = 1 << 16


def pair_list(spec, n: int | None = None) -> np.ndarray:
    """Pairs (i, j), i < j, as an (m, 2) int array.

    ``spec`` is a Couplings (its edges), an (m, 2) array of pairs, or None / "all" for all
    n (n - 1) / 2 pairs of ``n`` spins.
    """
    if isinstance(spec, Couplings):
        i, j, _ = spec.edges()
        return np.stack([i, j], axis=1).astype(np.int64)
    if spec is None or (isinstance(spec, str) and spec == "all"):
        if n is None:
            raise ValueError("n is needed for all pairs")
        i, j = np.triu_indices(int(n), 1)
        return np.stack([i, j], axis=1).astype(np.int64)
    pairs = np.asarray(spec, dtype=np.int64).reshape(-1, 2)
    if np.any(pairs[:, 0] == pairs[:, 1]):
        raise ValueError("a pair (i, i) is not a coupling")
    if n is not None and (pairs.min(initial=0) < 0 or pairs.max(initial=0) >= n):
        raise ValueError(f"pair index out of range 0..{n - 1}")
    return np.sort(pairs, axis=1)


def pair_products(spins, pairs) -> np.ndarray:
    """s_i s_j for each pair, shape (..., m), float64."""
    s = np.asarray(spins)
    pairs = pair_list(pairs, n=s.shape[-1])
    out = np.empty(s.shape[:-1] + (len(pairs),))
    flat = s.reshape(-1, s.shape[-1])
    o = out.reshape(-1, len(pairs))
    for a in range(0, flat.shape[0], CHUNK):  # chunked: spins may be a memmap
        blk = np.asarray(flat[a : a + CHUNK], dtype=np.float64)
        o[a : a + CHUNK] = blk[:, pairs[:, 0]] * blk[:, pairs[:, 1]]
    return out


def magnetisation(spins) -> np.ndarray:
    """(1/n) sum_i s_i, shape (...)."""
    s = np.asarray(spins)
    return s.mean(axis=-1, dtype=np.float64)


def edge_mean(spins, pairs) -> np.ndarray:
    """Mean of s_i s_j over the given pairs (e.g. the model's edges), shape (...)."""
    return pair_products(spins, pairs).mean(axis=-1)


def energies(
    samples: Samples, couplings: Couplings | None = None, *, allow_mismatch: bool = False
) -> np.ndarray:
    """E(s) (without beta) of every draw, (replicas, draws).

    With ``couplings``: computed from the spins after :func:`~pbitsim.check_fingerprint` (refuses
    samples of other couplings unless ``allow_mismatch``). Without: the sampler's recorded
    ``info["energies"]``.
    """
    if couplings is None:
        if "energies" not in samples.info:
            raise ValueError(
                "these samples carry no info['energies']; pass the model to compute them"
            )
        e = np.asarray(samples.info["energies"], dtype=np.float64)
        if e.shape != samples.spins.shape[:2]:
            raise ValueError(
                f"info['energies'] has shape {e.shape}, expected {samples.spins.shape[:2]}"
            )
        return e
    check_fingerprint(samples, couplings, allow_mismatch)
    flat = samples.spins.reshape(-1, samples.n)
    out = np.empty(flat.shape[0])
    for a in range(0, flat.shape[0], CHUNK):
        out[a : a + CHUNK] = couplings.energy(np.asarray(flat[a : a + CHUNK]))
    return out.reshape(samples.spins.shape[:2])
