"""Training Boltzmann machines by persistent contrastive divergence, with Q watched as it trains.

The sampler is a parameter: any registered sampling method (chromatic = block Gibbs on the RBM's
bipartite graph, ``async``, ``hardware`` with quantised weights, a board's runner from a plug-in)
or an open :class:`~pbitsim.sampling.Runner`. Training holds ONE runner for the whole run: its R
chains are the persistent chains of PCD, and every gradient step loads the current weights into
it (:meth:`Runner.load`: same topology, new values, chains continue) and draws k steps. So a new
sampler plugs in without this module knowing its name, and a board is programmed once.

Conventions (spins +-1, beta = 1 during training):
E(v, h) = -(v^T W h + a.v + b.h) for an RBM; E(s) = -(sum_{i<j} J_ij s_i s_j + h.s) fully visible.
The log-likelihood gradient is g = <s_i s_j>_data - <s_i s_j>_model. For an RBM the data term is
computed exactly — hidden units are conditionally independent given v, so
<v_i h_j>_data = mean over the batch of v_i tanh(b_j + (W^T v)_j) — and only the model term is
sampled; Q therefore measures the noise of the model term alone.
"""

from __future__ import annotations

import dataclasses
import json
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pbitsim.couplings import Couplings
from pbitsim.sampling import Runner

__all__ = [
    "RBM",
    "FullyVisibleBM",
    "TrainConfig",
    "EpochRecord",
    "TrainingDiverged",
    "train",
]


# ----------------------------------------------------------------------------------------------
# Models
# ----------------------------------------------------------------------------------------------


def _log2cosh(x: np.ndarray) -> np.ndarray:
    """log(2 cosh x) = |x| + log1p(exp(-2|x|)), within an ulp of np.logaddexp(x, -x) and 2.6x
    faster (the exact log-likelihood of ``pbitsim train`` evaluates it on 2^16 x nv values)."""
    ax = np.abs(x)
    return ax + np.log1p(np.exp(-2.0 * ax))


@dataclass
class RBM:
    """Restricted Boltzmann machine on +-1 units: visibles 0..nv-1, hiddens nv..nv+nh-1."""

    W: np.ndarray  # (nv, nh)
    a: np.ndarray  # visible fields (nv,)
    b: np.ndarray  # hidden fields (nh,)

    @classmethod
    def init(
        cls,
        n_visible: int,
        n_hidden: int,
        seed: int = 0,
        scale: float = 0.01,
        data: np.ndarray | None = None,
    ) -> RBM:
        """Small random weights; visible fields from the data's means when data are given."""
        rng = np.random.default_rng(seed)
        a = np.zeros(n_visible)
        if data is not None:
            m = np.clip(np.asarray(data, float).mean(axis=0), -0.98, 0.98)
            a = np.arctanh(m)  # the independent-spin model that matches the data's means
        return cls(rng.normal(0.0, scale, (n_visible, n_hidden)), a, np.zeros(n_hidden))

    @property
    def n_visible(self) -> int:
        return self.W.shape[0]

    @property
    def n_hidden(self) -> int:
        return self.W.shape[1]

    @property
    def n(self) -> int:
        return self.n_visible + self.n_hidden

    def visible(self, spins: np.ndarray) -> np.ndarray:
        return spins[..., : self.n_visible]

    def to_couplings(self, beta: float = 1.0, **kw) -> Couplings:
        """The bipartite Couplings (visible colour 0, hidden colour 1) of the same energy."""
        nv, nh = self.W.shape
        indptr = np.concatenate([np.arange(nv + 1) * nh, nv * nh + np.arange(1, nh + 1) * nv])
        indices = np.concatenate([np.tile(np.arange(nv, nv + nh), nv), np.tile(np.arange(nv), nh)])
        data = np.concatenate([self.W.ravel(), self.W.T.ravel()])
        coloring = np.r_[np.zeros(nv, np.int32), np.ones(nh, np.int32)]
        return Couplings(indptr, indices, data, np.r_[self.a, self.b], beta, coloring, **kw)

    def hidden_means(self, v: np.ndarray) -> np.ndarray:
        """E[h | v] = tanh(b + W^T v), exact."""
        return np.tanh(self.b + np.asarray(v, float) @ self.W)

    def data_statistics(self, v: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Exact clamped averages (<v h^T>, <v>, <h>) over a batch of visible vectors."""
        v = np.asarray(v, float)
        hm = self.hidden_means(v)
        return v.T @ hm / len(v), v.mean(axis=0), hm.mean(axis=0)

    @staticmethod
    def model_statistics(spins: np.ndarray, nv: int):
        """Per-chain time averages of (v h^T, v, h) from states (R, M, n): arrays with leading R."""
        s = np.asarray(spins, np.float64)
        v, h = s[..., :nv], s[..., nv:]
        vh = np.einsum("rmi,rmj->rij", v, h) / s.shape[1]
        return vh, v.mean(axis=1), h.mean(axis=1)

    def free_energy(self, v: np.ndarray) -> np.ndarray:
        """F(v) = -a.v - sum_j log 2cosh(b_j + (W^T v)_j), so p(v) = exp(-F(v)) / Z."""
        v = np.asarray(v, float)
        return -(v @ self.a) - _log2cosh(self.b + v @ self.W).sum(axis=-1)

    def log_partition(self, max_hidden: int = 20) -> float:
        """Exact log Z by summing over the 2**nh hidden states (visibles summed analytically)."""
        nh = self.n_hidden
        if nh > max_hidden:
            raise ValueError(f"exact log Z needs 2**{nh} terms; limit is 2**{max_hidden}")
        total = -np.inf
        for start in range(0, 1 << nh, 1 << 14):  # chunks keep memory at ~16k x nv
            idx = np.arange(start, min(start + (1 << 14), 1 << nh))
            h = (((idx[:, None] >> np.arange(nh)) & 1) * 2 - 1).astype(np.float64)
            terms = h @ self.b + _log2cosh(self.a + h @ self.W.T).sum(axis=1)
            total = np.logaddexp(total, np.logaddexp.reduce(terms))
        return float(total)

    def log_likelihood(self, v: np.ndarray) -> float:
        """Exact mean log-likelihood per example (nats)."""
        return float(-self.free_energy(v).mean() - self.log_partition())

    def pseudo_log_likelihood(self, v: np.ndarray, seed: int = 0) -> float:
        """Stochastic pseudo-log-likelihood: n_visible * log p(v_i | v_-i) at one random i per
        example (scales to models whose log Z cannot be enumerated)."""
        v = np.asarray(v, float)
        i = np.random.default_rng(seed).integers(0, self.n_visible, len(v))
        flipped = v.copy()
        flipped[np.arange(len(v)), i] *= -1
        f, g = self.free_energy(v), self.free_energy(flipped)
        return float(self.n_visible * np.mean(-f - np.logaddexp(-f, -g)))

    def step(self, grad_W, grad_a, grad_b, lr: float, weight_decay: float = 0.0) -> None:
        self.W += lr * (grad_W - weight_decay * self.W)
        self.a += lr * grad_a
        self.b += lr * grad_b


@dataclass
class FullyVisibleBM:
    """Fully visible Boltzmann machine on +-1 units: symmetric J (zero diagonal) and h."""

    J: np.ndarray
    h: np.ndarray

    @classmethod
    def init(cls, n: int, seed: int = 0, scale: float = 0.01, data=None) -> FullyVisibleBM:
        rng = np.random.default_rng(seed)
        upper = np.triu(rng.normal(0.0, scale, (n, n)), 1)
        h = np.zeros(n)
        if data is not None:
            h = np.arctanh(np.clip(np.asarray(data, float).mean(axis=0), -0.98, 0.98))
        return cls(upper + upper.T, h)

    @property
    def n(self) -> int:
        return len(self.h)

    def visible(self, spins: np.ndarray) -> np.ndarray:
        return spins

    def to_couplings(self, beta: float = 1.0, **kw) -> Couplings:
        return Couplings.from_dense(self.J, self.h, beta, **kw)

    def data_statistics(self, v):
        v = np.asarray(v, float)
        return v.T @ v / len(v), v.mean(axis=0)

    def log_likelihood(self, v) -> float:
        from pbitsim.exact import boltzmann, state_index

        p = boltzmann(self.to_couplings())
        return float(np.mean(np.log(p[state_index(np.asarray(v))])))


# ----------------------------------------------------------------------------------------------
# Samplers
# ----------------------------------------------------------------------------------------------


# ----------------------------------------------------------------------------------------------
# Training loop
# ----------------------------------------------------------------------------------------------


@dataclass
class TrainConfig:
    """Settings of :func:`train` (all recorded in checkpoints)."""

    epochs: int = 20
    batch_size: int = 100
    lr: float = 0.1
    lr_final: float | None = (
        0.005  # geometric decay from lr to lr_final over the epochs; None: fixed
    )
    weight_decay: float = 1e-4
    chains: int = 64  # persistent chains; the R of the Q estimate (< 3: Q across steps)
    k: int = 5  # sampler steps per gradient step (M in Q(M))
    seed: int = 0
    log_likelihood: str = "auto"  # "exact" | "pseudo" | "auto" (exact when n_hidden <= 20)
    measure_tau_steps: int = 400  # extra steps per epoch to estimate tau_int; 0 disables
    # |weight| or |field| beyond which training counts as diverged: at beta |J| = 1000 every
    # p-bit is frozen, so nothing is sampled or learnt any more
    max_weight: float = 1000.0

    def __post_init__(self) -> None:
        def count(name, low):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int | np.integer) or v < low:
                raise ValueError(f"TrainConfig.{name} must be an integer >= {low}, not {v!r}")

        def positive(name, allow_none=False):
            v = getattr(self, name)
            if v is None and allow_none:
                return
            if isinstance(v, bool) or not isinstance(v, int | float) or not 0 < v < np.inf:
                raise ValueError(f"TrainConfig.{name} must be a finite number > 0, not {v!r}")

        for name, low in (("epochs", 1), ("batch_size", 1), ("chains", 1), ("k", 1)):
            count(name, low)
        count("seed", 0)
        count("measure_tau_steps", 0)
        positive("lr")
        positive("lr_final", allow_none=True)
        positive("max_weight")
        if not (isinstance(self.weight_decay, int | float) and 0 <= self.weight_decay < np.inf):
            raise ValueError(f"TrainConfig.weight_decay must be >= 0, not {self.weight_decay!r}")
        if self.log_likelihood not in ("exact", "pseudo", "auto"):
            raise ValueError(
                f"TrainConfig.log_likelihood must be 'exact', 'pseudo' or 'auto', not "
                f"{self.log_likelihood!r}"
            )


class TrainingDiverged(RuntimeError):
    """Training stopped because the weights diverged (non-finite, beyond ``max_weight``, or
    outside the sampler's number range). The model was reset to, and the checkpoint directory
    holds, the last good state: the end of the last completed epoch (or the start).

    Attributes
    ----------
    epoch : int
        The epoch (1-based) in which it happened.
    history : list of EpochRecord
        The completed epochs.
    """

    def __init__(self, message: str, epoch: int, history: list) -> None:
        super().__init__(message)
        self.epoch, self.history = epoch, history


@dataclass
class EpochRecord:
    epoch: int
    log_likelihood: float
    likelihood_kind: str
    q: float
    q_err: float
    q_naive: float
    tau_int: float  # median tau_int (kernel steps) of the gradient observables
    tau_int_magnetisation: float
    sampler: str

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


def _likelihood(model, data, kind: str, seed: int) -> tuple[float, str]:
    if isinstance(model, FullyVisibleBM):
        return model.log_likelihood(data), "exact"
    if kind == "auto":
        kind = "exact" if model.n_hidden <= 20 else "pseudo"
    if kind == "exact":
        return model.log_likelihood(data), "exact"
    return model.pseudo_log_likelihood(data, seed), "pseudo"


def train(
    model: RBM,
    data: np.ndarray,
    sampler: str | Runner = "chromatic",
    config: TrainConfig | None = None,
    checkpoint_dir=None,
    progress: bool | None = None,
    callback=None,
    sampler_options: dict | None = None,
) -> list[EpochRecord]:
    """Train ``model`` in place on ``data`` (int8 (N, n_visible) of +-1) by PCD-k.

    Every epoch records Q (bias-corrected, with error bar) of the last gradient step's model term
    from the R persistent chains, the median tau_int of the gradient observables v_i h_j from a
    measurement run, and the log-likelihood (exact when it can be enumerated). ``checkpoint_dir``
    receives ``model.npz`` and ``history.json`` after each epoch.

    Parameters
    ----------
    model : RBM or FullyVisibleBM
    data : array_like
        int8 (N, n_visible) of +-1.
    sampler : str or Runner
        A method name (:func:`pbitsim.methods`): one runner is opened with ``config.chains``
        replicas, a seed derived from ``config.seed`` and ``sampler_options``, started from random
        spins (``set_state``) and closed at the end, also on error. Or an open Runner on the
        model's topology with ``output_replicas == config.chains``: used from the state it is in,
        and left open.
    config : TrainConfig, optional
    checkpoint_dir : path, optional
    progress : bool, optional
    callback : callable, optional
        ``callback(record, model)`` after every epoch.
    sampler_options : dict, optional
        Method options for the runner opened by name (e.g. ``{"design": "published"}``).

    Raises
    ------
    TrainingDiverged
        The weights became non-finite, exceeded ``config.max_weight`` or left the sampler's
        number range (the hardware model's fixed point): the model is reset to the last good
        state (the end of the last completed epoch, or the start), which is also what
        ``checkpoint_dir`` holds, with the reason in ``history.json`` (``"stopped"``).
    ValueError
        Data of the wrong shape or values; a Runner whose rows are not ``config.chains``;
        ``sampler_options`` with a Runner.
    RuntimeError
        The runner reports other couplings than it was given (it is not sampling the current
        weights).
    """
    from pbitsim.sampling import open_runner

    config = config or TrainConfig()
    data = np.asarray(data, np.int8)
    if data.ndim != 2 or data.shape[1] != model.n_visible:
        raise ValueError(
            f"data must be (N, {model.n_visible}) to match the model's visibles, not {data.shape}"
        )
    if not np.all(np.abs(data) == 1):
        raise ValueError("data must hold +-1 spins (use pbitsim.datasets.binarize)")
    rng = np.random.default_rng(config.seed)
    state = rng.choice(np.array([-1, 1], np.int8), size=(config.chains, model.n))
    seed = int(rng.integers(2**63))  # drawn either way: the batches then do not depend on it
    if isinstance(sampler, Runner):
        if sampler_options:
            raise ValueError(
                f"sampler_options {sorted(sampler_options)} cannot be passed with a Runner: "
                f"its options were fixed when it was opened"
            )
        _check_rows(sampler, config.chains)
        return _train(model, data, sampler, config, rng, checkpoint_dir, progress, callback)
    if not isinstance(sampler, str):
        raise TypeError(f"sampler must be a method name or a Runner, not {type(sampler).__name__}")
    runner = open_runner(
        model.to_couplings(), sampler, config.chains, seed, **(sampler_options or {})
    )
    try:
        _check_rows(runner, config.chains)
        runner.set_state(state)
        return _train(model, data, runner, config, rng, checkpoint_dir, progress, callback)
    finally:
        runner.close()


def _check_rows(runner: Runner, chains: int) -> None:
    if runner.output_replicas != chains:
        raise ValueError(
            f"the sampler's runner returns {runner.output_replicas} chains per draw but "
            f"config.chains is {chains}: they must be equal (the chains are PCD's persistent "
            f"chains and the R of Q)"
        )


def _train(model, data, runner, config, rng, checkpoint_dir, progress, callback):
    """The epochs of :func:`train` on an open runner."""
    name = runner.method_name or type(runner).__name__
    # PCD uses the chains' spins only: their energies would cost a runner work on every draw
    # (the caller's setting comes back at the end)
    saved_energies, runner.record_energies = runner.record_energies, False
    try:
        return _epochs(model, data, runner, config, rng, checkpoint_dir, progress, callback, name)
    finally:
        runner.record_energies = saved_energies


def _epochs(model, data, runner, config, rng, checkpoint_dir, progress, callback, name):
    """The epochs of :func:`_train` (``name``: the sampler's, for messages)."""
    from tqdm.auto import tqdm

    from pbitsim.diagnostics.autocorr import integrated_time
    from pbitsim.diagnostics.q import q_from_estimates

    history: list[EpochRecord] = []
    nv = model.n_visible
    batches = max(1, len(data) // config.batch_size)
    # disable=None lets tqdm decide (shown on a terminal, hidden in logs and CI)
    disable = None if progress is None else not progress
    bar = tqdm(total=config.epochs * batches, desc=f"train ({name})", disable=disable)
    good = _snapshot(model)  # the last good state: the start, then each completed epoch
    epoch = 0
    try:
        for epoch in range(config.epochs):
            lr = config.lr
            if config.lr_final is not None and config.epochs > 1:
                lr *= (config.lr_final / config.lr) ** (epoch / (config.epochs - 1))
            order = rng.permutation(len(data))
            steps_est = []  # per-step gradient estimates, for Q when there are too few chains
            for b in range(batches):
                batch = data[order[b * config.batch_size : (b + 1) * config.batch_size]]
                chain = _draw(runner, model.to_couplings(), config.k, name)
                pos = model.data_statistics(batch)
                neg = model.model_statistics(chain, nv)
                grads = [p - n.mean(axis=0) for p, n in zip(pos, neg)]
                if len(chain) < 3:
                    steps_est.append(_estimates(pos, neg))
                with np.errstate(over="ignore", invalid="ignore"):
                    model.step(*grads, lr=lr, weight_decay=config.weight_decay)
                _check_weights(model, config.max_weight, lr)
                bar.update()
            # Q of the last step: R per-chain estimates of the full gradient (weights, fields).
            # With fewer than 3 chains (a board holds one), the estimates of the epoch's steps
            # stand in for the chains: an approximation (the weights move between steps and the
            # chain carries over), recorded as such in the docs.
            est = _estimates(pos, neg) if len(neg[0]) >= 3 else np.concatenate(steps_est)
            nan = float("nan")
            q = q_from_estimates(est) if len(est) >= 3 else None  # 1 step of 1-2 chains: no Q
            qv = (q.q, q.q_err, q.q_naive) if q is not None else (nan, nan, nan)
            tau, tau_m = np.nan, np.nan
            if config.measure_tau_steps:
                chain = _draw(runner, model.to_couplings(), config.measure_tau_steps, name)
                tau, tau_m = _gradient_taus(chain, nv, integrated_time)
            ll, kind = _likelihood(model, data, config.log_likelihood, config.seed + epoch)
            if not np.isfinite(ll):
                raise _Diverged(f"the log-likelihood is {ll} (lr {lr:.3g})")
            rec = EpochRecord(epoch + 1, ll, kind, *qv, tau, tau_m, name)
            history.append(rec)
            bar.set_postfix(ll=f"{ll:.3f}", Q=f"{qv[0]:.3g}")
            if checkpoint_dir is not None:
                save_checkpoint(checkpoint_dir, model, config, history)
            good = _snapshot(model)
            if callback is not None:
                callback(rec, model)
    except _Diverged as e:
        _restore(model, good)
        where = f"epoch {epoch + 1}"
        message = (
            f"training diverged in {where}: {e}; lower the learning rate (--lr). The model "
            f"is back at the end of epoch {len(history)}"
            if history
            else f"training diverged in {where}: {e}; lower the learning rate (--lr). The model "
            f"is back at its initial weights"
        )
        if checkpoint_dir is not None:
            save_checkpoint(checkpoint_dir, model, config, history, stopped=message)
            message += f", which is what {checkpoint_dir} holds"
        raise TrainingDiverged(message, epoch + 1, history) from None
    finally:
        bar.close()
    return history


def _estimates(pos, neg) -> np.ndarray:
    """Per-chain estimates (R, d) of the full gradient (weights and fields) of one step."""
    return np.concatenate([(p[None] - n).reshape(len(n), -1) for p, n in zip(pos, neg)], 1)


class _Diverged(Exception):
    """Internal: raised where divergence is seen, turned into TrainingDiverged by _train."""


def _snapshot(model) -> dict:
    return {k: np.array(v, copy=True) for k, v in dataclasses.asdict(model).items()}


def _restore(model, snapshot: dict) -> None:
    for k, v in snapshot.items():
        setattr(model, k, v.copy())


def _check_weights(model, max_weight: float, lr: float) -> None:
    for k, v in dataclasses.asdict(model).items():
        v = np.asarray(v)
        if not np.all(np.isfinite(v)):
            raise _Diverged(f"{k} became non-finite (lr {lr:.3g})")
        big = float(np.abs(v).max()) if v.size else 0.0
        if big > max_weight:
            raise _Diverged(f"|{k}| reached {big:.3g} > max_weight {max_weight:g} (lr {lr:.3g})")


def _draw(runner: Runner, couplings: Couplings, steps: int, name: str) -> np.ndarray:
    """Load the current weights into the persistent chains and run ``steps`` steps."""
    from pbitsim.fixedpoint import FixedPointOverflowError

    try:
        runner.load(couplings)
    except FixedPointOverflowError as e:  # the weights left the sampler's number range
        raise _Diverged(f"the weights no longer fit sampler {name!r}: {e}") from None
    chain = runner.draw(steps)
    _check_ran(runner.fingerprint, couplings, name)
    return chain


def _check_ran(ran: str, couplings: Couplings, name: str) -> None:
    if ran != couplings.fingerprint:
        raise RuntimeError(
            f"sampler {name!r} ran couplings {ran[:16]} but training asked for "
            f"{couplings.fingerprint[:16]}: it is not sampling the current weights"
        )


def _gradient_taus(chain: np.ndarray, nv: int, integrated_time) -> tuple[float, float]:
    """Median tau_int over a subset of the v_i h_j observables, and tau_int of magnetisation."""
    from pbitsim.diagnostics.observables import magnetisation, pair_products

    nh = chain.shape[2] - nv
    pick = np.random.default_rng(0).choice(nv * nh, size=min(64, nv * nh), replace=False)
    i, j = np.divmod(pick, nh)
    obs = pair_products(chain, np.column_stack([i, nv + j]))  # (R, T, k)
    mag = magnetisation(chain)[:, :, None]
    with warnings.catch_warnings():
        # A per-epoch measurement run is short by design; the value is a monitor, not a result.
        warnings.simplefilter("ignore")
        taus = integrated_time(obs, quiet=True)
        tau_m = integrated_time(mag, quiet=True)
    return float(np.nanmedian(taus)), float(np.nanmedian(tau_m))


def save_checkpoint(
    directory, model, config: TrainConfig, history: list[EpochRecord], stopped: str | None = None
) -> None:
    """Write ``model.npz`` and ``history.json`` (with ``"stopped"``: why training stopped
    early, when it did). Each file is written whole and then renamed into place, so an
    interruption never leaves half a checkpoint."""
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    arrays = {k: v for k, v in dataclasses.asdict(model).items()}
    tmp = d / "model.tmp.npz"
    np.savez(tmp, kind=type(model).__name__, **arrays)
    tmp.replace(d / "model.npz")
    meta = {"config": dataclasses.asdict(config), "epochs": [r.as_dict() for r in history]}
    if stopped is not None:
        meta["stopped"] = stopped
    tmp = d / "history.json.tmp"
    tmp.write_text(json.dumps(meta, indent=1))
    tmp.replace(d / "history.json")


def load_checkpoint(directory):
    """(model, config, history) from a directory written during :func:`train`."""
    d = Path(directory)
    z = np.load(d / "model.npz")
    kind = str(z["kind"])
    cls = {"RBM": RBM, "FullyVisibleBM": FullyVisibleBM}[kind]
    model = cls(**{f.name: z[f.name] for f in dataclasses.fields(cls)})
    meta = json.loads((d / "history.json").read_text())
    return model, TrainConfig(**meta["config"]), [EpochRecord(**r) for r in meta["epochs"]]
