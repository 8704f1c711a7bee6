"""pbitsim as a dimod sampler, so Ocean code can drop it in where it uses ``neal``.

>>> from pbitsim.dimod import PbitSampler
>>> sampleset = PbitSampler().sample_ising({"a": 0.5}, {("a", "b"): -1.0}, num_reads=4, seed=1)
>>> sorted(sampleset.variables)
['a', 'b']

Each of ``num_reads`` independent chains runs ``num_sweeps`` steps of a p-bit sampler
(``method``: chromatic by default, any :func:`pbitsim.methods` name with no options of its own)
and returns its final state with its energy. At a fixed ``beta`` (default 1.0) the final states
are (after enough sweeps) draws from the Boltzmann distribution exp(-beta E); with
``beta_range=(start, stop)`` beta is annealed over the sweeps, linearly or geometrically, as
``neal`` does, which serves optimisation. dimod's energy E(s) = sum_i h_i s_i +
sum_{i<j} J_ij s_i s_j + offset (or the QUBO's) is pbitsim's with J -> -J, h -> -h, so no sign
is lost. ``SampleSet.info["pbitsim"]`` holds the provenance: pbitsim's version, the method,
seed, couplings fingerprint and every setting needed to reproduce the run.
"""

from __future__ import annotations

from collections.abc import Sequence

import dimod
import numpy as np

__all__ = ["PbitSampler"]

_SCHEDULES = ("linear", "geometric")


class PbitSampler(dimod.Sampler):
    """A dimod :class:`~dimod.Sampler` backed by pbitsim's p-bit samplers.

    Parameters
    ----------
    method : str
        Default sampling method (``"chromatic"``, ``"sequential"``, ``"random-scan"``); each
        call may override it.

    Examples
    --------
    >>> import dimod
    >>> bqm = dimod.BinaryQuadraticModel({0: -1.0}, {(0, 1): -1.0}, 0.0, "SPIN")
    >>> ss = PbitSampler().sample(bqm, num_reads=8, num_sweeps=200, beta=2.0, seed=0)
    >>> len(ss)
    8
    """

    def __init__(self, method: str = "chromatic") -> None:
        self.method = method
        self._properties = {
            "beta_schedule_options": _SCHEDULES,
            "methods": ("chromatic", "sequential", "random-scan"),
            "description": "pbitsim p-bit samplers: final states of independent chains",
        }
        self._parameters = {
            "num_reads": [],
            "num_sweeps": [],
            "beta": [],
            "beta_range": [],
            "beta_schedule_type": ["beta_schedule_options"],
            "seed": [],
            "method": ["methods"],
        }

    @property
    def properties(self) -> dict:
        return self._properties

    @property
    def parameters(self) -> dict:
        return self._parameters

    def sample(
        self,
        bqm: dimod.BinaryQuadraticModel,
        num_reads: int = 10,
        num_sweeps: int = 1000,
        beta: float = 1.0,
        beta_range: Sequence[float] | None = None,
        beta_schedule_type: str = "geometric",
        seed: int | None = None,
        method: str | None = None,
        **kwargs,
    ) -> dimod.SampleSet:
        """Final states of ``num_reads`` independent p-bit chains after ``num_sweeps`` steps.

        Parameters
        ----------
        bqm : dimod.BinaryQuadraticModel
            SPIN or BINARY; any hashable variable labels.
        num_reads : int
            Independent chains, each started from uniformly random spins.
        num_sweeps : int
            Steps per chain (a step updates every spin once; see ``Samples.settings``).
        beta : float
            Fixed inverse temperature when ``beta_range`` is None.
        beta_range : (float, float), optional
            Anneal beta from the first value to the second over the sweeps.
        beta_schedule_type : {"geometric", "linear"}
            The annealing schedule's shape (as ``neal``'s parameter of the same name).
        seed : int, optional
            Fixes every random number; None draws one, recorded in the info.
        method : str, optional
            A pbitsim method (default: the sampler's).

        Returns
        -------
        dimod.SampleSet
            ``num_reads`` rows in the BQM's vartype with their energies under the BQM;
            ``info["pbitsim"]`` the provenance.

        Raises
        ------
        ValueError
            A count below 1, a beta that is not finite and > 0, an unknown schedule or method.
        """
        import pbitsim
        from pbitsim.couplings import Couplings

        self.remove_unknown_kwargs(**kwargs)  # dimod's convention: warn and ignore
        num_reads = _count("num_reads", num_reads)
        num_sweeps = _count("num_sweeps", num_sweeps)
        method = self.method if method is None else method
        options: dict = {}
        if beta_range is None:
            beta = _beta("beta", beta)
            schedule = {"beta": beta}
        else:
            try:
                start, stop = (_beta("beta_range", b) for b in beta_range)
            except (TypeError, ValueError):
                raise ValueError(
                    f"beta_range must be (start, stop) of finite values > 0, not {beta_range!r}"
                ) from None
            if beta_schedule_type not in _SCHEDULES:
                raise ValueError(
                    f"beta_schedule_type must be one of {_SCHEDULES}, not {beta_schedule_type!r}"
                )
            options.update(anneal=(start, stop), anneal_kind=beta_schedule_type)
            schedule = {"beta_range": [start, stop], "beta_schedule_type": beta_schedule_type}
            beta = 1.0  # the schedule is the beta; couplings.beta is not read
        variables = list(bqm.variables)
        if not variables:
            return dimod.SampleSet.from_samples(
                ([], []), bqm.vartype, energy=[], info={"pbitsim": {"num_reads": 0}}
            )
        index = {v: k for k, v in enumerate(variables)}
        spin = bqm.spin
        h = np.array([-spin.get_linear(v) for v in variables], dtype=np.float64)
        edges = [(index[u], index[v], -b) for u, v, b in spin.iter_quadratic()]
        couplings = Couplings.from_edges(len(variables), edges, h=h, beta=beta)
        s = pbitsim.sample(
            couplings,
            num_sweeps,
            method=method,
            replicas=num_reads,
            thin=num_sweeps,  # record the final state only
            seed=seed,
            **options,
        )
        states = np.asarray(s.spins[:, -1, :], dtype=np.int8)
        if bqm.vartype is dimod.BINARY:
            states = (states + 1) // 2
        info = {
            "pbitsim": {
                "version": pbitsim.__version__,
                "method": s.method,
                "step_unit": s.settings["step_unit"],
                "seed": s.seed,
                "fingerprint": s.fingerprint,
                "topology_fingerprint": s.topology_fingerprint,
                "num_reads": num_reads,
                "num_sweeps": num_sweeps,
                **schedule,
                "settings": s.settings,
            }
        }
        return dimod.SampleSet.from_samples_bqm((states, variables), bqm, info=info)


def _count(name: str, x) -> int:
    if isinstance(x, bool) or not isinstance(x, int | np.integer) or x < 1:
        raise ValueError(f"{name} must be an integer >= 1, not {x!r}")
    return int(x)


def _beta(name: str, x) -> float:
    if isinstance(x, bool) or not isinstance(x, int | float | np.integer | np.floating):
        raise ValueError(f"{name} must be a finite number > 0, not {x!r}")
    if not 0 < float(x) < float("inf"):
        raise ValueError(f"{name} must be a finite number > 0, not {x!r}")
    return float(x)
