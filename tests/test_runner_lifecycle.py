"""The Runner life cycle: open, load new weights, set the state, draw through sample(), close."""

from __future__ import annotations

import numpy as np
import pytest
from test_sim_kernels import moment_check

import pbitsim
from pbitsim import exact, models
from pbitsim.sampling import Runner, get_method, methods, open_runner
from pbitsim.sim import gibbs

# id -> (method, options, beta of the draws the exact check compares with (None: couplings.beta))
CASES = {
    "sequential": ("sequential", {}, None),
    "random-scan": ("random-scan", {}, None),
    "chromatic": ("chromatic", {}, None),
    "async": ("async", {"p": 0.2}, None),
    "hardware": ("hardware", {}, None),
    "pt": ("chromatic", {"betas": [0.4, 0.7, 1.0]}, 1.0),
    "anneal": ("sequential", {"anneal": (0.2, 1.0), "anneal_sweeps": 12}, 1.0),
}
#: cases whose samples are exact Gibbs (the rest are biased on purpose: timing, fixed point)
EXACT = {"sequential", "random-scan", "chromatic", "pt", "anneal"}
HOOKS_PENDING = "HardwareRunner hooks pending"


def test_every_builtin_method_is_covered():
    assert {m for m, _, _ in CASES.values()} >= {
        "sequential",
        "random-scan",
        "chromatic",
        "async",
        "hardware",
    }
    assert {"sequential", "random-scan", "chromatic", "async", "hardware"} <= set(methods())


def _hooks_missing(method: str) -> bool:
    cls = get_method(method)
    return cls._load is Runner._load or cls._set_state is Runner._set_state


def _needs_hooks(case: str) -> None:
    """Hardware's load/set_state hooks come from the hardware model's owners."""
    if _hooks_missing(CASES[case][0]):
        pytest.xfail(HOOKS_PENDING)


@pytest.fixture(scope="module")
def c1():
    return models.spin_glass(8, p=0.5, seed=3, field=0.3, beta=0.8)


@pytest.fixture(scope="module")
def c2(c1):
    """Same topology as c1, other J, h and beta."""
    return c1.replace(data=-1.3 * c1.data, h=0.2 - c1.h[::-1], beta=0.6)


def _open(c, case, replicas=3, seed=11, **extra):
    method, options, _ = CASES[case]
    return open_runner(c, method, replicas=replicas, seed=seed, **options, **extra)


def _draw(runner, k, thin=1):
    """Spins and (for the exact schemes) energies of a draw."""
    s = runner.draw(k, thin)
    return s, runner.draw_info().get("energies")


def _equal(a, b):
    np.testing.assert_array_equal(a[0], b[0])
    if a[1] is not None or b[1] is not None:
        np.testing.assert_array_equal(a[1], b[1])


def _cat(*draws):
    s = np.concatenate([d[0] for d in draws], axis=1)
    e = None if draws[0][1] is None else np.concatenate([d[1] for d in draws], axis=1)
    return s, e


# -- properties, closing -------------------------------------------------------------------------


@pytest.mark.parametrize("case", sorted(CASES))
def test_properties(case, c1):
    with _open(c1, case) as r:
        p = r.properties
        assert {
            "method",
            "design",
            "replicas",
            "output_replicas",
            "n",
            "topology_fingerprint",
            "fingerprint",
            "step_unit",
        } <= set(p)
        assert p["method"] == CASES[case][0] == r.method_name
        assert p["replicas"] == 3 and p["n"] == c1.n
        assert p["output_replicas"] == (9 if case == "pt" else 3)
        assert p["topology_fingerprint"] == c1.topology_fingerprint
        assert p["fingerprint"] == c1.fingerprint == r.fingerprint
        assert p["step_unit"] == r.step_unit
        if case == "hardware":
            from pbitsim.sim.hardware import HardwareDesign

            assert isinstance(p["design"], HardwareDesign)
        else:
            assert p["design"] is None
    assert r.closed and r.properties["method"] == CASES[case][0]


@pytest.mark.parametrize("case", sorted(CASES))
def test_closed_runner_refuses_everything(case, c1):
    r = _open(c1, case)
    assert not r.closed
    r.close()
    r.close()  # idempotent
    assert r.closed
    calls = {
        "advance": lambda: r.advance(1),
        "draw": lambda: r.draw(1),
        "load": lambda: r.load(c1),
        "set_state": lambda: r.set_state(np.ones(c1.n)),
        "sample": lambda: pbitsim.sample(c1, 2, method=r),
    }
    for name, call in calls.items():
        with pytest.raises(RuntimeError, match="runner is closed"):
            call()
        assert name


def test_close_calls_the_hook_once_and_context_manager_closes(monkeypatch, c1):
    calls = []
    monkeypatch.setattr(gibbs.ChromaticRunner, "_close", lambda self: calls.append(self))
    with open_runner(c1, seed=1) as r:
        r.draw(2)
    assert r.closed and calls == [r]
    r.close()
    assert calls == [r]
    with pytest.raises(KeyError), open_runner(c1, seed=1) as r2:
        raise KeyError("closed on errors too")
    assert r2.closed and calls == [r, r2]


# -- load ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("case", sorted(CASES))
def test_loading_the_same_couplings_changes_nothing(case, c1):
    _needs_hooks(case)
    a, b = _open(c1, case), _open(c1, case)
    first = _draw(a, 3, 2)
    a.load(c1)
    a.load(c1.replace())  # an equal copy
    _equal(_cat(first, _draw(a, 4)), _cat(_draw(b, 3, 2), _draw(b, 4)))
    assert a.fingerprint == c1.fingerprint


@pytest.mark.parametrize("case", sorted(CASES))
def test_load_before_running_equals_a_runner_opened_on_the_new_couplings(case, c1, c2):
    """The initial state and the streams come from the seed alone, so loading c2 at once must
    reproduce a runner opened on c2 bit for bit: J, h and beta all reached the kernels."""
    _needs_hooks(case)
    a = _open(c1, case)
    a.load(c2)
    assert a.couplings is c2 and a.fingerprint == c2.fingerprint
    assert a.properties["fingerprint"] == c2.fingerprint
    got = _draw(a, 6, 2)
    _equal(got, _draw(_open(c2, case), 6, 2))
    assert not np.array_equal(got[0], _open(c1, case).draw(6, 2))  # c1 and c2 do differ here


@pytest.mark.parametrize("case", ["sequential", "random-scan", "chromatic"])
def test_load_mid_run_equals_a_runner_on_the_new_couplings_with_the_same_streams(case, c1, c2):
    """After load(c2) the chains continue exactly as a runner on c2 holding the same spins and
    streams would (the Gibbs state is spins, streams and the step counter)."""
    a = _open(c1, case, seed=5)
    last = a.draw(7)[:, -1]
    a.load(c2)
    b = _open(c2, case, seed=99)
    b.set_state(last)
    b._rng[:] = a._rng
    b._t = a._t
    _equal(_draw(a, 9), _draw(b, 9))


@pytest.mark.parametrize("case", sorted(CASES))
def test_loaded_weights_set_the_distribution(case):
    """Opened on fields pulling every spin up, then loaded with fields pulling down: the draws
    follow the loaded model (exact schemes: every moment within 5 standard errors; the biased
    ones: magnetisations within 0.06) and are far from the first one."""
    _needs_hooks(case)
    base = models.spin_glass(7, p=0.5, seed=4, field=0.0, beta=1.0)
    up = base.replace(data=0.4 * base.data, h=np.full(base.n, 0.8))
    down = up.replace(h=np.linspace(-0.9, 0.3, base.n), beta=0.9)
    _, _, beta = CASES[case]
    r = _open(up, case, replicas=64, seed=3)
    r.advance(30)
    r.load(down)
    r.advance(10)
    spins = r.draw(150, 2)
    if case == "pt":  # the rung at beta 1.0 of each chain
        spins = spins[2::3]
    m_down = exact.exact_moments(down, beta)[0]
    m_up = exact.exact_moments(up, beta)[0]
    mean = spins.mean(axis=(0, 1))
    assert np.abs(mean - m_up).max() > 0.5
    if case in EXACT:
        check = moment_check(spins, down, beta)
        assert check["worst"] < 1, check
    else:
        np.testing.assert_allclose(mean, m_down, atol=0.06)


@pytest.mark.parametrize("case", ["pt", "anneal"])
def test_new_beta_does_not_move_a_ladder_or_schedule(case, c1):
    """PT and annealing bring their own betas: loading c1 at another beta changes nothing."""
    a, b = _open(c1, case), _open(c1, case)
    first = _draw(a, 3)
    a.load(c1.with_beta(0.25))
    _equal(_cat(first, _draw(a, 4)), _cat(_draw(b, 3), _draw(b, 4)))
    assert a.fingerprint == c1.with_beta(0.25).fingerprint


def test_plain_runner_samples_at_the_loaded_beta(c1):
    a = _open(c1, "chromatic")
    a.load(c1.with_beta(0.3))
    _equal(_draw(a, 5), _draw(_open(c1.with_beta(0.3), "chromatic"), 5))


def test_load_refills_values_without_a_new_layout(monkeypatch, c1, c2):
    calls = []
    make = gibbs.ChromaticRunner._make_layout
    monkeypatch.setattr(
        gibbs.ChromaticRunner, "_make_layout", lambda self: calls.append(1) or make(self)
    )
    r = _open(c1, "chromatic")
    arrays = r._layout.arrays
    for c in (c2, c1, c2):
        r.load(c)
    assert calls == [1] and all(x is y for x, y in zip(arrays, r._layout.arrays))
    fresh = gibbs.build_layout(c2, c2.color_classes())
    assert fresh.n_streams == r._layout.n_streams


@pytest.mark.parametrize("case", sorted(CASES))
def test_load_refuses_another_topology(case, c1):
    r = _open(c1, case)
    other = models.spin_glass(8, p=0.5, seed=4, field=0.3, beta=0.8)
    assert other.topology_fingerprint != c1.topology_fingerprint
    with pytest.raises(ValueError) as e:
        r.load(other)
    assert other.topology_fingerprint[:16] in str(e.value)
    assert c1.topology_fingerprint[:16] in str(e.value)
    recoloured = c1.replace(coloring=np.arange(c1.n))
    with pytest.raises(ValueError, match="topology"):
        r.load(recoloured)
    with pytest.raises(TypeError, match="Couplings"):
        r.load(c1.to_dense())
    assert r.couplings is c1  # nothing changed


# -- set_state -----------------------------------------------------------------------------------


def _spins(rows, n, seed):
    return np.random.default_rng(seed).choice(np.array([-1, 1], np.int8), size=(rows, n))


@pytest.mark.parametrize("case", sorted(CASES))
def test_set_state_then_draw_starts_from_those_spins(case, c1):
    """set_state on a fresh runner = the same runner opened with initial=those spins."""
    _needs_hooks(case)
    a = _open(c1, case)
    s0 = _spins(a.output_replicas, c1.n, 1)
    a.set_state(s0)
    _equal(_draw(a, 5), _draw(_open(c1, case, initial=s0), 5))
    # (n,) is broadcast to every row
    b = _open(c1, case)
    b.set_state(s0[0])
    _equal(_draw(b, 5), _draw(_open(c1, case, initial=s0[0]), 5))


@pytest.mark.parametrize("case", sorted(set(CASES) - {"pt"}))
def test_set_state_mid_run_replaces_the_whole_state(case, c1):
    """After set_state the past no longer matters (async: every staleness slot is overwritten);
    the streams continue. (PT is left out: its walker order depends on the past.)"""
    _needs_hooks(case)
    extra = {"delay": 2} if case == "async" else {}
    a = _open(c1, case, **extra)
    b = _open(c1, case, initial=-np.ones(c1.n, np.int8), **extra)
    a.advance(3)
    b.advance(3)
    s0 = _spins(3, c1.n, 2)
    a.set_state(s0)
    b.set_state(s0)
    _equal(_draw(a, 6), _draw(b, 6))


def test_parallel_tempering_state_is_set_by_rung(c1):
    """Row c*K + k is chain c at rung k whichever walker holds that rung now."""
    r = _open(c1, "pt", replicas=2)
    for _ in range(100):  # run until the walkers are out of their starting order
        r.advance(1)
        if not np.array_equal(r._walker, np.tile(np.arange(3), (2, 1))):
            break
    else:
        pytest.fail("no swap accepted in 100 steps")
    s0 = _spins(6, c1.n, 3)
    r.set_state(s0)
    cols = (np.arange(2)[:, None] * 3 + r._walker).ravel()
    state = r._S[r._pos_of][:, cols].T
    np.testing.assert_array_equal(state, s0)


@pytest.mark.parametrize("case", sorted(CASES))
def test_set_state_checks_shape_and_values(case, c1):
    r = _open(c1, case)
    rows = r.output_replicas
    with pytest.raises(ValueError, match=rf"\({rows}, {c1.n}\) or \({c1.n},\)"):
        r.set_state(np.ones((rows + 1, c1.n)))
    with pytest.raises(ValueError, match=rf"\({rows}, {c1.n}\)"):
        r.set_state(np.ones(c1.n - 1))
    with pytest.raises(ValueError, match="-1 and \\+1"):
        r.set_state(np.zeros(c1.n))


# -- sample(..., method=runner) ------------------------------------------------------------------


@pytest.mark.parametrize("case", sorted(CASES))
def test_sample_continues_a_runner(case, c1):
    method, options, _ = CASES[case]
    with _open(c1, case, seed=21) as r:
        a = pbitsim.sample(c1, 10, method=r, burn_in=4, thin=2)
        b = pbitsim.sample(c1, 12, method=r, thin=2)
        assert not r.closed
    whole = pbitsim.sample(c1, 22, method=method, replicas=3, burn_in=4, thin=2, seed=21, **options)
    np.testing.assert_array_equal(np.concatenate([a.spins, b.spins], axis=1), whole.spins)
    for s in (a, b):
        assert (s.method, s.seed, s.fingerprint) == (method, 21, c1.fingerprint)
        assert s.settings["replicas"] == 3 and s.settings["method"] == method
        assert s.settings["options"] == whole.settings["options"]
    assert not a.settings["fresh_runner"] and whole.settings["fresh_runner"]


def test_sample_after_load_uses_the_new_couplings(c1, c2):
    with open_runner(c1, "chromatic", replicas=2, seed=3) as r:
        with pytest.raises(ValueError) as e:
            pbitsim.sample(c2, 4, method=r)
        msg = str(e.value)
        assert c1.fingerprint[:16] in msg and c2.fingerprint[:16] in msg
        assert "runner.load(couplings)" in msg
        r.load(c2)
        s = pbitsim.sample(c2, 4, method=r)
        assert s.fingerprint == c2.fingerprint and s.settings["beta"] == c2.beta


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"replicas": 3}, "replicas=3"),
        ({"seed": 1}, "seed"),
        ({"beta": 0.5}, "beta"),
        ({"initial": np.ones(8)}, "initial"),
    ],
)
def test_sample_refuses_runner_arguments(kwargs, message, c1):
    with open_runner(c1, replicas=2, seed=1) as r:
        with pytest.raises(ValueError, match=message):
            pbitsim.sample(c1, 4, method=r, **kwargs)
        pbitsim.sample(c1, 4, method=r, replicas=2)  # its own count is fine


def test_sample_closes_the_runner_it_opens(monkeypatch, c1):
    closed = []
    monkeypatch.setattr(gibbs.ChromaticRunner, "_close", lambda self: closed.append(self))
    pbitsim.sample(c1, 4, seed=1)
    assert len(closed) == 1 and closed[0].closed
    with pytest.raises(ValueError, match="multiple of thin"):  # checked before opening
        pbitsim.sample(c1, 5, thin=2)
    assert len(closed) == 1

    def broken(self, k, thin=1):
        raise OSError("link lost")

    monkeypatch.setattr(gibbs.ChromaticRunner, "draw", broken)
    with pytest.raises(OSError, match="link lost"):
        pbitsim.sample(c1, 4, seed=1)
    assert len(closed) == 2 and closed[1].closed


# -- open_runner ---------------------------------------------------------------------------------


def test_open_runner_checks_like_sample(c1):
    with pytest.raises(ValueError, match="no option.*frobnicate"):
        open_runner(c1, "chromatic", frobnicate=1)
    with pytest.raises(ValueError, match="available: .*chromatic"):
        open_runner(c1, "nope")
    with pytest.raises(ValueError, match="replicas"):
        open_runner(c1, replicas=0)
    with pytest.raises(ValueError, match="seed"):
        open_runner(c1, seed=-1)
    with pytest.raises(TypeError, match="Couplings"):
        open_runner(c1.to_dense()[0])
    with pytest.raises(TypeError, match="method name"):
        open_runner(c1, method=3)
    a, b = open_runner(c1), open_runner(c1)
    assert isinstance(a.seed, int) and a.seed != b.seed  # drawn from the OS, recorded
    np.testing.assert_array_equal(a.draw(4), open_runner(c1, seed=a.seed).draw(4))
    r = open_runner(c1, beta=0.3, seed=1)
    assert r.couplings.beta == 0.3 and r.fingerprint == c1.with_beta(0.3).fingerprint
    assert pbitsim.open_runner is open_runner and pbitsim.Runner is Runner


def test_runner_without_hooks_says_so(c1):
    class Bare(Runner):
        method_name = "bare"

        def advance(self, sweeps):
            pass

        def draw(self, k, thin=1):
            return np.ones((self.replicas, k, self.couplings.n), np.int8)

    r = Bare(c1, replicas=2)
    with pytest.raises(NotImplementedError, match="'bare' cannot load"):
        r.load(c1)
    with pytest.raises(NotImplementedError, match="'bare' cannot set its state"):
        r.set_state(np.ones(c1.n))
    r.close()
    with pytest.raises(RuntimeError, match="'bare' runner is closed"):
        r.draw(1)
