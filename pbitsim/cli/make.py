"""``pbitsim make SOURCE -o MODEL.pbit``, and the one place where the command line turns a model
argument into :class:`~pbitsim.couplings.Couplings` (:func:`resolve_model`, used by ``sample``,
``diagnose --model`` and ``info`` as well).

A model argument is an existing file, read by its suffix, or a built-in spec:

========================================  ==================================================
``NAME:SIZE[,key=value...]``              a built-in model (:func:`pbitsim.models.from_spec`)
``.pbit``                                 pbitsim's coupling file
``.npy``                                  a dense symmetric n x n J (zero diagonal)
``.npz``                                  arrays ``J`` (dense) and optionally ``h``, ``beta``
``.csv`` ``.tsv`` ``.txt`` ``.edges``     an edge list: ``i j weight`` per line (comma, tab or
``.edgelist``                             spaces; ``#`` comments; a header line is skipped;
                                          weight 1 when left out). Integer labels are the
                                          indices; any other labels become node names
``.json``                                 a dimod BQM (``bqm.to_serializable()``) or a networkx
                                          node-link graph (``nx.node_link_data``)
``.graphml`` ``.gml``                     a networkx graph (edge ``weight``, node ``h``)
========================================  ==================================================
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import click

from pbitsim.cli.checks import POSITIVE, out_file

__all__ = ["make", "resolve_model", "read_model_file", "ModelFileError", "MODEL_SUFFIXES"]

_EDGE_SUFFIXES = (".csv", ".tsv", ".txt", ".edges", ".edgelist")
MODEL_SUFFIXES = (".pbit", ".npy", ".npz", *_EDGE_SUFFIXES, ".json", ".graphml", ".gml")


class ModelFileError(ValueError):
    """A model file that cannot be read; the message names the file and the problem."""


def resolve_model(text: str, param_hint: str = "MODEL", beta: float | None = None):
    """The couplings named by a model argument: a file (by suffix, see the module docstring) or a
    built-in spec such as ``lattice:16x16,beta=0.44``.

    A bad spec is a usage error (exit 2); a file that cannot be read is a
    :class:`click.ClickException` naming it (exit 1). ``beta``, when given, replaces the model's.
    """
    from pbitsim import models
    from pbitsim.couplings import CouplingsError

    path = Path(text)
    if path.is_file():
        try:
            c = read_model_file(path)
            return c if beta is None else c.with_beta(beta)
        except (ModelFileError, CouplingsError) as e:
            raise click.ClickException(str(e)) from None
        except OSError as e:
            raise click.ClickException(f"{path}: {e.strerror or e}") from None
    if path.is_dir():
        raise click.BadParameter(f"{text} is a folder, not a model file", param_hint=param_hint)
    if ":" not in text or path.suffix.lower() in MODEL_SUFFIXES:
        raise click.BadParameter(
            f"{text!r} is neither an existing model file ({', '.join(MODEL_SUFFIXES)}) nor a "
            f"model spec; try e.g. {', '.join(ex for _, _, ex in models.SPECS.values())}",
            param_hint=param_hint,
        )
    _room_for_spec(text, param_hint)
    try:
        c = models.from_spec(text)
    except (ValueError, TypeError) as e:  # includes CouplingsError from a builder's checks
        raise click.BadParameter(str(e), param_hint=param_hint) from None
    except MemoryError:
        raise click.BadParameter(
            f"{text!r} is too large to build here", param_hint=param_hint
        ) from None
    return c if beta is None else c.with_beta(beta)


#: built-in models whose builders go through an n x n array
_DENSE_SPECS = ("sk", "ferromagnet", "glass")


def _room_for_spec(text: str, param_hint: str) -> None:
    """Refuse a built-in spec whose size cannot be built in the memory available, before the
    builder starts (the sparse builders loop in Python: a huge size would run for hours first).
    Only the size is read here; everything else is :func:`pbitsim.models.from_spec`'s to check."""
    from pbitsim.sampling import available_memory

    name, _, rest = text.partition(":")
    size = rest.split(",", 1)[0].lower()
    if not re.fullmatch(r"\d+(x\d+)?", size):
        return  # malformed: from_spec explains
    dims = [int(x) for x in size.split("x")]
    n = dims[0] * dims[1] if len(dims) == 2 else dims[0]
    if name == "rbm" and len(dims) == 2:
        need = 200 * (dims[0] * dims[1] + n)  # every visible-hidden pair is an edge
    elif name in _DENSE_SPECS:
        need = 40 * n * n
    else:
        need = 400 * n  # Python edge lists of a sparse graph
    free = available_memory()
    if (free is not None and need > 0.5 * free) or n > 2**31 - 2:
        raise click.BadParameter(
            f"{text!r}: {n} spins need about {need / 2**30:.3g} GiB to build, more than this "
            f"machine has available",
            param_hint=param_hint,
        )


def read_model_file(path, fields=None):
    """Read a model file by its suffix (see the module docstring).

    ``fields``: optional h for formats without fields (``.npy``, edge lists), a ``.npy`` or a
    text file with one number per spin.

    Raises
    ------
    ModelFileError, CouplingsError
        The file cannot be read or does not describe a valid model (names the file).
    """
    from pbitsim.couplings import CouplingsError

    path = Path(path)
    suffix = path.suffix.lower()
    try:
        if suffix == ".pbit" or (suffix not in MODEL_SUFFIXES and _is_pbit(path)):
            import pbitsim

            return pbitsim.load(path)
        h = None if fields is None else _read_fields(Path(fields))
        if suffix == ".npy":
            return _from_dense(path, _load_array(path), h, 1.0)
        if suffix == ".npz":
            return _from_npz(path, h)
        if suffix in _EDGE_SUFFIXES:
            return _from_edge_list(path, h)
        if suffix == ".json":
            return _from_json(path)
        if suffix in (".graphml", ".gml"):
            return _from_networkx_file(path)
    except CouplingsError as e:
        if str(e).startswith(str(path)):
            raise
        raise CouplingsError(f"{path}: {e}") from None
    raise ModelFileError(
        f"{path}: unknown model file type {suffix or '(no suffix)'}; use one of "
        f"{', '.join(MODEL_SUFFIXES)}"
    )


def _is_pbit(path: Path) -> bool:
    from pbitsim.fileformat import MAGIC

    with open(path, "rb") as f:
        return f.read(len(MAGIC)) == MAGIC


def _room_for_dense(path: Path, n: int) -> None:
    """A dense n x n matrix is copied a few times on its way to CSR: refuse one that will not
    fit, before reading it."""
    from pbitsim.sampling import available_memory

    need = 4 * 8 * n * n
    free = available_memory()
    if free is not None and need > 0.9 * free:
        raise ModelFileError(
            f"{path}: a dense {n} x {n} matrix needs about {need / 2**30:.3g} GiB to convert, "
            f"more than the {free / 2**30:.3g} GiB available; give the couplings as an edge list"
        )


def _load_array(path: Path, allow_dict: bool = False):
    import numpy as np

    try:
        a = np.load(path, mmap_mode="r" if path.suffix.lower() == ".npy" else None)
    except (ValueError, OSError, EOFError) as e:
        raise ModelFileError(f"{path}: not a readable numpy file ({e})") from None
    if isinstance(a, np.lib.npyio.NpzFile) and not allow_dict:
        raise ModelFileError(f"{path}: an .npz archive; name it .npz")
    return a


def _from_dense(path: Path, J, h, beta):
    import numpy as np

    from pbitsim.couplings import Couplings

    if J.ndim != 2 or J.shape[0] != J.shape[1]:
        raise ModelFileError(f"{path}: J must be a square n x n matrix, not shape {J.shape}")
    _room_for_dense(path, J.shape[0])
    return Couplings.from_dense(np.asarray(J), h=h, beta=beta)


def _from_npz(path: Path, h):

    with _load_array(path, allow_dict=True) as z:
        if "J" not in z.files:
            raise ModelFileError(f"{path}: needs an array named 'J' (has {sorted(z.files)})")
        if h is None and "h" in z.files:
            h = z["h"]
        beta = 1.0
        if "beta" in z.files:
            try:
                beta = float(z["beta"])
            except (TypeError, ValueError):
                raise ModelFileError(f"{path}: 'beta' must be one number") from None
        return _from_dense(path, z["J"], h, beta)


def _read_fields(path: Path):
    import numpy as np

    if path.suffix.lower() == ".npy":
        h = _load_array(path)
    else:
        try:
            h = np.loadtxt(path, ndmin=1)
        except (OSError, ValueError) as e:
            raise ModelFileError(f"{path}: not a list of numbers ({e})") from None
    return np.asarray(h)


_SPLIT = re.compile(r"[,;\s]+")


def _from_edge_list(path: Path, h):
    from pbitsim.couplings import Couplings

    triples: list[tuple[str, str, float]] = []
    with open(path, encoding="utf-8", errors="strict") as f:
        try:
            lines = list(f)
        except UnicodeDecodeError:
            raise ModelFileError(f"{path}: not a text file") from None
    for number, line in enumerate(lines, 1):
        text = line.split("#", 1)[0].strip()
        if not text:
            continue
        parts = [x for x in _SPLIT.split(text) if x]
        if len(parts) not in (2, 3):
            raise ModelFileError(f"{path} line {number}: {text!r} is not 'i j weight' (or 'i j')")
        try:
            w = float(parts[2]) if len(parts) == 3 else 1.0
        except ValueError:
            if not triples:  # a header line such as "i,j,weight"
                continue
            raise ModelFileError(
                f"{path} line {number}: weight {parts[2]!r} is not a number"
            ) from None
        triples.append((parts[0], parts[1], w))
    if not triples:
        raise ModelFileError(f"{path}: no edges found (expected lines 'i j weight')")
    labels = [x for i, j, _ in triples for x in (i, j)]
    if all(re.fullmatch(r"\d+", x) for x in labels):
        n = max(int(x) for x in labels) + 1
        if n > 64 * len(triples) + 4096:  # mostly isolated spins: a label, not an index?
            raise ModelFileError(
                f"{path}: node {n - 1} makes {n} spins for {len(triples)} edges; integer labels "
                f"are indices 0..n-1 (write other labels with a letter to keep them as names)"
            )
        edges = [(int(i), int(j), w) for i, j, w in triples]
        return Couplings.from_edges(n, edges, h=h)
    index: dict[str, int] = {}
    for x in labels:
        index.setdefault(x, len(index))
    edges = [(index[i], index[j], w) for i, j, w in triples]
    return Couplings.from_edges(len(index), edges, h=h, names=list(index))


def _from_json(path: Path):
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as e:
        raise ModelFileError(f"{path}: not valid JSON ({e})") from None
    if isinstance(data, dict) and "nodes" in data:
        import networkx as nx

        key = "links" if "links" in data else "edges"
        try:
            graph = nx.node_link_graph(data, edges=key)
        except (KeyError, TypeError, ValueError, nx.NetworkXError) as e:
            raise ModelFileError(f"{path}: not a networkx node-link graph ({e})") from None
        return _from_graph(path, graph)
    if isinstance(data, dict) and "type" in data:
        import dimod

        from pbitsim.couplings import Couplings

        try:
            bqm = dimod.BinaryQuadraticModel.from_serializable(data)
        except Exception as e:  # dimod raises many kinds on malformed input
            raise ModelFileError(f"{path}: not a dimod BQM ({type(e).__name__}: {e})") from None
        if bqm.num_variables == 0:
            raise ModelFileError(f"{path}: the BQM has no variables")
        return Couplings.from_bqm(bqm)
    raise ModelFileError(
        f"{path}: JSON that is neither a dimod BQM (bqm.to_serializable()) nor a networkx "
        f"node-link graph (nx.node_link_data)"
    )


def _from_networkx_file(path: Path):
    import networkx as nx

    reader = nx.read_graphml if path.suffix.lower() == ".graphml" else nx.read_gml
    try:
        graph = reader(path)
    except Exception as e:  # the readers raise XML, parse and networkx errors
        raise ModelFileError(f"{path}: not a readable graph ({type(e).__name__}: {e})") from None
    return _from_graph(path, graph)


def _from_graph(path: Path, graph):
    from pbitsim.couplings import Couplings

    if graph.number_of_nodes() == 0:
        raise ModelFileError(f"{path}: the graph has no nodes")
    if graph.is_directed() or graph.is_multigraph():
        raise ModelFileError(f"{path}: the graph must be undirected and simple")
    return Couplings.from_networkx(graph)


@click.command()
@click.argument("source")
@click.option(
    "-o",
    "--out",
    required=True,
    type=click.Path(dir_okay=False),
    help="The .pbit file to write.",
)
@click.option(
    "--beta", type=POSITIVE, default=None, help="Inverse temperature (default: the source's, or 1)."
)
@click.option(
    "--fields",
    type=click.Path(exists=True, dir_okay=False),
    default=None,
    help="h for a .npy matrix or an edge list: a .npy or a text file with one number per spin.",
)
def make(source, out, beta, fields):
    """Write the model SOURCE to a .pbit file: a built-in spec (lattice:16x16,beta=0.44, sk:64,
    glass:12,field=0.3, rbm:6x4, ...), a dense J (.npy, or .npz with J, h, beta), an edge list
    (.csv/.tsv/.txt: 'i j weight' per line), a dimod BQM (.json from bqm.to_serializable()) or a
    networkx graph (.graphml, .gml, node-link .json)."""
    from pbitsim.couplings import CouplingsError

    out_file(out, "-o/--out")
    if fields is not None:
        path = Path(source)
        if not path.is_file() or path.suffix.lower() not in (".npy", *_EDGE_SUFFIXES):
            raise click.BadParameter(
                "applies to a .npy matrix or an edge list only (other sources carry their own "
                "fields)",
                param_hint="--fields",
            )
        try:
            c = read_model_file(path, fields)
        except (ModelFileError, CouplingsError) as e:
            raise click.ClickException(str(e)) from None
        if beta is not None:
            c = c.with_beta(beta)
    else:
        c = resolve_model(source, "SOURCE", beta)
    try:
        c.save(out)
    except OSError as e:
        raise click.ClickException(f"{out}: {e.strerror or e}") from None
    click.echo(
        f"wrote {out}: {c.n} spins, {c.n_edges} couplings, {c.n_colors} colours, beta "
        f"{c.beta:g}, fingerprint {c.fingerprint[:16]}"
    )
