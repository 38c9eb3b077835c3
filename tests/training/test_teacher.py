"""The frozen teacher in the student's frame: exact resampling on known inputs, refused mismatches."""
import pytest
import torch

from posekit.training.teacher import TeacherInStudentFrame, distillation_loss, resample


def test_distillation_covers_unlabelled_joints_and_every_stage():
    teacher = torch.zeros(2, 3, 4, 4)
    stage = torch.zeros(2, 3, 4, 4)
    stage[:, 1] = 1.0  # only joint 1 differs: 1/3 of the elements, error 1 each
    assert distillation_loss([stage], teacher) == pytest.approx(1 / 3)
    assert distillation_loss([stage, stage], teacher) == pytest.approx(2 / 3)


def test_resample_is_exact_on_a_ramp_and_keeps_a_peak():
    ramp = torch.arange(48, dtype=torch.float32).expand(1, 1, 48, 48)
    out = resample(ramp, (32, 32), (1.5, 1.5))
    assert out.shape == (1, 1, 32, 32)
    assert torch.allclose(out[0, 0, 0], 1.5 * torch.arange(32, dtype=torch.float32))  # bilinear is exact on a line
    peak = torch.zeros(1, 1, 48, 48)
    peak[0, 0, 15, 21] = 1.0  # (x, y) = (21, 15) on the 48 grid = (14, 10) on the 32 grid
    out = resample(peak, (32, 32), (1.5, 1.5))
    assert divmod(int(out.argmax()), 32) == (10, 14) and out.max() == 1.0


class Subsample(torch.nn.Module):
    """A 'teacher' whose heatmap pixel i is its input pixel 4 i (posekit's stride-4 convention), K copies."""

    def forward(self, x):
        return x[:, :1, ::4, ::4].expand(-1, 14, -1, -1)


def frame_config(size):
    """The parts of a checkpoint config the teacher frame reads (a real codec config, as checkpoints store)."""
    from posekit.codecs.heatmap import HeatmapCodec
    return {"num_keypoints": 14, "input_size": [size, size], "codec": HeatmapCodec((size, size)).to_config()}


def test_a_larger_teacher_answers_in_the_students_frame():
    """A 96 px teacher for a 64 px student: crop upsampled, heatmaps brought back to the 16x16 grid. On a ramp
    image the round trip is exact: what the teacher says at student heatmap pixel j is the student's input at 4 j."""
    teacher = TeacherInStudentFrame(Subsample(), frame_config(96), frame_config(64), "t.pt")
    assert teacher.image_scale == (64 / 96, 64 / 96) and teacher.heatmap_scale == (1.5, 1.5)
    images = torch.arange(64, dtype=torch.float32).expand(2, 3, 64, 64).contiguous()
    out = teacher(images)
    assert out.shape == (2, 14, 16, 16)
    assert torch.allclose(out, Subsample()(images), atol=1e-4)
    same = TeacherInStudentFrame(Subsample(), frame_config(64), frame_config(64), "t.pt")
    assert same.identity and torch.equal(same(images), Subsample()(images))


def test_a_teacher_with_other_joints_or_aspect_ratio_is_refused():
    with pytest.raises(ValueError, match="num_keypoints"):
        TeacherInStudentFrame(Subsample(), frame_config(96) | {"num_keypoints": 17}, frame_config(64), "t.pt")
    wide = frame_config(96) | {"input_size": [96, 128]}
    with pytest.raises(ValueError, match="aspect ratio"):
        TeacherInStudentFrame(Subsample(), wide, frame_config(64), "t.pt")
