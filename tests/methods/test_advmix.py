"""AdvMix: the mixing is a per-pixel convex combination, the generator ascends the pose loss, and training
with the method (with and without a teacher) checkpoints and resumes exactly."""
import numpy as np
import pytest
import torch

from posekit.engine.trainer import TrainConfig
from posekit.methods import build_method, build_trainer
from posekit.methods.advmix import AdvMix, MixingUNet, augment_copy, from_uint8, mix, to_uint8
from posekit.models import build_model


def config(out, ann, **kw):
    base = dict(train=f"coco:{ann}", val=None, out=str(out), model="simplebaseline_r18",
                model_kwargs={"width": 0.25, "deconv_channels": 32}, input_size=(64, 64), epochs=2, batch_size=8,
                lr=1e-3, warmup_iters=2, workers=0, seed=3, progress=False, max_iters_per_epoch=1)
    return TrainConfig(**(base | kw))


def tiny_model():
    torch.manual_seed(0)
    return build_model("simplebaseline_r18", num_keypoints=14, width=0.25, deconv_channels=32)


def fake_batch(n=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    heatmaps = torch.zeros(n, 14, 16, 16)
    for i in range(n):
        for k in range(14):
            y, x = torch.randint(2, 14, (2,), generator=g).tolist()
            heatmaps[i, k, y - 1:y + 2, x - 1:x + 2] = 1.0
    return {"image": torch.randn(n, 3, 64, 64, generator=g), "heatmaps": heatmaps, "weights": torch.ones(n, 14),
            "index": torch.arange(n)}


def test_mixing_weights_are_a_per_pixel_softmax():
    method = AdvMix().bind_model(tiny_model())
    with torch.no_grad():  # a non-trivial generator: random head instead of the zero init
        torch.manual_seed(1)
        method.generator.head.weight.normal_(0, 1.0)
        method.generator.head.bias.normal_(0, 1.0)
    stack = method.stack(fake_batch())
    assert stack.shape == (4, 3, 3, 64, 64)
    weights = method.mixing_weights(stack)
    assert weights.shape == (4, 3, 64, 64)
    assert (weights >= 0).all()
    assert torch.allclose(weights.sum(dim=1), torch.ones(4, 64, 64), atol=1e-6)
    assert weights.std() > 0.01  # not all uniform: the weights vary over pixels and images


def test_initial_mix_is_uniform():
    method = AdvMix().bind_model(tiny_model())
    weights = method.mixing_weights(method.stack(fake_batch()))
    assert torch.allclose(weights, torch.full_like(weights, 1 / 3))


def test_clean_floor_keeps_that_much_of_the_clean_image():
    method = AdvMix(clean_floor=0.4).bind_model(tiny_model())
    weights = method.mixing_weights(method.stack(fake_batch()))  # zero-init generator: softmax 1/3 each
    assert torch.allclose(weights[:, 0], torch.full_like(weights[:, 0], 0.4 + 0.6 / 3))
    assert torch.allclose(weights[:, 1:], torch.full_like(weights[:, 1:], 0.6 / 3))
    with torch.no_grad():  # a generator that wants the clean image gone entirely
        method.generator.head.bias.copy_(torch.tensor([-60.0, 60.0, 60.0]))
    weights = method.mixing_weights(method.stack(fake_batch()))
    assert torch.allclose(weights[:, 0], torch.full_like(weights[:, 0], 0.4), atol=1e-6)
    assert torch.allclose(weights.sum(dim=1), torch.ones_like(weights[:, 0]), atol=1e-6)
    with pytest.raises(ValueError, match="clean_floor"):
        AdvMix(clean_floor=1.0)


def test_all_weight_on_the_clean_image_gives_the_clean_image():
    stack = torch.randn(2, 3, 3, 8, 8)
    one_hot = torch.zeros(2, 3, 8, 8)
    one_hot[:, 0] = 1
    assert torch.equal(mix(stack, one_hot), stack[:, 0])
    # through the generator: a head biased hard to the clean image
    method = AdvMix().bind_model(tiny_model())
    with torch.no_grad():
        method.generator.head.bias.copy_(torch.tensor([60.0, -60.0, -60.0]))
    batch = fake_batch(2)
    stack = method.stack(batch)
    assert torch.allclose(mix(stack, method.mixing_weights(stack)), batch["image"], atol=1e-5)


def test_mix_is_pixelwise_convex():
    stack = torch.randn(1, 3, 3, 4, 4)
    weights = torch.softmax(torch.randn(1, 3, 4, 4), dim=1)
    manual = sum(weights[:, k:k + 1] * stack[:, k] for k in range(3))
    assert torch.allclose(mix(stack, weights), manual, atol=1e-6)


def test_augmented_copies_are_deterministic_photometric_and_keep_shape():
    method = AdvMix(seed=5).bind_model(tiny_model())
    batch = fake_batch(3)
    a = method.augmented_copies(batch["image"], batch["index"])
    b = method.augmented_copies(batch["image"], batch["index"])
    assert a.shape == (3, 2, 3, 64, 64) and torch.equal(a, b)
    assert not torch.allclose(a[:, 0], a[:, 1])  # the K copies differ
    method.iteration += 1
    assert not torch.equal(a, method.augmented_copies(batch["image"], batch["index"]))  # a new draw per iteration


def test_uint8_round_trip_is_exact():
    raw = np.random.default_rng(0).integers(0, 256, (2, 8, 8, 3), dtype=np.uint8)
    like = torch.zeros(1)
    assert np.array_equal(to_uint8(from_uint8(raw, like)), raw)


def test_augment_copy_with_gridmask_always():
    image = np.full((32, 32, 3), 128, np.uint8)
    out = augment_copy(image, np.random.default_rng(0), num_ops=0, gridmask_prob=1.0)
    assert (out == 0).all(axis=2).any() and out.shape == image.shape


def test_generator_step_increases_the_pose_loss():
    """L_G = -L_D: one generator step on a fixed batch makes the pose loss on that batch larger."""
    method = AdvMix(generator_lr=0.05).bind_model(tiny_model())
    method.model.train()
    batch = fake_batch(4)
    stack = method.stack(batch)

    def pose_loss():  # train mode: batch statistics, so the running statistics do not enter the loss
        with torch.no_grad():
            return method.pose_loss(method.model, mix(stack, method.mixing_weights(stack)), batch, None)[0].item()

    before = pose_loss()
    state = {k: v.clone() for k, v in method.model.state_dict().items()}
    reported = method.generator_step(stack, batch, None)
    # the pose network is untouched: no weight change, BatchNorm statistics restored, no gradients
    for k, v in method.model.state_dict().items():
        assert torch.equal(v, state[k]), k
    assert all(p.grad is None for p in method.model.parameters())
    after = pose_loss()
    assert reported.item() == pytest.approx(before, rel=1e-5)
    assert after - before > 1e-4 * before  # well above float32 noise (~1e-7 relative)


def test_teacher_loss_mixes_labels_and_teacher(tmp_path, tiny_data):
    teacher_dir = tmp_path / "teacher"
    build_trainer(config(teacher_dir, tiny_data, epochs=1)).fit()
    method = AdvMix(teacher=str(teacher_dir / "model.pt"), alpha=0.25).bind_model(tiny_model())
    batch = fake_batch(2)
    teacher = method.teacher_heatmaps(batch["image"])
    loss, parts = method.pose_loss(method.model, batch["image"], batch, teacher)
    assert loss.item() == pytest.approx(0.75 * parts["loss_gt"].item() + 0.25 * parts["loss_kd"].item(), rel=1e-5)
    assert not any(p.requires_grad for p in method.teacher.parameters())


def test_method_is_registered():
    assert isinstance(build_method("advmix").bind_model(tiny_model()), AdvMix)
    with pytest.raises(ValueError, match="alpha"):
        AdvMix(alpha=1.5)


def test_unet_handles_odd_sizes():
    net = MixingUNet(9, 3, width=8, depth=2)
    assert net(torch.randn(1, 9, 37, 50)).shape == (1, 3, 37, 50)


@pytest.mark.parametrize("with_teacher", [False, True])
def test_trainer_runs_advmix_and_resumes_exactly(tmp_path, tiny_data, with_teacher):
    kwargs = {}
    if with_teacher:
        build_trainer(config(tmp_path / "teacher", tiny_data, epochs=1, seed=11)).fit()
        kwargs = {"teacher": str(tmp_path / "teacher" / "model.pt"), "alpha": 0.1}
    method_kwargs = {**kwargs, "generator_width": 8}

    straight = build_trainer(config(tmp_path / "a", tiny_data, method="advmix", method_kwargs=method_kwargs))
    result = straight.fit()
    assert np.isfinite(result["loss"]) and "loss_adv" in result and ("loss_kd" in result) == with_teacher
    assert straight.method.iteration == 2

    first = build_trainer(config(tmp_path / "b", tiny_data, method="advmix", method_kwargs=method_kwargs, epochs=1))
    first.fit()
    resumed = build_trainer(config(tmp_path / "b", tiny_data, method="advmix", method_kwargs=method_kwargs, epochs=2),
                      resume=True)
    assert resumed.epoch == 1 and resumed.method.iteration == 1
    for (name, a), b in zip(first.method.generator.state_dict().items(), resumed.method.generator.state_dict().values()):
        assert torch.equal(a, b), name
    resumed.fit()
    for (name, a), b in zip(straight.model.state_dict().items(), resumed.model.state_dict().values()):
        assert torch.equal(a, b), name
    for (name, a), b in zip(straight.method.generator.state_dict().items(),
                            resumed.method.generator.state_dict().values()):
        assert torch.equal(a, b), name
    opt_a = straight.method.generator_optimizer.state_dict()["state"]
    opt_b = resumed.method.generator_optimizer.state_dict()["state"]
    assert opt_a.keys() == opt_b.keys()
    for key in opt_a:
        assert torch.equal(opt_a[key]["exp_avg"], opt_b[key]["exp_avg"])
