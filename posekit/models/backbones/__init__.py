"""Model families; importing this package registers every model with :mod:`posekit.models.registry`."""
from . import hourglass, movenet, repvgg, resnet  # noqa: F401  (registration side effects)
