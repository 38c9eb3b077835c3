"""Machinery every training method shares, below the methods and the trainer (imports neither).

* :mod:`~posekit.training.context` -- what the trainer tells a method: :class:`TrainContext`, :class:`StepProgress`;
* :mod:`~posekit.training.guard` -- a step with a non-finite loss or gradient changes nothing (weights, BatchNorm);
* :mod:`~posekit.training.precision` -- the training step's autocast (bf16 on the CPU) and its float32 loss;
* :mod:`~posekit.training.schedule` -- warm-up + cosine learning-rate factor;
* :mod:`~posekit.training.seeding` -- global seeding and the seeded per-epoch shuffle;
* :mod:`~posekit.training.runlog` -- the epoch log a resumed run continues exactly;
* :mod:`~posekit.training.ema` -- exponential moving average of a network's weights and statistics;
* :mod:`~posekit.training.teacher` -- a frozen heatmap teacher answering in the student's frame;
* :mod:`~posekit.training.unlabeled` -- an endless, resumable stream of label-free crops;
* :mod:`~posekit.training.warp` -- random views of a crop batch and warping heatmaps back from them;
* :mod:`~posekit.training.checks` -- tensor-argument checks that say what was expected.
"""
