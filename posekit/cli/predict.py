"""`posekit predict`: keypoints of a dataset, a folder of images or a video, streamed to a JSON list."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from posekit.cli.common import add_predictor_args, json_object, load_predictor


def tile_grids_arg(text: str) -> int | tuple[int, ...]:
    """``--detector-tiles``: "0", "2" -> int, "2,3" -> (2, 3) (checked by the detector, which names the flag)."""
    try:
        grids = tuple(int(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected N or N,M,... (integers), got {text!r}") from None
    return grids[0] if len(grids) == 1 else grids


def add_parser(sub) -> None:
    from posekit.inference.draw import DEFAULT_JOINT_THRESHOLD
    from posekit.inference.scene_cuts import DEFAULT_CUT_THRESHOLD
    from posekit.inference.tracking import DEFAULT_DETECT_EVERY, DEFAULT_MAX_LOST
    q = sub.add_parser("predict", help="predict keypoints: a dataset, a folder of images, or a video")
    add_predictor_args(q)
    q.add_argument("source", nargs="?", help="an image, a folder of images, a glob ('photos/*.jpg') or a video "
                   "file (instead of --data)")
    q.add_argument("--data", help="data spec (boxes from the annotations; LSP: from the joints)")
    q.add_argument("--boxes", help="COCO detection-results json with person boxes for a folder")
    q.add_argument("--score-threshold", type=float, default=None,
                   help="minimum person score of a detection (--boxes: default 0; the detector: its default)")
    q.add_argument("--detector", default="auto",
                   help="person detector for images without --boxes and for video: a MultiPose checkpoint, 'auto' "
                        "(the zoo's movenet_multipose.pt) or 'none' (the whole image is one person box; video: one "
                        "person, the whole frame first, then the box of the previous frame's keypoints)")
    q.add_argument("--max-people", type=int, default=None,
                   help="detector: at most this many people per image (default: all it finds, up to 6 a pass)")
    q.add_argument("--detector-size", type=int, default=None,
                   help="detector: the full-frame pass's long side in px, a multiple of 32 (default: the detector's, "
                        "posekit.inference.detector.DEFAULT_LONG_SIDE; larger finds smaller people, costs more)")
    q.add_argument("--detector-tiles", type=tile_grids_arg, default=None,
                   help="detector: N > 1 adds a zoomed pass on N x N overlapping tiles merged with the full frame "
                        "(finds small and crowded people; N * N more passes), several grids comma-separated (2,3); "
                        "0: the full frame only (default: the detector's, DEFAULT_TILES)")
    q.add_argument("--detector-rescore", default=None,
                   help="detector: 'agreement' multiplies a person's score by the share of the passes holding its "
                        "box whole that found it too (fewer false people with tiles); 'none': MultiPose's score "
                        "(default: the detector's, DEFAULT_RESCORE; checked by the detector)")
    q.add_argument("--out", required=True, help="predictions json (list, one entry per person box; video: one "
                   "entry per frame with its people)")
    q.add_argument("--draw", help="folder (images) or .mp4 path (video) for drawn skeletons")
    q.add_argument("--draw-threshold", type=float, default=DEFAULT_JOINT_THRESHOLD,
                   help="drawing: joints scoring at or below this are not drawn")
    q.add_argument("--smooth", default="none", choices=["none", "ema", "one-euro"],
                   help="video keypoint smoothing, per tracked person")
    q.add_argument("--smooth-params", default="{}",
                   help='JSON, e.g. \'{"alpha": 0.5}\' or \'{"min_cutoff": 1.0, "beta": 0.01}\'')
    q.add_argument("--box-passes", type=int, default=1,
                   help="video: network passes per person and frame, each from the box of the last pass's keypoints "
                        "(2 cuts the lag of the box that follows the previous frame; costs one more pass)")
    q.add_argument("--detect-every", type=int, default=DEFAULT_DETECT_EVERY,
                   help="video: run the detector every K frames (and on the first frame and after a scene cut); "
                        "tracks follow their poses in between")
    q.add_argument("--max-lost", type=int, default=DEFAULT_MAX_LOST,
                   help="video: a person unseen for this many frames ends its track")
    q.add_argument("--cut-threshold", type=float, default=DEFAULT_CUT_THRESHOLD,
                   help="video: colour-histogram distance (0-1) to the previous frame above which a frame is a scene "
                        "cut and every track ends (1: no cut detection)")
    q.set_defaults(func=run)


def run(args) -> int:
    from posekit.inference.sources import source_kind
    predictor = load_predictor(args)
    if args.source and source_kind(args.source) == "video":
        return run_video(args, predictor)
    return run_images(args, predictor)


def run_video(args, predictor) -> int:
    """`posekit predict clip.mp4`: one record per decoded frame, the counts of frames and people at the end."""
    from posekit.inference.video import VideoCounts, predict_video
    detector = load_detector(args)
    if detector is None:
        print("no detector (--detector none): one person, the whole frame first", file=sys.stderr)
    counts = VideoCounts()
    records = predict_video(predictor, args.source, detector=detector, detect_every=args.detect_every,
                            max_lost=args.max_lost, cut_threshold=args.cut_threshold, smooth=args.smooth,
                            smooth_params=json_object(args.smooth_params, "--smooth-params"), draw_path=args.draw,
                            box_passes=args.box_passes, draw_threshold=args.draw_threshold, counts=counts)
    Path(args.out).write_text(json.dumps(records) + "\n")
    name = Path(args.source).name
    print(counts.summary(name))
    if counts.damaged:
        print(f"warning: {name} is damaged: {counts.skipped} frames could not be decoded and were skipped"
              + (f", {counts.not_decoded_at_end} at the end were never reached" if counts.not_decoded_at_end else "")
              + "; the records keep each frame's number", file=sys.stderr)
    print(f"wrote {len(records)} frames to {args.out}")
    return 0


def run_images(args, predictor) -> int:
    """Images or a dataset: one record per person box, streamed; predicting nothing from unreadable input is an
    error that says why."""
    from posekit.inference.predictor import prediction_record
    from posekit.inference.sources import LastImage
    counts, last = {}, LastImage()
    samples = prediction_samples(args, predictor, counts, last)
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
        for sample, keypoints in predictor.predict_samples(samples, on_error=lambda s, e: failures.append(str(e)),
                                                           read=last.read):
            det_score = sample.extra.get("score")  # a detection's person score (--boxes or the detector)
            score = float(keypoints[:, 2].mean()) * (det_score if det_score is not None else 1.0)
            f.write(("," if n else "") + "\n" + json.dumps(prediction_record(sample, keypoints, score)))
            n += 1
            if draw_dir:
                draw_prediction(sample, keypoints, skeleton, draw_dir, args.draw_threshold)
        f.write("\n]\n")
    for why in failures:
        print(f"skipped: {why}", file=sys.stderr)
    if counts:
        print(f"detector: {counts['people']} people in {counts['images']} images; no person in {counts['empty']}"
              + (f"; {counts['unreadable']} unreadable" if counts["unreadable"] else ""))
    if not n:
        try:
            why = nothing_predicted(args, failures)
        except ValueError as err:  # e.g. a folder without any image
            why = str(err)
        if why:
            out.unlink()
            raise ValueError(why)
    print(f"wrote {n} predictions to {out}" + (f" ({len(failures)} images skipped, listed above)" if failures else ""))
    return 0


def nothing_predicted(args, failures: list) -> str | None:
    """Why a run predicted nothing when its input could not be read (None when it could: e.g. nobody was found)."""
    if failures:
        return f"nothing predicted: all {len(failures)} person boxes failed (listed above)"
    if args.source:
        from posekit.inference.sources import unreadable_source
        return unreadable_source(args.source)
    return f"nothing predicted: {args.data} gave no person box"


def load_detector(args):
    """The PersonDetector the options ask for (``--detector auto | CKPT``), or None for ``--detector none``."""
    if args.detector == "none":
        return None
    from posekit.inference.detector import PersonDetector
    from posekit.inference.sources import default_detector
    path = default_detector() if args.detector == "auto" else Path(args.detector)
    if path is None:
        raise ValueError("no detector: zoo/movenet_multipose.pt is not next to this installation; give "
                         "--detector CHECKPOINT (python -m posekit.models.movenet_import movenet-multipose.onnx), "
                         "--boxes dets.json or --detector none")
    flags = {"long_side": ("--detector-size", args.detector_size), "tiles": ("--detector-tiles", args.detector_tiles),
             "rescore": ("--detector-rescore", args.detector_rescore),
             "max_people": ("--max-people", args.max_people), "score_threshold": ("--score-threshold", args.score_threshold)}
    try:
        return PersonDetector.load(path, **{k: v for k, (_, v) in flags.items() if v is not None})
    except ValueError as err:  # name the flag, not the keyword: "--detector-size must be a multiple of 32, got 300"
        option = str(err).split(" ", 1)[0]
        if option in flags:
            raise ValueError(f"{flags[option][0]} {str(err).split(' ', 1)[1]}") from None
        raise


def prediction_samples(args, predictor, counts: dict, last):
    """The person boxes to predict: a dataset's annotations, a detections file, the detector, or (with
    ``--detector none``) the whole image."""
    from posekit.data.formats import load_samples
    from posekit.data.formats.folder import read_image_folder
    from posekit.inference.sources import detected_samples, image_paths, source_kind
    if args.data:
        return load_samples(args.data)
    if not args.source:
        raise SystemExit("posekit predict: give --data FORMAT:PATH, an image, a folder, a glob or a video file")
    if args.boxes or args.detector == "none":
        if source_kind(args.source) != "folder":
            raise ValueError(f"{args.source}: --boxes and --detector none read a folder of images")
        if not args.boxes:
            print("no detector (--detector none): each whole image is one person box", file=sys.stderr)
        return read_image_folder(args.source, boxes_file=args.boxes, score_threshold=args.score_threshold or 0.0)
    return detected_samples(image_paths(args.source), load_detector(args), predictor.num_keypoints,
                            predictor.pose_config.skeleton, counts, last)


def draw_prediction(sample, keypoints, skeleton, draw_dir: Path, threshold: float) -> None:
    import cv2
    from posekit.data.io import read_image
    from posekit.inference.draw import draw_pose
    target = draw_dir / (Path(sample.file_name or sample.image_path).stem + ".jpg")
    base = cv2.cvtColor(cv2.imread(str(target)), cv2.COLOR_BGR2RGB) if target.exists() else read_image(sample.image_path)
    cv2.imwrite(str(target), cv2.cvtColor(draw_pose(base, keypoints, skeleton, threshold=threshold, legend=True), cv2.COLOR_RGB2BGR))
