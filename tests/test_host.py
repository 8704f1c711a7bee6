"""host/: the board client and method="board", against the emulator over a local socket.

The emulator runs the board's command engine (pbitsim.board.session) with the bit-exact cycle
model, so a board run must equal method="hardware" with the same design and seed, bit for bit —
also through every recoverable fault, and a fault that cannot be recovered must say so."""

import socket
import subprocess
import sys
import threading

import numpy as np
import pytest
from pbitsim.host.client import BoardFault, BoardTimeout, DigestMismatch
from pbitsim.host.emulator import Emulator, Fault, parse_faults
from pbitsim.host.runner import BoardRunner

import pbitsim
from pbitsim import models
from pbitsim.board.design import HardwareDesign
from pbitsim.board.regmap import Region
from pbitsim.couplings import Couplings

DEFAULT = HardwareDesign.default()
PUBLISHED = HardwareDesign.published()


def lattice(beta=0.8):
    return models.lattice_2d(4, 4, J=0.5, h=0.1, beta=beta)


def hardware(c, sweeps, design, seed, **kw):
    return pbitsim.sample(c, sweeps, method="hardware", design=design, seed=seed, **kw).spins


@pytest.fixture
def board():
    """An emulated board factory: board(couplings, design, **emulator options) -> URL."""
    started = []

    def make(c, design=DEFAULT, **kw):
        emu = Emulator(c, design, **kw)
        started.append(emu)
        return emu.start()

    yield make
    for emu in started:
        emu.stop()


@pytest.mark.parametrize("design", [DEFAULT, PUBLISHED], ids=["default", "published"])
def test_board_samples_equal_the_hardware_method(board, design):
    c = lattice()
    url = board(c, design, max_frame=128)
    s = pbitsim.sample(c, 300, method="board", port=url, seed=9, burn_in=7, thin=3)
    want = hardware(c, 300, design, 9, burn_in=7, thin=3)
    np.testing.assert_array_equal(s.spins, want)
    assert s.fingerprint == c.fingerprint and s.method == "board"
    settings = s.settings["runner"]
    assert settings["verified"] and set(settings["digests"]) == {"J", "BIAS", "TABLE"}
    assert HardwareDesign.from_name(settings["design"]) == design


def test_a_held_runner_continues_its_chain_and_takes_new_weights(board):
    c1 = lattice()
    J, h = c1.to_dense()
    c2 = Couplings.from_dense(J * 1.5, -h, c1.beta, coloring=c1.coloring)
    url = board(c1)
    with (
        pbitsim.open_runner(c1, "board", seed=4, port=url) as r,
        pbitsim.open_runner(c1, "hardware", seed=4) as hw,
    ):
        a = pbitsim.sample(c1, 50, method=r).spins
        b = pbitsim.sample(c1, 50, method=hw).spins
        np.testing.assert_array_equal(a, b)
        r.load(c2)  # only the changed words are written; the chain continues
        hw.load(c2)
        np.testing.assert_array_equal(
            pbitsim.sample(c2, 60, method=r).spins, pbitsim.sample(c2, 60, method=hw).spins
        )
        spins = np.where(np.arange(c1.n) % 3 == 0, 1, -1)
        r.set_state(spins)
        hw.set_state(spins)
        np.testing.assert_array_equal(r.draw(20), hw.draw(20))
        assert r.properties["design"] == DEFAULT and r.fingerprint == c2.fingerprint
    assert r.closed


def test_on_board_statistics_equal_the_streamed_sums(board):
    c = lattice()
    url = board(c)
    with pbitsim.open_runner(c, "board", seed=2, port=url) as r:
        stats = r.statistics(120, thin=2)
    s = hardware(c, 120, DEFAULT, 2, thin=2)[0].astype(np.int64)
    rows = np.repeat(np.arange(c.n), c.degrees)
    i, j = rows[rows < c.indices], c.indices[rows < c.indices]
    assert stats["count"] == 60
    np.testing.assert_array_equal(stats["sum"], s.sum(axis=0))
    np.testing.assert_array_equal(stats["pair_sum"], (s[:, i] * s[:, j]).sum(axis=0))


def test_refuses_another_topology_and_replicas(board):
    url = board(lattice())
    other = models.ring(16, J=0.5)
    with pytest.raises(ValueError, match="board is built for topology .* couplings have"):
        pbitsim.sample(other, 10, method="board", port=url, seed=1)
    with pytest.raises(ValueError, match="holds 1 chain"):
        pbitsim.sample(lattice(), 10, method="board", port=url, replicas=2, seed=1)
    with pytest.raises(ValueError, match="needs port"):
        pbitsim.sample(lattice(), 10, method="board", seed=1)


def test_digest_mismatch_names_the_region(board, monkeypatch):
    """A board that holds other weights than asked: the digests say which region differs."""
    c = lattice()
    J, h = c.to_dense()
    other = Couplings.from_dense(J, h + 0.5, c.beta, coloring=c.coloring)  # other fields only
    import pbitsim.host.runner as runner_module

    real = runner_module.load_writes
    monkeypatch.setattr(runner_module, "load_writes", lambda c_, *a, **k: real(other, *a, **k))
    url = board(c)
    with pytest.raises(DigestMismatch, match="BIAS differ") as e:
        pbitsim.sample(c, 10, method="board", port=url, seed=1)
    assert e.value.regions == [Region.BIAS]
    # Overridden: it runs, but its samples carry no model's fingerprint.
    s = pbitsim.sample(c, 10, method="board", port=url, seed=1, verify=False)
    assert s.fingerprint.startswith("unverified-") and s.fingerprint != c.fingerprint
    with pytest.raises(pbitsim.FingerprintMismatchError):
        pbitsim.check_fingerprint(s, c)


RECOVERABLE = [
    "drop=SAMPLES#2",
    "drop=SAMPLES#1",
    "corrupt=SAMPLES#3",
    "repeat=SAMPLES#2",
    "drop=DONE#1",
    "drop=ACK#2",
    "corrupt-in=WRITE#2",
    "corrupt-in=RUN#1",
    "corrupt=IDENT_REPLY#1",
    "drop=SAMPLES#2,drop=SAMPLES#3,repeat=SAMPLES#5",
    "stall=SAMPLES#2:0.3",
]


@pytest.mark.parametrize("faults", RECOVERABLE)
def test_transient_faults_lose_and_duplicate_nothing(board, faults):
    c = lattice()
    url = board(c, max_frame=64, faults=parse_faults(faults))
    s = pbitsim.sample(c, 200, method="board", port=url, seed=3, timeout=0.2, window=2)
    np.testing.assert_array_equal(s.spins, hardware(c, 200, DEFAULT, 3))


@pytest.mark.parametrize("kind", ["reset", "disconnect"])
def test_board_reset_or_disconnect_mid_run_is_an_error_naming_the_last_cycle(board, kind):
    c = lattice()
    url = board(c, max_frame=64, faults=[Fault(kind, "SAMPLES", 4)])
    with pbitsim.open_runner(c, "board", seed=3, port=url, timeout=0.2, retries=2) as r:
        with pytest.raises(BoardFault, match="last cycle index received") as e:
            r.draw(200)
    fault = e.value
    want = hardware(c, 200, DEFAULT, 3)[0]
    got = fault.received[0]
    assert 0 < len(got) < 200
    np.testing.assert_array_equal(got, want[: len(got)])  # everything before the fault, in order
    assert fault.last_cycle == len(got) * c.n_colors


def test_a_silent_board_times_out_naming_the_command():
    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]
        held = []  # the accepted connection stays open, silent
        threading.Thread(target=lambda: held.append(server.accept()), daemon=True).start()
        with pytest.raises(BoardTimeout, match=r"no valid reply to Ident \(seq 0\) after 2 tries"):
            BoardRunner(lattice(), port=f"socket://127.0.0.1:{port}", timeout=0.1, retries=1)


def test_a_loopback_is_not_a_board():
    from pbitsim.host.client import BoardError

    with pytest.raises(BoardError, match="loopback"):
        BoardRunner(lattice(), port="loop://", timeout=0.1)


def test_bad_port():
    from pbitsim.host.link import BoardLinkError

    with pytest.raises(BoardLinkError, match="cannot open board port"):
        BoardRunner(lattice(), port="/dev/no-such-board")


def test_faults_text():
    f = parse_faults("drop=SAMPLES#3, stall=ACK#2:0.5,corrupt-in=any")
    assert [(x.kind, x.frame, x.nth, x.seconds) for x in f] == [
        ("drop", "SAMPLES", 3, 0.0),
        ("stall", "ACK", 2, 0.5),
        ("corrupt-in", "ANY", 1, 0.0),
    ]
    for bad, why in [("explode=SAMPLES", "unknown fault"), ("drop=NOPE", "unknown frame")]:
        with pytest.raises(ValueError, match=why):
            parse_faults(bad)


def test_pty(tmp_path):
    c = lattice()
    emu = Emulator(c, DEFAULT)
    got = threading.Event()
    t = threading.Thread(target=emu.serve_pty, args=(lambda path: got.set(),), daemon=True)
    t.start()
    assert got.wait(10)
    try:
        s = pbitsim.sample(c, 40, method="board", port=emu.url, seed=8, baud=115200)
        np.testing.assert_array_equal(s.spins, hardware(c, 40, DEFAULT, 8))
    finally:
        emu.stop()


def test_emulate_command(tmp_path):
    c = lattice()
    path = tmp_path / "m.pbit"
    c.save(path)
    proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "from pbitsim.cli import main; main()",
            "emulate",
            str(path),
            "--design",
            "published",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        line = proc.stdout.readline()
        url = line.split(" on ")[-1].strip()
        assert url.startswith("socket://127.0.0.1:"), line
        s = pbitsim.sample(c, 30, method="board", port=url, seed=1)
        np.testing.assert_array_equal(s.spins, hardware(c, 30, PUBLISHED, 1))
    finally:
        proc.terminate()
        proc.wait(10)


def test_emulate_command_bad_input(tmp_path):
    from click.testing import CliRunner

    from pbitsim.cli import main

    r = CliRunner().invoke(main, ["emulate", "ring:8", "--faults", "explode=SAMPLES"])
    assert r.exit_code == 2 and "unknown fault" in r.output
    r = CliRunner().invoke(main, ["emulate", "ring:8", "--port", "socket://10.1.2.3:5000"])
    assert r.exit_code == 2 and "local address" in r.output
    r = CliRunner().invoke(main, ["emulate", "ring:8", "--design", "fancy"])
    assert r.exit_code == 2 and "unknown hardware design" in r.output


def test_end_to_end_board_compare(board, monkeypatch):
    """Host -> emulator -> compare: consistent with the simulator's hardware-faithful samples
    (identical) and with the quantised model's exact distribution; a board holding other weights
    is caught by the digest check and, with the check overridden, by compare."""
    from pbitsim.diagnostics.compare import compare

    c = models.spin_glass(8, seed=3, field=0.2, beta=0.7)
    url = board(c)
    s = pbitsim.sample(c, 4000, method="board", port=url, seed=11)
    h = pbitsim.sample(c, 4000, method="hardware", seed=11)
    np.testing.assert_array_equal(s.spins, h.spins)
    assert compare(s, h, model=c).consistent
    vs_exact = compare(s, model=c, reference="quantized")
    assert vs_exact.consistent, vs_exact.text()

    J, hf = c.to_dense()
    other = Couplings.from_dense(J, hf + 0.6, c.beta, coloring=c.coloring)
    import pbitsim.host.runner as runner_module

    real = runner_module.load_writes
    monkeypatch.setattr(runner_module, "load_writes", lambda c_, *a, **k: real(other, *a, **k))
    with pytest.raises(DigestMismatch, match="BIAS"):
        pbitsim.sample(c, 10, method="board", port=url, seed=1)
    wrong = pbitsim.sample(c, 4000, method="board", port=url, seed=12, verify=False)
    with pytest.warns(UserWarning, match="compared anyway"):
        bad = compare(wrong, h, model=c, allow_mismatch=True)
    assert not bad.consistent and bad.differing, bad.text()


@pytest.mark.parametrize("streamed", [True, False])
def test_a_broken_run_keeps_what_arrived_marked_incomplete(board, tmp_path, streamed):
    """The one mechanism for interrupted runs: the states received before a board reset are
    kept, in order, and the run says it is incomplete (on disk and in memory)."""
    c = lattice()
    url = board(c, max_frame=64, faults=[Fault("reset", "SAMPLES", 6)])
    want = hardware(c, 300, DEFAULT, 5, burn_in=3)[0]
    out = tmp_path / "run" if streamed else None
    with pytest.raises(BoardFault) as e:
        pbitsim.sample(
            c, 300, method="board", port=url, seed=5, burn_in=3, out=out, chunk_draws=40,
            timeout=0.2, retries=2,
        )  # fmt: skip
    if streamed:
        kept = pbitsim.load_samples(out)
    else:
        kept = e.value.samples
    assert not kept.complete
    k = kept.spins.shape[1]
    assert 40 < k < 300  # earlier chunks and part of the broken one
    np.testing.assert_array_equal(kept.spins[0], want[:k])


def test_training_on_the_emulated_board_is_the_hardware_simulators_training(board):
    """Same seeds, the board's one chain: the final weights are equal, step for step (each step
    streams only the changed words and checks the digests)."""
    from pbitsim.learn import RBM, TrainConfig, train

    rng = np.random.default_rng(0)
    data = np.where(rng.random((120, 8)) < 0.5, 1, -1).astype(np.int8)
    data[:, 4:] = data[:, :4]
    cfg = TrainConfig(epochs=2, batch_size=40, chains=1, k=4, measure_tau_steps=20, seed=3)
    m_hw, m_board = (RBM.init(8, 3, seed=1, data=data) for _ in range(2))
    h_hw = train(m_hw, data, "hardware", cfg, progress=False)
    url = board(m_board.to_couplings())
    h_board = train(m_board, data, "board", cfg, progress=False, sampler_options={"port": url})
    np.testing.assert_array_equal(m_board.W, m_hw.W)
    np.testing.assert_array_equal(m_board.b, m_hw.b)
    assert [r.log_likelihood for r in h_board] == [r.log_likelihood for r in h_hw]
    assert np.isfinite(h_board[-1].q)  # one chain: Q across the epoch's steps


def test_train_command_learns_digits_through_the_emulator(tmp_path):
    import json

    from click.testing import CliRunner

    from pbitsim.cli import main
    from pbitsim.datasets import digits
    from pbitsim.learn import RBM

    args = ["train", "--sampler", "board", "--port", "emulate", "--data", "digits"]
    args += ["--hidden", "8", "--epochs", "3", "--out", str(tmp_path), "--no-progress"]
    r = CliRunner().invoke(main, args)
    assert r.exit_code == 0, r.output
    history = json.loads((tmp_path / "history.json").read_text())["epochs"]
    data = digits()[0]
    start = RBM.init(data.shape[1], 8, seed=0, data=data).log_likelihood(data)
    lls = [h["log_likelihood"] for h in history]  # exact, nats per example
    assert lls[-1] > start and lls[-1] > lls[0], (start, lls)
    r = CliRunner().invoke(main, ["train", "--sampler", "board", "--epochs", "1"])
    assert r.exit_code == 2 and "needs --port" in r.output
    r = CliRunner().invoke(main, ["train", "--port", "emulate", "--epochs", "1"])
    assert r.exit_code == 2 and "--sampler board only" in r.output


def test_demo_against_a_board_on_a_port(board, tmp_path):
    """`pbitsim demo --port URL` runs the same loop against a board someone else serves."""
    from click.testing import CliRunner

    from pbitsim.cli import main
    from pbitsim.cli.demo import DEMO_SPEC

    url = board(models.from_spec(DEMO_SPEC), DEFAULT, max_frame=200)
    args = ["demo", "--sweeps", "800", "--replicas", "4", "--port", url, "--board-sweeps", "4000"]
    args += ["--out", str(tmp_path / "d.png"), "--report", str(tmp_path / "d.html")]
    r = CliRunner().invoke(main, args)
    assert f"board on {url}" in r.output, r.output
    assert "bit-identical to the hardware-faithful simulator" in r.output
