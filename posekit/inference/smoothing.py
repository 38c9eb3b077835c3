"""Online (frame-by-frame) keypoint smoothing for video: EMA and the One-Euro filter, plus the jitter / lag
measures and a synthetic track to compare them.

Every filter takes one frame's keypoints, ``(K, 2)`` x, y or ``(K, 3)`` x, y, score, and returns an array of the
same shape; the score column is passed through unchanged. Each coordinate of each joint is filtered
independently.

Missing joints — a NaN coordinate, or a score of 0 when scores are given — do not touch the filter: the
joint's state (and, for One-Euro, its last time stamp) is held, and its row is returned exactly as given
(so NaN passes through). When the joint comes back, filtering resumes from the held state.
"""
from __future__ import annotations

import math

import numpy as np

__all__ = ["NoFilter", "EMAFilter", "OneEuroFilter", "make_filter", "jitter", "lag", "synthetic_track",
           "stop_and_go_track"]


def _as_frame(keypoints) -> np.ndarray:
    frame = np.array(keypoints, dtype=np.float64)  # a copy: the caller's array is never modified
    if frame.ndim != 2 or frame.shape[1] not in (2, 3):
        raise ValueError(f"keypoints must be (K, 2) or (K, 3), got shape {frame.shape}")
    return frame


def _present(frame: np.ndarray) -> np.ndarray:
    """(K,) bool: joints with finite x, y and (when scores are given) a non-zero, non-NaN score."""
    ok = np.isfinite(frame[:, :2]).all(axis=1)
    if frame.shape[1] == 3:
        ok &= np.isfinite(frame[:, 2]) & (frame[:, 2] != 0)
    return ok


def _restore_dtype(out: np.ndarray, keypoints) -> np.ndarray:
    dtype = np.asarray(keypoints).dtype
    return out.astype(dtype) if np.issubdtype(dtype, np.floating) else out


class _FrameFilter:
    """Shared bookkeeping: per-joint state, which joints have been seen, K fixed after the first frame."""

    def __init__(self):
        self.reset()

    def reset(self) -> None:
        """Forget every joint's state (e.g. at a scene cut or a new person)."""
        self._state: np.ndarray | None = None  # (K, 2) filtered x, y
        self._seen: np.ndarray | None = None   # (K,) bool

    def _prepare(self, keypoints) -> tuple[np.ndarray, np.ndarray]:
        frame = _as_frame(keypoints)
        k = frame.shape[0]
        if self._state is None:
            self._state = np.zeros((k, 2))
            self._seen = np.zeros(k, bool)
            self._init_extra(k)
        elif self._state.shape[0] != k:
            raise ValueError(f"filter was started with {self._state.shape[0]} keypoints, got {k}; call reset()")
        return frame, _present(frame)

    def _init_extra(self, k: int) -> None:
        pass


class NoFilter:
    """The identity, with the filters' interface: returns a copy of the keypoints."""

    def __call__(self, keypoints, t: float | None = None) -> np.ndarray:
        return _restore_dtype(_as_frame(keypoints), keypoints)

    def reset(self) -> None:
        pass


class EMAFilter(_FrameFilter):
    """Exponential moving average per coordinate: ``x_hat_t = alpha * x_t + (1 - alpha) * x_hat_{t-1}``.

    alpha in (0, 1]: weight of the new frame (1 = no smoothing). The first observation of a joint is
    returned as is. Time stamps are accepted and ignored (the EMA is per frame). On a constant-velocity
    motion it lags by ``(1 - alpha) / alpha`` frames.
    """

    def __init__(self, alpha: float = 0.5):
        if not 0 < alpha <= 1:
            raise ValueError(f"alpha must be in (0, 1], got {alpha}")
        self.alpha = float(alpha)
        super().__init__()

    def __call__(self, keypoints, t: float | None = None) -> np.ndarray:
        """keypoints: (K, 2 | 3) -> smoothed (K, 2 | 3); scores and missing joints pass through."""
        frame, present = self._prepare(keypoints)
        xy = frame[:, :2]
        update = present & self._seen
        first = present & ~self._seen
        self._state[update] = self.alpha * xy[update] + (1 - self.alpha) * self._state[update]
        self._state[first] = xy[first]
        self._seen |= present
        frame[present, :2] = self._state[present]
        return _restore_dtype(frame, keypoints)


def _smoothing_factor(cutoff: np.ndarray, dt: np.ndarray) -> np.ndarray:
    """Weight of the new sample in a first-order low-pass of cut-off ``cutoff`` Hz sampled every ``dt`` s."""
    tau = 1.0 / (2 * math.pi * cutoff)
    return 1.0 / (1.0 + tau / dt)


class OneEuroFilter(_FrameFilter):
    """The 1€ filter (Casiez, Roussel & Vogel, CHI 2012), per coordinate.

    A first-order low-pass whose cut-off rises with speed: ``cutoff = min_cutoff + beta * |dx_hat|``, where
    ``dx_hat`` is the speed (px/s) low-passed at ``d_cutoff``; slow motion is smoothed hard (less jitter),
    fast motion lightly (less lag). As in the paper's algorithm, the speed is measured against the previous
    *filtered* value. min_cutoff, d_cutoff in Hz; beta in 1/px.

    fps: frame rate used when ``t`` is not given (``dt = 1 / fps``). With time stamps ``t`` (seconds),
    ``dt`` is the time since the joint's last observation; time stamps must increase.
    """

    def __init__(self, min_cutoff: float = 1.0, beta: float = 0.007, d_cutoff: float = 1.0, fps: float = 30.0):
        for name, value in (("min_cutoff", min_cutoff), ("d_cutoff", d_cutoff), ("fps", fps)):
            if not value > 0:
                raise ValueError(f"{name} must be > 0, got {value}")
        if not beta >= 0:
            raise ValueError(f"beta must be >= 0, got {beta}")
        self.min_cutoff, self.beta, self.d_cutoff, self.fps = float(min_cutoff), float(beta), float(d_cutoff), float(fps)
        super().__init__()

    def reset(self) -> None:
        super().reset()
        self._speed: np.ndarray | None = None    # (K, 2) low-passed derivative, px/s
        self._last_t: np.ndarray | None = None   # (K,) time of each joint's last observation
        self._clock = 0.0                        # time of the current frame when no stamps are given
        self._frames = 0
        self._previous_stamp: float | None = None

    def _init_extra(self, k: int) -> None:
        self._speed = np.zeros((k, 2))
        self._last_t = np.zeros(k)

    def _now(self, t: float | None) -> float:
        if t is None:
            now = self._clock + (1.0 / self.fps if self._frames else 0.0)
        else:
            now = float(t)
            if self._previous_stamp is not None and not now > self._previous_stamp:
                raise ValueError(f"time stamps must increase: got {now} after {self._previous_stamp}")
            self._previous_stamp = now
        self._clock = now
        self._frames += 1
        return now

    def __call__(self, keypoints, t: float | None = None) -> np.ndarray:
        """keypoints: (K, 2 | 3), t: time stamp in seconds (optional) -> smoothed (K, 2 | 3)."""
        frame, present = self._prepare(keypoints)
        now = self._now(t)
        xy = frame[:, :2]
        update = present & self._seen
        first = present & ~self._seen
        if update.any():
            dt = (now - self._last_t[update])[:, None]
            previous = self._state[update]
            raw_speed = (xy[update] - previous) / dt
            a_d = _smoothing_factor(self.d_cutoff, dt)
            speed = a_d * raw_speed + (1 - a_d) * self._speed[update]
            a = _smoothing_factor(self.min_cutoff + self.beta * np.abs(speed), dt)
            self._state[update] = a * xy[update] + (1 - a) * previous
            self._speed[update] = speed
        self._state[first] = xy[first]
        self._speed[first] = 0.0
        self._last_t[present] = now
        self._seen |= present
        frame[present, :2] = self._state[present]
        return _restore_dtype(frame, keypoints)


def make_filter(name: str, **params):
    """``'none'`` -> :class:`NoFilter`, ``'ema'`` -> :class:`EMAFilter`, ``'one-euro'`` -> :class:`OneEuroFilter`."""
    key = name.lower().replace("_", "-")
    if key in ("none", "off"):
        if params:
            raise TypeError(f"filter 'none' takes no parameters, got {sorted(params)}")
        return NoFilter()
    if key == "ema":
        return EMAFilter(**params)
    if key in ("one-euro", "oneeuro", "1euro"):
        return OneEuroFilter(**params)
    raise ValueError(f"unknown filter {name!r}; choose 'none', 'ema' or 'one-euro'")


# -- measures --------------------------------------------------------------------------------------
def _as_track(track, name: str = "track") -> np.ndarray:
    track = np.asarray(track, dtype=np.float64)
    if track.ndim != 3 or track.shape[-1] < 2:
        raise ValueError(f"{name} must be (T, K, 2), got shape {track.shape}")
    return track[..., :2]


def jitter(track) -> float:
    """Mean acceleration magnitude, px / frame²: mean over t, k of ``||x_{t+1} - 2 x_t + x_{t-1}||``.

    track: (T, K, 2), T >= 3. Terms touching a NaN are left out.
    """
    track = _as_track(track)
    if track.shape[0] < 3:
        raise ValueError(f"jitter needs at least 3 frames, got {track.shape[0]}")
    acceleration = track[2:] - 2 * track[1:-1] + track[:-2]
    return float(np.nanmean(np.linalg.norm(acceleration, axis=-1)))


def _shift_mse(track: np.ndarray, reference: np.ndarray, shift: int) -> float:
    """Mean squared distance between ``track[t]`` and ``reference[t - shift]`` over the overlapping frames."""
    if shift >= 0:
        a, b = track[shift:], reference[:len(reference) - shift]
    else:
        a, b = track[:shift], reference[-shift:]
    return float(np.nanmean(((a - b) ** 2).sum(axis=-1)))


def lag(track, reference, max_shift: int = 30, *, subframe: bool = False) -> float:
    """Delay in frames of ``track`` behind ``reference``: the shift d in [-max_shift, max_shift] minimising
    ``mean ||track[t] - reference[t - d]||²`` (positive = track is late).

    track, reference: (T, K, 2). max_shift is capped at T // 2 so every shift compares at least half the frames.
    subframe: refine the integer minimum with a parabola through its two neighbours.
    """
    track, reference = _as_track(track), _as_track(reference, "reference")
    if track.shape != reference.shape:
        raise ValueError(f"track {track.shape} and reference {reference.shape} differ in shape")
    if track.shape[0] < 2:
        raise ValueError("lag needs at least 2 frames")
    max_shift = int(min(max_shift, track.shape[0] // 2))
    shifts = np.arange(-max_shift, max_shift + 1)
    errors = np.array([_shift_mse(track, reference, int(s)) for s in shifts])
    best = int(np.nanargmin(errors))
    if subframe and 0 < best < len(shifts) - 1:
        left, centre, right = errors[best - 1], errors[best], errors[best + 1]
        curvature = left - 2 * centre + right
        if curvature > 0:
            return float(shifts[best] + 0.5 * (left - right) / curvature)
    return float(shifts[best])


def synthetic_track(T: int, K: int, *, jitter_px: float, seed, fps: float = 30.0) -> tuple[np.ndarray, np.ndarray]:
    """Known smooth motion plus Gaussian jitter, to measure filters.

    Each coordinate of each joint is ``centre + amplitude * sin(2 pi f t / fps + phase)`` with centre in
    [100, 400] px, amplitude in [10, 40] px, f in [0.2, 1.0] Hz, phase in [0, 2 pi) — all drawn from ``seed``
    (an int or a ``np.random.Generator``). The noisy track adds i.i.d. N(0, jitter_px²) to every coordinate.
    Returns ``(clean (T, K, 2), noisy (T, K, 2))`` float64.
    """
    if T < 1 or K < 1 or jitter_px < 0:
        raise ValueError(f"need T >= 1, K >= 1, jitter_px >= 0; got T={T}, K={K}, jitter_px={jitter_px}")
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    centre = rng.uniform(100, 400, (K, 2))
    amplitude = rng.uniform(10, 40, (K, 2))
    frequency = rng.uniform(0.2, 1.0, (K, 2))
    phase = rng.uniform(0, 2 * math.pi, (K, 2))
    seconds = np.arange(T, dtype=np.float64)[:, None, None] / fps
    clean = centre + amplitude * np.sin(2 * math.pi * frequency * seconds + phase)
    noisy = clean + rng.normal(0.0, jitter_px, clean.shape)
    return clean, noisy


def stop_and_go_track(T: int, K: int, *, jitter_px: float, seed) -> tuple[np.ndarray, np.ndarray]:
    """Joints that rest, then move about 50 px in 10 frames, every 40 frames in alternating directions (joint k
    starts 13 k frames later): the motion the One-Euro filter is designed for. Plus i.i.d. N(0, jitter_px²)
    noise; seed: an int or a ``np.random.Generator``. Returns ``(clean (T, K, 2), noisy (T, K, 2))`` float64.
    """
    if T < 1 or K < 1 or jitter_px < 0:
        raise ValueError(f"need T >= 1, K >= 1, jitter_px >= 0; got T={T}, K={K}, jitter_px={jitter_px}")
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    frames = np.arange(T)
    steps = np.zeros((T, K, 2))
    for k in range(K):
        phase = (frames + 13 * k) % 40
        speed = np.where(phase < 10, 8.0 * np.sin(np.pi * phase / 10), 0.0)
        direction = np.where((frames // 40) % 2, 1.0, -1.0)
        steps[:, k, 0] = np.cumsum(speed * direction)
        steps[:, k, 1] = 0.5 * steps[:, k, 0]
    clean = 200 + steps
    return clean, clean + rng.normal(0.0, jitter_px, clean.shape)
