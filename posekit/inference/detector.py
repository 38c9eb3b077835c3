"""Find the people in a photo: MoveNet MultiPose (imported into posekit) as a person detector.

The detector's boxes and person scores feed the top-down pose model; its own keypoints are not the output.

One **pass** runs the network on a region of the image: the region is resized so that its long side is
``long_side`` px, padded with black at the bottom / right to multiples of 32, and decoded with the released
graph's own MultiPose decoding (:func:`posekit.codecs.movenet.movenet_multipose_decode`: up to 6 people a pass).
:meth:`PersonDetector.detect` runs

1. a full-frame pass at ``long_side``;
2. with ``tiles=N`` (or several grids, ``tiles=(2, 3)``), a zoomed pass on each of N x N overlapping tiles
   (:func:`tile_regions`, ``tile_overlap`` of a tile shared with its neighbour) at the same ``long_side``: small
   people get about N times more pixels, and each tile has its own 6 people. A tile's box that touches one of the
   tile's inner edges (a person cut by it) is dropped (that person is whole in the neighbouring tile or in the
   full frame), and so is a tile's person scoring under ``tile_score_threshold`` (None: no such cut);

then merges everything by greedy non-maximum suppression (:func:`nms`, ``nms_iou``), with ``rescore="agreement"``
multiplies each kept person's score by the share of the passes holding its box whole that found it too
(:func:`pass_agreement`), drops people scoring below ``score_threshold`` and keeps at most ``max_people``, best
first. The defaults were chosen on COCO-MINI train (``benchmarks/detector.py``, which reports them on val).

>>> detector = PersonDetector.load("zoo/movenet_multipose.pt")
>>> boxes, scores = detector.detect(image)     # (M, 4) x, y, w, h image pixels, (M,) person scores
"""
from __future__ import annotations

import cv2
import numpy as np
import torch

from posekit.checkpoint import load_model
from posekit.codecs.movenet import MAX_PEOPLE, movenet_multipose_decode
from posekit.data.transforms import normalize_image

__all__ = ["PersonDetector", "DEFAULT_SCORE_THRESHOLD", "DEFAULT_LONG_SIDE", "DEFAULT_TILES", "DEFAULT_TILE_OVERLAP",
           "DEFAULT_TILE_SCORE_THRESHOLD", "DEFAULT_RESCORE", "RESCORE_MODES",
           "DEFAULT_NMS_IOU", "DEFAULT_MAX_PEOPLE", "letterbox", "tile_regions", "nms", "box_iou", "pass_agreement",
           "tile_grids"]

#: person score below which a detection is dropped (chosen on COCO-MINI train, see benchmarks/detector.py)
DEFAULT_SCORE_THRESHOLD = 0.15
#: the full-frame pass's long side in input px (MultiPose is usually run at 256)
DEFAULT_LONG_SIDE = 256
#: zoomed passes on N x N tiles (0: none; a tuple such as (2, 3): one set of tiles per grid); 2 was chosen on
#: COCO-MINI train (benchmarks/detector.py)
DEFAULT_TILES = 2
#: a tile's person scoring below this is dropped before merging (None: only ``score_threshold`` applies); with the
#: agreement rescoring no extra cut for the tiles' people did better on COCO-MINI train
DEFAULT_TILE_SCORE_THRESHOLD = None
#: "agreement": a kept person's score times the share of the passes holding its box whole that found it too
#: (:func:`pass_agreement`); "none": MultiPose's person score as it is (chosen on COCO-MINI train)
DEFAULT_RESCORE = "agreement"
RESCORE_MODES = ("agreement", "none")
#: the fraction of a tile's side shared with its neighbour
DEFAULT_TILE_OVERLAP = 0.25
#: a detection overlapping a better one by at least this IoU is the same person
DEFAULT_NMS_IOU = 0.5
#: at most this many people per image, after merging the passes (None: all that the passes find, 6 a pass)
DEFAULT_MAX_PEOPLE = None
#: a tile's box within this many input px of one of the tile's inner edges is a person cut by that edge
_CUT_MARGIN = 2.0


def letterbox(image: np.ndarray, long_side: int = 256, multiple: int = 32) -> tuple[np.ndarray, float]:
    """(H, W, 3) uint8 -> (image resized so max(H, W) = ``long_side``, padded with black at the bottom and
    right to multiples of ``multiple``; the scale factor: input px = image px * scale)."""
    h, w = image.shape[:2]
    scale = long_side / max(h, w)
    new_w, new_h = max(1, round(w * scale)), max(1, round(h * scale))
    resized = cv2.resize(image, (new_w, new_h), interpolation=cv2.INTER_LINEAR)
    pad_h, pad_w = -new_h % multiple, -new_w % multiple
    return np.pad(resized, ((0, pad_h), (0, pad_w), (0, 0))), scale


def tile_regions(width: int, height: int, grid: int, overlap: float = DEFAULT_TILE_OVERLAP) -> np.ndarray:
    """The ``grid`` x ``grid`` tiles covering a ``width`` x ``height`` image, neighbours sharing ``overlap`` of a
    tile's side: (grid * grid, 4) int ``x1, y1, x2, y2`` (x2, y2 exclusive), row by row. The first tile starts
    at 0 and the last ends at the image's side."""
    if grid < 1:
        raise ValueError(f"tiles must be >= 1, got {grid}")
    if not 0 <= overlap < 1:
        raise ValueError(f"tile_overlap must be in [0, 1), got {overlap}")

    def spans(side: int) -> list[tuple[int, int]]:
        size = side / (grid - (grid - 1) * overlap)
        step = size * (1 - overlap)
        return [(round(i * step), side if i == grid - 1 else round(i * step + size)) for i in range(grid)]

    return np.array([(x1, y1, x2, y2) for y1, y2 in spans(height) for x1, x2 in spans(width)], np.int64)


def tile_grids(tiles) -> tuple[int, ...]:
    """``tiles`` option -> the grids of the tiled passes: 0 / None / () -> (), 2 -> (2,), (2, 3) -> (2, 3).
    A ValueError for a grid of 1 or less (1 x 1 would repeat the full-frame pass)."""
    grids = () if tiles in (0, None) else (int(tiles),) if np.isscalar(tiles) else tuple(int(t) for t in tiles)
    if any(g < 2 for g in grids):
        shown = tiles if np.isscalar(tiles) else tuple(tiles)
        raise ValueError(f"tiles must be 0 (no tiled pass) or >= 2, got {shown}")
    return grids


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(M, 4), (G, 4) ``x1, y1, x2, y2`` -> (M, G) intersection over union."""
    a, b = np.asarray(a, np.float64).reshape(-1, 4), np.asarray(b, np.float64).reshape(-1, 4)
    w = np.clip(np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0]), 0, None)
    h = np.clip(np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1]), 0, None)
    inter = w * h
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    return inter / np.maximum(area_a[:, None] + area_b[None] - inter, 1e-9)


def nms(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float = DEFAULT_NMS_IOU) -> np.ndarray:
    """Greedy non-maximum suppression: the indices of the kept boxes (``x1, y1, x2, y2``), best score first
    (ties: the lower index). A box is dropped when it overlaps a kept better one by IoU >= ``iou_threshold``."""
    order = np.argsort(-np.asarray(scores), kind="stable")
    overlaps = box_iou(boxes, boxes)
    keep: list[int] = []
    for i in order:
        if all(overlaps[i, j] < iou_threshold for j in keep):
            keep.append(int(i))
    return np.array(keep, np.int64)


def pass_agreement(kept: np.ndarray, boxes: np.ndarray, passes: np.ndarray, regions: np.ndarray,
                   iou_threshold: float = DEFAULT_NMS_IOU) -> np.ndarray:
    """For each kept box (M, 4) ``x1, y1, x2, y2``: among the passes whose region (R, 4) holds it whole, the share
    that have a candidate (``boxes`` (C, 4), found by pass ``passes`` (C,) int, an index into ``regions``)
    overlapping it by IoU >= ``iou_threshold``; (M,) in [0, 1], 1 when no region holds it whole.

    Why: a real person is found again by every pass that sees all of them (the full frame and the zoomed tiles
    around them); a false person is mostly one pass's hallucination at one zoom."""
    kept, boxes = np.asarray(kept, np.float64).reshape(-1, 4), np.asarray(boxes, np.float64).reshape(-1, 4)
    regions, passes = np.asarray(regions, np.float64).reshape(-1, 4), np.asarray(passes, np.int64)
    holds = ((regions[None, :, :2] <= kept[:, None, :2]).all(-1)
             & (regions[None, :, 2:] >= kept[:, None, 2:]).all(-1))                          # (M, R)
    near = box_iou(kept, boxes) >= iou_threshold                                            # (M, C)
    found = np.zeros_like(holds)
    for r in range(len(regions)):
        found[:, r] = near[:, passes == r].any(axis=1)
    held = holds.sum(axis=1)
    return np.where(held > 0, (holds & found).sum(axis=1) / np.maximum(held, 1), 1.0)


class PersonDetector:
    """Person boxes and scores from a MoveNet MultiPose checkpoint (``heads="all"``); options as in the module's
    docstring."""

    def __init__(self, model, *, score_threshold: float = DEFAULT_SCORE_THRESHOLD,
                 max_people: int | None = DEFAULT_MAX_PEOPLE, long_side: int = DEFAULT_LONG_SIDE,
                 tiles: int | tuple[int, ...] = DEFAULT_TILES, tile_overlap: float = DEFAULT_TILE_OVERLAP,
                 nms_iou: float = DEFAULT_NMS_IOU, tile_score_threshold: float | None = DEFAULT_TILE_SCORE_THRESHOLD,
                 rescore: str = DEFAULT_RESCORE):
        if not getattr(model, "multipose", False) or "box_scale" not in getattr(model, "heads", {}):
            raise ValueError("the detector needs a MoveNet MultiPose model with its box heads "
                             "(python -m posekit.models.movenet_import movenet-multipose.onnx --out ...)")
        if long_side % 32 or long_side < 32:
            raise ValueError(f"long_side must be a positive multiple of 32, got {long_side}")
        grids = tile_grids(tiles)
        if not 0 <= tile_overlap < 1:
            raise ValueError(f"tile_overlap must be in [0, 1), got {tile_overlap}")
        if not 0 < nms_iou <= 1:
            raise ValueError(f"nms_iou must be in (0, 1], got {nms_iou}")
        if rescore not in RESCORE_MODES:
            raise ValueError(f"rescore must be one of {', '.join(RESCORE_MODES)}, got {rescore!r}")
        passes = 1 + sum(g * g for g in grids)
        if max_people is not None and not 1 <= max_people <= MAX_PEOPLE * passes:
            raise ValueError(f"max_people must be 1..{MAX_PEOPLE * passes} (MultiPose finds up to {MAX_PEOPLE} people "
                             f"a pass{f', {passes} passes' if grids else ''}), got {max_people}")
        self.model = model.eval()
        self.score_threshold = float(score_threshold)
        self.max_people = None if max_people is None else int(max_people)
        self.long_side = int(long_side)
        self.tiles = grids
        self.tile_overlap = float(tile_overlap)
        self.nms_iou = float(nms_iou)
        self.tile_score_threshold = None if tile_score_threshold is None else float(tile_score_threshold)
        self.rescore = rescore

    @classmethod
    def load(cls, path, **kwargs) -> "PersonDetector":
        model, _ = load_model(path)
        return cls(model.float(), **kwargs)

    def describe(self) -> str:
        """The settings in one line, e.g. ``"256 px, 2x2 tiles (overlap 0.25), agreement rescoring, score >= 0.15"``."""
        grids = tile_grids(self.tiles)
        tile_score = "" if self.tile_score_threshold is None else f", tile score >= {self.tile_score_threshold:g}"
        names = " + ".join(f"{g}x{g}" for g in grids)
        tiles = f", {names} tiles (overlap {self.tile_overlap:g}{tile_score})" if grids else ""
        rescore = ", agreement rescoring" if grids and self.rescore == "agreement" else ""
        most = f", at most {self.max_people} people" if self.max_people else ""
        return f"{self.long_side} px{tiles}{rescore}, score >= {self.score_threshold:g}{most}"

    def run_pass(self, image: np.ndarray, region=None, long_side: int | None = None):
        """One pass on ``region`` (``x1, y1, x2, y2`` image px; default the whole image) at ``long_side`` (default
        the detector's): MultiPose's 6 candidates as boxes (6, 4) ``x1, y1, x2, y2`` image px (clipped to the
        region), scores (6,), keypoints (6, 17, 3) image px (the detector's own)."""
        _check_image(image)
        h, w = image.shape[:2]
        x1, y1, x2, y2 = (0, 0, w, h) if region is None else (int(v) for v in region)
        if not (0 <= x1 < x2 <= w and 0 <= y1 < y2 <= h):
            raise ValueError(f"region {region} is not inside the {w}x{h} image")
        padded, scale = letterbox(np.ascontiguousarray(image[y1:y2, x1:x2]), long_side or self.long_side)
        x = torch.from_numpy(normalize_image(padded))[None]
        with torch.inference_mode():
            heads = {k: v.float().numpy() for k, v in self.model.forward_heads(x).items()}
        people, boxes, scores = movenet_multipose_decode(heads, (padded.shape[1], padded.shape[0]))
        offset = np.array([x1, y1, x1, y1], np.float32)
        boxes = np.clip(boxes[0] / scale, 0, [x2 - x1, y2 - y1] * 2) + offset
        people = people[0].copy()
        people[..., :2] = people[..., :2] / scale + offset[:2]
        return boxes.astype(np.float32), scores[0].astype(np.float32), people

    def raw(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The full-frame pass's 6 candidates (see :meth:`run_pass`)."""
        return self.run_pass(image)

    def regions(self, width: int, height: int) -> np.ndarray:
        """(R, 4) int ``x1, y1, x2, y2``: the regions of the passes on a ``width`` x ``height`` image, the full
        frame first, then each grid's tiles row by row."""
        tiles = [tile_regions(width, height, g, self.tile_overlap) for g in tile_grids(self.tiles)]
        return np.concatenate([np.array([[0, 0, width, height]], np.int64), *tiles])

    def candidates(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Every candidate of every pass, before merging and the score threshold: boxes (C, 4) ``x1, y1, x2, y2``
        image px, scores (C,), passes (C,) int (the index into the regions of the pass that found it) and the
        regions (R, 4) (:meth:`regions`); the full frame's first, then each tile's, without the tiles' cut people
        and those scoring under ``tile_score_threshold``."""
        h, w = image.shape[:2]
        regions = self.regions(w, h)
        all_boxes, all_scores, all_passes = [], [], []
        for index, region in enumerate(regions):
            boxes, scores, _ = self.run_pass(image) if index == 0 else self.run_pass(image, region)
            keep = np.ones(len(scores), bool)
            if index:
                keep = ~_cut_by_tile(boxes, region, w, h, _CUT_MARGIN * max(region[2] - region[0],
                                                                             region[3] - region[1]) / self.long_side)
                if self.tile_score_threshold is not None:
                    keep &= scores >= self.tile_score_threshold
            all_boxes.append(boxes[keep])
            all_scores.append(scores[keep])
            all_passes.append(np.full(int(keep.sum()), index, np.int64))
        return (np.concatenate(all_boxes).reshape(-1, 4), np.concatenate(all_scores), np.concatenate(all_passes),
                regions)

    def merge(self, boxes: np.ndarray, scores: np.ndarray, passes: np.ndarray | None = None,
              regions: np.ndarray | None = None, min_score: float | None = None):
        """Candidates (:meth:`candidates`) -> boxes (M, 4) ``x, y, w, h`` and scores (M,), best first: empty boxes
        and scores under ``min_score`` (default ``score_threshold``) dropped, NMS, with ``rescore="agreement"`` and
        the candidates' passes and regions given, each kept score times its :func:`pass_agreement` (then the
        threshold again), at most ``max_people`` (None: all)."""
        threshold = self.score_threshold if min_score is None else float(min_score)
        nonempty = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
        valid = np.flatnonzero((scores >= threshold) & nonempty)
        keep = valid[nms(boxes[valid], scores[valid], self.nms_iou)]
        kept_scores = scores[keep].astype(np.float64)
        if self.rescore == "agreement" and passes is not None and regions is not None and len(regions) > 1:
            # support counts every non-empty candidate, whatever its score: MultiPose's low scores for small
            # people are the problem being worked around
            kept_scores = kept_scores * pass_agreement(boxes[keep], boxes[nonempty], passes[nonempty], regions,
                                                       self.nms_iou)
            order = np.argsort(-kept_scores, kind="stable")
            order = order[kept_scores[order] >= threshold]
            keep, kept_scores = keep[order], kept_scores[order]
        keep, kept_scores = keep[:self.max_people], kept_scores[:self.max_people]
        xyxy = boxes[keep].reshape(-1, 4)
        xywh = np.concatenate([xyxy[:, :2], xyxy[:, 2:] - xyxy[:, :2]], axis=1)
        return xywh.astype(np.float32), kept_scores.astype(np.float32)

    def detect(self, image: np.ndarray, min_score: float | None = None) -> tuple[np.ndarray, np.ndarray]:
        """image (H, W, 3) uint8 RGB -> boxes (M, 4) ``x, y, w, h`` image px and scores (M,), best first;
        M = 0 when nobody scores ``min_score`` (default ``score_threshold``) or more."""
        return self.merge(*self.candidates(image), min_score=min_score)


def _check_image(image) -> None:
    if not isinstance(image, np.ndarray) or image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        shown = f"{image.shape} {image.dtype}" if isinstance(image, np.ndarray) else type(image).__name__
        raise ValueError(f"image must be (H, W, 3) uint8 RGB, got {shown}")


def _cut_by_tile(boxes: np.ndarray, region, width: int, height: int, margin: float) -> np.ndarray:
    """(P,) True for the boxes (image px) within ``margin`` px of one of ``region``'s edges that lie inside the
    image (not the image's own border)."""
    x1, y1, x2, y2 = region
    cut = np.zeros(len(boxes), bool)
    if x1 > 0:
        cut |= boxes[:, 0] <= x1 + margin
    if y1 > 0:
        cut |= boxes[:, 1] <= y1 + margin
    if x2 < width:
        cut |= boxes[:, 2] >= x2 - margin
    if y2 < height:
        cut |= boxes[:, 3] >= y2 - margin
    return cut
