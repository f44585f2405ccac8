"""Model directories stay self-consistent: interrupted (re-)training, mixed files, damaged
training states and absurd configs give a warning or an InputError that says what happened."""

from __future__ import annotations

import re
import shutil
import signal
from pathlib import Path

import pytest
import torch

import neuralinv as ni
from helpers import kill, neuralinv, start_neuralinv, wait_for
from neuralinv import PartialModelWarning
from neuralinv.errors import InputError
from neuralinv.learned import ModelConfig, TrainConfig
from neuralinv.learned.inverse import MAX_MEMBER_NUMBERS

pytestmark = pytest.mark.usefixtures("one_thread")


def _tiny(**kw) -> TrainConfig:
    base = dict(steps=40, batch_size=16, val_every=20, val_size=64, tensorboard=False,
                model=ModelConfig(arch="mlp", depth=2, width=8))
    base.update(kw)
    return TrainConfig(**base)


def _train_until(out: Path, point: str, *flags: str) -> None:
    """Run ``neuralinv train`` as a subprocess and SIGKILL it at the pause point ``point``."""
    proc, marker = start_neuralinv("train", "--steps", "200", "--batch-size", "16", "--width", "8",
                                   "--val-every", "20", "--out", out, *flags, cwd=out.parent,
                                   pause=point)
    wait_for(proc, marker.exists)
    kill(proc, signal.SIGKILL)


def test_killed_no_resume_retraining_is_not_loaded_as_a_finished_model(tmp_path):
    out = tmp_path / "model"
    first = neuralinv("train", "--steps", "40", "--batch-size", "16", "--width", "8",
                      "--val-every", "20", "--out", out)
    assert first.returncode == 0, first.stderr
    ni.LearnedInverse.load(out)  # the first model is complete
    # Retrain with other settings, killed as it writes its second checkpoint: the new config and a
    # half-trained member-0 sit where the old model was.
    _train_until(out, "commit:training-state.pt#2", "--no-resume", "--lr", "0.01")
    with pytest.warns(PartialModelWarning, match=r"interrupted.*neuralinv train --config .*--out"):
        partial = ni.LearnedInverse.load(out)
    assert partial.metrics["partial"] is True
    assert partial.config.lr == 0.01
    assert "val_mae" in partial.metrics["members"][0]["history"][0]
    # The command the warning names resumes and finishes it; it then loads without a warning.
    resumed = neuralinv("train", "--config", out / "config.toml", "--out", out)
    assert resumed.returncode == 0, resumed.stderr
    assert "resumed member 1 from step 20" in " ".join(resumed.stdout.split())
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        done = ni.LearnedInverse.load(out)
    assert "partial" not in done.metrics and done.config.lr == 0.01


def test_interrupted_ensemble_says_how_to_finish(tmp_path):
    out = tmp_path / "model"
    _train_until(out, "commit:training-state.pt#2", "--ensemble", "2")
    with pytest.raises(InputError, match=r"member-1\.safetensors had weights; finish it with "
                                         r"`neuralinv train --config"):
        ni.LearnedInverse.load(out)


def test_files_mixed_from_two_models_refuse_to_load(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    ni.train(_tiny(), out=a)
    ni.train(_tiny(seed=1), out=b)  # same architecture, other weights
    shutil.copy(b / "member-0.safetensors", a / "member-0.safetensors")
    with pytest.raises(InputError, match=r"member-0\.safetensors: does not match .*manifest\.json"):
        ni.LearnedInverse.load(a)


def test_save_killed_half_way_refuses_to_load(tmp_path):
    model = ni.train(_tiny())
    model.save(tmp_path)
    # What a save killed after its first file leaves: manifest "writing".
    (tmp_path / "manifest.json").write_text('{"schema": "neuralinv.model/1", "state": "writing"}')
    with pytest.raises(InputError, match="being written here when it was interrupted"):
        ni.LearnedInverse.load(tmp_path)
    model.save(tmp_path)
    ni.LearnedInverse.load(tmp_path)


def _finished_run(tmp_path) -> tuple[TrainConfig, Path, dict]:
    cfg = _tiny()
    ni.train(cfg, out=tmp_path)
    state = torch.load(tmp_path / "training-state.pt", weights_only=True)
    return cfg, tmp_path / "training-state.pt", state


def _mid_run(state: dict) -> dict:
    """A finished state turned back into one mid-way through member 0 (what a resume reads)."""
    return {**state, "finished": False, "member": 0, "step": 20,
            "model": state["best"][0], "optimizer": {"state": {}, "param_groups": []},
            "scheduler": {}, "rng": [torch.Generator().get_state()]}


@pytest.mark.parametrize(
    "damage, phrase",
    [
        (lambda s: {k: v for k, v in s.items() if k != "best"}, "no 'best'"),
        (lambda s: {**s, "step": "20"}, "'step' is a str"),
        (lambda s: {**s, "history": {"a": 1}}, "'history' is a dict"),
        (lambda s: {**_mid_run(s), "rng": [torch.zeros(3)]}, "'rng' must be a list of uint8"),
        (lambda s: {**_mid_run(s), "rng": [torch.zeros(3, dtype=torch.uint8)]}, "RNG state cannot be restored"),
        (lambda s: {**_mid_run(s), "optimizer": {"state": {}, "param_groups": [{"junk": 1}]}},
         "optimizer, scheduler or RNG state cannot be restored"),
        (lambda s: [1, 2], "a list, expected a dict"),
    ],
    ids=["no-best", "step-str", "history-dict", "rng-dtype", "rng-junk", "optimizer-junk", "not-dict"],
)
def test_malformed_training_states_name_the_file(tmp_path, damage, phrase):
    cfg, path, state = _finished_run(tmp_path)
    torch.save(damage(state), path)
    with pytest.raises(InputError, match=r"training-state\.pt: .*" + phrase.replace("(", r"\(")):
        ni.train(cfg, out=tmp_path)


def test_absurd_config_is_refused_before_building_the_networks(tmp_path, monkeypatch):
    ni.train(_tiny(), out=tmp_path)
    config = tmp_path / "config.toml"
    text = config.read_text()
    def no_build(cfg):
        raise AssertionError(f"built a network of width {cfg.model.width}")

    monkeypatch.setattr(TrainConfig, "skeleton", no_build)
    config.write_text(text.replace("width = 8", "width = 1000000000"))
    with pytest.raises(InputError, match=r"config\.toml: .*width 1000000000.*limit of " + re.escape(f"{MAX_MEMBER_NUMBERS:.3g}")):
        ni.LearnedInverse.load(tmp_path)
    # A size that is allowed but is not what the weights hold: refused from the header.
    config.write_text(text.replace("width = 8", "width = 9"))
    with pytest.raises(InputError, match=r"member-0\.safetensors: holds 181 numbers .*config\.toml needs 200"):
        ni.LearnedInverse.load(tmp_path)
