"""``sample(..., method="board", port=URL)``: a board (or the emulator) as a sampling method.

:class:`BoardRunner` is a :class:`~pbitsim.sampling.Runner` registered through the
``pbitsim.methods`` entry point. Opening it identifies the board, refuses couplings of another
topology (naming both), loads the model through :func:`~pbitsim.board.regmap.load_writes` and
requires the board's LOAD-DIGEST to equal the host's before any run. Then its samples carry the
couplings' own fingerprint, so every diagnostic runs on them unchanged; the digests and the
design go into the settings. One step is one colour period (C model cycles), as for
``method="hardware"``: with the same design and seed the two give the same samples, bit for bit.
"""

from __future__ import annotations

import numpy as np

from pbitsim.board import protocol as P
from pbitsim.board.regmap import (
    AddressMap,
    load_writes,
    topology_id,
    weight_writes,
)
from pbitsim.couplings import Couplings
from pbitsim.sampling import Runner

from .client import BoardClient, BoardFault
from .link import DEFAULT_BAUD, Link, open_port

__all__ = ["BoardRunner"]


class BoardRunner(Runner):
    """A board as a sampler, held open across calls (one connection, one loaded model).

    Parameters
    ----------
    couplings : Couplings
    replicas : int
        Chains: a board holds as many as it has arrays (1).
    seed : int, optional
        Master seed of the board's generators (:func:`pbitsim.rng.derive_seeds`, as the
        hardware method uses it).
    port : str
        A pyserial URL: ``/dev/ttyUSB1``, ``socket://127.0.0.1:PORT`` (the emulator), ...
    baud : int
    timeout : float
        Seconds to wait for a reply before retransmitting (raise it for the RTL in simulation).
    retries : int
    window : int
        Stream frames in flight (capped by the board's buffer).
    initial : array_like, optional
        Initial spins (n,); default the design's initial spin.
    verify : bool
        Require the digests to match (default). ``verify=False`` runs anyway but labels the
        samples with a fingerprint that no model has, so diagnostics refuse to mix them.
    link : object, optional
        An already open port (instead of ``port``), e.g. a test double.
    """

    step_unit = "colour period"
    #: a board is exclusive hardware: a sweep worker must hold this resource to open one
    resources = {"board": 1}

    def __init__(
        self,
        couplings: Couplings,
        replicas: int = 1,
        seed: int | None = None,
        port: str | None = None,
        baud: int = DEFAULT_BAUD,
        timeout: float = 1.0,
        retries: int = 4,
        window: int = 8,
        initial=None,
        verify: bool = True,
        link=None,
    ) -> None:
        if seed is None:
            seed = int(np.random.SeedSequence().generate_state(1, np.uint64)[0] >> 1)
        super().__init__(couplings, replicas, seed)
        if self.replicas != 1:
            raise ValueError(
                f"a board holds 1 chain (one p-bit array), not replicas={self.replicas}; "
                f"run replicas one after another or on several boards"
            )
        if port is None and link is None:
            raise ValueError("method 'board' needs port=URL (e.g. socket://127.0.0.1:PORT)")
        self._link = Link(link if link is not None else open_port(port, baud))
        try:
            self.client = BoardClient(self._link, timeout=timeout, retries=retries, window=window)
            self._open(couplings, initial, verify)
        except BaseException:
            self._link.close()
            raise
        self.settings = {
            "port": port,
            "design": self.design.to_dict(),
            "master_seed": seed,
            "digests": self._digests,
            "verified": self.verified,
        }
        if initial is not None:
            self.settings["initial"] = np.asarray(initial).tolist()

    def _open(self, couplings: Couplings, initial, verify: bool) -> None:
        ident = self.client.ident()
        self.design = ident.design
        mine = topology_id(couplings)
        if ident.words.topology != mine:
            raise ValueError(
                f"the board is built for topology {ident.words.topology:016x}, the couplings "
                f"have topology {mine:016x} ({couplings.topology_fingerprint[:16]}): build "
                f"firmware for this graph and colouring"
            )
        self.n_colors = max(couplings.n_colors, 1)
        self.amap = AddressMap.for_design(couplings, self.design)
        self.client.reset()  # a run left over from another host is stopped; the chain restarts
        self.client.write(load_writes(couplings, self.design, self.seed, initial))
        self._verify(couplings, verify)

    def _verify(self, couplings: Couplings, verify: bool) -> None:
        from pbitsim.board.regmap import load_digests

        board = self.client.digests()
        host = load_digests(couplings, self.design)
        self._digests = {r.name: f"{v:08x}" for r, v in board.items()}
        self.verified = board == host
        if verify and not self.verified:
            self.client.check_digests(couplings, self.design)  # raises DigestMismatch

    @property
    def fingerprint(self) -> str:
        """The couplings' fingerprint once the board's digests matched; otherwise a label no
        model has (``unverified-...``), so the fingerprint guard refuses to mix the samples."""
        if self.verified:
            return self.couplings.fingerprint
        return "unverified-" + "".join(self._digests.values())

    # -- the Runner contract ---------------------------------------------------------------------
    def advance(self, sweeps: int) -> None:
        if sweeps:
            self.client.run(int(sweeps) * self.n_colors, self.n_colors, 0)

    def draw(self, k: int, thin: int = 1) -> np.ndarray:
        if not k:
            return np.zeros((1, 0, self.couplings.n), np.int8)
        period = int(thin) * self.n_colors
        _, states, _ = self.client.run(int(k) * period, period, P.RUN_SAMPLES)
        return states[None]

    def statistics(self, sweeps: int, thin: int = 1) -> dict:
        """On-board statistics over ``sweeps // thin`` recorded states (no states streamed):
        ``count``, ``sum`` (per p-bit) and ``pair_sum`` (per edge, CSR order with i < j)."""
        period = int(thin) * self.n_colors
        self.client.run(int(sweeps) * self.n_colors, period, P.RUN_STATS)
        n = self.couplings.n
        edges = int(
            np.sum(np.repeat(np.arange(n), self.couplings.degrees) < self.couplings.indices)
        )
        vec = self.client.statistics(1 + n + edges)
        return {"count": int(vec[0]), "sum": vec[1 : 1 + n], "pair_sum": vec[1 + n :]}

    def _load(self, couplings: Couplings) -> None:
        # Only the words that changed; no seeds, no spins, no restart: the chain continues.
        self.client.write(weight_writes(self.couplings, couplings, self.design))
        self._verify(couplings, True)
        self.settings["digests"] = self._digests

    def _set_state(self, spins: np.ndarray) -> None:
        self.client.write([(self.amap.spin(i), int(s > 0)) for i, s in enumerate(spins[0])])

    def info(self) -> dict:
        st = self.client.status()
        return {"cycles": st.cycle, "colors": self.n_colors, "link_bytes_in": self._link.bytes_in}

    def _close(self) -> None:
        try:
            self.client.stop()
        except Exception:  # closing after a fault: the port may already be gone
            pass
        self._link.close()


__all__ += ["BoardFault"]
