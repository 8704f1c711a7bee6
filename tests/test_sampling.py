"""pbitsim.sample: arguments, settings, streaming to disk, parallel tempering and annealing."""

from __future__ import annotations

import json

import numpy as np
import pytest
from test_sim_kernels import SCHEMES, moment_check

import pbitsim
from pbitsim import exact, models
from pbitsim.sampling import Runner, get_method, methods


@pytest.fixture(scope="module")
def c():
    return models.spin_glass(8, p=0.5, seed=3, field=0.3, beta=0.8)


def test_methods_registered():
    assert set(SCHEMES) <= set(methods())
    for m in SCHEMES:
        assert issubclass(get_method(m), Runner)


def test_samples_fields(c):
    s = pbitsim.sample(c, 30, method="sequential", replicas=3, burn_in=5, thin=3, seed=9)
    assert s.spins.shape == (3, 10, c.n) and s.spins.dtype == np.int8
    assert set(np.unique(s.spins)) <= {-1, 1}
    assert (s.method, s.seed, s.fingerprint) == ("sequential", 9, c.fingerprint)
    assert s.topology_fingerprint == c.topology_fingerprint
    st = s.settings
    assert (st["sweeps"], st["burn_in"], st["thin"], st["draws"], st["replicas"]) == (
        30,
        5,
        3,
        10,
        3,
    )
    assert st["method"] == "sequential" and st["beta"] == c.beta
    json.dumps(st)  # reproducible from JSON
    again = pbitsim.sample(
        c,
        st["sweeps"],
        method=st["method"],
        replicas=st["replicas"],
        burn_in=st["burn_in"],
        thin=st["thin"],
        seed=s.seed,
        **st["options"],
    )
    np.testing.assert_array_equal(again.spins, s.spins)


def test_fresh_seed_is_recorded_and_reproduces(c):
    a = pbitsim.sample(c, 20, replicas=2)
    b = pbitsim.sample(c, 20, replicas=2)
    assert isinstance(a.seed, int) and a.seed != b.seed
    np.testing.assert_array_equal(pbitsim.sample(c, 20, replicas=2, seed=a.seed).spins, a.spins)


def test_beta_override(c):
    s = pbitsim.sample(c, 10, beta=0.3, seed=1)
    assert s.settings["beta"] == 0.3
    assert s.fingerprint == c.with_beta(0.3).fingerprint
    np.testing.assert_array_equal(s.spins, pbitsim.sample(c.with_beta(0.3), 10, seed=1).spins)


def test_chunk_draws_does_not_change_samples(c):
    a = pbitsim.sample(c, 60, replicas=4, thin=3, burn_in=4, seed=2)
    b = pbitsim.sample(c, 60, replicas=4, thin=3, burn_in=4, seed=2, chunk_draws=7)
    np.testing.assert_array_equal(a.spins, b.spins)
    np.testing.assert_array_equal(a.info["energies"], b.info["energies"])


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"method": "nope"}, "available: .*chromatic"),
        ({"replicas": 0}, "replicas"),
        ({"burn_in": -1}, "burn_in"),
        ({"thin": 0}, "thin"),
        ({"thin": 7}, "multiple of thin"),
        ({"sweeps": 0}, "sweeps"),
        ({"seed": -3}, "seed"),
        ({"chunk_draws": 0}, "chunk_draws"),
        ({"frobnicate": 1}, "no option.*frobnicate"),
        ({"betas": [0.5]}, "at least 2 betas"),
        ({"betas": [0.5, -1.0]}, "betas"),
        ({"swap_every": 2}, "betas="),
        ({"betas": [0.5, 1.0], "anneal": (0.1, 1.0)}, "cannot be combined"),
        ({"anneal": (0.1,)}, "start, stop"),
        ({"anneal": (0.1, 1.0), "anneal_kind": "cubic"}, "anneal_kind"),
        ({"anneal_sweeps": 10}, "anneal="),
        ({"beta_schedule": [0.1, np.nan]}, "beta_schedule"),
        ({"initial": np.ones(3)}, "initial"),
        ({"beta": -1.0}, "beta"),
    ],
)
def test_argument_errors(c, kwargs, message):
    kwargs = {"sweeps": 20, **kwargs}
    with pytest.raises(ValueError, match=message):
        pbitsim.sample(c, **kwargs)


def test_not_couplings():
    with pytest.raises(TypeError, match="Couplings"):
        pbitsim.sample(np.zeros((3, 3)), 10)


def test_streaming_equals_in_memory(c, tmp_path):
    kw = dict(replicas=3, burn_in=2, thin=2, seed=4, chunk_draws=4)
    mem = pbitsim.sample(c, 50, **kw)
    disk = pbitsim.sample(c, 50, out=tmp_path / "run", **kw)
    assert isinstance(disk.spins, np.memmap) and not disk.spins.flags.writeable
    np.testing.assert_array_equal(disk.spins, mem.spins)
    np.testing.assert_array_equal(disk.info["energies"], mem.info["energies"])
    assert (tmp_path / "run.npy").exists() and (tmp_path / "run.energies.npy").exists()
    back = pbitsim.load_samples(tmp_path / "run.json")
    np.testing.assert_array_equal(back.spins, mem.spins)
    np.testing.assert_array_equal(back.info["energies"], mem.info["energies"])
    assert back.settings == json.loads(json.dumps(mem.settings))
    assert (back.seed, back.method, back.fingerprint) == (4, "chromatic", c.fingerprint)


def test_saved_in_memory_samples_reload(c, tmp_path):
    s = pbitsim.sample(c, 20, replicas=2, betas=[0.4, 0.8], seed=1)
    s.save(tmp_path / "pt")
    meta = json.loads((tmp_path / "pt.json").read_text())
    assert meta["info"]["energies"] == {"npy": "pt.energies.npy"}  # not inlined in the JSON
    back = pbitsim.load_samples(tmp_path / "pt")
    np.testing.assert_array_equal(back.info["walker_index"], s.info["walker_index"])
    assert back.info["swap_acceptance"] == s.info["swap_acceptance"]


BETAS = [0.25, 0.5, 0.8, 1.2]


@pytest.mark.parametrize("method", SCHEMES)
def test_parallel_tempering_rungs_sample_their_beta(c, method):
    K = len(BETAS)
    s = pbitsim.sample(
        c, 400, method=method, replicas=128, burn_in=100, thin=4, seed=3, betas=BETAS
    )
    assert s.spins.shape == (128 * K, 100, c.n)
    for k, b in enumerate(BETAS):
        r = moment_check(s.spins[k::K], c, beta=b)
        assert r["worst"] < 1, (k, r)
        assert r["kl"] < r["kl_bound"], (k, r)


def test_parallel_tempering_outputs(c):
    K, C, T = len(BETAS), 5, 60
    s = pbitsim.sample(c, T, replicas=C, seed=2, betas=BETAS, swap_every=2)
    info = s.info
    assert info["betas"] == BETAS
    assert info["swap_attempts"] == [C * T // 4] * (K - 1)  # every 2nd step, alternating pairs
    assert all(0 <= a <= 1 for a in info["swap_acceptance"])
    assert len(info["round_trips"]) == C and min(info["round_trips"]) >= 0
    w = info["walker_index"]
    assert w.shape == (C * K, T)
    for chain in range(C):
        assert np.all(np.sort(w[chain * K : (chain + 1) * K], axis=0) == np.arange(K)[:, None])
    np.testing.assert_allclose(info["energies"], c.energy(s.spins), atol=1e-12)
    assert s.settings["options"]["betas"] == BETAS


def expected_swap_acceptance(c, b0, b1) -> float:
    """E over independent x ~ p_b0, y ~ p_b1 of min(1, exp((b0 - b1)(E(x) - E(y))))."""
    e = c.energy(exact.all_states(c.n))
    p0, p1 = exact.boltzmann(c, b0), exact.boltzmann(c, b1)
    d = (b0 - b1) * (e[:, None] - e[None, :])
    return float(p0 @ np.exp(np.minimum(d, 0.0)) @ p1)


def test_swap_acceptance_matches_exact(c):
    """Independent runs give independent acceptance estimates; their mean is compared with the
    exact expectation (both rungs in equilibrium) within 5 standard errors."""
    runs = np.array(
        [
            pbitsim.sample(
                c, 1000, replicas=8, burn_in=50, seed=seed, betas=BETAS, method="chromatic"
            ).info["swap_acceptance"]
            for seed in range(12)
        ]
    )
    est, se = runs.mean(axis=0), runs.std(axis=0, ddof=1) / np.sqrt(len(runs))
    truth = [expected_swap_acceptance(c, a, b) for a, b in zip(BETAS, BETAS[1:])]
    assert np.all(np.abs(est - truth) < 5 * se + 1e-3), (est, truth, se)


def test_round_trips_count_walker_passages(c):
    """A ladder of equal betas accepts every swap: walkers then move deterministically, and the
    count follows from the recorded walker positions."""
    K = 3
    s = pbitsim.sample(c, 60, replicas=2, seed=1, betas=[0.5] * K)
    assert s.info["swap_acceptance"] == [1.0, 1.0]
    w = s.info["walker_index"]
    trips = []
    for chain in range(2):
        rows = w[chain * K : (chain + 1) * K]  # walker at each rung per draw
        rung_of = np.argsort(rows, axis=0)  # rung of each walker per draw
        count = 0
        for walker in range(K):
            state = 1 if walker == 0 else 0  # walker 0 starts at rung 0
            for r in rung_of[walker]:
                if r == 0:
                    count += state == 2
                    state = 1
                elif r == K - 1 and state == 1:
                    state = 2
        trips.append(count)
    assert s.info["round_trips"] == trips and min(trips) > 0


@pytest.mark.parametrize("kind", ["linear", "geometric"])
def test_annealing_reaches_ground_state(kind):
    c = models.lattice_2d(4, 4)  # ferromagnet: ground states all +1 / all -1, E = -32
    s = pbitsim.sample(c, 300, replicas=8, seed=1, anneal=(0.05, 4.0), anneal_kind=kind)
    np.testing.assert_array_equal(s.info["energies"][:, -1], -32.0)
    assert s.settings["runner"]["anneal"] == {
        "start": 0.05,
        "stop": 4.0,
        "kind": kind,
        "sweeps": 300,
    }
    hot = s.info["energies"][:, :10].mean()
    assert hot > -20  # it started hot


def test_beta_schedule_is_followed():
    """One spin in a unit field: P(+1) = (1 + tanh(beta_t)) / 2 at each step t of the schedule."""
    c = pbitsim.Couplings.from_dense(np.zeros((1, 1)), h=[1.0])
    sched = [0.05] * 100 + [1.0] * 100 + [3.0] * 100
    s = pbitsim.sample(c, 300, replicas=200, seed=2, beta_schedule=sched)
    up = (s.spins[:, :, 0] > 0).reshape(200, 3, 100).mean(axis=(0, 2))
    expected = (1 + np.tanh([0.05, 1.0, 3.0])) / 2
    assert np.all(np.abs(up - expected) < 5 * np.sqrt(expected * (1 - expected) / 20000))
    assert s.settings["runner"]["beta_schedule"] == sched


def test_anneal_needs_length_without_sample():
    r = get_method("chromatic")(models.lattice_2d(4), anneal=(0.1, 1.0))
    with pytest.raises(ValueError, match="anneal_sweeps"):
        r.advance(3)
    r = get_method("chromatic")(models.lattice_2d(4), anneal=(0.1, 1.0), anneal_sweeps=5)
    r.advance(3)


def test_initial_state_is_used():
    """A cold ferromagnet keeps its starting ground state for a sweep: all +1 or all -1."""
    c = models.lattice_2d(4, 4, beta=5.0)
    init = np.repeat([[1], [-1]], c.n, axis=1).astype(np.int8)
    for method in SCHEMES:
        s = pbitsim.sample(c, 1, method=method, replicas=2, seed=1, initial=init)
        np.testing.assert_array_equal(s.spins[:, 0], init)
        assert s.settings["runner"]["initial"] == init.tolist()
    one = pbitsim.sample(c, 1, replicas=3, seed=1, initial=-np.ones(c.n, np.int8))
    assert np.all(one.spins == -1)


# -- interrupted streamed runs: the one mechanism ------------------------------------------------


def _stop_after(monkeypatch, calls: int, error: type[BaseException]) -> None:
    """Make the chromatic runner fail on its ``calls + 1``-th draw."""
    from pbitsim.sim import gibbs

    real, seen = gibbs.ChromaticRunner.draw, []

    def draw(self, k, thin=1):
        if len(seen) == calls:
            raise error("stopped")
        seen.append(k)
        return real(self, k, thin)

    monkeypatch.setattr(gibbs.ChromaticRunner, "draw", draw)


@pytest.mark.parametrize("error", [OSError, KeyboardInterrupt])
def test_interrupted_streamed_run_says_how_far_it_got(monkeypatch, c, tmp_path, error):
    """An exception or Ctrl-C mid-run leaves the draws written so far, marked complete: false
    with their count; load_samples reads exactly those draws."""
    kw = dict(replicas=3, thin=2, seed=5, chunk_draws=4)
    full = pbitsim.sample(c, 40, **kw)
    _stop_after(monkeypatch, 3, error)
    with pytest.raises(error, match="stopped"):
        pbitsim.sample(c, 40, out=tmp_path / "run", **kw)
    meta = json.loads((tmp_path / "run.json").read_text())
    assert meta["complete"] is False and meta["draws_written"] == 12
    assert meta["shape"] == [3, 20, c.n] and meta["settings"]["draws"] == 20
    back = pbitsim.load_samples(tmp_path / "run")
    assert not back.complete and back.draws == 12
    np.testing.assert_array_equal(back.spins, full.spins[:, :12])
    np.testing.assert_array_equal(back.info["energies"], full.info["energies"][:, :12])


def test_complete_run_is_marked_complete(c, tmp_path):
    s = pbitsim.sample(c, 10, replicas=2, seed=1, out=tmp_path / "run")
    meta = json.loads((tmp_path / "run.json").read_text())
    assert meta["complete"] is True and meta["draws_written"] == 10 and s.complete
    assert pbitsim.load_samples(tmp_path / "run").complete


def test_sample_stream_notes_progress_while_running(c, tmp_path):
    """A killed process cannot write a last note: the metadata on disk is kept current while
    draws arrive (at most note_every seconds old), and never counts a draw not yet on disk."""
    from pbitsim.samples import SampleStream

    header = {"fingerprint": c.fingerprint, "topology_fingerprint": c.topology_fingerprint}
    header.update(method="board", seed=1, settings={"draws": 6})
    block = np.ones((2, 2, c.n), np.int8)
    stream = SampleStream(tmp_path / "b", (2, 6, c.n), header, note_every=0.0)
    assert json.loads((tmp_path / "b.json").read_text())["draws_written"] == 0
    stream.write(block, {"energies": np.zeros((2, 2))})
    stream.write(-block, {"energies": np.ones((2, 2))})
    # no finish, no with block: as if the process had been killed here
    back = pbitsim.load_samples(tmp_path / "b")
    assert not back.complete and back.draws == 4 and back.info["energies"].shape == (2, 4)
    np.testing.assert_array_equal(back.spins[:, 2:], -block)
    stream.write(block, {"energies": np.zeros((2, 2))})
    done = stream.finish({"note": "ok"})
    assert done.complete and done.draws == 6 and done.info["note"] == "ok"
    with pytest.raises(ValueError, match="exceed the 6 planned"):
        stream.write(block)


def test_sample_stream_refuses_an_unfinished_finish(c, tmp_path):
    from pbitsim.samples import SampleStream

    header = {"fingerprint": c.fingerprint, "topology_fingerprint": c.topology_fingerprint}
    with SampleStream(tmp_path / "b", (1, 3, c.n), {**header, "method": "x"}) as stream:
        stream.write(np.ones((1, 1, c.n), np.int8))
        with pytest.raises(ValueError, match="only 1 of 3 planned draws"):
            stream.finish()
    assert pbitsim.load_samples(tmp_path / "b").draws == 1


def test_out_in_a_missing_folder_fails_before_the_run(c, tmp_path):
    with pytest.raises(FileNotFoundError, match="folder .*missing does not exist"):
        pbitsim.sample(c, 10, out=tmp_path / "missing" / "run")


# -- compilation ---------------------------------------------------------------------------------


def test_watch_compilation_times_what_numba_compiles():
    import numba

    from pbitsim.sampling import watch_compilation

    started = []
    with watch_compilation(lambda: started.append(1)) as compiled:
        f = numba.njit(lambda x: x * 2)
        assert f(3) == 6
        assert f(4.0) == 8.0  # a second specialisation: counted, announced once
    assert started == [1] and compiled.functions >= 2 and compiled.seconds > 0
    with watch_compilation(lambda: started.append(2)) as again:
        f(5)  # compiled already: nothing to report
    assert started == [1] and again.functions == 0 and again.seconds == 0
