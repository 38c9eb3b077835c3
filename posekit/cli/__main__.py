"""``python -m posekit.cli`` (and ``torchrun -m posekit.cli``)."""
import sys

from posekit.cli import main

sys.exit(main())
