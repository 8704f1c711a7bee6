"""Built-in example models, all returning :class:`~pbitsim.couplings.Couplings`.

Deterministic for a given seed (numpy ``default_rng``), so tests, benchmarks and docs can name
"the 128x128 lattice" or "the 3-regular graph with seed 0" and mean the same weights everywhere.
"""

from __future__ import annotations

import inspect

import numpy as np

from pbitsim.couplings import Couplings

__all__ = [
    "ferromagnet",
    "ring",
    "lattice_2d",
    "random_regular",
    "sherrington_kirkpatrick",
    "spin_glass",
    "rbm",
    "planted_rbm",
    "planted",
    "from_spec",
    "SPECS",
]


def ferromagnet(n: int, J: float = 1.0, h: float = 0.0, beta: float = 1.0) -> Couplings:
    """Fully connected ferromagnet (Curie-Weiss) with uniform coupling J and field h."""
    Jm = np.full((n, n), float(J))
    np.fill_diagonal(Jm, 0.0)
    return Couplings.from_dense(Jm, np.full(n, float(h)), beta)


def ring(n: int, J: float = 1.0, h: float = 0.0, beta: float = 1.0) -> Couplings:
    """1D periodic chain (n >= 3)."""
    if n < 3:
        raise ValueError(f"a ring needs n >= 3, not {n}")
    edges = [(i, (i + 1) % n, J) for i in range(n)]
    return Couplings.from_edges(n, edges, h=np.full(n, float(h)), beta=beta)


def lattice_2d(
    rows: int,
    cols: int | None = None,
    J: float = 1.0,
    h: float = 0.0,
    beta: float = 1.0,
    periodic: bool = True,
) -> Couplings:
    """Square lattice; periodic lattices with even sides get the checkerboard 2-colouring."""
    cols = rows if cols is None else cols
    idx = np.arange(rows * cols).reshape(rows, cols)
    edges = []
    for r in range(rows):
        for c in range(cols):
            if c + 1 < cols or (periodic and cols > 2):
                edges.append((idx[r, c], idx[r, (c + 1) % cols], J))
            if r + 1 < rows or (periodic and rows > 2):
                edges.append((idx[r, c], idx[(r + 1) % rows, c], J))
    return Couplings.from_edges(rows * cols, edges, h=np.full(rows * cols, float(h)), beta=beta)


def random_regular(
    n: int, degree: int = 3, seed: int = 0, weights: str = "pm1", beta: float = 1.0
) -> Couplings:
    """Random d-regular graph (networkx, seeded) with +-1 (``"pm1"``) or Gaussian weights."""
    import networkx as nx

    g = nx.random_regular_graph(degree, n, seed=seed)
    rng = np.random.default_rng(seed)
    edges = sorted((min(u, v), max(u, v)) for u, v in g.edges())
    w = _weights(rng, len(edges), weights)
    return Couplings.from_edges(n, [(i, j, x) for (i, j), x in zip(edges, w)], beta=beta)


def sherrington_kirkpatrick(n: int, seed: int = 0, beta: float = 1.0) -> Couplings:
    """Dense SK spin glass: J_ij ~ N(0, 1/n)."""
    rng = np.random.default_rng(seed)
    upper = np.triu(rng.normal(0.0, 1.0 / np.sqrt(n), (n, n)), 1)
    return Couplings.from_dense(upper + upper.T, beta=beta)


def spin_glass(
    n: int,
    p: float = 0.5,
    seed: int = 0,
    weights: str = "gauss",
    field: float = 0.0,
    beta: float = 1.0,
) -> Couplings:
    """Erdos-Renyi spin glass: each pair coupled with probability p; optional random fields."""
    rng = np.random.default_rng(seed)
    iu = np.triu_indices(n, 1)
    keep = rng.random(len(iu[0])) < p
    w = _weights(rng, int(keep.sum()), weights)
    h = rng.normal(0.0, field, n) if field else np.zeros(n)
    edges = zip(iu[0][keep].tolist(), iu[1][keep].tolist(), w.tolist())
    return Couplings.from_edges(n, edges, h=h, beta=beta)


def rbm(
    n_visible: int,
    n_hidden: int,
    seed: int = 0,
    scale: float = 0.5,
    field: float = 0.0,
    beta: float = 1.0,
) -> Couplings:
    """Bipartite (RBM-shaped) model: visibles 0..nv-1, hiddens nv..; colouring visible/hidden."""
    rng = np.random.default_rng(seed)
    n = n_visible + n_hidden
    W = rng.normal(0.0, scale, (n_visible, n_hidden))
    edges = [(i, n_visible + j, W[i, j]) for i in range(n_visible) for j in range(n_hidden)]
    h = rng.normal(0.0, field, n) if field else np.zeros(n)
    coloring = np.r_[np.zeros(n_visible, int), np.ones(n_hidden, int)]
    names = [f"v{i}" for i in range(n_visible)] + [f"h{j}" for j in range(n_hidden)]
    return Couplings.from_edges(n, edges, h=h, beta=beta, coloring=coloring, names=names)


def _patterns(rng, P: int, m: int, max_overlap: float) -> np.ndarray:
    """P random +-1 patterns of length m with |pairwise overlap| <= max_overlap (rejection)."""
    for _ in range(10_000):
        x = rng.choice([-1.0, 1.0], size=(P, m))
        G = np.abs(x @ x.T - m * np.eye(P))
        if G.max(initial=0.0) <= max_overlap:
            return x
    raise RuntimeError(f"no {P} patterns of length {m} with overlaps <= {max_overlap}")


def planted_rbm(
    n_visible: int, n_hidden: int, patterns: int, seed: int = 0, base_scale: float = 0.1
) -> tuple[np.ndarray, np.ndarray]:
    """Weights of an RBM with planted modes: (W0, D), and W(lambda) = W0 + lambda * D.

    W0 ~ N(0, base_scale^2) is the small random start; D = sum_k xi_k eta_k^T / sqrt(n_hidden)
    plants ``patterns`` modes: xi_k random +-1 visible patterns (pairwise overlaps <=
    n_visible / 3), eta_k random +-1 hidden patterns (no two equal or opposite). As lambda grows,
    switching between the planted patterns becomes the slow mode the gradient observables v_i h_j
    see (``sims/planted_modes.py``).
    """
    rng = np.random.default_rng(seed)
    W0 = rng.normal(0.0, base_scale, (n_visible, n_hidden))
    xi = _patterns(rng, patterns, n_visible, n_visible / 3)
    eta = _patterns(rng, patterns, n_hidden, n_hidden - 1)
    return W0, xi.T @ eta / np.sqrt(n_hidden)


def planted(
    n_visible: int,
    n_hidden: int,
    patterns: int = 2,
    strength: float = 1.0,
    base_scale: float = 0.1,
    seed: int = 0,
    field: float = 0.0,
    beta: float = 1.0,
) -> Couplings:
    """RBM-shaped model with planted modes, W = W0 + strength * D (see :func:`planted_rbm`).

    Visibles 0..nv-1 (colour 0), hiddens nv.. (colour 1), as :func:`rbm`. With ``field`` > 0 every
    unit gets a random field h_i ~ N(0, field^2), drawn from its own stream, so the weights are the
    same with and without fields.
    """
    W0, D = planted_rbm(n_visible, n_hidden, patterns, seed, base_scale)
    W = W0 + float(strength) * D
    n = n_visible + n_hidden
    edges = [(i, n_visible + j, W[i, j]) for i in range(n_visible) for j in range(n_hidden)]
    h = np.random.default_rng([seed, 1]).normal(0.0, field, n) if field else np.zeros(n)
    coloring = np.r_[np.zeros(n_visible, int), np.ones(n_hidden, int)]
    names = [f"v{i}" for i in range(n_visible)] + [f"h{j}" for j in range(n_hidden)]
    return Couplings.from_edges(n, edges, h=h, beta=beta, coloring=coloring, names=names)


def _weights(rng, m: int, kind: str) -> np.ndarray:
    if kind == "pm1":
        return rng.choice([-1.0, 1.0], size=m)
    if kind == "gauss":
        return rng.normal(0.0, 1.0, m)
    raise ValueError(f"weights must be 'pm1' or 'gauss', not {kind!r}")


# name -> (builder, size parameters, example)
SPECS = {
    "lattice": (lattice_2d, ("rows", "cols"), "lattice:16x16"),
    "ring": (ring, ("n",), "ring:32"),
    "ferromagnet": (ferromagnet, ("n",), "ferromagnet:10"),
    "regular": (random_regular, ("n",), "regular:1024,degree=3"),
    "sk": (sherrington_kirkpatrick, ("n",), "sk:64"),
    "glass": (spin_glass, ("n",), "glass:12,field=0.3"),
    "rbm": (rbm, ("n_visible", "n_hidden"), "rbm:6x4"),
    "planted": (planted, ("n_visible", "n_hidden"), "planted:6x3,strength=1.5"),
}


def from_spec(spec: str) -> Couplings:
    """A built-in model from a short text spec: ``NAME:SIZE[,key=value...]``.

    SIZE is ``A`` or ``AxB`` (lattice rows x cols, RBM visible x hidden); the keys are the
    builder's keyword arguments, e.g. ``"lattice:16x16,beta=0.44"``, ``"sk:64,seed=3"``,
    ``"glass:12,p=0.5,field=0.3,beta=0.7"``, ``"rbm:6x4"``, ``"planted:6x3,strength=1.5"``. See
    :data:`SPECS`.

    Raises
    ------
    ValueError
        On an unknown name, a malformed size or an unknown or malformed key; the message lists
        the valid specs.
    """
    valid = "valid specs: " + ", ".join(
        f"{ex} ({', '.join(_keywords(fn, size))})" for fn, size, ex in SPECS.values()
    )
    name, _, rest = str(spec).partition(":")
    if name not in SPECS or not rest:
        raise ValueError(f"unknown model spec {spec!r}; {valid}")
    fn, size_names, _ = SPECS[name]
    size, *pairs = rest.split(",")
    parts = size.lower().split("x")
    params = inspect.signature(fn).parameters
    needed = sum(params[k].default is inspect.Parameter.empty for k in size_names)
    if not needed <= len(parts) <= len(size_names) or not all(p.isdigit() for p in parts):
        raise ValueError(
            f"bad size {size!r} in {spec!r} (expected {'x'.join(size_names)}); {valid}"
        )
    kwargs: dict = dict(zip(size_names, (int(p) for p in parts)))
    for pair in pairs:
        key, eq, value = pair.partition("=")
        key = key.strip()
        if not eq or key not in params or key in size_names:
            raise ValueError(
                f"bad option {pair!r} in {spec!r}; {name} takes "
                f"{', '.join(_keywords(fn, size_names))}"
            )
        kwargs[key] = _parse_value(key, value.strip(), params[key].default)
    return fn(**kwargs)


def _keywords(fn, size_names) -> list[str]:
    return [k for k in inspect.signature(fn).parameters if k not in size_names]


def _parse_value(key: str, text: str, default):
    """Convert ``text`` to the type of the builder's default for ``key``."""
    try:
        if isinstance(default, bool):
            if text.lower() not in ("true", "false", "1", "0"):
                raise ValueError
            return text.lower() in ("true", "1")
        if isinstance(default, int):
            return int(text)
        if isinstance(default, float):
            return float(text)
    except ValueError:
        raise ValueError(f"{key}={text!r} is not a {type(default).__name__}") from None
    return text
