"""Pose sampler: named pose families (standing, walking, running, ..., gymnastics) -> joint angles.

Every family draws the ``Pose`` fields it cares about from ``rng``; ``sample_pose`` adds head motion,
mirrors half of the poses and clips to the joint limits.
"""
from __future__ import annotations

import math
from dataclasses import replace

import numpy as np

from posekit.data.synth.body import Pose

#: (family, weight). Sports-heavy like LSP, with everyday poses for COCO.
POSE_FAMILIES = (
    ("standing", 0.14), ("walking", 0.12), ("running", 0.13), ("jumping", 0.08), ("arms_up", 0.09),
    ("crouching", 0.09), ("sitting", 0.04), ("kicking", 0.06), ("throwing", 0.07), ("swinging", 0.05),
    ("gymnastics", 0.08), ("random", 0.05),
)


def _pair(rng, lo, hi):
    """(left, right): two independent draws from U(lo, hi), left first."""
    return (float(rng.uniform(lo, hi)), float(rng.uniform(lo, hi)))


def _swing(angle: float) -> tuple[float, float]:
    """A forward (+) / backward (-) swing in the sagittal plane as (elev, azim)."""
    return abs(angle), (90.0 if angle >= 0 else -90.0)


def _gait(rng, stride: float, arm_stride: float, knee_max: float, elbow: tuple[float, float]) -> dict:
    """Walking/running limb angles at a random phase of the gait cycle."""
    phase = rng.uniform(0, 2 * np.pi)
    legs = [_swing(stride * math.sin(phase + k * math.pi) + 5) for k in (0, 1)]
    # The knee bends most while the leg swings through (just after the back position).
    knees = [5 + knee_max * max(0.0, math.sin(phase + k * math.pi - 2.0)) ** 1.5 for k in (0, 1)]
    arms = [_swing(-arm_stride * math.sin(phase + k * math.pi)) for k in (0, 1)]
    return dict(
        leg_elev=(legs[0][0], legs[1][0]), leg_azim=(legs[0][1], legs[1][1]), knee=tuple(knees),
        arm_elev=(arms[0][0] + 8, arms[1][0] + 8),
        arm_azim=(arms[0][1] * 0.85 + rng.uniform(-10, 10), arms[1][1] * 0.85 + rng.uniform(-10, 10)),
        elbow=(rng.uniform(*elbow), rng.uniform(*elbow)), elbow_twist=_pair(rng, 0, 30),
        foot_point=_pair(rng, -10, 30))


def _family_angles(family: str, rng: np.random.Generator) -> dict:
    """Pose fields (see ``Pose``) for one family; the caller adds head motion and mirroring."""
    u = lambda lo, hi: float(rng.uniform(lo, hi))  # noqa: E731
    if family == "standing":
        kind = rng.integers(4)
        kw = dict(leg_elev=_pair(rng, 0, 12), leg_azim=_pair(rng, -20, 60), knee=_pair(rng, 0, 15),
                  spine_pitch=u(-5, 10), spine_roll=u(-5, 5), spine_twist=u(-15, 15))
        if kind == 0:  # relaxed
            kw.update(arm_elev=_pair(rng, 5, 30), arm_azim=_pair(rng, -20, 60), elbow=_pair(rng, 0, 40))
        elif kind == 1:  # hands on hips
            kw.update(arm_elev=_pair(rng, 30, 45), arm_azim=_pair(rng, -20, 10), elbow=_pair(rng, 95, 130),
                      elbow_twist=_pair(rng, 70, 100))
        elif kind == 2:  # arms crossed / holding something in front
            kw.update(arm_elev=_pair(rng, 15, 35), arm_azim=_pair(rng, 60, 100), elbow=_pair(rng, 90, 130),
                      elbow_twist=_pair(rng, 40, 80))
        else:  # one hand gesturing
            kw.update(arm_elev=(u(5, 25), u(40, 100)), arm_azim=(u(-10, 40), u(20, 100)),
                      elbow=(u(0, 30), u(30, 120)), elbow_twist=(0.0, u(0, 60)))
        return kw
    if family == "walking":
        return dict(_gait(rng, u(15, 30), u(10, 30), u(25, 50), (10, 45)), spine_pitch=u(-3, 10),
                    spine_twist=u(-10, 10))
    if family == "running":
        kw = _gait(rng, u(35, 65), u(30, 70), u(60, 120), (70, 110))
        return dict(kw, spine_pitch=u(8, 28), spine_twist=u(-15, 15))
    if family == "jumping":
        kind = rng.integers(4)
        if kind == 0:  # star jump
            return dict(arm_elev=_pair(rng, 110, 170), arm_azim=_pair(rng, -10, 30), elbow=_pair(rng, 0, 30),
                        leg_elev=_pair(rng, 15, 40), leg_azim=_pair(rng, -10, 20), knee=_pair(rng, 0, 20),
                        foot_point=_pair(rng, 20, 50))
        if kind == 1:  # tuck
            return dict(arm_elev=_pair(rng, 40, 110), arm_azim=_pair(rng, 60, 100), elbow=_pair(rng, 20, 90),
                        leg_elev=_pair(rng, 70, 120), leg_azim=_pair(rng, 75, 100), knee=_pair(rng, 100, 145),
                        spine_pitch=u(10, 35), foot_point=_pair(rng, 10, 40))
        if kind == 2:  # stretched up (e.g. basketball)
            return dict(arm_elev=_pair(rng, 140, 180), arm_azim=_pair(rng, 40, 100), elbow=_pair(rng, 0, 70),
                        leg_elev=(u(0, 15), u(20, 60)), leg_azim=(u(-30, 60), u(60, 100)),
                        knee=(u(0, 20), u(40, 110)), spine_pitch=u(-15, 5), foot_point=_pair(rng, 20, 60))
        return dict(  # long jump: legs forward, arms sweeping
            arm_elev=_pair(rng, 30, 160), arm_azim=_pair(rng, -90, 90), elbow=_pair(rng, 0, 40),
            leg_elev=_pair(rng, 50, 95), leg_azim=_pair(rng, 80, 100), knee=_pair(rng, 0, 60),
            spine_pitch=u(10, 40))
    if family == "arms_up":
        kw = dict(arm_elev=(u(110, 180), u(20, 180)), arm_azim=(u(-20, 110), u(-20, 110)),
                  elbow=(u(0, 60), u(0, 100)), elbow_twist=_pair(rng, -20, 60),
                  leg_elev=_pair(rng, 0, 15), leg_azim=_pair(rng, -20, 60), knee=_pair(rng, 0, 20),
                  spine_pitch=u(-10, 5), spine_roll=u(-10, 10), head_pitch=u(-30, 0))
        return kw
    if family == "crouching":
        if rng.random() < 0.3:  # kneeling on one knee
            return dict(leg_elev=(u(0, 25), u(75, 100)), leg_azim=(-90.0 if rng.random() < 0.5 else 90.0, u(80, 100)),
                        knee=(u(85, 120), u(80, 110)), foot_point=(u(20, 60), u(-10, 10)),
                        arm_elev=_pair(rng, 10, 80), arm_azim=_pair(rng, 30, 100), elbow=_pair(rng, 10, 90),
                        spine_pitch=u(-5, 25))
        return dict(leg_elev=_pair(rng, 60, 120), leg_azim=_pair(rng, 45, 95), knee=_pair(rng, 90, 150),
                    foot_point=_pair(rng, -20, 10), spine_pitch=u(20, 55),
                    arm_elev=_pair(rng, 10, 100), arm_azim=_pair(rng, 40, 110), elbow=_pair(rng, 10, 110),
                    elbow_twist=_pair(rng, 0, 50))
    if family == "sitting":
        return dict(leg_elev=_pair(rng, 70, 100), leg_azim=_pair(rng, 60, 100), knee=_pair(rng, 60, 110),
                    spine_pitch=u(-15, 20), arm_elev=_pair(rng, 10, 60), arm_azim=_pair(rng, 20, 100),
                    elbow=_pair(rng, 20, 110), elbow_twist=_pair(rng, 0, 60))
    if family == "kicking":
        return dict(leg_elev=(u(60, 115), u(0, 20)), leg_azim=(u(60, 100), u(-30, 30)),
                    knee=(u(0, 50), u(5, 30)), foot_point=(u(20, 60), 0.0), spine_pitch=u(-25, 5),
                    arm_elev=_pair(rng, 30, 100), arm_azim=_pair(rng, -40, 60), elbow=_pair(rng, 0, 60))
    if family == "throwing":  # throwing, serving, spiking
        return dict(arm_elev=(u(110, 175), u(40, 110)), arm_azim=(u(-80, 30), u(50, 130)),
                    elbow=(u(20, 110), u(0, 50)), elbow_twist=(u(-40, 20), u(0, 40)),
                    leg_elev=(u(15, 40), u(10, 35)), leg_azim=(u(70, 100), u(-100, -70)),
                    knee=(u(10, 40), u(0, 30)), spine_twist=u(-40, 20), spine_pitch=u(-15, 15),
                    spine_roll=u(-15, 5))
    if family == "swinging":  # bat, club, racket: both hands together in front
        return dict(arm_elev=(u(40, 110), u(40, 110)), arm_azim=(u(100, 150), u(60, 100)),
                    elbow=(u(0, 40), u(10, 60)), elbow_twist=_pair(rng, 10, 50),
                    leg_elev=_pair(rng, 10, 25), leg_azim=_pair(rng, -10, 30), knee=_pair(rng, 10, 35),
                    spine_pitch=u(10, 35), spine_twist=u(-45, 45))
    if family == "gymnastics":
        kind = rng.integers(5)
        if kind == 0:  # handstand
            return dict(arm_elev=_pair(rng, 160, 180), arm_azim=_pair(rng, 60, 100), elbow=_pair(rng, 0, 15),
                        leg_elev=(u(0, 15), u(0, 80)), leg_azim=(u(-90, 90), u(-90, 90)),
                        knee=(u(0, 20), u(0, 90)), foot_point=_pair(rng, 30, 70), body_roll=180 + u(-25, 25))
        if kind == 1:  # cartwheel / star
            return dict(arm_elev=_pair(rng, 100, 160), arm_azim=_pair(rng, -10, 20), elbow=_pair(rng, 0, 20),
                        leg_elev=_pair(rng, 25, 75), leg_azim=_pair(rng, -15, 20), knee=_pair(rng, 0, 20),
                        foot_point=_pair(rng, 20, 60), body_roll=u(-180, 180))
        if kind == 2:  # split leap
            return dict(leg_elev=(u(70, 110), u(50, 90)), leg_azim=(u(80, 100), u(-100, -80)),
                        knee=_pair(rng, 0, 25), foot_point=_pair(rng, 30, 70),
                        arm_elev=_pair(rng, 70, 170), arm_azim=_pair(rng, -20, 60), elbow=_pair(rng, 0, 30),
                        spine_pitch=u(-20, 10), body_roll=u(-20, 20))
        if kind == 3:  # arabesque / balance
            return dict(leg_elev=(u(0, 10), u(50, 100)), leg_azim=(u(-30, 60), u(-100, -80)),
                        knee=(u(0, 10), u(0, 30)), foot_point=(0.0, u(30, 70)), spine_pitch=u(15, 50),
                        arm_elev=_pair(rng, 60, 180), arm_azim=_pair(rng, -30, 100), elbow=_pair(rng, 0, 30))
        return dict(  # back bend / tumbling, anywhere around the circle
            spine_pitch=u(-60, -20), arm_elev=_pair(rng, 140, 180), arm_azim=_pair(rng, 60, 100),
            elbow=_pair(rng, 0, 30), leg_elev=_pair(rng, 0, 60), leg_azim=_pair(rng, 60, 100),
            knee=_pair(rng, 0, 120), head_pitch=u(-50, -10), body_roll=u(-180, 180))
    if family == "random":  # anything within the joint limits
        return dict(arm_elev=_pair(rng, 0, 180), arm_azim=_pair(rng, -60, 150), elbow=_pair(rng, 0, 150),
                    elbow_twist=_pair(rng, -30, 90), leg_elev=_pair(rng, 0, 100), leg_azim=_pair(rng, -40, 100),
                    knee=_pair(rng, 0, 150), spine_pitch=u(-20, 60), spine_roll=u(-25, 25),
                    spine_twist=u(-40, 40), foot_point=_pair(rng, -20, 60))
    raise ValueError(f"unknown pose family {family!r}; known: {[f for f, _ in POSE_FAMILIES]}")


def _clip_to_limits(pose: Pose) -> Pose:
    """Keep elbows/knees bending one way and thighs from swinging far backward."""
    def clip(pair, lo, hi):
        return tuple(float(np.clip(x, lo, hi)) for x in pair)
    leg_elev = tuple(min(e, 60.0) if a < -45 else e for e, a in zip(pose.leg_elev, pose.leg_azim))
    return replace(pose, elbow=clip(pose.elbow, 0, 155), knee=clip(pose.knee, 0, 155),
                   arm_elev=clip(pose.arm_elev, 0, 180), leg_elev=clip(leg_elev, 0, 125),
                   foot_point=clip(pose.foot_point, -25, 75))


def sample_pose(rng: np.random.Generator, family: str | None = None) -> Pose:
    """A random pose from ``family`` (or from a family drawn by ``POSE_FAMILIES`` weights)."""
    if family is None:
        names = [f for f, _ in POSE_FAMILIES]
        weights = np.array([w for _, w in POSE_FAMILIES])
        family = names[int(rng.choice(len(names), p=weights / weights.sum()))]
    kw = _family_angles(family, rng)
    kw.setdefault("head_yaw", float(np.clip(rng.normal(0, 25), -75, 75)))
    kw.setdefault("head_pitch", float(np.clip(rng.normal(5, 12), -40, 40)))
    kw.setdefault("head_roll", float(rng.normal(0, 6)))
    pose = Pose(**kw)
    if rng.random() < 0.5:
        pose = pose.mirrored()
    return _clip_to_limits(pose)
