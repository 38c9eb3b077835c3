"""Model families; importing this package registers every model with :mod:`posekit.models.registry`."""
from . import hourglass, repvgg, resnet  # noqa: F401  (registration side effects)
