"""`posekit predict`: keypoints of a dataset, a folder of images or a video, streamed to a JSON list."""
from __future__ import annotations

import json
import sys
from pathlib import Path

from posekit.cli.common import add_predictor_args, load_predictor

VIDEO_EXTENSIONS = {".mp4", ".avi", ".mov", ".mkv", ".webm"}


def add_parser(sub) -> None:
    q = sub.add_parser("predict", help="predict keypoints: a dataset, a folder of images, or a video")
    add_predictor_args(q)
    q.add_argument("source", nargs="?", help="folder of images or a video file (instead of --data)")
    q.add_argument("--data", help="data spec (boxes from the annotations; LSP: from the joints)")
    q.add_argument("--boxes", help="COCO detection-results json with person boxes for a folder")
    q.add_argument("--score-threshold", type=float, default=0.0, help="minimum detection score")
    q.add_argument("--out", required=True, help="predictions json (list, one entry per person box)")
    q.add_argument("--draw", help="folder (images) or .mp4 path (video) for drawn skeletons")
    q.add_argument("--smooth", default="none", choices=["none", "ema", "one-euro"], help="video keypoint smoothing")
    q.add_argument("--smooth-params", default="{}",
                   help='JSON, e.g. \'{"alpha": 0.5}\' or \'{"min_cutoff": 1.0, "beta": 0.01}\'')
    q.add_argument("--box-passes", type=int, default=1,
                   help="video: network passes per frame, each from the box of the last pass's keypoints (2 cuts "
                        "the lag of the box that follows the previous frame; costs one more pass)")
    q.set_defaults(func=run)


def run(args) -> int:
    from posekit.inference.predictor import prediction_record
    predictor = load_predictor(args)
    if args.source and Path(args.source).suffix.lower() in VIDEO_EXTENSIONS:
        from posekit.inference.video import predict_video
        records = predict_video(predictor, args.source, smooth=args.smooth, smooth_params=json.loads(args.smooth_params),
                                draw_path=args.draw, box_passes=args.box_passes)
        Path(args.out).write_text(json.dumps(records) + "\n")
        print(f"wrote {len(records)} frames to {args.out}")
        return 0
    samples = prediction_samples(args)
    from posekit.skeletons import SKELETONS
    skeleton = SKELETONS.get(predictor.config.get("skeleton"))
    draw_dir = Path(args.draw) if args.draw else None
    if draw_dir:
        draw_dir.mkdir(parents=True, exist_ok=True)
    failures = []
    n = 0
    out = Path(args.out)
    # Stream records to disk: a 10,000-image folder never sits in memory at once.
    with open(out, "w") as f:
        f.write("[")
        for sample, keypoints in predictor.predict_samples(samples, on_error=lambda s, e: failures.append(str(e))):
            det_score = sample.extra.get("det_score")
            score = float(keypoints[:, 2].mean()) * (det_score if det_score is not None else 1.0)
            f.write(("," if n else "") + "\n" + json.dumps(prediction_record(sample, keypoints, score)))
            n += 1
            if draw_dir:
                draw_prediction(sample, keypoints, skeleton, draw_dir)
        f.write("\n]\n")
    for why in failures:
        print(f"skipped: {why}", file=sys.stderr)
    print(f"wrote {n} predictions to {out}" + (f" ({len(failures)} images skipped, listed above)" if failures else ""))
    return 0 if n or not failures else 1


def prediction_samples(args):
    from posekit.data.formats import load_samples
    from posekit.data.formats.folder import read_image_folder
    if args.data:
        return load_samples(args.data)
    if args.source:
        return read_image_folder(args.source, boxes_file=args.boxes, score_threshold=args.score_threshold)
    raise SystemExit("posekit predict: give --data FORMAT:PATH, a folder of images, or a video file")


def draw_prediction(sample, keypoints, skeleton, draw_dir: Path) -> None:
    import cv2
    from posekit.data.io import read_image
    from posekit.inference.draw import draw_pose
    target = draw_dir / (Path(sample.file_name or sample.image_path).stem + ".jpg")
    base = cv2.cvtColor(cv2.imread(str(target)), cv2.COLOR_BGR2RGB) if target.exists() else read_image(sample.image_path)
    cv2.imwrite(str(target), cv2.cvtColor(draw_pose(base, keypoints, skeleton, threshold=0.05), cv2.COLOR_RGB2BGR))
