"""Top-down inference: image + person boxes -> keypoints in the original image's pixels.

One path serves evaluation, ``posekit predict`` and the Python API: crop each box with an affine matrix,
run the network (PyTorch or ONNX Runtime), decode with the checkpoint's codec, map back through the
inverse matrix. Flip test runs the mirrored crop too and averages the two predictions in image space.

Any head works the same way (heatmaps, DSNT logits, regressed coordinates, RLE coordinates + sigmas): the
codec turns the raw output into crop-pixel coordinates and scores. For the mirrored view, the crop matrix
already mirrors x (``x' = W - 1 - x``), so its inverse maps the decoded coordinates back un-mirrored, and
``flip_index`` swaps left and right joints before the two views are averaged.
"""
from __future__ import annotations

import logging
from typing import Iterable, Iterator

import numpy as np
import torch

from posekit.checkpoint import CheckpointError, load_model
from posekit.optional import import_extra
from posekit.codecs import HeatmapCodec
from posekit.config import PoseConfig
from posekit.data.io import read_image
from posekit.data.sample import DataError, Sample
from posekit.data.transforms import (affine_points, box_to_center_scale, crop_matrix, invert_affine,
                                     normalize_image, warp_image)

log = logging.getLogger(__name__)


class Predictor:
    """Predict keypoints for person boxes.

    >>> predictor = Predictor.from_checkpoint("zoo/lspet_compact.pt")
    >>> keypoints = predictor.predict(image, boxes)   # image (H, W, 3) uint8 RGB, boxes (M, 4) xywh -> (M, K, 3)
    """

    def __init__(self, model, config: PoseConfig | dict, *, backend: str = "torch", onnx_path=None,
                 flip_test: bool = True, batch_size: int = 32, device: str = "cpu", decode: str | None = None,
                 blur_kernel: int | None = None):
        #: the typed config (what this predictor reads); ``config`` is its stored dict layout, for dict readers
        self.pose_config = PoseConfig.from_dict(config)
        self.config = self.pose_config.to_dict()
        self.input_size = self.pose_config.input_size
        overrides = {name: value for name, value in (("decode", decode), ("blur_kernel", blur_kernel))
                     if value is not None}
        for name, value in overrides.items():
            codec_type = self.pose_config.codec.get("type")
            if not (codec_type == "HeatmapCodec" or (codec_type == "MoveNetCodec" and name == "decode")):
                raise ValueError(f"{name}={value!r} switches heatmap decoding, but this model's codec is "
                                 f"{self.pose_config.codec.get('type')} (head {self.pose_config.head!r})")
        self.codec = self.pose_config.build_codec(**overrides)
        self.flip_index = np.asarray(self.pose_config.flip_index)
        self.flip_test = flip_test
        self.batch_size = batch_size
        self.padding = self.pose_config.padding
        self.device = torch.device(device)
        self.backend = backend
        #: finds the people when predict() gets no boxes (set by load(detector=...))
        self.detector = None
        if backend == "torch":
            self.model = model.to(self.device).eval()
        elif backend == "onnx":
            if onnx_path is None:
                raise ValueError("backend 'onnx' needs onnx_path (write one with `posekit export`)")
            self.session = onnx_session(onnx_path)
            self.model = None
        else:
            raise ValueError(f"unknown backend {backend!r}; use 'torch' or 'onnx'")

    @classmethod
    def from_checkpoint(cls, checkpoint, **kwargs) -> "Predictor":
        model, config = load_model(checkpoint)
        return cls(model, config, **kwargs)

    @classmethod
    def from_onnx(cls, path, **kwargs) -> "Predictor":
        from posekit.inference.export import onnx_config
        try:
            config = PoseConfig.from_dict(onnx_config(path))
        except CheckpointError:
            raise
        except ValueError as err:
            raise CheckpointError(path, str(err)) from None
        return cls(None, config, backend="onnx", onnx_path=path, **kwargs)

    @classmethod
    def load(cls, path, *, backend: str = "torch", detector=None, scai=None, tta: str | None = None,
             **kwargs) -> "Predictor":
        """A checkpoint (.pt) or an exported model (.onnx); backend 'onnx' with a .pt exports it to a temp file first.
        ``detector``: a MultiPose checkpoint path (or a PersonDetector) that finds people when no boxes are given.
        ``scai``: a SCAI checkpoint (e.g. a zoo entry whose ``base`` is this model): returns a
        :class:`~posekit.methods.scai.SCAICorrector`, a drop-in predictor whose distal joints SCAI corrects;
        ``tta="scai"`` also trains SCAI's correction net on the test images (test-time training)."""
        if tta not in (None, "scai"):
            raise ValueError(f"tta must be None or 'scai', got {tta!r}")
        if tta and scai is None:
            raise ValueError("tta='scai' needs scai=SCAI_CHECKPOINT (SCAI networks: posekit adapt --method scai)")
        predictor = cls._load(str(path), backend, kwargs)
        if detector is not None:
            from posekit.inference.detector import PersonDetector
            predictor.detector = detector if isinstance(detector, PersonDetector) else PersonDetector.load(detector)
        if scai is not None:
            from posekit.methods.scai import SCAICorrector
            return SCAICorrector.wrap(predictor, scai, mode="tta" if tta else "correct")
        return predictor

    @classmethod
    def _load(cls, path: str, backend: str, kwargs: dict) -> "Predictor":
        if path.endswith(".onnx"):
            return cls.from_onnx(path, **kwargs)
        if backend == "onnx":
            import tempfile
            from posekit.inference.export import export_onnx
            onnx_path = export_onnx(path, tempfile.mkdtemp(prefix="posekit_onnx_") + "/model.onnx")
            return cls.from_onnx(onnx_path, **kwargs)
        return cls.from_checkpoint(path, **kwargs)

    @property
    def num_keypoints(self) -> int:
        return self.pose_config.num_keypoints

    # -- network ---------------------------------------------------------------------------------
    def run_network(self, crops: np.ndarray) -> np.ndarray:
        """crops: (N, 3, H, W) float32 -> raw network outputs (e.g. heatmaps (N, K, h, w)) as numpy."""
        if self.backend == "onnx":
            name = self.session.get_inputs()[0].name
            return self.session.run(None, {name: np.ascontiguousarray(crops, dtype=np.float32)})[0]
        with torch.inference_mode():
            x = torch.from_numpy(crops).to(self.device).contiguous(memory_format=torch.channels_last)
            return self.model(x).float().cpu().numpy()

    def predict_crops(self, crops: np.ndarray, matrices: np.ndarray, flipped: np.ndarray) -> np.ndarray:
        """Decode a batch of crops back to image space.

        crops: (N, 3, H, W); matrices: (N, 2, 3) image -> crop; flipped: (N,) bool.
        Returns (N, K, 3): x, y in image pixels and a confidence score.
        """
        return self.decode_views(self.run_network(crops), matrices, flipped)

    def decode_views(self, outputs: np.ndarray, matrices: np.ndarray, flipped: np.ndarray, refine=None) -> np.ndarray:
        """Network outputs of N views -> (N, K, 3) keypoints in image pixels with scores.

        With flip test, heatmap views are fused in pairs first (:func:`fuse_flipped_heatmaps`).
        ``refine(outputs, coords, scores) -> coords`` may adjust the decoded crop-frame coordinates (SCAI).
        """
        if self.flip_test and isinstance(self.codec, HeatmapCodec) and flipped.any():
            outputs, matrices, flipped = fuse_flipped_heatmaps(outputs, matrices, flipped, self.flip_index,
                                                               self.codec)
        coords, scores = self.codec.decode(outputs)
        if refine is not None:
            coords = refine(outputs, coords, scores)
        out = np.empty((len(outputs), coords.shape[1], 3), np.float32)
        for i in range(len(outputs)):
            xy, s = coords[i], scores[i]
            if flipped[i]:  # the mirrored crop's "left" is the original's "right"
                xy, s = xy[self.flip_index], s[self.flip_index]
            out[i, :, :2] = affine_points(xy, invert_affine(matrices[i]))
            out[i, :, 2] = s
        return out

    def prepare(self, image: np.ndarray, box: np.ndarray) -> list[tuple[np.ndarray, np.ndarray, bool]]:
        """One box -> [(crop (3, H, W), matrix, flipped)], two views with flip test."""
        w, h = self.input_size
        center, size = box_to_center_scale(box, w / h, self.padding)
        views = []
        for flip in ((False, True) if self.flip_test else (False,)):
            matrix = crop_matrix(center, size, self.input_size, 0.0, flip)
            views.append((normalize_image(warp_image(image, matrix, self.input_size)), matrix, flip))
        return views

    def predict(self, image: np.ndarray, boxes=None) -> np.ndarray:
        """image: (H, W, 3) uint8 RGB; boxes: (M, 4) xywh -> (M, K, 3) keypoints in image pixels with scores.

        Without boxes, the predictor's ``detector`` (:class:`~posekit.inference.detector.PersonDetector`)
        finds the people (see :meth:`predict_people` for their boxes and scores)."""
        if boxes is None:
            return self.predict_people(image)[2]
        boxes = np.asarray(boxes, dtype=np.float32).reshape(-1, 4)
        views = [v for box in boxes for v in self.prepare(image, box)]
        if not views:
            return np.zeros((0, self.num_keypoints, 3), np.float32)
        outs = []
        for start in range(0, len(views), self.batch_size):
            chunk = views[start:start + self.batch_size]
            outs.append(self.predict_crops(np.stack([c for c, _, _ in chunk]), np.stack([m for _, m, _ in chunk]),
                                           np.array([f for _, _, f in chunk])))
        return merge_views(np.concatenate(outs), 2 if self.flip_test else 1)

    def predict_people(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Detect, then estimate each person's pose top-down: boxes (M, 4) xywh, detection scores (M,),
        keypoints (M, K, 3). M = 0 when the detector finds nobody."""
        if self.detector is None:
            raise ValueError("no person boxes given and no detector loaded: pass boxes, or load one "
                             "(Predictor.load(..., detector='zoo/movenet_multipose.pt'))")
        boxes, scores = self.detector.detect(image)
        return boxes, scores, self.predict(image, boxes)

    def predict_samples(self, samples: Iterable[Sample], on_error=None,
                        read=None) -> Iterator[tuple[Sample, np.ndarray]]:
        """Stream (sample, keypoints (K, 3)) over any iterable of samples, batching crops across images.

        Images are read one at a time and only a batch of crops is held in memory, so a folder of any size
        streams. An unreadable image is reported (``on_error(sample, error)`` or a warning) and skipped.
        ``read(sample) -> (H, W, 3) uint8`` replaces the image reader (e.g. to corrupt every image).
        """
        read = read or (lambda sample: read_image(sample.image_path))
        pending: list[tuple[Sample, list]] = []
        n_views = 2 if self.flip_test else 1

        def flush():
            views = [v for _, vs in pending for v in vs]
            out = self.predict_crops(np.stack([c for c, _, _ in views]), np.stack([m for _, m, _ in views]),
                                     np.array([f for _, _, f in views]))
            merged = merge_views(out, n_views)
            for (sample, _), kpts in zip(pending, merged):
                yield sample, kpts
            pending.clear()

        cached_path, cached_image = None, None
        for sample in samples:
            try:
                if sample.image_path != cached_path:  # several people per image: read it once
                    cached_path, cached_image = sample.image_path, read(sample)
                pending.append((sample, self.prepare(cached_image, sample.box)))
            except (DataError, ValueError) as err:
                cached_path = None
                if on_error is not None:
                    on_error(sample, err)
                else:
                    log.warning("skipped %s: %s", sample.file_name or sample.image_path, err)
                continue
            if len(pending) * n_views >= self.batch_size:
                yield from flush()
        if pending:
            yield from flush()


def onnx_session(path):
    """An ONNX Runtime session on the CPU; a graph it cannot run is a CheckpointError naming the file."""
    ort = import_extra("onnxruntime", "onnx", "The ONNX backend")
    try:
        return ort.InferenceSession(str(path), ort.SessionOptions(), providers=["CPUExecutionProvider"])
    except Exception as err:  # onnxruntime raises its own Fail / InvalidGraph / RuntimeException types
        raise CheckpointError(path, f"ONNX Runtime cannot run it ({next(iter(str(err).splitlines()), '')})") from None


def fuse_flipped_heatmaps(heatmaps: np.ndarray, matrices: np.ndarray, flipped: np.ndarray, flip_index,
                          codec) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Flip test on heatmaps: average each original view's maps with its mirrored view's maps mirrored back.

    heatmaps: (N, K, h, w) with views in (original, mirrored) pairs as :meth:`Predictor.prepare` makes them;
    matrices (N, 2, 3); flipped (N,) bool. Returns the fused maps for both views of a pair (decoded in the
    original view's frame), with the original's matrix and ``flipped`` all False, so the pair's two decodes
    agree. Mirroring the array is exact only for unbiased (UDP) heatmaps; with ``x / stride`` maps the mirror
    of heatmap column x lands at ``w - w / W - x``, so the mirrored-back maps are shifted by ``1 - w / W``
    (0.75 px at stride 4) with linear interpolation.
    """
    heatmaps, matrices, flipped = heatmaps.copy(), matrices.copy(), flipped.copy()
    originals = np.flatnonzero(~flipped[:-1] & flipped[1:])
    if originals.size == 0:
        return heatmaps, matrices, flipped
    mirrored = heatmaps[originals + 1][:, np.asarray(flip_index)][..., ::-1]
    shift = 0.0 if codec.unbiased else 1.0 - codec.heatmap_size[0] / codec.input_size[0]
    if shift:
        moved = np.empty_like(mirrored)
        moved[..., 1:] = (1 - shift) * mirrored[..., 1:] + shift * mirrored[..., :-1]
        moved[..., 0] = (1 - shift) * mirrored[..., 0]
        mirrored = moved
    fused = 0.5 * (heatmaps[originals] + mirrored)
    heatmaps[originals] = heatmaps[originals + 1] = fused
    matrices[originals + 1] = matrices[originals]
    flipped[originals + 1] = False
    return heatmaps, matrices, flipped


def merge_views(outputs: np.ndarray, n_views: int) -> np.ndarray:
    """(M * n_views, K, 3) -> (M, K, 3): average of the views' positions and scores (flip test)."""
    return outputs.reshape(-1, n_views, *outputs.shape[1:]).mean(axis=1)


def prediction_record(sample: Sample, keypoints: np.ndarray, score: float | None = None) -> dict:
    """The prediction contract of DESIGN.md: one JSON-able dict per person box."""
    kp = np.asarray(keypoints, dtype=np.float64)
    return {"file_name": sample.file_name, "image_id": int(sample.image_id),
            "keypoints": [[round(float(x), 3), round(float(y), 3), round(float(s), 5)] for x, y, s in kp],
            "score": float(kp[:, 2].mean()) if score is None else float(score),
            "box": [round(float(v), 2) for v in sample.box]}
