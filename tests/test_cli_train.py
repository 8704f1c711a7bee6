import json

from click.testing import CliRunner

from pbitsim.cli import main


def test_train_cli_writes_history_and_figures(tmp_path):
    out = tmp_path / "run"
    r = CliRunner().invoke(
        main,
        [
            "train",
            "--data",
            "digits:0,1",
            "--hidden",
            "6",
            "--epochs",
            "2",
            "--chains",
            "16",
            "--out",
            str(out),
            "--no-progress",
        ],
    )
    assert r.exit_code == 0, r.output
    assert "log-lik" in r.output
    hist = json.loads((out / "history.json").read_text())
    assert [e["epoch"] for e in hist["epochs"]] == [1, 2]
    assert hist["epochs"][1]["log_likelihood"] > hist["epochs"][0]["log_likelihood"] - 1.0
    for name in ("samples.png", "curves.png", "model.npz"):
        assert (out / name).stat().st_size > 1000


def test_train_cli_rejects_unknown_sampler_and_data(tmp_path):
    r = CliRunner().invoke(main, ["train", "--sampler", "quantum", "--out", str(tmp_path)])
    assert r.exit_code != 0 and "unknown sampler" in r.output
    r = CliRunner().invoke(main, ["train", "--data", "cifar", "--out", str(tmp_path)])
    assert r.exit_code != 0 and "digits" in r.output
