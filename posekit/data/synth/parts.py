"""Body parts: their names, the values they take in the part-label map, and what each is made of.

While painting, the renderer writes ``label_base(person) + part index`` into a uint8 label map, so the
map says which part of which person (or an occluder) is on top at every pixel; 0 is the background.
"""
from __future__ import annotations

from posekit.data.synth.body import SIDES
from posekit.data.synth.scene import Outfit

PART_NAMES = (
    "torso_upper", "torso_lower", "neck", "head", "hair", "nose", "left_ear", "right_ear",
    "left_upper_arm", "right_upper_arm", "left_forearm", "right_forearm", "left_hand", "right_hand",
    "left_thigh", "right_thigh", "left_shank", "right_shank", "left_foot", "right_foot",
)
PART_INDEX = {name: i for i, name in enumerate(PART_NAMES)}
NUM_PARTS = len(PART_NAMES)
OCCLUDER_LABEL = 255
MAX_PEOPLE = (OCCLUDER_LABEL - 1) // NUM_PARTS  # label = person * parts + part + 1 must fit uint8


def label_base(person_index: int) -> int:
    """Label of part 0 of person ``person_index``; its parts are ``base .. base + NUM_PARTS - 1``."""
    return person_index * NUM_PARTS + 1


SKIN, HAIR, SHIRT, TROUSERS, SHOES = range(5)


def part_materials(outfit: Outfit) -> dict[str, int]:
    """Part name -> material (``SKIN`` ... ``SHOES``) under this outfit's cut (sleeves, legwear, tunic)."""
    m = {"torso_upper": SHIRT, "torso_lower": SHIRT if outfit.tunic else TROUSERS, "neck": SKIN,
         "head": SKIN, "hair": HAIR, "nose": SKIN}
    for side, _ in SIDES:
        m.update({f"{side}_ear": SKIN, f"{side}_hand": SKIN, f"{side}_foot": SHOES, f"{side}_thigh": TROUSERS,
                  f"{side}_upper_arm": SKIN if outfit.sleeves == "none" else SHIRT,
                  f"{side}_forearm": SHIRT if outfit.sleeves == "long" else SKIN,
                  f"{side}_shank": TROUSERS if outfit.legwear == "long" else SKIN})
    return m


def material_colours(outfit: Outfit) -> dict[int, tuple[int, int, int]]:
    """Material -> the outfit's RGB colour for it."""
    return {SKIN: outfit.skin, HAIR: outfit.hair, SHIRT: outfit.shirt, TROUSERS: outfit.trousers,
            SHOES: outfit.shoes}
