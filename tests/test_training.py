"""Real (tiny) training runs: accuracy against the linear approximation, save/load, a SIGKILLed
run resuming, two-process DDP, and the errors a damaged model directory gives."""

from __future__ import annotations

import json
import signal
import tomllib
from pathlib import Path

import pytest
import torch

import neuralinv as ni
from helpers import kill, neuralinv, python, start_neuralinv, wait_for
from neuralinv.errors import InputError
from neuralinv.learned import ModelConfig, TrainConfig
from neuralinv.learned.checkpoint import load_state
from neuralinv.learned.config import config_from_options
from neuralinv.learned.data import linear_approximation_mae, validation_sample
from neuralinv.learned.loop import evaluate

pytestmark = pytest.mark.usefixtures("one_thread")


def _tiny(**kw) -> TrainConfig:
    base = dict(steps=60, batch_size=64, val_every=20, val_size=256,
                model=ModelConfig(arch="mlp", depth=2, width=16))
    base.update(kw)
    return TrainConfig(**base)


def test_seconds_of_training_on_a_ball_beat_the_linear_approximation():
    cfg = TrainConfig(steps=1500, batch_size=128, val_every=250, val_size=2048, seed=0)
    model = ni.train(cfg)
    A, X = validation_sample(cfg)
    linear = linear_approximation_mae(cfg, A, X)
    # A held-out sample, not the validation set the best checkpoint was chosen on.
    g = torch.Generator().manual_seed(123)
    A_test = cfg.region.sample(4096, generator=g)
    X_test = torch.linalg.inv(A_test)
    mae = float((model.predict(A_test) - X_test).abs().mean())
    linear_test = linear_approximation_mae(cfg, A_test, X_test)
    assert mae < linear_test, (mae, linear_test)
    assert ni.certify.contracts(A_test, model.predict(A_test)).all()
    assert model.metrics["validation"]["linear_approximation_mae"] == pytest.approx(linear)


@pytest.mark.parametrize("loss", ["identity", "both"])
def test_identity_and_both_losses_learn(loss):
    cfg = _tiny(loss=loss, steps=600, val_every=100)
    A, X = validation_sample(cfg)
    from neuralinv.learned.loop import new_member

    before = evaluate(new_member(cfg, 0), A, X)["mae"]
    after = ni.train(cfg).metrics["members"][0]["best"]["val_mae"]
    assert after < 0.6 * before


def test_save_load_gives_identical_predictions(tmp_path):
    cfg = _tiny(ensemble=2, model=ModelConfig(arch="dense_resnet", width=8, blocks=1))
    model = ni.train(cfg, out=tmp_path / "m")
    assert {p.name for p in (tmp_path / "m").iterdir()} >= {
        "config.toml", "member-0.safetensors", "member-1.safetensors", "metrics.json", "runs"}
    loaded = ni.LearnedInverse.load(tmp_path / "m")
    assert loaded.config == cfg and len(loaded.members) == 2
    A = cfg.region.sample(50, generator=torch.Generator().manual_seed(3))
    for dtype in (torch.float64, torch.float32):
        x1, x2 = model.predict(A.to(dtype)), loaded.predict(A.to(dtype))
        assert x1.dtype == dtype and torch.equal(x1, x2)  # bitwise: weights round-tripped, same call
    # The ensemble mean is the mean of its members.
    each = torch.stack([m(A.float()) for m in loaded.members]).mean(0)
    torch.testing.assert_close(loaded.predict(A.float()), each)
    # save() of a loaded model reproduces it too.
    loaded.save(tmp_path / "copy")
    # bitwise: a file round trip; predict casts to the members' float32 and back, as for x1
    assert torch.equal(ni.LearnedInverse.load(tmp_path / "copy").predict(A), x1.double())


def test_correction_model_round_trips(tmp_path):
    cfg = _tiny(model=ModelConfig(arch="correction", width=8))
    model = ni.train(cfg, out=tmp_path)
    A = cfg.region.sample(20, generator=torch.Generator().manual_seed(4))
    assert torch.equal(model.predict(A), ni.LearnedInverse.load(tmp_path).predict(A))  # bitwise: round trip


def _train_cmd(out: Path, *extra: str) -> list[str]:
    return ["train", "--steps", "600", "--batch-size", "32", "--width", "16", "--val-every", "20",
            "--out", str(out), *extra]


def test_sigkilled_training_resumes_and_matches_an_uninterrupted_run(tmp_path):
    killed, clean = tmp_path / "killed", tmp_path / "clean"
    proc, _ = start_neuralinv(*_train_cmd(killed), cwd=tmp_path)
    state_file = killed / "training-state.pt"
    wait_for(proc, state_file.exists)
    kill(proc, signal.SIGKILL)
    stopped_at = load_state(state_file)["step"]
    assert 20 <= stopped_at < 600  # killed after its first checkpoint, before the end

    resumed = neuralinv(*_train_cmd(killed))
    assert resumed.returncode == 0, resumed.stderr
    assert f"from step {stopped_at}" in resumed.stdout
    metrics = json.loads((killed / "metrics.json").read_text())
    assert metrics["resumed_from"] == [{"member": 0, "step": stopped_at}]
    steps = [h["step"] for h in metrics["members"][0]["history"]]
    assert steps == list(range(20, 601, 20))  # the count continued: no gap, no repeat
    final = load_state(state_file)
    assert final["finished"] and final["step"] == 600

    # Optimizer, scheduler and sampler state were all restored: the result is bit-identical.
    assert neuralinv(*_train_cmd(clean)).returncode == 0
    assert (killed / "member-0.safetensors").read_bytes() == (clean / "member-0.safetensors").read_bytes()


def test_torchrun_two_processes_agree_on_the_weights(tmp_path):
    out = tmp_path / "ddp"
    run = python("-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
                 "-m", "neuralinv", "train", "--steps", "40", "--batch-size", "32", "--width", "16",
                 "--val-every", "20", "--out", out)
    assert run.returncode == 0, run.stderr[-3000:]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["world_size"] == 2
    (digests,) = metrics["rank_digests"]
    assert len(digests) == 2 and digests[0] == digests[1]
    ni.LearnedInverse.load(out)  # rank 0 wrote a complete directory


def test_corrupt_safetensors_names_the_file(tmp_path):
    ni.train(_tiny(steps=20), out=tmp_path)
    bad = tmp_path / "member-0.safetensors"
    bad.write_bytes(bad.read_bytes()[:40])
    with pytest.raises(InputError, match=r"member-0\.safetensors"):
        ni.LearnedInverse.load(tmp_path)
    bad.unlink()
    with pytest.raises(InputError, match=r"member-0\.safetensors: missing"):
        ni.LearnedInverse.load(tmp_path)


def test_config_of_the_wrong_size_names_the_files(tmp_path):
    ni.train(_tiny(steps=20), out=tmp_path)
    cfg4 = TrainConfig.load(tmp_path / "config.toml").override(n=4)
    (tmp_path / "config.toml").write_text(cfg4.to_toml())
    with pytest.raises(InputError, match=r"member-0\.safetensors.*config\.toml") as err:
        ni.LearnedInverse.load(tmp_path)
    assert "shape" in str(err.value)


def test_damaged_config_and_metrics_name_the_file(tmp_path):
    ni.train(_tiny(steps=20), out=tmp_path)
    (tmp_path / "metrics.json").write_text("{not json")
    with pytest.raises(InputError, match=r"metrics\.json"):
        ni.LearnedInverse.load(tmp_path)
    (tmp_path / "config.toml").write_text("n = [\n")
    with pytest.raises(InputError, match=r"config\.toml: not valid TOML"):
        ni.LearnedInverse.load(tmp_path)
    (tmp_path / "config.toml").write_text("n = 3\nfoo = 1\n")
    with pytest.raises(InputError, match=r"config\.toml: unknown key\(s\): foo"):
        ni.LearnedInverse.load(tmp_path)
    with pytest.raises(InputError, match="no such model directory"):
        ni.LearnedInverse.load(tmp_path / "nope")


def test_resuming_with_other_settings_is_refused(tmp_path):
    cfg = _tiny(steps=20)
    ni.train(cfg, out=tmp_path)
    state = tmp_path / "training-state.pt"
    assert state.exists()
    with pytest.raises(InputError, match=r"config\.toml.*lr"):
        ni.train(cfg.override(lr=0.5), out=tmp_path)
    ni.train(cfg.override(lr=0.5), out=tmp_path, resume=False)  # --no-resume starts afresh
    assert TrainConfig.load(tmp_path / "config.toml").lr == 0.5


def test_finished_run_resumes_to_the_same_model_without_training(tmp_path):
    cfg = _tiny(steps=40, schedule="one_cycle", optimizer="adamw")
    first = ni.train(cfg, out=tmp_path)
    again = ni.train(cfg, out=tmp_path)
    A = cfg.region.sample(10, generator=torch.Generator().manual_seed(5))
    assert torch.equal(first.predict(A), again.predict(A))  # bitwise: the saved model, reloaded


def test_toml_round_trip_and_cli_style_overrides(tmp_path):
    cfg = TrainConfig(region=ni.Box(3, -1, 1, min_abs_det=0.1), loss="both", lr=3e-4,
                      model=ModelConfig(arch="dense_resnet", width=32, blocks=3))
    text = cfg.to_toml()
    assert TrainConfig.from_dict(tomllib.loads(text)) == cfg
    path = tmp_path / "c.toml"
    path.write_text(text)
    over = config_from_options(TrainConfig.load(path), steps=10, width=8, min_abs_det=0.2)
    assert (over.steps, over.model.width, over.model.blocks) == (10, 8, 3)
    assert over.region == ni.Box(3, -1, 1, min_abs_det=0.2)
    ball = config_from_options(None, size=4, region="ball", radius=0.05)
    assert ball.region.n == 4 and ball.region.radius == 0.05
    assert torch.equal(ball.region.center, ni.Ball.default(4).center)  # bitwise: same constructor
    with pytest.raises(InputError, match="correction"):
        config_from_options(None, region="box", arch="correction")
    with pytest.raises(InputError, match="--center"):
        config_from_options(None, region="box", radius=0.1)


def test_cli_reports_bad_settings(tmp_path):
    run = neuralinv("train", "--loss", "l1", "--out", tmp_path)
    assert run.returncode == 2 and "loss must be one of" in run.stderr


def test_builtin_ball3_meets_the_accuracy_targets_offline():
    model = ni.LearnedInverse.load("builtin:ball3")
    assert model.region == ni.Ball.default(3) and len(model.members) == 3
    A = model.region.sample(4096, generator=torch.Generator().manual_seed(77))
    X = torch.linalg.inv(A)
    guess = model.predict(A)
    mae = float((guess - X).abs().mean())
    linear = linear_approximation_mae(model.config, A, X)
    # Issue 4's target for the pure network. The shipped weights are fixed, so only predict's
    # float32 rounding varies by CPU (relative ~1e-6 of an mae); measured 0.013 * linear, 7x
    # inside the target.
    assert mae <= 0.1 * linear, (mae, linear)
    assert ni.certify.contracts(A, guess).all()  # ... and every guess contracts
    size = sum(p.stat().st_size for p in Path(ni.learned.inverse._resolve("builtin:ball3")).iterdir())
    assert size < 500_000
    with pytest.raises(InputError, match="unknown built-in model 'builtin:nope'"):
        ni.LearnedInverse.load("builtin:nope")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_training_on_cuda(tmp_path):
    cfg = _tiny(device="cuda")
    model = ni.train(cfg, out=tmp_path)
    A = cfg.region.sample(8, generator=torch.Generator().manual_seed(6)).cuda()
    X = model.predict(A)
    assert X.is_cuda and X.shape == (8, 3, 3)
    loaded = ni.LearnedInverse.load(tmp_path)  # on the CPU: predict never moves it itself
    with pytest.raises(InputError, match="A is on cuda:0 but the model is on cpu"):
        loaded.predict(A)
    assert torch.equal(loaded.to("cuda").predict(A), X)  # bitwise: round trip, same call on the same GPU
