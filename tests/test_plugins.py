"""Plug-ins through entry points: sampling methods (``pbitsim.methods``) and subcommands
(``pbitsim.commands``), installed for real as a distribution on sys.path (a ``.dist-info`` folder),
not by patching the registry."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from click.testing import CliRunner

import pbitsim
from pbitsim import models, sampling
from pbitsim.cli import main

PLUGIN = '''
"""A test plug-in: independent spins, p(+1) = (1 + tanh(beta (h_i + bias))) / 2."""

import click
import numpy as np

from pbitsim.sampling import Runner

CONSTRUCTED = []


class PluginRunner(Runner):
    step_unit = "independent draw"

    def __init__(self, couplings, replicas=1, seed=None, bias=0.0):
        super().__init__(couplings, replicas, seed)
        CONSTRUCTED.append(self)
        self.bias = float(bias)
        self.settings = {"bias": self.bias}
        self._rng = np.random.default_rng(seed)
        self.loads = 0
        self.state = None

    def _p(self):
        return (1 + np.tanh(self.couplings.beta * (self.couplings.h + self.bias))) / 2

    def advance(self, sweeps):
        self._rng.random((self.replicas, sweeps, self.couplings.n))

    def draw(self, k, thin=1):
        u = self._rng.random((self.replicas, k * thin, self.couplings.n))
        return np.where(u < self._p(), 1, -1).astype(np.int8)[:, thin - 1 :: thin]

    def _load(self, couplings):
        self.loads += 1

    def _set_state(self, spins):
        self.state = spins


@click.command()
@click.option("--name", default="world")
def hello(name):
    """Say hello from a plug-in."""
    click.echo(f"hello {name}")
'''

BROKEN = """
import a_dependency_that_is_not_installed  # noqa: F401
"""

ENTRY_POINTS = """\
[pbitsim.methods]
test-plugin = pbitsim_testplugin:PluginRunner
not-a-runner = pbitsim_testplugin:hello
chromatic = pbitsim_testplugin:PluginRunner

[pbitsim.commands]
hello = pbitsim_testplugin:hello
not-a-command = pbitsim_testplugin:PluginRunner
"""

BROKEN_ENTRY_POINTS = """\
[pbitsim.methods]
broken = pbitsim_brokenplugin:BrokenRunner

[pbitsim.commands]
broken-cmd = pbitsim_brokenplugin:cmd
"""

MODULES = ("pbitsim_testplugin", "pbitsim_brokenplugin")
NAMES = ("test-plugin", "not-a-runner", "broken")


def _install(root, dist, module, source, entry_points):
    (root / f"{module}.py").write_text(textwrap.dedent(source))
    info = root / f"{dist}-0.1.dist-info"
    info.mkdir()
    name = dist.replace("_", "-")
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(entry_points)


def _forget():
    for m in MODULES:
        sys.modules.pop(m, None)
    for name in NAMES:
        sampling._METHODS.pop(name, None)
    importlib.invalidate_caches()


@pytest.fixture
def plugins(tmp_path, monkeypatch):
    """Two distributions on sys.path: a working plug-in and one whose import fails."""
    _install(tmp_path, "pbitsim_testplugin", "pbitsim_testplugin", PLUGIN, ENTRY_POINTS)
    _install(tmp_path, "pbitsim_brokenplugin", "pbitsim_brokenplugin", BROKEN, BROKEN_ENTRY_POINTS)
    _forget()
    monkeypatch.syspath_prepend(str(tmp_path))  # also invalidates the import caches
    yield tmp_path
    _forget()


@pytest.fixture(scope="module")
def model():
    return models.spin_glass(6, p=0.5, seed=1, field=0.5, beta=0.9)


def test_plugin_method_is_listed_without_being_imported(plugins):
    names = pbitsim.methods()
    assert {"test-plugin", "broken", "chromatic"} <= set(names)
    assert names.count("chromatic") == 1
    assert "pbitsim_testplugin" not in sys.modules
    assert "pbitsim_brokenplugin" not in sys.modules


def test_sample_with_a_plugin_method(plugins, model):
    s = pbitsim.sample(model, 10, method="test-plugin", replicas=2, seed=4, bias=0.1)
    assert s.method == "test-plugin" and s.seed == 4
    assert s.spins.shape == (2, 10, model.n)
    assert s.settings["step_unit"] == "independent draw"
    assert s.settings["options"] == {"bias": 0.1} and s.settings["runner"] == {"bias": 0.1}
    assert s.fingerprint == model.fingerprint
    plugin = sys.modules["pbitsim_testplugin"]
    cls = sampling.get_method("test-plugin")
    assert cls is plugin.PluginRunner and cls.method_name == "test-plugin"
    assert plugin.CONSTRUCTED[-1].closed  # sample() closed the runner it opened
    again = pbitsim.sample(model, 10, method="test-plugin", replicas=2, seed=4, bias=0.1)
    np.testing.assert_array_equal(again.spins, s.spins)
    with pytest.raises(ValueError, match="no option.*frobnicate.*bias"):
        pbitsim.sample(model, 10, method="test-plugin", frobnicate=1)


def test_plugin_runner_life_cycle(plugins, model):
    with pbitsim.open_runner(model, "test-plugin", replicas=3, seed=1) as r:
        assert r.properties["method"] == "test-plugin" and r.properties["design"] is None
        r.load(model.with_beta(0.5))
        s = pbitsim.sample(model.with_beta(0.5), 4, method=r)
        assert s.method == "test-plugin" and r.loads == 1
    assert r.closed


def test_plugin_draws_follow_its_rule(plugins, model):
    s = pbitsim.sample(model, 4000, method="test-plugin", replicas=2, seed=2)
    expect = np.tanh(model.beta * model.h)
    np.testing.assert_allclose(s.spins.mean(axis=(0, 1)), expect, atol=0.05)


def test_training_with_a_plugin_opens_one_runner(plugins):
    from pbitsim.learn import RBM, TrainConfig, train

    rng = np.random.default_rng(0)
    data = np.where(rng.random((200, 6)) < 0.7, 1, -1).astype(np.int8)
    model = RBM.init(6, 2, seed=0, data=data)
    cfg = TrainConfig(epochs=3, batch_size=100, chains=4, k=2, measure_tau_steps=10)
    history = train(model, data, "test-plugin", cfg, progress=False)
    built = sys.modules["pbitsim_testplugin"].CONSTRUCTED
    assert len(built) == 1
    (runner,) = built
    steps = cfg.epochs * (len(data) // cfg.batch_size)
    assert steps >= 5 and runner.loads == steps + cfg.epochs
    assert runner.state is not None and runner.state.shape == (4, model.n) and runner.closed
    assert [r.sampler for r in history] == ["test-plugin"] * 3


def test_failing_plugin_import_names_method_entry_point_and_error(plugins, model):
    with pytest.raises(ImportError) as e:
        pbitsim.sample(model, 10, method="broken")
    msg = str(e.value)
    assert "'broken'" in msg and "pbitsim_brokenplugin:BrokenRunner" in msg
    assert "a_dependency_that_is_not_installed" in msg and "ModuleNotFoundError" in msg
    assert "broken" in pbitsim.methods()  # still listed (it is installed)


def test_plugin_that_is_not_a_runner(plugins, model):
    with pytest.raises(TypeError, match="not-a-runner.*Runner subclass"):
        pbitsim.sample(model, 10, method="not-a-runner")


def test_builtin_method_wins_over_a_plugin_of_the_same_name(plugins, model):
    from pbitsim.sim.gibbs import ChromaticRunner

    assert sampling.get_method("chromatic") is ChromaticRunner
    assert pbitsim.sample(model, 2, seed=1).method == "chromatic"


def test_unknown_method_lists_plugins(plugins, model):
    with pytest.raises(ValueError, match="available: .*test-plugin"):
        pbitsim.sample(model, 10, method="nope")


def test_plugin_command_runs(plugins):
    r = CliRunner().invoke(main, ["hello", "--name", "p-bits"])
    assert r.exit_code == 0, r.output
    assert r.output == "hello p-bits\n"
    r = CliRunner().invoke(main, ["hello", "--help"])
    assert r.exit_code == 0 and "Say hello from a plug-in" in r.output


def test_help_lists_plugin_commands_without_importing_them(plugins):
    r = CliRunner().invoke(main, ["--help"])
    assert r.exit_code == 0, r.output
    assert "hello" in r.output and "pbitsim_testplugin:hello" in r.output
    assert "broken-cmd" in r.output and "sample" in r.output
    assert "pbitsim_testplugin" not in sys.modules
    assert "pbitsim_brokenplugin" not in sys.modules


def test_failing_plugin_command_is_a_clean_error(plugins):
    r = CliRunner().invoke(main, ["broken-cmd"])
    assert r.exit_code != 0
    assert "broken-cmd" in r.output and "pbitsim_brokenplugin:cmd" in r.output
    assert "a_dependency_that_is_not_installed" in r.output
    r = CliRunner().invoke(main, ["not-a-command"])
    assert r.exit_code != 0 and "not a click command" in r.output


def test_import_pbitsim_imports_no_plugin(plugins):
    """Neither importing pbitsim nor listing methods imports a plug-in (nor host/firmware)."""
    code = (
        "import sys, pbitsim\n"
        "names = pbitsim.methods()\n"
        "assert 'test-plugin' in names, names\n"
        "bad = [m for m in sys.modules if m.startswith(('pbitsim_', 'pbitsim.host', "
        "'pbitsim.firmware', 'serial'))]\n"
        "assert not bad, bad\n"
        "print('ok')\n"
    )
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(plugins), *sys.path]))
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300
    )
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr
