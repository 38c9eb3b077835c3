"""MoveNet's own post-processing, read out of the released graphs: raw CenterNet head outputs -> people.

Head names and layouts (``MoveNet.forward_heads``; all ``(N, C, h, w)`` raw logits / values at stride 4):
``center`` (1), ``heatmap`` (K), ``regress`` (2K: per joint ``(dy, dx)`` from the person centre),
``offset`` (2K: per joint sub-pixel ``(dy, dx)``), and for MultiPose ``box_scale`` (2: box ``(h, w)``) and
``box_offset`` (2: box-centre ``(dy, dx)``).

**Single pose** (:func:`movenet_decode`, the Lightning/Thunder graphs):

1. person centre = argmax of ``sigmoid(center)`` weighted by ``1 / (distance to the map centre + 1.8)``;
2. each joint's regressed position = centre + ``regress`` at the centre;
3. joint cell = argmax of ``sigmoid(heatmap) / (distance to the regressed position + 1.8)``;
4. joint = (cell + ``offset`` at the cell) / map size; score = the unweighted sigmoid heatmap at the cell.

**MultiPose** (:func:`movenet_multipose_decode`): up to 6 centres = top-6 local maxima (5x5) of
``sigmoid(center)``; per person the regressed joints, a box (centre cell + ``box_offset`` +- half of
``relu(box_scale)``, clipped to the map), and heatmaps weighted by ``exp(-d^2 / (0.3 min(h, w)))`` around
each regressed joint and masked to the box; joint = argmax + offset; joint score = the best weighted
heatmap value at that cell over all people; person score = centre score x the mean of its joint scores
above 0.127 (float16).

The graphs stored their constants as float16 (1 / 127.5, 1.8, 1 / h, 0.3, ...); the decoders use the same
rounded values so they reproduce the graphs' outputs to float32 precision. Outputs are in input pixels:
the graph's normalised coordinates times the input size (a joint in cell ``i`` with offset ``o`` lands at
``(i + o) * stride``; MoveNet treats pixel ``i`` as spanning ``[i, i + 1)``, posekit's crops put its
centre at ``i``, so the two frames differ by half an input pixel).
"""
from __future__ import annotations

import numpy as np

from .base import CODECS, Codec

__all__ = ["MoveNetCodec", "split_packed", "PACKED_LAYOUT", "movenet_decode", "movenet_multipose_decode", "center_weight", "local_peaks", "MAX_PEOPLE"]

MAX_PEOPLE = 6                         # MultiPose's fixed top-k
_DISTANCE_BIAS = 1.7998046875          # 1.8 in float16: added to distances before dividing by them
_SPREAD = 0.300048828125               # 0.3 in float16: MultiPose's Gaussian spread per map side
_KEYPOINT_THRESHOLD = 0.126953125      # 0.127 in float16: joints counted in the person score
_PEAK_TOLERANCE = 1.0132789611816406e-06  # 1e-6 in float16: "equals its 5x5 max"
_PEAK_WINDOW = 5


def _array(x) -> np.ndarray:
    if hasattr(x, "detach"):  # a torch tensor
        x = x.detach().cpu().numpy()
    return np.asarray(x, dtype=np.float32)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):  # exp(-x) = inf for very negative logits: the sigmoid is then 0, as wanted
        return (1.0 / (1.0 + np.exp(-x))).astype(np.float32)


def _read_heads(heads: dict, names: tuple[str, ...]) -> dict[str, np.ndarray]:
    """Validate and convert the heads: every array (N, C, h, w) with the same N, h, w; K from ``heatmap``."""
    missing = [n for n in names if n not in heads]
    if missing:
        raise ValueError(f"MoveNet decoding needs heads {list(names)}; missing {missing}")
    arrays = {n: _array(heads[n]) for n in names}
    num_keypoints = arrays["heatmap"].shape[1] if arrays["heatmap"].ndim == 4 else -1
    expected = {"center": 1, "heatmap": num_keypoints, "regress": 2 * num_keypoints, "offset": 2 * num_keypoints,
                "box_scale": 2, "box_offset": 2}
    n, _, h, w = arrays["heatmap"].shape if num_keypoints > 0 else (0, 0, 0, 0)
    for name, array in arrays.items():
        if array.ndim != 4 or array.shape != (n, expected[name], h, w):
            raise ValueError(f"head {name!r} has shape {tuple(array.shape)}, expected {(n, expected[name], h, w)} "
                             f"(N, C, h, w) like the heatmap {tuple(arrays['heatmap'].shape)}")
    return arrays


def _pairs(x: np.ndarray) -> np.ndarray:
    """(N, 2K, h, w) -> (N, K, 2, h, w): channels 2k, 2k + 1 are joint k's (dy, dx)."""
    n, c, h, w = x.shape
    return x.reshape(n, c // 2, 2, h, w)


def _argmax2d(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(..., h, w) -> row, column (...,) of the first maximum (ONNX ArgMax's tie rule)."""
    flat = x.reshape(*x.shape[:-2], -1).argmax(axis=-1)
    return flat // x.shape[-1], flat % x.shape[-1]


def _input_size(input_size, h: int, w: int) -> tuple[int, int]:
    return (4 * w, 4 * h) if input_size is None else (int(input_size[0]), int(input_size[1]))


def center_weight(h: int, w: int) -> np.ndarray:
    """(h, w) float32 ``1 / (distance to (h/2, w/2) + 1.8)``, float16-rounded like the graphs' table.

    Equals Lightning's stored table exactly; Thunder's differs in 8 corner cells by one float16 step (ties
    the converter rounded up).
    """
    y = np.arange(h, dtype=np.float64)[:, None] - h / 2
    x = np.arange(w, dtype=np.float64)[None, :] - w / 2
    return (1.0 / (np.sqrt(y ** 2 + x ** 2) + 1.8)).astype(np.float16).astype(np.float32)


def local_peaks(x: np.ndarray, window: int = _PEAK_WINDOW) -> np.ndarray:
    """(N, h, w) -> (N, h, w) ``x`` where it equals its ``window`` x ``window`` max (stride 1, SAME), else 0."""
    r = window // 2
    padded = np.pad(x, ((0, 0), (r, r), (r, r)), constant_values=-np.inf)
    pooled = np.lib.stride_tricks.sliding_window_view(padded, (window, window), axis=(1, 2)).max(axis=(-2, -1))
    return x * (np.abs(x - pooled) < _PEAK_TOLERANCE)


def movenet_decode(heads: dict, input_size: tuple[int, int] | None = None) -> np.ndarray:
    """Single-pose decoding of MoveNet Lightning/Thunder's graphs.

    heads: ``center`` (N, 1, h, w), ``heatmap`` (N, K, h, w), ``regress`` and ``offset`` (N, 2K, h, w): raw
    head outputs (ndarray or Tensor). input_size: ``(W, H)`` of the network input (default ``(4w, 4h)``).
    Returns (N, K, 3) float32 ``x, y`` in input pixels and the joint score.
    """
    a = _read_heads(heads, ("center", "heatmap", "regress", "offset"))
    heatmap, regress, offset = _sigmoid(a["heatmap"]), _pairs(a["regress"]), _pairs(a["offset"])
    n, k, h, w = heatmap.shape
    width, height = _input_size(input_size, h, w)
    cy, cx = _argmax2d(_sigmoid(a["center"])[:, 0] * center_weight(h, w))                  # (N,)
    reg = regress[np.arange(n), :, :, cy, cx]                                               # (N, K, 2)
    ry = cy[:, None].astype(np.float32) + reg[..., 0]                                       # (N, K)
    rx = cx[:, None].astype(np.float32) + reg[..., 1]
    gy = np.arange(h, dtype=np.float32)[:, None]
    gx = np.arange(w, dtype=np.float32)[None, :]
    distance = np.sqrt((gy - ry[..., None, None]) ** 2 + (gx - rx[..., None, None]) ** 2)  # (N, K, h, w)
    ky, kx = _argmax2d(heatmap / (distance + np.float32(_DISTANCE_BIAS)))                   # (N, K)
    ni, ki = np.indices((n, k))
    off = offset[ni, ki, :, ky, kx]                                                         # (N, K, 2)
    # the graph normalises with 1 / h and 1 / w rounded to float16
    y = (ky + off[..., 0]) * np.float32(np.float16(1.0 / h)) * height
    x = (kx + off[..., 1]) * np.float32(np.float16(1.0 / w)) * width
    return np.stack([x, y, heatmap[ni, ki, ky, kx]], axis=-1).astype(np.float32)


def _person_boxes(box_scale: np.ndarray, box_offset: np.ndarray, py: np.ndarray, px: np.ndarray,
                  h: int, w: int) -> np.ndarray:
    """Boxes of the centres (py, px) (N, P): (N, P, 4) ``ymin, xmin, ymax, xmax`` in map cells, clipped to the map."""
    ni = np.arange(len(py))[:, None]
    half = np.maximum(box_scale[ni, :, py, px], 0) * np.float32(0.5)                        # (N, P, 2) h/2, w/2
    centre = np.stack([py, px], axis=-1).astype(np.float32) + box_offset[ni, :, py, px]     # (N, P, 2) y, x
    size = np.array([h, w], dtype=np.float32)
    return np.concatenate([np.clip(centre - half, 0, size), np.clip(centre + half, 0, size)], axis=-1)


def movenet_multipose_decode(heads: dict, input_size: tuple[int, int] | None = None,
                             max_people: int = MAX_PEOPLE) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """MultiPose decoding of MoveNet MultiPose's graph (its output (1, 6, 56), for any batch).

    heads: :func:`movenet_decode`'s plus ``box_scale`` and ``box_offset`` (N, 2, h, w). input_size: ``(W, H)``
    (default ``(4w, 4h)``). Returns, for the ``max_people`` best centres in decreasing centre score:
    ``people`` (N, P, K, 3) ``x, y`` input px + joint score, ``boxes`` (N, P, 4) ``x1, y1, x2, y2`` input px,
    ``scores`` (N, P) person scores (all float32).
    """
    a = _read_heads(heads, ("center", "heatmap", "regress", "offset", "box_scale", "box_offset"))
    heatmap, regress, offset = _sigmoid(a["heatmap"]), _pairs(a["regress"]), _pairs(a["offset"])
    n, k, h, w = heatmap.shape
    width, height = _input_size(input_size, h, w)
    peaks = local_peaks(_sigmoid(a["center"])[:, 0]).reshape(n, -1)
    order = np.argsort(-peaks, axis=1, kind="stable")[:, :max_people]  # TopK: ties go to the lower index
    centre_score = np.take_along_axis(peaks, order, axis=1)                                 # (N, P)
    py, px = order // w, order % w
    ni = np.arange(n)[:, None]
    reg = regress[ni, :, :, py, px]                                                         # (N, P, K, 2)
    ry = py[..., None].astype(np.float32) + reg[..., 0]                                     # (N, P, K)
    rx = px[..., None].astype(np.float32) + reg[..., 1]
    gy = np.arange(h, dtype=np.float32)[:, None]
    gx = np.arange(w, dtype=np.float32)[None, :]
    d2 = (gy - ry[..., None, None]) ** 2 + (gx - rx[..., None, None]) ** 2                   # (N, P, K, h, w)
    weighted = heatmap[:, None] * np.exp(-d2 / (np.float32(min(h, w)) * np.float32(_SPREAD)))
    box = _person_boxes(a["box_scale"], a["box_offset"], py, px, h, w)                      # (N, P, 4)
    inside = ((gy >= box[..., 0, None, None]) & (gy < box[..., 2, None, None])
              & (gx >= box[..., 1, None, None]) & (gx < box[..., 3, None, None]))           # (N, P, h, w)
    weighted = weighted * inside[:, :, None]
    ky, kx = _argmax2d(weighted)                                                            # (N, P, K)
    nn_, kk = np.arange(n)[:, None, None], np.arange(k)[None, None, :]
    score = weighted.max(axis=1)[nn_, kk, ky, kx]  # best weighted value over all people, as the graph does
    off = offset[nn_, kk, :, ky, kx]                                                        # (N, P, K, 2)
    stride = np.array([height / h, width / w], dtype=np.float32)
    y, x = (ky + off[..., 0]) * stride[0], (kx + off[..., 1]) * stride[1]
    people = np.stack([x, y, score], axis=-1).astype(np.float32)
    above = score > _KEYPOINT_THRESHOLD
    total = (centre_score[..., None] * np.where(above, score, 0)).sum(-1)
    person = total * (1 / np.maximum(above.sum(-1), 1).astype(np.float32))
    boxes = (box * np.concatenate([stride, stride]))[..., [1, 0, 3, 2]]                      # -> x1, y1, x2, y2
    return people, boxes.astype(np.float32), person.astype(np.float32)


#: the packed output's channel layout (``MoveNet(output="packed")``): head name -> channels per joint, or
#: a fixed count (negative numbers); the order is the graphs' (and ``MoveNet.heads``') order
PACKED_LAYOUT = (("center", -1), ("regress", 2), ("heatmap", 1), ("offset", 2))
MULTIPOSE_EXTRA = (("box_scale", -2), ("box_offset", -2))


def split_packed(packed, num_keypoints: int, multipose: bool = False) -> dict[str, np.ndarray]:
    """(N, C, h, w) packed raw heads -> {head name: (N, C_head, h, w)} (see :data:`PACKED_LAYOUT`)."""
    packed = _array(packed)
    layout = PACKED_LAYOUT + (MULTIPOSE_EXTRA if multipose else ())
    sizes = [-n if n < 0 else n * num_keypoints for _, n in layout]
    if packed.ndim != 4 or packed.shape[1] != sum(sizes):
        raise ValueError(f"packed MoveNet output must be (N, {sum(sizes)}, h, w) for {num_keypoints} joints, "
                         f"got {packed.shape}")
    bounds = np.cumsum([0] + sizes)
    return {name: packed[:, a:b] for (name, _), a, b in zip(layout, bounds[:-1], bounds[1:])}


@CODECS.register
class MoveNetCodec(Codec):
    """Decodes ``MoveNet(heads="all", output="packed")``: ``decode="movenet"`` is the released graphs'
    centre + regression + heatmap + offset decoding (:func:`movenet_decode`); ``"dark"`` / ``"argmax"`` read
    the sigmoid heatmaps with :class:`~posekit.codecs.heatmap.HeatmapCodec`. Coordinates are in posekit's
    crop frame (pixel centres at integers: MoveNet's ``[i, i + 1)`` pixels shifted by half a pixel).

    Decoding only: posekit trains MoveNet's heatmap head with :class:`HeatmapCodec` targets.
    """

    def __init__(self, input_size=(192, 192), num_keypoints: int = 17, decode: str = "movenet",
                 multipose: bool = False):
        if decode not in ("movenet", "dark", "argmax"):
            raise ValueError(f"decode must be 'movenet', 'dark' or 'argmax', got {decode!r}")
        self.input_size = tuple(int(v) for v in input_size)
        self.num_keypoints = int(num_keypoints)
        self.decode_mode = decode
        #: MultiPose's packed output carries its box heads too (ignored here: one person per crop)
        self.multipose = bool(multipose)

    config_attributes = {"decode": "decode_mode"}

    def encode(self, keypoints, visible) -> dict:
        raise ValueError("MoveNetCodec only decodes: train MoveNet's heatmap head with HeatmapCodec "
                         "(the default heatmap head)")

    def decode(self, outputs) -> tuple[np.ndarray, np.ndarray]:
        """outputs (N, 5K + 1, h, w) packed raw heads -> coords (N, K, 2) crop px, scores (N, K)."""
        heads = split_packed(outputs, self.num_keypoints, self.multipose)
        if self.decode_mode == "movenet":
            people = movenet_decode(heads, self.input_size)
            return people[..., :2] - np.float32(0.5), people[..., 2]
        from .heatmap import HeatmapCodec
        h, w = heads["heatmap"].shape[-2:]
        codec = HeatmapCodec(input_size=self.input_size, heatmap_size=(w, h), decode=self.decode_mode)
        return codec.decode(_sigmoid(heads["heatmap"]))
