"""SCAI at inference (see :mod:`posekit.methods.scai`): a :class:`~posekit.inference.predictor.Predictor`
whose distal joints the correction network moves, optionally after test-time training on the batch itself,
and SCAI checkpoints. Needs a predictor and the nets, nothing of the training side."""
from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import torch

from posekit.checkpoint import load_checkpoint
from posekit.methods.scai.designs import nets_from_config
from posekit.methods.scai.nets import DISTAL, PROXIMAL, SCAINets, distal_joints, gather_chains

__all__ = ["MODES", "TTA_WEIGHTINGS", "TestTimeTrainer", "SCAICorrector", "check_compatible", "base_name",
           "scai_payload", "load_scai"]

MODES = ("none", "correct", "tta")
TTA_WEIGHTINGS = ("none", "confidence")


class TestTimeTrainer:
    """Adapts C on unlabeled chain rows with the frozen referee's error as the loss (its own Adam)."""

    __test__ = False  # not a pytest class

    def __init__(self, nets: SCAINets, *, lr: float = 1e-4, steps: int = 1, weighting: str = "none",
                 episodic: bool = False):
        if weighting not in TTA_WEIGHTINGS:
            raise ValueError(f"tta_weighting must be one of {TTA_WEIGHTINGS}, got {weighting!r}")
        if steps < 0:
            raise ValueError(f"tta_steps must be >= 0, got {steps}")
        self.nets, self.lr, self.steps, self.weighting, self.episodic = nets, float(lr), int(steps), weighting, episodic
        self.initial = copy.deepcopy(nets.correction.state_dict())
        self.reset()

    def reset(self) -> None:
        """Back to the trained correction network and a fresh optimizer."""
        self.nets.correction.load_state_dict(self.initial)
        self.optimizer = torch.optim.Adam(self.nets.correction.parameters(), lr=self.lr)
        self.history: list[float] = []

    def loss(self, rows: dict, ctx: dict) -> torch.Tensor:
        corrected = rows["coords"][:, DISTAL] + self.nets.offsets(rows, ctx)
        error = self.nets.fitness(rows, corrected)
        if self.weighting == "confidence":
            weight = rows["scores"][:, PROXIMAL].clamp(0, 1)
            return (error * weight).sum() / weight.sum().clamp(min=1e-6)
        return error.mean()

    def step(self, rows: dict, ctx: dict | None = None) -> float:
        """One optimisation step of C on these rows; returns the loss before the step."""
        ctx = self.nets.context(rows) if ctx is None else ctx
        self.nets.referee.requires_grad_(False)
        self.nets.correction.train()
        loss = self.loss(rows, ctx)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        self.history.append(float(loss.detach()))
        return float(loss.detach())

    def adapt(self, rows: dict, ctx: dict) -> None:
        if self.episodic:
            self.reset()
        for _ in range(self.steps):
            self.step(rows, ctx)


class SCAICorrector:
    """A :class:`~posekit.inference.predictor.Predictor` whose distal joints SCAI corrects.

    ``mode``: ``"none"`` (the pose network alone, through the same code path), ``"correct"`` (C's offsets),
    ``"tta"`` (test-time training of C on every batch, then its offsets). ``predict``, ``predict_samples``
    and ``predict_crops`` have the Predictor's signatures and return image-pixel keypoints (M, K, 3);
    everything else (``config``, ``prepare``, ``codec``, ...) is the wrapped predictor's.
    """

    def __init__(self, predictor, nets: SCAINets, config: dict | None = None, *, mode: str = "correct",
                 tta_steps: int | None = None, tta_lr: float | None = None, tta_weighting: str | None = None,
                 episodic: bool | None = None):
        from posekit.codecs import HeatmapCodec
        if mode not in MODES:
            raise ValueError(f"SCAI mode must be one of {MODES}, got {mode!r}")
        if not isinstance(predictor.codec, HeatmapCodec):
            raise ValueError(f"SCAI works on heatmaps; this model's codec is {type(predictor.codec).__name__}")
        config = dict(config or {})
        check_compatible(config.get("pose", {}).get("config"), predictor.config, nets, base_name(config))
        self.predictor, self.nets, self.scai_config, self.mode = predictor, nets.eval(), config, mode
        self.nets.requires_grad_(False)
        self.nets.correction.requires_grad_(True)
        tta = config.get("tta", {})
        self.tta = TestTimeTrainer(
            nets, lr=tta_lr if tta_lr is not None else tta.get("lr", 1e-4),
            steps=tta_steps if tta_steps is not None else tta.get("steps", 1),
            weighting=tta_weighting if tta_weighting is not None else tta.get("weighting", "none"),
            episodic=episodic if episodic is not None else tta.get("episodic", False))
        self.chains = np.asarray(nets.chains, dtype=np.int64)
        self.distal = distal_joints(self.chains)
        #: optional ``observer(rows, ctx)``, called with every batch's chain rows and the context of their
        #: uncorrected distal joints (e.g. to compare the referee's fitness error with the true error)
        self.observer = None

    # -- construction ------------------------------------------------------------------------------
    @classmethod
    def from_checkpoint(cls, scai_checkpoint, *, pose_checkpoint=None, mode: str = "correct", tta_steps=None,
                        tta_lr=None, tta_weighting=None, episodic=None, **predictor_kwargs) -> "SCAICorrector":
        """Load the SCAI checkpoint and its pose model (``pose_checkpoint`` overrides the recorded path)."""
        from posekit.inference.predictor import Predictor
        nets, config = load_scai(scai_checkpoint)
        path = pose_checkpoint or config["pose"]["checkpoint"]
        predictor = Predictor.load(path, **predictor_kwargs)
        return cls(predictor, nets, config, mode=mode, tta_steps=tta_steps, tta_lr=tta_lr,
                   tta_weighting=tta_weighting, episodic=episodic)

    @classmethod
    def wrap(cls, predictor, scai_checkpoint, **kwargs) -> "SCAICorrector":
        """SCAI on an already built predictor (checked for the same heatmap frame)."""
        nets, config = load_scai(scai_checkpoint)
        return cls(predictor, nets, config, **kwargs)

    # -- Predictor interface ---------------------------------------------------------------------------
    def __getattr__(self, name):  # config, num_keypoints, codec, ...: the wrapped predictor's
        if name.startswith("__") or name == "predictor":
            raise AttributeError(name)
        return getattr(self.predictor, name)

    @property
    def flip_test(self) -> bool:
        return self.predictor.flip_test

    @flip_test.setter
    def flip_test(self, value: bool) -> None:
        self.predictor.flip_test = value

    @property
    def batch_size(self) -> int:
        return self.predictor.batch_size

    @batch_size.setter
    def batch_size(self, value: int) -> None:
        self.predictor.batch_size = value

    def reset(self) -> None:
        """Forget test-time training (the trained correction network again)."""
        self.tta.reset()

    def predict(self, image: np.ndarray, boxes) -> np.ndarray:
        from posekit.inference.predictor import Predictor
        return Predictor.predict(self, image, boxes)

    def predict_people(self, image: np.ndarray):
        """As :meth:`Predictor.predict_people` (the wrapped predictor's detector), with SCAI's correction."""
        from posekit.inference.predictor import Predictor
        return Predictor.predict_people(self, image)

    def predict_samples(self, samples, on_error=None, read=None):
        from posekit.inference.predictor import Predictor
        return Predictor.predict_samples(self, samples, on_error=on_error, read=read)

    def predict_crops(self, crops: np.ndarray, matrices: np.ndarray, flipped: np.ndarray) -> np.ndarray:
        """As :meth:`Predictor.predict_crops`, with the distal joints corrected in the crop's frame."""
        p = self.predictor
        return p.decode_views(p.run_network(crops), matrices, flipped,
                              refine=None if self.mode == "none" else self.correct)

    # -- SCAI ------------------------------------------------------------------------------------------
    def chain_rows(self, heatmaps: np.ndarray, coords: np.ndarray, scores: np.ndarray) -> dict:
        codec = self.predictor.codec
        hm_xy = torch.from_numpy(codec.input_to_heatmap(coords).astype(np.float32))
        return gather_chains(torch.from_numpy(np.ascontiguousarray(heatmaps, dtype=np.float32)), hm_xy,
                             torch.from_numpy(np.asarray(scores, dtype=np.float32)), self.chains)

    def offsets(self, heatmaps: np.ndarray, coords: np.ndarray, scores: np.ndarray) -> np.ndarray:
        """(N, C, 2) distal offsets in heatmap px (after test-time training in mode "tta").

        A view whose heatmaps equal the previous view's (the two views of a flip test carry the same fused maps)
        is computed once: the offsets are the same, and so is the mean test-time loss."""
        c = len(self.chains)
        source = repeated_views(heatmaps)
        unique = np.flatnonzero(source == np.arange(len(source)))
        with torch.inference_mode(False):
            rows = self.chain_rows(heatmaps[unique], coords[unique], scores[unique])
            ctx = self.nets.context(rows)
            if self.observer is not None:
                self.observer(rows, ctx)
            if self.mode == "tta" and self.tta.steps > 0:
                with torch.enable_grad():
                    self.tta.adapt(rows, ctx)
            with torch.no_grad():
                computed = self.nets.offsets(rows, ctx).reshape(len(unique), c, 2).numpy()
        return computed[np.searchsorted(unique, source)]

    def correct(self, heatmaps: np.ndarray, coords: np.ndarray, scores: np.ndarray) -> np.ndarray:
        """coords (N, K, 2) model-input px -> a copy whose distal joints carry SCAI's offsets."""
        offsets = self.offsets(heatmaps, coords, scores)
        scale = self.predictor.codec.input_to_heatmap(np.ones(2))        # heatmap px per input px
        shift = np.zeros(coords.shape, np.float64)
        count = np.zeros(coords.shape[1])
        for c, j in enumerate(self.distal):  # a joint that ends two chains gets the mean of their offsets
            shift[:, j] += offsets[:, c] / scale
            count[j] += 1
        out = coords.copy()
        fixed = count > 0
        out[:, fixed] = coords[:, fixed] + (shift[:, fixed] / count[fixed, None]).astype(np.float32)
        return out


def repeated_views(heatmaps: np.ndarray) -> np.ndarray:
    """(N,) for each view the index of the view it repeats: ``i - 1`` when view i's heatmaps equal view i - 1's
    and that one is not itself a repeat (a flip test's fused pair), else ``i``."""
    source = np.arange(len(heatmaps))
    for i in range(1, len(heatmaps)):
        if source[i - 1] == i - 1 and np.array_equal(heatmaps[i], heatmaps[i - 1]):
            source[i] = i - 1
    return source


def base_name(config: dict) -> str:
    """The pose model a SCAI checkpoint belongs to: its zoo ``base`` name, else the recorded checkpoint's stem."""
    if config.get("base"):
        return str(config["base"])
    recorded = config.get("pose", {}).get("checkpoint")
    return Path(recorded).stem if recorded else "unknown"


def check_compatible(pose_cfg: dict | None, predictor_cfg: dict, nets, base: str = "unknown") -> None:
    """SCAI's nets must see the heatmaps they were trained on: same skeleton and joints, heatmap frame and input
    size. A mismatch is a one-line ValueError naming the pose model (``base``) the nets belong to."""
    def refuse(what: str, theirs, ours) -> None:
        raise ValueError(f"these SCAI nets belong to the pose model {base} ({what} {theirs}), this pose model has "
                         f"{what} {ours}")

    if pose_cfg and pose_cfg.get("skeleton") != predictor_cfg.get("skeleton") \
            and pose_cfg.get("skeleton") is not None:
        refuse("skeleton", pose_cfg.get("skeleton"), predictor_cfg.get("skeleton"))
    codec = predictor_cfg.get("codec", {})
    if list(codec.get("heatmap_size", [])) != list(nets.heatmap_size):
        size = lambda v: "x".join(str(int(x)) for x in v) if v else "none"  # noqa: E731
        refuse("heatmaps", size(nets.heatmap_size), size(codec.get("heatmap_size")))
    k = int(predictor_cfg.get("num_keypoints", 0))
    if int(np.max(nets.chains)) >= k:
        refuse("chains over joints", f"0-{int(np.max(nets.chains))}", f"0-{k - 1}")
    if pose_cfg:
        for key in ("num_keypoints", "input_size"):
            if key in pose_cfg and key in predictor_cfg and list(np.atleast_1d(pose_cfg[key])) != \
                    list(np.atleast_1d(predictor_cfg[key])):
                refuse(key, pose_cfg[key], predictor_cfg[key])


def scai_payload(nets: SCAINets, config: dict) -> dict:
    return {"scai": {"prediction": nets.prediction.state_dict(), "correction": nets.correction.state_dict(),
                     "referee": nets.referee.state_dict()},
            "config": config}


def load_scai(path_or_payload) -> tuple[SCAINets, dict]:
    """(nets in eval mode, config) from a SCAI checkpoint (``weights_only`` loading)."""
    payload = path_or_payload if isinstance(path_or_payload, dict) else load_checkpoint(path_or_payload)
    config = payload.get("config", {})
    if "scai" not in payload or config.get("method") != "scai":
        raise ValueError(f"{path_or_payload if not isinstance(path_or_payload, dict) else 'payload'}: "
                         "not a SCAI checkpoint (write one with posekit.methods.scai.train_scai)")
    nets = nets_from_config(config["nets"])
    for name in ("prediction", "correction", "referee"):
        getattr(nets, name).load_state_dict(payload["scai"][name])
    return nets.eval(), config
