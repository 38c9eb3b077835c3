"""The person detector (MoveNet MultiPose imported into posekit) on COCO-MINI, and the whole detector + pose
pipeline against the same pose model given the annotated boxes.

1. Detection: person boxes against the annotated people with at least 5 labelled keypoints (crowd regions
   and people with fewer keypoints neither count as misses nor as false detections when a box matches
   them), greedy matching at IoU >= 0.5 in decreasing score: recall, precision, the person-free photos that
   still get a person, ms per photo. The score threshold is chosen on COCO-MINI **train** (the highest
   F1 there) and then reported on **val**.
2. Pipeline: OKS AP (pycocotools) on COCO-MINI val of ``--pose`` top-down on the detector's boxes (person score
   = detection score) against the same model on the annotated boxes.

    python benchmarks/detector.py [--pose zoo/...pt]     # default pose model: the imported MoveNet Thunder
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


def detect_all(detector: PersonDetector, photos) -> list[dict]:
    out = []
    for path, image_id, people, ignored in photos:
        image = read_image(path)
        start = time.perf_counter()
        boxes, scores, _ = detector.raw(image)
        ms = (time.perf_counter() - start) * 1000
        xywh = np.concatenate([boxes[:, :2], boxes[:, 2:] - boxes[:, :2]], 1)
        out.append({"path": path, "image_id": image_id, "image": image, "boxes": xywh, "scores": scores,
                    "people": people, "ignored": ignored, "ms": ms})
    return out


def detection_metrics(found: list[dict], threshold: float) -> dict:
    tp = fp = total = empty_hit = empty = 0
    for photo in found:
        keep = photo["scores"] >= threshold
        t, f = match(photo["boxes"][keep], photo["scores"][keep], photo["people"], photo["ignored"])
        tp, fp, total = tp + t, fp + f, total + len(photo["people"])
        if not len(photo["people"]) and not len(photo["ignored"]):
            empty += 1
            empty_hit += int(keep.any())
    return {"threshold": threshold, "recall": tp / max(total, 1), "precision": tp / max(tp + fp, 1),
            "people": total, "person_free_photos": empty, "person_free_with_a_person": empty_hit}


def pipeline_ap(pose, detector: PersonDetector, found: list[dict], data: dict) -> dict:
    from posekit.data.formats import load_samples
    from posekit.engine.evaluate import evaluate_samples
    from posekit.metrics import coco_oks_ap
    records = []
    for photo in found:
        keep = photo["scores"] >= detector.score_threshold
        boxes, scores = photo["boxes"][keep], photo["scores"][keep]
        for box, score, kp in zip(boxes, scores, pose.predict(photo["image"], boxes)):
            records.append({"image_id": photo["image_id"], "keypoints": kp.tolist(), "score": float(score)})
    detected = coco_oks_ap(data, records)
    ann = COCO_MINI / "annotations" / "person_keypoints_val2017.json"
    given = evaluate_samples(pose, load_samples(f"coco:{ann}@val2017"), coco_gt=str(ann))
    return {"detected_boxes_AP": detected["AP"], "annotated_boxes_AP": given["AP"],
            "ratio": detected["AP"] / given["AP"] if given["AP"] else float("nan"), "people_predicted": len(records)}


def markdown(r: dict) -> str:
    d = r["val"]
    lines = [f"Detector: `{r['detector']}`, score threshold {r['threshold']} (best F1 on COCO-MINI train), "
             f"{d['ms_per_photo']:.1f} ms per photo (median, {r['threads']} threads).", "",
             *table(["split", "people (>= 5 kp)", "recall @ IoU 0.5", "precision", "person-free photos with a person"],
                    [[s, r[s]["people"], f"{r[s]['recall']:.3f}", f"{r[s]['precision']:.3f}",
                      f"{r[s]['person_free_with_a_person']} / {r[s]['person_free_photos']}"] for s in ("train", "val")]),
             "", f"Pipeline on COCO-MINI val with `{r['pose']}` (OKS AP, pycocotools):", "",
             *table(["boxes", "OKS AP"], [["detector", f"{r['pipeline']['detected_boxes_AP']:.3f}"],
                                          ["annotated", f"{r['pipeline']['annotated_boxes_AP']:.3f}"]]),
             "", f"Ratio: {r['pipeline']['ratio']:.2f}.", "", f"Command: `{r['command']}`", ""]
    return "\n".join(lines)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--detector", type=Path, help="MultiPose checkpoint (default: import ../shared/models/movenet-multipose.onnx)")
    p.add_argument("--pose", type=Path, help="pose checkpoint (default: import ../shared/models/movenet-thunder.onnx)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "detector.json")
    args = p.parse_args()
    import torch
    torch.set_num_threads(args.threads)
    from posekit.checkpoint import save_checkpoint
    from posekit.inference.predictor import Predictor
    from posekit.models.movenet_import import movenet_checkpoint

    with tempfile.TemporaryDirectory() as tmp:
        def imported(name):
            path = Path(tmp) / f"{name}.pt"
            save_checkpoint(path, movenet_checkpoint(ROOT / ".." / "shared" / "models" / f"movenet-{name}.onnx"))
            return path
        detector_path = args.detector or imported("multipose")
        pose_path = args.pose or imported("thunder")
        detector = PersonDetector.load(detector_path)
        splits = {s: read_split(f"{s}2017") for s in ("train", "val")}
        found = {s: detect_all(detector, photos) for s, (_, photos) in splits.items()}
        sweep = [detection_metrics(found["train"], t) for t in THRESHOLDS]
        best = max(sweep, key=lambda m: 2 * m["recall"] * m["precision"] / max(m["recall"] + m["precision"], 1e-9))
        detector.score_threshold = best["threshold"]
        results = {"detector": str(args.detector or "movenet-multipose.onnx (imported)"),
                   "pose": str(args.pose or "movenet-thunder.onnx (imported)"), "threshold": best["threshold"],
                   "threads": args.threads, "train_sweep": sweep, "train": best,
                   "val": {**detection_metrics(found["val"], best["threshold"]),
                           "ms_per_photo": float(np.median([f["ms"] for f in found["val"]]))},
                   "command": command("benchmarks/detector.py"), "environment": environment("onnxruntime", "cpu")}
        pose = Predictor.load(str(pose_path), flip_test=True)
        results["pipeline"] = pipeline_ap(pose, detector, found["val"], splits["val"][0])
    write_results(results, args.out, "# Person detector on COCO-MINI\n\n" + markdown(results))
    print(markdown(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
