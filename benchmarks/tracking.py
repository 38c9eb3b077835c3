"""Multi-person video: two real people crossing (identity switches, jitter, lag, error per person) and a scene cut
(no skeleton of the first shot drawn on the second), through the whole detector + pose + tracking pipeline of
``posekit predict clip.mp4`` (:func:`posekit.inference.video.predict_video`).

**Crossing clips.** ``--clips`` pairs of LSPET val people (``--val``; upright people with all 14 joints labelled,
the pairs drawn with ``--seed``), each person cut out of its photo with a margin (a feathered mask along its
labelled limbs, scaled to 160 px tall) and pasted onto a person-free COCO-MINI val photo (one the detector finds
nobody in, resized to 640x360). Person A walks left to right, person B right to left 20 px lower (in front, pasted
last, so it hides A where they overlap), both bobbing 4 px at 1.5 Hz, over ``--frames`` frames at 30 fps
(mp4v-encoded); they cross half-way. The true track of a person is its labelled joints moved along its path.

Scoring: in every frame the true people are matched one-to-one to the predicted people on boxes: the box a track
was posed from against the box of the person's true joints (Hungarian on IoU, at least 0.3), so who is tracked
where counts, whatever the pose's quality. Frames where the two true boxes overlap with IoU > 0.5 are not scored
(there a box fits either person; 9 of the 300 frames). An **identity switch** is a person whose matched
track id differs from the one it was last matched to. Per person: coverage (the scored frames in which it is
matched), jitter (mean acceleration, px/frame²), lag (frames behind the true track) and mean error (px) of the
matched keypoints, raw and with each track smoothed by the One-Euro filter (posekit's defaults, ``--smooth
one-euro``); the joints of the person behind count while hidden too. Rows: the detector every 1, 5, 10 (the
default) and 30 frames; two ablations of the default: the single-person rule of following the previous pose also
next to another person (no coasting), and confident detections only (no weak second round).

**Scene cut.** Clip A (the first crossing clip's first ``--cut-at`` frames) followed by clip B (the second crossing
clip from its first frame: another background, other people), detector every 10 frames, so the cut is no detection
frame. Checked on B's first frame: a skeleton is stale when its track was seen before the cut or when it stands on
one of A's people (mean joint distance under 0.3 x 160 px) and on none of B's; with cut detection (asserted: none)
and without.

Budget: seed 0, 3 clips x 100 frames, the 100-frame cut clip, one thread; the clips are made in a temporary folder.

    python benchmarks/tracking.py --threads 1     # results/tracking.json and .md; about 20 minutes here (one shared core)
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np
from scipy.optimize import linear_sum_assignment

from common import ROOT, command, environment, finish_study, resolve_spec, table

FPS = 30.0
FRAME_SIZE = (640, 360)   # W, H
PERSON_HEIGHT = 160
MATCH_IOU = 0.3
AMBIGUOUS_IOU = 0.5
MATCH_DISTANCE = 0.3 * PERSON_HEIGHT
COCO_MINI = ROOT / ".." / "shared" / "datasets" / "coco-mini"


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--checkpoint", default=str(ROOT / "zoo" / "lspet_compact_pretrained.pt"), help="pose model")
    p.add_argument("--detector", default=str(ROOT / "zoo" / "movenet_multipose.pt"))
    p.add_argument("--val", default="lsp:../shared/datasets/lspet@val", help="the people")
    p.add_argument("--clips", type=int, default=3, help="crossing clips (pairs of people)")
    p.add_argument("--frames", type=int, default=100)
    p.add_argument("--cut-at", type=int, default=45, help="scene-cut case: frame where clip B starts")
    p.add_argument("--detect-every", default="1,5,10,30", help="the detector intervals to compare, comma-separated")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1, help="torch threads")
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "tracking.json")
    return p.parse_args(argv)


# -- the clips ---------------------------------------------------------------------------------------
def upright_people(spec: str, count: int, seed: int) -> list:
    """``count`` samples drawn with ``seed`` from the people with all joints labelled whose head top is above
    both ankles by at least half their height (standing, walking, running)."""
    from posekit.data.formats import load_samples
    people = []
    for s in load_samples(resolve_spec(spec)):
        kp = s.keypoints
        height = np.ptp(kp[:, 1])
        if (kp[:, 2] > 0).all() and kp[[0, 5], 1].min() - kp[13, 1] > 0.5 * height:
            people.append(s)
    picks = np.random.default_rng(seed).choice(len(people), size=count, replace=False)
    return [people[i] for i in picks]


def cutout(sample) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A person scaled to PERSON_HEIGHT px: (crop (h, w, 3) uint8, alpha (h, w) float32 in [0, 1], joints (14, 2)
    in crop px). The crop is the joints' box grown by 20% of the height each side; the alpha is the labelled limbs
    drawn 14% of the height thick, plus the head, feathered over 3%."""
    from posekit.data.io import read_image
    from posekit.skeletons import get_skeleton
    image, joints = read_image(sample.image_path), sample.keypoints[:, :2].astype(np.float64)
    scale = PERSON_HEIGHT / np.ptp(joints[:, 1])
    margin = 0.2 * PERSON_HEIGHT / scale
    x0, y0 = np.maximum(joints.min(axis=0) - margin, 0).astype(int)
    x1, y1 = np.minimum(joints.max(axis=0) + margin, [image.shape[1], image.shape[0]]).astype(int)
    crop = cv2.resize(image[y0:y1, x0:x1], None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    joints = (joints - [x0, y0]) * scale
    mask = np.zeros(crop.shape[:2], np.uint8)
    thick = int(0.14 * PERSON_HEIGHT)
    for a, b in get_skeleton("lsp").limbs:
        cv2.line(mask, tuple(int(v) for v in joints[a]), tuple(int(v) for v in joints[b]), 255, thick)
    cv2.circle(mask, tuple(int(v) for v in 0.5 * (joints[12] + joints[13])), int(0.09 * PERSON_HEIGHT), 255, -1)
    feather = 0.03 * PERSON_HEIGHT
    alpha = cv2.GaussianBlur(mask.astype(np.float32) / 255, (0, 0), feather)
    return crop, np.clip(alpha * 1.5, 0, 1), joints


def person_free_backgrounds(detector, count: int) -> tuple[list[np.ndarray], list[str]]:
    """``count`` COCO-MINI val photos without annotated people in which the detector finds nobody, at FRAME_SIZE."""
    from posekit.data.io import read_image
    data = json.loads((COCO_MINI / "annotations" / "person_keypoints_val2017.json").read_text())
    with_people = {a["image_id"] for a in data["annotations"]}
    found, names = [], []
    for im in sorted(data["images"], key=lambda im: im["file_name"]):
        if im["id"] in with_people:
            continue
        photo = cv2.resize(read_image(COCO_MINI / "val2017" / im["file_name"]), FRAME_SIZE, interpolation=cv2.INTER_AREA)
        if len(detector.detect(photo)[0]) == 0:
            found.append(photo)
            names.append(im["file_name"])
        if len(found) == count:
            return found, names
    raise RuntimeError(f"only {len(found)} person-free COCO-MINI val photos without a detection")


def crossing_offsets(frames: int, sizes: list[tuple[int, int]]) -> np.ndarray:
    """(2, T, 2) top-left corner of each person's crop per frame: A's centre from 15% to 85% of the width, B's the
    other way and 20 px lower; feet near the bottom; a 4 px bob at 1.5 Hz (B in opposite phase)."""
    w, h = FRAME_SIZE
    t = np.arange(frames) / max(frames - 1, 1)
    bob = 4 * np.sin(2 * np.pi * 1.5 * np.arange(frames) / FPS)
    out = np.zeros((2, frames, 2))
    for i, ((cw, ch), start, end, drop, sign) in enumerate(zip(sizes, (0.15, 0.85), (0.85, 0.15), (0, 20), (1, -1))):
        out[i, :, 0] = w * (start + (end - start) * t) - cw / 2
        out[i, :, 1] = h - 10 - ch + drop - 20 + sign * bob
    return out


def render(background: np.ndarray, people: list, offsets: np.ndarray, frame: int) -> np.ndarray:
    """One frame: the people pasted (alpha-blended) in order at their offsets on a copy of the background."""
    out = background.astype(np.float32)
    h, w = out.shape[:2]
    for (crop, alpha, _), (ox, oy) in zip(people, offsets[:, frame]):
        ox, oy = int(round(ox)), int(round(oy))
        x0, y0, x1, y1 = max(ox, 0), max(oy, 0), min(ox + crop.shape[1], w), min(oy + crop.shape[0], h)
        if x1 <= x0 or y1 <= y0:
            continue
        a = alpha[y0 - oy:y1 - oy, x0 - ox:x1 - ox, None]
        out[y0:y1, x0:x1] = a * crop[y0 - oy:y1 - oy, x0 - ox:x1 - ox] + (1 - a) * out[y0:y1, x0:x1]
    return out.round().astype(np.uint8)


def crossing_clip(background: np.ndarray, samples: list, frames: int) -> tuple[list[np.ndarray], np.ndarray]:
    """(frames (H, W, 3) uint8 RGB, truth (2, T, 14, 2)): two people crossing; joints at the rounded offsets."""
    people = [cutout(s) for s in samples]
    offsets = crossing_offsets(frames, [(c.shape[1], c.shape[0]) for c, _, _ in people])
    truth = np.stack([joints[None] + np.round(offsets[i])[:, None] for i, (_, _, joints) in enumerate(people)])
    return [render(background, people, offsets, t) for t in range(frames)], truth


def write_clip(path: Path, frames: list[np.ndarray]) -> None:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), FPS, FRAME_SIZE)
    for frame in frames:
        writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    writer.release()


# -- scoring -------------------------------------------------------------------------------------------
def match_people(records: list[dict], truth: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """records (one per frame) and truth (P, T, K, 2) -> (track id per true person and frame (P, T), -1 when
    unmatched; matched keypoints (P, T, K, 3), NaN when unmatched). A true person and a track are matched one-to-one
    on the box the track was posed from against the box of the true joints (Hungarian on IoU, at least MATCH_IOU):
    who is tracked where, whatever the pose's quality. Frames where the true people's boxes overlap by more than
    AMBIGUOUS_IOU are not scored (:func:`ambiguous_frames`): there a box fits either person."""
    from posekit.inference.tracking import box_iou
    P, T, K = truth.shape[:3]
    ids, keypoints = np.full((P, T), -1), np.full((P, T, K, 3), np.nan)
    skip = ambiguous_frames(truth)
    for record in records:
        t, people = record["frame"], record["people"]
        if not people or skip[t]:
            continue
        iou = box_iou(true_boxes(truth[:, t]), np.array([p["box"] for p in people]))
        for i, j in zip(*linear_sum_assignment(-iou)):
            if iou[i, j] >= MATCH_IOU:
                ids[i, t], keypoints[i, t] = people[j]["track_id"], np.array(people[j]["keypoints"])
    return ids, keypoints


def true_boxes(joints: np.ndarray) -> np.ndarray:
    """(P, K, 2) -> (P, 4) xywh boxes of each person's joints."""
    return np.concatenate([joints.min(axis=1), np.ptp(joints, axis=1)], axis=1)


def ambiguous_frames(truth: np.ndarray) -> np.ndarray:
    """truth (P, T, K, 2) -> (T,) bool: frames where two true people's joint boxes overlap with IoU > AMBIGUOUS_IOU."""
    from posekit.inference.tracking import box_iou
    out = np.zeros(truth.shape[1], bool)
    for t in range(truth.shape[1]):
        iou = box_iou(true_boxes(truth[:, t]), true_boxes(truth[:, t]))
        out[t] = (iou[np.triu_indices(len(iou), 1)] > AMBIGUOUS_IOU).any()
    return out


def identity_switches(ids: np.ndarray) -> int:
    """(T,) track ids of one true person (-1 unmatched) -> how often the matched id changes."""
    seen = ids[ids >= 0]
    return int((seen[1:] != seen[:-1]).sum())


def person_scores(ids: np.ndarray, keypoints: np.ndarray, truth: np.ndarray, scored: np.ndarray) -> dict:
    """One true person: ids (T,), keypoints (T, K, 3) NaN when unmatched, truth (T, K, 2), scored (T,) bool (the
    frames that are not ambiguous). coverage: the fraction of scored frames in which the person is matched."""
    from posekit.inference.smoothing import jitter, lag
    matched = ids >= 0
    out = {"identity_switches": identity_switches(ids), "coverage": float(matched[scored].mean()),
           "track_ids": sorted({int(i) for i in ids[matched]})}
    if matched.sum() < 3:
        return {**out, "jitter": float("nan"), "lag": float("nan"), "error_px": float("nan")}
    return {**out, "jitter": jitter(keypoints[..., :2]), "lag": lag(keypoints[..., :2], truth, subframe=True),
            "error_px": float(np.nanmean(np.linalg.norm(keypoints[..., :2] - truth, axis=-1)))}


def run_pipeline(predictor, detector, clip: Path, **options) -> tuple[list[dict], dict]:
    from posekit.inference.video import VideoCounts, predict_video
    counts = VideoCounts()
    records = predict_video(predictor, clip, detector=detector, counts=counts, **options)
    return records, {k: v for k, v in counts.__dict__.items()}


def row_specs(intervals: list[int]) -> dict[str, dict]:
    """{row label: predict_video options}: the detector intervals, raw and with One-Euro smoothing (smoothing does
    not change the tracking, so the slow every-frame row is raw only), then two ablations of the default."""
    rows = {}
    for every in intervals:
        rows[f"detector every {every}"] = {"detect_every": every}
        if every != 1:
            rows[f"detector every {every}, One-Euro"] = {"detect_every": every, "smooth": "one-euro"}
    rows["ablation: detector every 10, pose following next to others too (no coasting)"] = {
        "detect_every": 10, "tracker_options": {"clear_overlap": 1.0}}
    rows["ablation: detector every 10, confident detections only (no weak round)"] = {
        "detect_every": 10, "weak_detection": None}
    return rows


def crossing_rows(predictor, detector, clips: list[tuple[Path, np.ndarray]], specs: dict[str, dict]) -> dict:
    """{row label: {"people": [per-person scores over all clips], "identity_switches", means, counts}}."""
    rows = {}
    for label, options in specs.items():
        people, counts = [], []
        for clip, truth in clips:
            records, count = run_pipeline(predictor, detector, clip, **options)
            ids, keypoints = match_people(records, truth)
            scored = ~ambiguous_frames(truth)
            people += [person_scores(ids[i], keypoints[i], truth[i], scored) for i in range(len(truth))]
            counts.append(count)
        rows[label] = {"options": options, "people": people,
                       "identity_switches": sum(p["identity_switches"] for p in people),
                       "tracks_started": sum(c["tracks_started"] for c in counts),
                       "detector_frames": sum(c["detector_frames"] for c in counts),
                       **{k: float(np.nanmean([p[k] for p in people])) for k in ("coverage", "jitter", "lag", "error_px")}}
        print(f"{label}: {rows[label]['identity_switches']} switches, coverage {rows[label]['coverage']:.3f}",
              file=sys.stderr, flush=True)
    return rows


def scene_cut_case(predictor, detector, frames_a, truth_a, frames_b, truth_b, cut: int, tmp: Path) -> dict:
    """Clip A's first ``cut`` frames, then clip B from its first frame on; what is drawn on B's first frame (the
    frame ``cut``). A skeleton there is stale when its track was seen before the cut, or when it stands where one
    of A's people would be (within MATCH_DISTANCE of A's true joints at that frame) and near none of B's."""
    clip = tmp / "cut.mp4"
    write_clip(clip, frames_a[:cut] + frames_b[:len(frames_b) - cut])
    out = {}
    for label, options in (("cut detection (default)", {}), ("no cut detection", {"cut_threshold": None})):
        records, counts = run_pipeline(predictor, detector, clip, detect_every=10, **options)
        before = {p["track_id"] for r in records if r["frame"] < cut for p in r["people"]}
        first_b = next(r for r in records if r["frame"] == cut)["people"]

        def near(person, truth):
            xy = np.array(person["keypoints"])[:, :2]
            return min(np.linalg.norm(xy - joints, axis=-1).mean() for joints in truth) < MATCH_DISTANCE

        stale = sum(p["track_id"] in before or (near(p, truth_a[:, cut]) and not near(p, truth_b[:, 0]))
                    for p in first_b)
        out[label] = {"cuts_found": counts["cuts"], "people_drawn_on_first_b_frame": len(first_b),
                      "near_b_people": sum(near(p, truth_b[:, 0]) for p in first_b),
                      "stale_skeletons_on_first_b_frame": stale, "tracks_started": counts["tracks_started"]}
    if out["cut detection (default)"]["stale_skeletons_on_first_b_frame"] != 0:
        raise AssertionError(f"a skeleton of clip A is drawn on clip B's first frame: {out}")
    out["assert_no_stale_skeleton_with_cut_detection"] = "passed"
    return out


# -- report ------------------------------------------------------------------------------------------
def markdown(r: dict) -> str:
    lines = ["# Multi-person video tracking: two people crossing, and a scene cut", "", r["description"], "",
             *table(["pipeline", "identity switches", "tracks started", "coverage", "jitter", "lag (frames)",
                     "error (px)", "detector frames"],
                    [[label, row["identity_switches"], row["tracks_started"], f"{row['coverage']:.3f}",
                      f"{row['jitter']:.2f}", f"{row['lag']:.2f}", f"{row['error_px']:.1f}", row["detector_frames"]]
                     for label, row in r["crossing"].items()]), "",
             "Per person (default: detector every 10 frames, raw / One-Euro):", "",
             *table(["clip, person", "track ids", "switches", "coverage", "jitter raw / 1€", "lag raw / 1€",
                     "error raw / 1€"],
                    [[f"{c // 2 + 1}, {'AB'[c % 2]}", " ".join(map(str, raw["track_ids"])), raw["identity_switches"],
                      f"{raw['coverage']:.2f}", f"{raw['jitter']:.2f} / {euro['jitter']:.2f}",
                      f"{raw['lag']:.2f} / {euro['lag']:.2f}", f"{raw['error_px']:.1f} / {euro['error_px']:.1f}"]
                     for c, (raw, euro) in enumerate(zip(r["crossing"]["detector every 10"]["people"],
                                                         r["crossing"]["detector every 10, One-Euro"]["people"]))]),
             "", f"Scene cut at frame {r['cut_at']} (detector every 10 frames):", "",
             *table(["pipeline", "cuts found", "people on B's first frame", "of them on B's people",
                     "stale skeletons on it", "tracks started"],
                    [[label, c["cuts_found"], c["people_drawn_on_first_b_frame"], c["near_b_people"],
                      c["stale_skeletons_on_first_b_frame"], c["tracks_started"]]
                     for label, c in r["scene_cut"].items() if isinstance(c, dict)]),
             "", f"Assertion (no skeleton of A on B's first frame, with cut detection): "
                 f"{r['scene_cut']['assert_no_stale_skeleton_with_cut_detection']}.", "",
             f"Command: `{r['command']}`", ""]
    return "\n".join(lines)


def main(argv=None) -> int:
    args = parse_args(argv)
    import torch
    torch.set_num_threads(args.threads)
    from posekit.inference.detector import PersonDetector
    from posekit.inference.predictor import Predictor
    # the committed results were measured with the single 256-px pass (the default before the tiled zoom pass)
    predictor, detector = Predictor.load(args.checkpoint), PersonDetector.load(args.detector, tiles=0)
    samples = upright_people(args.val, 2 * args.clips, args.seed)
    backgrounds, background_names = person_free_backgrounds(detector, args.clips)
    with tempfile.TemporaryDirectory() as tmp:
        made = [crossing_clip(backgrounds[c], samples[2 * c:2 * c + 2], args.frames) for c in range(args.clips)]
        clips = []
        for c, (frames, truth) in enumerate(made):
            write_clip(Path(tmp) / f"crossing{c}.mp4", frames)
            clips.append((Path(tmp) / f"crossing{c}.mp4", truth))
        crossing = crossing_rows(predictor, detector, clips,
                                 row_specs([int(k) for k in args.detect_every.split(",")]))
        cut = scene_cut_case(predictor, detector, *made[0], *made[1], args.cut_at, Path(tmp))
    names = [Path(s.image_path).name for s in samples]
    results = {
        "description": f"{args.clips} clips x {args.frames} frames at 30 fps, {FRAME_SIZE[0]}x{FRAME_SIZE[1]}: pairs "
                       f"of LSPET val people ({', '.join(names)}; seed {args.seed}) crossing on person-free COCO-MINI "
                       f"val photos ({', '.join(background_names)}). Pose `{Path(args.checkpoint).name}` (flip test), "
                       f"detector `{Path(args.detector).name}` (score threshold 0.15). Jitter px/frame², lag in frames, "
                       "error in px, over the frames a person is matched to a track (box IoU >= 0.3; coverage = the "
                       "share of scored frames: frames where the two true boxes overlap with IoU > 0.5 are not scored, "
                       f"{int(sum(ambiguous_frames(t).sum() for _, t in made))} of {args.clips * args.frames}); means "
                       f"over the {2 * args.clips} people.",
        "crossing": crossing, "scene_cut": cut, "cut_at": args.cut_at, "people": names, "backgrounds": background_names,
        "budget": {"clips": args.clips, "frames": args.frames, "seed": args.seed, "threads": args.threads},
        "checkpoint": args.checkpoint, "detector": args.detector, "environment": environment(),
        "command": command("benchmarks/tracking.py", python=True),
    }
    return finish_study(results, args.out, markdown)


if __name__ == "__main__":
    sys.exit(main())
