"""The person detector (MoveNet MultiPose imported into posekit) on COCO-MINI, its settings compared, and the whole
detector + pose pipeline against the same pose model given the annotated boxes.

1. Detection, for each setting of :data:`SETTINGS` (the full-frame pass's long side; zoomed passes on N x N
   overlapping tiles merged by NMS; the cross-pass agreement rescoring): person boxes against the annotated people
   with at least 5 labelled keypoints, greedy matching at IoU >= 0.5 in decreasing score
   (:func:`detector_eval.match`: a box on a person with fewer keypoints, or at least half inside a crowd region as
   pycocotools rules, is neither a hit nor a false detection): recall, precision, the person-free photos that get
   no person, CPU ms per photo, and the recall ceiling (any candidate of any pass at any score). Each setting's
   score threshold is chosen on COCO-MINI **train** (:func:`choose_threshold`: the highest recall with precision
   >= 0.8 and >= 90% of the person-free photos without a person) and then reported on **val**; the rule for the
   default (:func:`rule_choice`, train only) is printed next to the package's ``DEFAULT_*`` constants.
2. Misses of the default on train (and val): box shape, score or never found (:func:`detector_eval.diagnose_misses`),
   and a per-side box calibration fitted on train, recall before / after.
3. Pipeline: OKS AP (pycocotools) on COCO-MINI val of ``--pose`` top-down on the detector's boxes (person score
   = detection score) of :data:`PIPELINE`'s settings, against the same model on the annotated boxes.

Every pass runs once per photo however many settings use it (:class:`PassCache`); its CPU (process) time counts
for each, so the ms column compares the settings on one core even while the machine is shared.

    python benchmarks/detector.py --threads 1 [--pose zoo/...pt] [--settings 256,512]   # ~7 CPU minutes
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from common import ROOT, command, environment, table, write_results
from detector_eval import calibrated, diagnose_misses, fit_calibration, match, read_split, recall_ceiling
from posekit.data.io import read_image
from posekit.inference.detector import PersonDetector

COCO_MINI = ROOT / ".." / "shared" / "datasets" / "coco-mini"
THRESHOLDS = [round(t, 2) for t in np.arange(0.05, 0.61, 0.05)]
#: settings whose train recall is within this of the best are equal at COCO-MINI's size (2 of its 72 train people);
#: of those the rule takes the cheapest
RECALL_TOLERANCE = 0.03



def _setting(long_side=256, tiles=0, tile_score_threshold=None, rescore="none") -> dict:
    return {"long_side": long_side, "tiles": tiles, "tile_score_threshold": tile_score_threshold, "rescore": rescore}


#: the detector settings compared (name -> PersonDetector options); the first is the single-pass default of old
SETTINGS = {
    "256": _setting(),
    "384": _setting(384),
    "512": _setting(512),
    "256 + 2x2 tiles": _setting(tiles=2),
    "256 + 2x2 tiles (tile score >= 0.2)": _setting(tiles=2, tile_score_threshold=0.2),
    "256 + 3x3 tiles": _setting(tiles=3),
    "256 + 2x2 + 3x3 tiles": _setting(tiles=(2, 3)),
    "256 + 2x2 tiles (agreement)": _setting(tiles=2, rescore="agreement"),
    "256 + 3x3 tiles (agreement)": _setting(tiles=3, rescore="agreement"),
    "256 + 2x2 + 3x3 tiles (agreement)": _setting(tiles=(2, 3), rescore="agreement"),
}
#: the settings whose whole detector + pose pipeline is measured (with the default): full frame, previous default
PIPELINE = ("256", "256 + 2x2 tiles (tile score >= 0.2)")


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
    for path, image_id, people, ignored, crowd, image in photos:
        cache.spent = 0.0
        candidates = detector.candidates(image)
        out.append({"path": path, "image_id": image_id, "image": image, "candidates": candidates,
                    "people": people, "ignored": ignored, "crowd": crowd, "ms": cache.spent * 1000})
    return out


def detection_metrics(detector: PersonDetector, found: list[dict], threshold: float) -> dict:
    tp = fp = total = empty_hit = empty = 0
    for photo in found:
        boxes, scores = detector.merge(*photo["candidates"], min_score=threshold)
        t, f = match(boxes, scores, photo["people"], photo["ignored"], photo["crowd"])
        tp, fp, total = tp + t, fp + f, total + len(photo["people"])
        if not (len(photo["people"]) or len(photo["ignored"]) or len(photo["crowd"])):
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


def rule_choice(settings: dict) -> str | None:
    """The default by train alone: of the settings meeting the targets at their train threshold, those within
    :data:`RECALL_TOLERANCE` of the best train recall, the cheapest (train ms per photo)."""
    meeting = {n: m["train"] for n, m in settings.items() if meets_target(m["train"])}
    if not meeting:
        return None
    best = max(m["recall"] for m in meeting.values())
    return min((n for n, m in meeting.items() if m["recall"] >= best - RECALL_TOLERANCE),
               key=lambda n: meeting[n]["ms_per_photo"])


def apply(detector: PersonDetector, options: dict, threshold: float | None = None) -> PersonDetector:
    for key, value in options.items():
        setattr(detector, key, value)
    if threshold is not None:
        detector.score_threshold = threshold
    return detector


def misses(detector: PersonDetector, found: dict, threshold: float) -> dict:
    """The default's misses on train and val, and the per-side calibration fitted on train (recall before / after)."""
    offsets, pairs = fit_calibration(found["train"])
    out = {"calibration_offsets": offsets.round(4).tolist(), "calibration_pairs": pairs}
    for split, photos in found.items():
        fixed = calibrated(photos, offsets)
        out[split] = {"diagnosis": diagnose_misses(detector, photos, threshold),
                      "before": detection_metrics(detector, photos, threshold),
                      "calibrated": detection_metrics(detector, fixed, threshold)}
    return out


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
                     free(v), f"{m['ceiling']['train']:.3f} / {m['ceiling']['val']:.3f}", f"{v['ms_per_photo']:.0f}",
                     f"{v['ms_per_photo'] / base:.2f}"])
    lines = [f"Detector: `{r['detector']}`; each setting's score threshold is chosen on COCO-MINI train (the highest recall "
             "with precision >= 0.8 and >= 90% of the person-free photos without a person); recall and "
             f"precision at IoU 0.5 against the people with >= 5 labelled keypoints ({d['train']['people']} in train, "
             f"{d['val']['people']} in val; a box on a person with fewer keypoints or at least half inside a crowd "
             "region is neither hit nor false, as in pycocotools); person-free: photos without any annotated person "
             "that get none; ceiling: the recall if every candidate of every pass counted, whatever its score (train / "
             f"val). Agreement: a kept person's score times the share of the passes holding its box whole that found it "
             f"too. ms: median CPU time per photo (process time, {r['threads']} thread; wall time on an idle core), all "
             "measured in this run; ratio to the first row.", "",
             *table(["setting", "threshold", "train recall", "train precision", "train person-free", "val recall",
                     "val precision", "val person-free", "ceiling", "ms / photo", "ms ratio"], rows), "",
             f"Default: `{r['default']}` ({r['default_description']}). The rule on train alone (the settings meeting "
             f"the targets, within {r['recall_tolerance']} of the best train recall, the cheapest) picks "
             f"`{r['rule_choice']}`{'' if r['rule_choice'] == r['default'] else ' (NOT the default)'}.", "",
             *misses_markdown(r["misses"], r["default"]),
             f"Pipeline on COCO-MINI val with `{r['pose']}` (OKS AP, pycocotools; person score = detection score):", "",
             *table(["boxes", "people", "OKS AP", "ratio to annotated"],
                    [[f"detector, {name}", p["people_predicted"], f"{p['detected_boxes_AP']:.3f}", f"{p['ratio']:.2f}"]
                     for name, p in r["pipeline"].items()]
                    + [["annotated", "", f"{next(iter(r['pipeline'].values()))['annotated_boxes_AP']:.3f}", "1.00"]]),
             "", f"Command: `{r['command']}`", ""]
    return "\n".join(lines)


def misses_markdown(m: dict, name: str) -> list[str]:
    keys = ("missed", "close_kept", "under_threshold", "close_under_threshold", "not_found")
    rows = [[split, *(m[split]["diagnosis"][k] for k in keys), f"{m[split]['diagnosis']['matched_median_iou']:.3f}",
             ", ".join(f"{v:+.3f}" for v in m[split]["diagnosis"]["matched_median_offsets"])] for split in ("train", "val")]
    cal = [[split, f"{m[split]['before']['recall']:.3f} / {m[split]['before']['precision']:.3f}",
            f"{m[split]['calibrated']['recall']:.3f} / {m[split]['calibrated']['precision']:.3f}"] for split in ("train", "val")]
    return [f"Missed people of `{name}` at its threshold: a kept box at IoU 0.3-0.5 (box shape), only a candidate under "
            "the threshold at IoU >= 0.5 (score) or at 0.3-0.5, no candidate at IoU >= 0.3 (not found); the matched "
            "boxes' median IoU and median side offsets (person minus box: x1, y1, x2, y2, fractions of the box's "
            "width / height):", "",
            *table(["split", "missed", "box shape", "score", "score + shape", "not found", "matched IoU",
                    "side offsets"], rows), "",
            f"Per-side box calibration fitted on train ({m['calibration_pairs']} people's best candidates at IoU >= 0.3; "
            f"offsets {', '.join(f'{v:+.3f}' for v in m['calibration_offsets'])}), recall / precision at the same "
            "threshold:", "", *table(["split", "boxes as found", "calibrated"], cal), ""]


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

    default = _setting(det.DEFAULT_LONG_SIDE, det.DEFAULT_TILES, det.DEFAULT_TILE_SCORE_THRESHOLD, det.DEFAULT_RESCORE)
    names = [n.strip() for n in args.settings.split(",")]
    unknown = [n for n in names if n not in SETTINGS]
    if unknown:
        raise SystemExit(f"unknown setting(s) {unknown}; known: {list(SETTINGS)}")
    default_name = next((n for n, o in SETTINGS.items() if o == default), None)
    if default_name is None:
        raise SystemExit(f"the package's default {default} is none of SETTINGS")
    names += [n for n in (*PIPELINE, default_name) if n not in names]
    with tempfile.TemporaryDirectory() as tmp:
        def imported(name):
            path = Path(tmp) / f"{name}.pt"
            save_checkpoint(path, movenet_checkpoint(ROOT / ".." / "shared" / "models" / f"movenet-{name}.onnx"))
            return path
        detector_path = args.detector or imported("multipose")
        pose_path = args.pose or imported("thunder")
        detector = PersonDetector.load(detector_path)
        cache = PassCache(detector)
        splits = {s: read_split(COCO_MINI, f"{s}2017") for s in ("train", "val")}
        photos = {s: [(*photo, read_image(photo[0])) for photo in rows] for s, (_, rows) in splits.items()}
        settings, kept = {}, {}
        for name in names:
            found = {s: detect_all(apply(detector, SETTINGS[name]), photos[s], cache) for s in photos}
            sweep = [detection_metrics(detector, found["train"], t) for t in THRESHOLDS]
            best = choose_threshold(sweep)
            settings[name] = {"options": SETTINGS[name], "threshold": best["threshold"], "train": best,
                              "val": detection_metrics(detector, found["val"], best["threshold"]), "train_sweep": sweep,
                              "ceiling": {s: recall_ceiling(found[s]) for s in found}}
            if name in (*PIPELINE, default_name):
                kept[name] = found
            print(name, {s: {k: round(v, 3) for k, v in settings[name][s].items() if k in ("recall", "precision")}
                         for s in ("train", "val")}, f"{settings[name]['val']['ms_per_photo']:.0f} ms", flush=True)
        chosen = settings[default_name]
        if rule_choice(settings) != default_name:
            print(f"note: the rule picks {rule_choice(settings)!r}, the package's default is {default_name!r}")
        if chosen["threshold"] != det.DEFAULT_SCORE_THRESHOLD:
            print(f"note: the default setting's best train threshold is {chosen['threshold']}, "
                  f"DEFAULT_SCORE_THRESHOLD is {det.DEFAULT_SCORE_THRESHOLD}")
        results = {"detector": str(args.detector or "movenet-multipose.onnx (imported)"),
                   "pose": str(args.pose or "movenet-thunder.onnx (imported)"), "threads": args.threads,
                   "default": default_name, "rule_choice": rule_choice(settings), "recall_tolerance": RECALL_TOLERANCE,
                   "settings": settings,
                   "misses": misses(apply(detector, default), kept[default_name], chosen["threshold"]),
                   "command": command("benchmarks/detector.py"),
                   "environment": environment("onnxruntime", "cpu", "load_average_1_5_15_min")}
        pose = Predictor.load(str(pose_path), flip_test=True)
        results["pipeline"], given_ap = {}, annotated_ap(pose)
        for name in (*PIPELINE, default_name):
            apply(detector, SETTINGS[name], settings[name]["threshold"])
            results["pipeline"][name] = pipeline_ap(pose, detector, kept[name]["val"], splits["val"][0], given_ap)
        results["default_description"] = apply(detector, default, chosen["threshold"]).describe()
    write_results(results, args.out, "# Person detector on COCO-MINI\n\n" + markdown(results))
    print(markdown(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
