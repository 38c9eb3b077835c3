"""No NaN escapes training: a non-finite loss (from the method or from a poisoned batch) or gradient either
stops the run with a FloatingPointError naming epoch/step/batch ('raise') or skips and counts the step
without touching the weights or the BatchNorm statistics ('skip'); RLE's loss stays finite on extreme inputs."""
import json

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from posekit.codecs import RLELoss
from posekit.data.dataset import TopDownDataset
from posekit.data.synth import generate_dataset
from posekit.checkpoint import load_checkpoint
from posekit.engine.trainer import TrainConfig, Trainer
from posekit.methods import build_trainer
from posekit.training.seeding import epoch_indices
from posekit.losses import check_finite

SEED, BATCH, NUM_IMAGES = 5, 8, 24
STEPS_PER_EPOCH = NUM_IMAGES // BATCH


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory):
    return generate_dataset(tmp_path_factory.mktemp("synth"), NUM_IMAGES, style="flat", skeleton="lsp", seed=1,
                            size=(64, 64))


def config(out, ann, **overrides) -> TrainConfig:
    base = dict(train=f"coco:{ann}", out=str(out), model="simplebaseline_r18",
                model_kwargs={"width": 0.25, "deconv_channels": 32}, input_size=(64, 64), epochs=2, batch_size=BATCH,
                lr=1e-3, warmup_iters=2, workers=0, seed=SEED, progress=False)
    return TrainConfig(**(base | overrides))


def non_finite_tensors(state: dict) -> list[str]:
    return [name for name, t in state.items() if t.is_floating_point() and not torch.isfinite(t).all()]


def nan_loss_on_calls(trainer: Trainer, calls_with_nan: set[int]) -> list[list[int]]:
    """Wrap the method's training_step: calls (0-based) in ``calls_with_nan`` return a NaN loss that still
    has a graph. Returns the list of every call's batch indices."""
    real_step = trainer.method.training_step
    seen: list[list[int]] = []

    def step(batch, progress):
        logs = real_step(batch, progress)
        if len(seen) in calls_with_nan:
            logs = dict(logs, loss=logs["loss"] * float("nan"))
        seen.append(batch["index"].tolist())
        return logs

    trainer.method.training_step = step
    return seen


def poison_batches(monkeypatch, poisoned) -> None:
    """Make ``TopDownDataset.batch`` (what the trainer loads) put a NaN pixel into the image of every sample index
    for which ``poisoned(dataset, index)`` is true."""
    real_batch = TopDownDataset.batch

    def batch(self, indices, profile=None):
        out = real_batch(self, indices, profile)
        for row, index in enumerate(out["index"].tolist()):
            if poisoned(self, index):
                out["image"][row, 0, 10, 10] = float("nan")
        return out

    monkeypatch.setattr(TopDownDataset, "batch", batch)


def nan_gradient_on_call(trainer: Trainer, call: int) -> None:
    """On one call, add sqrt(|w - w|) to the loss: its value is exactly 0 (the loss stays finite) but its
    gradient is inf * 0 = NaN for the first weight tensor."""
    real_step = trainer.method.training_step
    counter = [0]

    def step(batch, progress):
        logs = real_step(batch, progress)
        if counter[0] == call:
            weight = next(trainer.model.parameters())
            logs = dict(logs, loss=logs["loss"] + torch.sqrt((weight - weight.detach()).abs().sum()))
            assert torch.isfinite(logs["loss"])
        counter[0] += 1
        return logs

    trainer.method.training_step = step


# -- 'raise' ---------------------------------------------------------------------------------------------
def test_nan_loss_raises_naming_epoch_step_and_batch(tmp_path, tiny_data):
    trainer = build_trainer(config(tmp_path, tiny_data))
    batches = nan_loss_on_calls(trainer, {STEPS_PER_EPOCH + 1})  # epoch 2, its second step
    with pytest.raises(FloatingPointError) as info:
        trainer.fit()
    message = str(info.value)
    assert "non-finite loss" in message and f"epoch 2, step {STEPS_PER_EPOCH + 1}" in message
    assert str(batches[-1][:8]) in message  # the samples of the offending batch
    assert not non_finite_tensors(trainer.model.state_dict())  # the NaN never reached the weights
    assert load_checkpoint(tmp_path / "last.pt")["epoch"] == 1  # the last good checkpoint stays
    assert not (tmp_path / "model.pt").exists()


def test_nan_pixel_in_a_batch_raises_at_its_step(tmp_path, tiny_data, monkeypatch):
    poisoned_index = 5
    poison_batches(monkeypatch, lambda dataset, index: index == poisoned_index)
    order = epoch_indices(NUM_IMAGES, SEED, 0, 0, 1)
    expected_step = order.index(poisoned_index) // BATCH  # where index 5 lands in epoch 1's shuffle
    with pytest.raises(FloatingPointError) as info:
        build_trainer(config(tmp_path, tiny_data)).fit()
    batch = order[expected_step * BATCH:(expected_step + 1) * BATCH]
    assert f"epoch 1, step {expected_step}, samples {batch}" in str(info.value)


def test_check_finite_names_the_place():
    assert check_finite(torch.tensor(1.5), where="here") == 1.5
    for bad in (float("nan"), float("inf"), -float("inf")):
        with pytest.raises(FloatingPointError, match="non-finite loss at epoch 3, step 7"):
            check_finite(torch.tensor(bad), where="epoch 3, step 7")


# -- 'skip' ----------------------------------------------------------------------------------------------
def test_skip_policy_skips_and_counts_one_bad_step(tmp_path, tiny_data):
    # one of 6 steps is a 17 % share: allowed here, above the default budget of 5 % (test_round_two)
    trainer = build_trainer(config(tmp_path, tiny_data, nan_policy="skip", max_skipped_share=0.2))
    nan_loss_on_calls(trainer, {1})
    trainer.fit()
    assert trainer.skipped_nonfinite == 1 and trainer.step == 2 * STEPS_PER_EPOCH
    records = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert records[0]["skipped_nonfinite"] == 1 and np.isfinite(records[0]["loss"])
    assert not non_finite_tensors(load_checkpoint(tmp_path / "model.pt")["model"])


def test_skip_policy_with_every_step_bad_leaves_the_weights_untouched(tmp_path, tiny_data):
    # a budget of every step: the run goes to its end (the default budget stops it, test_round_two)
    trainer = build_trainer(config(tmp_path, tiny_data, nan_policy="skip", epochs=1, max_skipped_share=1.0))
    before = {k: v.clone() for k, v in trainer.model.state_dict().items() if "running" not in k and "num_batches" not in k}
    nan_loss_on_calls(trainer, set(range(100)))
    trainer.fit()
    assert trainer.skipped_nonfinite == STEPS_PER_EPOCH
    after = trainer.model.state_dict()
    for name, value in before.items():
        assert torch.equal(value, after[name]), name


def test_skipped_nan_batch_does_not_poison_batchnorm_statistics(tmp_path, tiny_data, monkeypatch):
    """A NaN pixel runs through the forward pass before the loss is checked; in train mode BatchNorm has
    then already folded NaN into its running mean/var. Skipping the step must undo that too."""
    poison_batches(monkeypatch, lambda dataset, index: index == 5 and dataset.epoch == 0)
    trainer = build_trainer(config(tmp_path, tiny_data, nan_policy="skip", max_skipped_share=0.2))
    trainer.fit()
    assert trainer.skipped_nonfinite == 1
    assert non_finite_tensors(load_checkpoint(tmp_path / "model.pt")["model"]) == []


@pytest.mark.parametrize("policy", ["raise", "skip"])
def test_finite_loss_with_nan_gradient_does_not_reach_the_weights(tmp_path, tiny_data, policy):
    trainer = build_trainer(config(tmp_path, tiny_data, nan_policy=policy, max_skipped_share=0.2))
    nan_gradient_on_call(trainer, STEPS_PER_EPOCH - 1)  # the last step of epoch 1, just before its checkpoint
    if policy == "raise":
        with pytest.raises(FloatingPointError, match=f"epoch 1, step {STEPS_PER_EPOCH - 1}"):
            trainer.fit()
        assert not (tmp_path / "last.pt").exists()
    else:
        trainer.fit()
        assert trainer.skipped_nonfinite == 1
        assert non_finite_tensors(load_checkpoint(tmp_path / "model.pt")["model"]) == []
    assert non_finite_tensors(trainer.model.state_dict()) == []


# -- RLE loss on extreme inputs ----------------------------------------------------------------------------
EXTREMES = st.sampled_from([0.0, 1e-30, -1e-30, 1.0, -1.0, 1e3, -1e3, 1e4, -1e4])


@settings(max_examples=30, deadline=None, derandomize=True)
@given(mu=st.lists(EXTREMES, min_size=4, max_size=4), raw_sigma=st.lists(
    st.sampled_from([-float("inf"), -1e4, -50.0, 0.0, 50.0, 1e4, float("inf")]), min_size=4, max_size=4),
       target=st.lists(EXTREMES, min_size=4, max_size=4), q=st.sampled_from(["laplace", "gaussian"]),
       weighted=st.booleans())
def test_rle_loss_and_gradients_stay_finite(mu, raw_sigma, target, q, weighted):
    torch.manual_seed(0)
    criterion = RLELoss(q_distribution=q)
    pred_mu = torch.tensor(mu, dtype=torch.float32).reshape(1, 2, 2).requires_grad_()
    pred_sigma = torch.tensor(raw_sigma, dtype=torch.float32).reshape(1, 2, 2).requires_grad_()
    weight = torch.tensor([[1.0, 0.0]]) if weighted else None
    loss = criterion(pred_mu, pred_sigma, torch.tensor(target, dtype=torch.float32).reshape(1, 2, 2), weight)
    assert torch.isfinite(loss)
    loss.backward()
    for name, grad in [("mu", pred_mu.grad), ("sigma", pred_sigma.grad)] + [
            (n, p.grad) for n, p in criterion.named_parameters() if p.grad is not None]:
        assert torch.isfinite(grad).all(), name


def test_rle_loss_at_the_sigma_floor_has_the_known_value():
    """sigma -> eps and a zero error: per joint 2 log(eps) - log G(0) + 2 log 2 (Laplace Q at 0), where the
    near-identity initial flow gives G(0) ~ 1 / (2 pi)."""
    criterion = RLELoss(sigma_eps=1e-4)
    zero = torch.zeros(1, 1, 2)
    with torch.no_grad():
        loss = criterion(zero, torch.full((1, 1, 2), -float("inf")), zero)
        log_g0 = criterion.flow.log_prob(torch.zeros(2)).item()
    assert log_g0 == pytest.approx(-np.log(2 * np.pi), abs=1e-2)
    assert loss.item() == pytest.approx(2 * np.log(1e-4) - log_g0 + 2 * np.log(2.0), rel=1e-5)
