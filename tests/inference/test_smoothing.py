import math

import numpy as np
import pytest

from posekit.inference.smoothing import (EMAFilter, NoFilter, OneEuroFilter, jitter, lag, make_filter,
                                         stop_and_go_track, synthetic_track)


def run(filt, track, times=None):
    """track: (T, K, C) -> filtered (T, K, C), one call per frame."""
    if times is None:
        return np.stack([filt(frame) for frame in track])
    return np.stack([filt(frame, t) for frame, t in zip(track, times)])


def one_joint(values):
    """(T,) -> (T, 1, 2) track with the same value in x and y."""
    values = np.asarray(values, np.float64)
    return np.stack([values, values], axis=-1)[:, None, :]


def euro_alpha(cutoff, dt):
    tau = 1 / (2 * math.pi * cutoff)
    return 1 / (1 + tau / dt)


# -- EMA ---------------------------------------------------------------------------------------------
def test_ema_step_by_hand():
    out = run(EMAFilter(alpha=0.5), one_joint([0, 1, 1, 1, 1]))
    np.testing.assert_allclose(out[:, 0, 0], [0, 0.5, 0.75, 0.875, 0.9375])


def test_scores_pass_through_and_input_untouched():
    frame = np.array([[10, 20, 0.9], [30, 40, 0.4]], np.float32)
    filt = EMAFilter(0.5)
    filt(frame)
    second = frame + np.array([2, 2, 0], np.float32)
    second[:, 2] = [0.1, 0.7]
    kept = second.copy()
    out = filt(second)
    assert out.dtype == np.float32 and out.shape == (2, 3)
    np.testing.assert_array_equal(out[:, 2], second[:, 2])
    np.testing.assert_allclose(out[:, :2], frame[:, :2] + 1)
    np.testing.assert_array_equal(second, kept)


# -- One-Euro ----------------------------------------------------------------------------------------
def test_one_euro_constant_stays_constant():
    track = np.tile([[[120.5, -3.25]] * 4], (50, 1, 1))
    np.testing.assert_allclose(run(OneEuroFilter(), track), track, rtol=0, atol=1e-12)


def test_one_euro_without_beta_is_an_ema():
    _, noisy = synthetic_track(60, 3, jitter_px=2, seed=1)
    expected = run(EMAFilter(alpha=euro_alpha(1.5, 1 / 25)), noisy)
    np.testing.assert_allclose(run(OneEuroFilter(min_cutoff=1.5, beta=0.0, fps=25), noisy), expected, atol=1e-9)


def test_one_euro_ramp_converges_with_the_first_order_lag():
    fps, v = 30.0, 60.0                 # 60 px/s = 2 px per frame
    dt = 1 / fps
    ramp = one_joint(v * np.arange(300) * dt)
    # beta = 0: a fixed low-pass; steady-state error e = (1 - a) v dt / a
    out = run(OneEuroFilter(min_cutoff=1.0, beta=0.0, fps=fps), ramp)
    a = euro_alpha(1.0, dt)
    error = ramp[:, 0, 0] - out[:, 0, 0]
    assert error[-1] == pytest.approx((1 - a) * v * dt / a, rel=1e-6)
    assert error[-1] == pytest.approx(error[-50], rel=1e-6)   # converged: constant lag
    # beta > 0: the filtered speed tends to (e + v dt) / dt = v / a, so a solves a = alpha(min_cutoff + beta v / a)
    beta = 0.01
    out_fast = run(OneEuroFilter(min_cutoff=1.0, beta=beta, fps=fps), ramp)
    a_fast = a
    for _ in range(200):
        a_fast = euro_alpha(1.0 + beta * v / a_fast, dt)
    error_fast = ramp[-1, 0, 0] - out_fast[-1, 0, 0]
    assert error_fast == pytest.approx((1 - a_fast) * v * dt / a_fast, rel=1e-6)
    assert 0 < error_fast < error[-1]                          # the speed term cuts the lag


def test_one_euro_time_stamps_match_fps_and_must_increase():
    _, noisy = synthetic_track(40, 2, jitter_px=2, seed=2)
    by_fps = run(OneEuroFilter(fps=20), noisy)
    by_stamp = run(OneEuroFilter(fps=999), noisy, times=np.arange(40) / 20)
    np.testing.assert_allclose(by_fps, by_stamp, atol=1e-9)
    filt = OneEuroFilter()
    filt(noisy[0], 1.0)
    with pytest.raises(ValueError, match="increase"):
        filt(noisy[1], 1.0)


# -- missing joints ----------------------------------------------------------------------------------
@pytest.mark.parametrize("make", [lambda: EMAFilter(0.4), lambda: OneEuroFilter(beta=0.05)])
@pytest.mark.parametrize("how", ["nan", "score0"])
def test_missing_joint_holds_state_and_passes_through(make, how):
    _, noisy = synthetic_track(30, 2, jitter_px=2, seed=3)
    frames = np.concatenate([noisy, np.full((30, 2, 1), 0.8)], axis=-1)
    gappy = frames.copy()
    if how == "nan":
        gappy[10:13, 0, :2] = np.nan
    else:
        gappy[10:13, 0, 2] = 0.0
    times = np.arange(30) / 30.0
    out = run(make(), gappy, times)
    np.testing.assert_array_equal(out[10:13, 0], gappy[10:13, 0])         # returned exactly as given
    assert np.isfinite(out[13:, 0, :2]).all()                             # not poisoned
    np.testing.assert_allclose(out[:, 1], run(make(), frames, times)[:, 1])  # other joints unaffected
    # joint 0 continues as if the missing frames had never been seen (same time stamps)
    kept = np.r_[0:10, 13:30]
    reference = run(make(), frames[kept][:, :1], times[kept])
    np.testing.assert_allclose(out[kept, 0], reference[:, 0], atol=1e-9)


def test_first_frame_missing_then_initialised():
    filt = EMAFilter(0.5)
    out = filt(np.array([[np.nan, np.nan], [1.0, 1.0]]))
    assert np.isnan(out[0]).all()
    out = filt(np.array([[4.0, 6.0], [3.0, 3.0]]))
    np.testing.assert_allclose(out, [[4.0, 6.0], [2.0, 2.0]])


def test_keypoint_count_is_fixed_until_reset():
    filt = OneEuroFilter()
    filt(np.zeros((3, 2)))
    with pytest.raises(ValueError, match="reset"):
        filt(np.zeros((4, 2)))
    filt.reset()
    assert filt(np.ones((4, 2))).shape == (4, 2)


def test_make_filter():
    assert isinstance(make_filter("none"), NoFilter)
    assert make_filter("ema", alpha=0.3).alpha == 0.3
    assert make_filter("one-euro", fps=25).fps == 25
    with pytest.raises(ValueError, match="unknown"):
        make_filter("kalman")
    with pytest.raises(ValueError):
        make_filter("ema", alpha=0.0)


# -- measures ----------------------------------------------------------------------------------------
def test_jitter_by_hand():
    t = np.arange(10.0)
    assert jitter(one_joint(3 * t + 1)) == pytest.approx(0.0)
    # x = y = t^2: second difference 2 in each coordinate -> magnitude 2 sqrt(2)
    assert jitter(one_joint(t ** 2)) == pytest.approx(2 * math.sqrt(2))


def test_lag_finds_a_known_shift():
    clean, _ = synthetic_track(200, 5, jitter_px=0, seed=4)
    delayed = np.concatenate([np.repeat(clean[:1], 4, axis=0), clean[:-4]])
    assert lag(delayed, clean) == 4.0
    assert lag(clean, delayed) == -4.0
    assert lag(clean, clean, subframe=True) == pytest.approx(0.0, abs=1e-9)
    # an EMA lags (1 - a) / a frames on smooth motion: 1 frame for a = 0.5
    assert lag(run(EMAFilter(0.5), clean), clean, subframe=True) == pytest.approx(1.0, abs=0.1)


def test_synthetic_track_is_seeded():
    a_clean, a_noisy = synthetic_track(50, 3, jitter_px=2, seed=7)
    b_clean, b_noisy = synthetic_track(50, 3, jitter_px=2, seed=7)
    np.testing.assert_array_equal(a_noisy, b_noisy)
    assert a_clean.shape == a_noisy.shape == (50, 3, 2)
    assert np.std(a_noisy - a_clean) == pytest.approx(2.0, rel=0.15)
    assert not np.array_equal(a_noisy, synthetic_track(50, 3, jitter_px=2, seed=8)[1])


# -- filters on synthetic motion ---------------------------------------------------------------------
@pytest.mark.parametrize("make", [lambda: EMAFilter(0.3), lambda: OneEuroFilter()])
def test_filters_halve_jitter_on_the_synthetic_track(make):
    clean, noisy = synthetic_track(300, 17, jitter_px=2, seed=0)
    smoothed = run(make(), noisy)
    assert jitter(smoothed) < 0.5 * jitter(noisy)
    assert np.linalg.norm(smoothed - clean, axis=-1).mean() < 10.0


def test_stop_and_go_track_rests_then_moves_fifty_pixels():
    clean, noisy = stop_and_go_track(80, 2, jitter_px=1.0, seed=5)
    np.testing.assert_array_equal(noisy, stop_and_go_track(80, 2, jitter_px=1.0, seed=5)[1])
    speed = np.abs(np.diff(clean[:, 0, 0]))
    assert (speed[10:39] == 0).all()                                  # joint 0 rests in frames 10..39
    assert abs(clean[10, 0, 0] - clean[0, 0, 0]) == pytest.approx(8.0 * sum(np.sin(np.pi * np.arange(10) / 10)))
    np.testing.assert_allclose(clean[..., 1] - 200, 0.5 * (clean[..., 0] - 200))


def ema_with_jitter(target, noisy):
    """The EMA alpha whose output has the given jitter (bisection; jitter grows with alpha)."""
    lo, hi = 0.01, 1.0
    for _ in range(25):
        mid = (lo + hi) / 2
        lo, hi = (lo, mid) if jitter(run(EMAFilter(mid), noisy)) > target else (mid, hi)
    return (lo + hi) / 2


def test_one_euro_lags_less_than_an_equally_smooth_ema_on_stop_and_go_motion():
    clean, noisy = stop_and_go_track(240, 4, jitter_px=2.0, seed=0)
    euro = run(OneEuroFilter(min_cutoff=0.5, beta=0.05), noisy)
    ema = run(EMAFilter(ema_with_jitter(jitter(euro), noisy)), noisy)
    assert jitter(ema) == pytest.approx(jitter(euro), rel=0.02)
    assert lag(euro, clean, subframe=True) < 0.6 * lag(ema, clean, subframe=True)
