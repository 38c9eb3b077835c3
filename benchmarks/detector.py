"""The person detector (MoveNet MultiPose imported into posekit) on COCO-MINI, its settings compared, and the whole
detector + pose pipeline against the same pose model given the annotated boxes.

1. Detection, for each setting of :data:`SETTINGS` (the full-frame pass's long side; a zoomed pass on 2 x 2
   overlapping tiles merged by NMS): person boxes against the annotated people with at least 5 labelled
   keypoints (crowd regions and people with fewer keypoints neither count as misses nor as false detections when
   a box matches them), greedy matching at IoU >= 0.5 in decreasing score: recall, precision, the person-free
   photos that get no person, CPU ms per photo. Each setting's score threshold is chosen on COCO-MINI **train**
   (:func:`choose_threshold`: the highest recall with precision >= 0.8 and >= 90% of the person-free photos
   without a person) and then reported on **val**; the default (``posekit.inference.detector``'s ``DEFAULT_*``
   constants) is the setting with the highest train recall under the same conditions.
2. Pipeline: OKS AP (pycocotools) on COCO-MINI val of ``--pose`` top-down on the detector's boxes (person score
   = detection score) of the first setting and of the default, against the same model on the annotated boxes.

Every pass runs once per photo however many settings use it (:class:`PassCache`); its CPU (process) time counts
for each, so the ms column compares the settings on one core even while the machine is shared.

    python benchmarks/detector.py --threads 1 [--pose zoo/...pt] [--settings 256,512]   # ~15 CPU minutes
"""
from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

from common import ROOT, command, environment, table, write_results
from posekit.data.io import read_image
from posekit.inference.detector import PersonDetector

COCO_MINI = ROOT / ".." / "shared" / "datasets" / "coco-mini"
THRESHOLDS = [round(t, 2) for t in np.arange(0.05, 0.61, 0.05)]


def iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(M, 4), (G, 4) x, y, w, h -> (M, G) intersection over union."""
    ax2, ay2, bx2, by2 = a[:, 0] + a[:, 2], a[:, 1] + a[:, 3], b[:, 0] + b[:, 2], b[:, 1] + b[:, 3]
    w = np.clip(np.minimum(ax2[:, None], bx2[None]) - np.maximum(a[:, None, 0], b[None, :, 0]), 0, None)
    h = np.clip(np.minimum(ay2[:, None], by2[None]) - np.maximum(a[:, None, 1], b[None, :, 1]), 0, None)
    inter = w * h
    return inter / (a[:, 2:].prod(1)[:, None] + b[:, 2:].prod(1)[None] - inter + 1e-9)


def match(boxes, scores, people, ignored) -> tuple[int, int]:
    """(true positives, false positives) of one photo's detections (best score first)."""
    taken = np.zeros(len(people), bool)
    tp = fp = 0
    for i in np.argsort(-scores):
        overlaps = iou(boxes[i:i + 1], people)[0] if len(people) else np.zeros(0)
        overlaps[taken] = 0
        if len(overlaps) and overlaps.max() >= 0.5:
            taken[overlaps.argmax()] = True
            tp += 1
        elif not (len(ignored) and iou(boxes[i:i + 1], ignored)[0].max() >= 0.5):
            fp += 1
    return tp, fp


def read_split(split: str) -> tuple[dict, list]:
    ann = COCO_MINI / "annotations" / f"person_keypoints_{split}.json"
    data = json.loads(ann.read_text())
    people = {im["id"]: ([], []) for im in data["images"]}
    for a in data["annotations"]:
        counted = a["num_keypoints"] >= 5 and not a.get("iscrowd")
        people[a["image_id"]][0 if counted else 1].append(a["bbox"])
    return data, [(COCO_MINI / split / im["file_name"], im["id"], *(np.array(b, np.float32).reshape(-1, 4)
                                                                     for b in people[im["id"]])) for im in data["images"]]


#: the detector settings compared (name -> PersonDetector options); the first is the previous default
SETTINGS = {
    "256": {"long_side": 256, "tiles": 0},
    "384": {"long_side": 384, "tiles": 0},
    "512": {"long_side": 512, "tiles": 0},
    "256 + 2x2 tiles": {"long_side": 256, "tiles": 2, "tile_score_threshold": None},
    "256 + 2x2 tiles (tile score >= 0.2)": {"long_side": 256, "tiles": 2, "tile_score_threshold": 0.2},
}


class PassCache:
    """Runs each (photo, region, long side) pass once for every setting that needs it, remembering the outputs
    and the pass's CPU time (process time: the machine may be shared), so a setting's ms per photo is the
    sum of its passes' times, all measured in the same run."""

    def __init__(self, detector: PersonDetector):
        self.detector, self.run_pass, self.memo, self.spent = detector, detector.run_pass, {}, 0.0
        detector.run_pass = self

    def __call__(self, image, region=None, long_side=None):
        key = (id(image), None if region is None else tuple(int(v) for v in region), long_side or self.detector.long_side)
        if key not in self.memo:
            start = time.process_time()
            out = self.run_pass(image, region, long_side)
            self.memo[key] = (out, time.process_time() - start)
        out, seconds = self.memo[key]
        self.spent += seconds
        return out


def detect_all(detector: PersonDetector, photos, cache: PassCache) -> list[dict]:
    """Every candidate of the detector's current setting in each photo (merge and threshold later)."""
    out = []
    for path, image_id, people, ignored, image in photos:
        cache.spent = 0.0
        boxes, scores = detector.candidates(image)
        out.append({"path": path, "image_id": image_id, "image": image, "candidates": (boxes, scores),
                    "people": people, "ignored": ignored, "ms": cache.spent * 1000})
    return out


def detection_metrics(detector: PersonDetector, found: list[dict], threshold: float) -> dict:
    tp = fp = total = empty_hit = empty = 0
    for photo in found:
        boxes, scores = detector.merge(*photo["candidates"], min_score=threshold)
        t, f = match(boxes, scores, photo["people"], photo["ignored"])
        tp, fp, total = tp + t, fp + f, total + len(photo["people"])
        if not len(photo["people"]) and not len(photo["ignored"]):
            empty += 1
            empty_hit += int(len(boxes) > 0)
    return {"threshold": threshold, "recall": tp / max(total, 1), "precision": tp / max(tp + fp, 1),
            "f1": 2 * tp / max(2 * tp + fp + total - tp, 1), "people": total, "person_free_photos": empty,
            "person_free_with_a_person": empty_hit, "ms_per_photo": float(np.median([f["ms"] for f in found]))}


def meets_target(m: dict) -> bool:
    """Precision >= 0.8 and at least 90% of the person-free photos without a person (the issue's targets)."""
    return m["precision"] >= 0.8 and m["person_free_with_a_person"] <= 0.1 * m["person_free_photos"]


def choose_threshold(sweep: list[dict]) -> dict:
    """The train threshold with the highest recall that meets the precision and person-free targets (ties: the
    higher threshold); the best F1 when none does."""
    meeting = [m for m in sweep if meets_target(m)]
    if meeting:
        return max(meeting, key=lambda m: (m["recall"], m["threshold"]))
    return max(sweep, key=lambda m: m["f1"])


def annotated_ap(pose) -> float:
    """OKS AP of ``pose`` on COCO-MINI val given the annotated boxes."""
    from posekit.data.formats import load_samples
    from posekit.engine.evaluate import evaluate_samples
    ann = COCO_MINI / "annotations" / "person_keypoints_val2017.json"
    return evaluate_samples(pose, load_samples(f"coco:{ann}@val2017"), coco_gt=str(ann))["AP"]


def pipeline_ap(pose, detector: PersonDetector, found: list[dict], data: dict, given_ap: float) -> dict:
    from posekit.metrics import coco_oks_ap
    records = []
    for photo in found:
        boxes, scores = detector.merge(*photo["candidates"])
        for box, score, kp in zip(boxes, scores, pose.predict(photo["image"], boxes)):
            records.append({"image_id": photo["image_id"], "keypoints": kp.tolist(), "score": float(score)})
    detected = coco_oks_ap(data, records)["AP"]
    return {"detected_boxes_AP": detected, "annotated_boxes_AP": given_ap,
            "ratio": detected / given_ap if given_ap else float("nan"), "people_predicted": len(records)}


def markdown(r: dict) -> str:
    d = r["settings"][r["default"]]
    base = r["settings"][next(iter(r["settings"]))]["val"]["ms_per_photo"]
    rows = []
    for name, m in r["settings"].items():
        t, v = m["train"], m["val"]
        rows.append([f"**{name}** (default)" if name == r["default"] else name, m["threshold"],
                     f"{t['recall']:.3f}", f"{t['precision']:.3f}", free(t), f"{v['recall']:.3f}", f"{v['precision']:.3f}",
                     free(v), f"{v['ms_per_photo']:.0f}", f"{v['ms_per_photo'] / base:.2f}"])
    lines = [f"Detector: `{r['detector']}`; each setting's score threshold is chosen on COCO-MINI train (the highest recall "
             "with precision >= 0.8 and >= 90% of the person-free photos without a person); recall and "
             f"precision at IoU 0.5 against the people with >= 5 labelled keypoints ({d['train']['people']} in train, "
             f"{d['val']['people']} in val); person-free: photos without any annotated person that get none. ms: "
             f"median CPU time per photo (process time, {r['threads']} thread; wall time on an idle core), all measured "
             "in this run; ratio to the first row.", "",
             *table(["setting", "threshold", "train recall", "train precision", "train person-free", "val recall",
                     "val precision", "val person-free", "ms / photo", "ms ratio"], rows), "",
             f"Default: `{r['default']}` ({r['default_description']}).", "",
             f"Pipeline on COCO-MINI val with `{r['pose']}` (OKS AP, pycocotools; person score = detection score):", "",
             *table(["boxes", "people", "OKS AP", "ratio to annotated"],
                    [[f"detector, {name}", p["people_predicted"], f"{p['detected_boxes_AP']:.3f}", f"{p['ratio']:.2f}"]
                     for name, p in r["pipeline"].items()]
                    + [["annotated", "", f"{next(iter(r['pipeline'].values()))['annotated_boxes_AP']:.3f}", "1.00"]]),
             "", f"Command: `{r['command']}`", ""]
    return "\n".join(lines)


def free(m: dict) -> str:
    return f"{m['person_free_photos'] - m['person_free_with_a_person']} / {m['person_free_photos']}"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--detector", type=Path, help="MultiPose checkpoint (default: import ../shared/models/movenet-multipose.onnx)")
    p.add_argument("--pose", type=Path, help="pose checkpoint (default: import ../shared/models/movenet-thunder.onnx)")
    p.add_argument("--settings", default=",".join(SETTINGS), help="the settings to compare, comma-separated")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "detector.json")
    args = p.parse_args()
    import torch
    torch.set_num_threads(args.threads)
    from posekit.checkpoint import save_checkpoint
    from posekit.inference import detector as det
    from posekit.inference.predictor import Predictor
    from posekit.models.movenet_import import movenet_checkpoint

    default = {"long_side": det.DEFAULT_LONG_SIDE, "tiles": det.DEFAULT_TILES,
               "tile_score_threshold": det.DEFAULT_TILE_SCORE_THRESHOLD}
    names = [n.strip() for n in args.settings.split(",")]
    unknown = [n for n in names if n not in SETTINGS]
    if unknown:
        raise SystemExit(f"unknown setting(s) {unknown}; known: {list(SETTINGS)}")
    default_name = next((n for n, o in SETTINGS.items() if {**default, **o} == default), None)
    if default_name not in names:
        names.append(default_name)
    with tempfile.TemporaryDirectory() as tmp:
        def imported(name):
            path = Path(tmp) / f"{name}.pt"
            save_checkpoint(path, movenet_checkpoint(ROOT / ".." / "shared" / "models" / f"movenet-{name}.onnx"))
            return path
        detector_path = args.detector or imported("multipose")
        pose_path = args.pose or imported("thunder")
        detector = PersonDetector.load(detector_path)
        cache = PassCache(detector)
        splits = {s: read_split(f"{s}2017") for s in ("train", "val")}
        photos = {s: [(*photo, read_image(photo[0])) for photo in rows] for s, (_, rows) in splits.items()}
        settings, found_default = {}, {}
        for name in names:
            for key, value in {**default, **SETTINGS[name]}.items():
                setattr(detector, key, value)
            found = {s: detect_all(detector, photos[s], cache) for s in photos}
            sweep = [detection_metrics(detector, found["train"], t) for t in THRESHOLDS]
            best = choose_threshold(sweep)
            settings[name] = {"options": SETTINGS[name], "threshold": best["threshold"], "train": best,
                              "val": detection_metrics(detector, found["val"], best["threshold"]), "train_sweep": sweep}
            if name in (default_name, names[0]):
                found_default[name] = found["val"]
            print(name, {s: {k: round(v, 3) for k, v in settings[name][s].items() if k in ("recall", "precision")}
                         for s in ("train", "val")}, f"{settings[name]['val']['ms_per_photo']:.0f} ms", flush=True)
        chosen = settings[default_name]
        if chosen["threshold"] != det.DEFAULT_SCORE_THRESHOLD:
            print(f"note: the default setting's best train threshold is {chosen['threshold']}, "
                  f"DEFAULT_SCORE_THRESHOLD is {det.DEFAULT_SCORE_THRESHOLD}")
        results = {"detector": str(args.detector or "movenet-multipose.onnx (imported)"),
                   "pose": str(args.pose or "movenet-thunder.onnx (imported)"), "threads": args.threads,
                   "default": default_name, "settings": settings,
                   "command": command("benchmarks/detector.py"),
                   "environment": environment("onnxruntime", "cpu", "load_average_1_5_15_min")}
        pose = Predictor.load(str(pose_path), flip_test=True)
        results["pipeline"], given_ap = {}, annotated_ap(pose)
        for name, found in found_default.items():
            for key, value in {**default, **SETTINGS[name]}.items():
                setattr(detector, key, value)
            detector.score_threshold = settings[name]["threshold"]
            results["pipeline"][name] = pipeline_ap(pose, detector, found, splits["val"][0], given_ap)
        for key, value in default.items():
            setattr(detector, key, value)
        detector.score_threshold = chosen["threshold"]
        results["default_description"] = detector.describe()
    write_results(results, args.out, "# Person detector on COCO-MINI\n\n" + markdown(results))
    print(markdown(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
