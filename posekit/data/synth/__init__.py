"""Synthetic people: a procedural generator of pose-annotated images, posekit's built-in dataset.

A person is a small 3D stick figure with volume (capsules for limbs, a hull of elliptic rings for the
torso, an ellipsoid for the head), posed by joint angles, seen by an orthographic camera and painted
back to front with cv2. While painting, a part-label map records which body part (or occluder) is on
top at every pixel; a joint's visibility flag is read from it.

Modules, in the order an image is made
--------------------------------------
``body``    ``BodyShape``, ``Pose``, ``forward_kinematics``: proportions + joint angles -> 3D points.
``poses``   ``sample_pose``: named pose families (standing, walking, running, ..., gymnastics).
``camera``  ``View``, ``project``: orthographic camera, body frame -> image points and outlines.
``scene``   ``Outfit``, ``Person``, ``Occluder``, ``sample_person``, ``sample_scene``: size and
            placement, clothing, occluders.
``parts``   part names, label-map values, materials.
``draw``    one person's parts as capsules, hulls and ellipses in the image and the label map.
``looks``   the ``flat`` and ``textured`` styles: backgrounds, clothing textures, lighting, noise.
``render``  ``render_scene``: parts in depth order -> RGB image + label map -> keypoints (x, y, v),
            tight boxes.
``writer``  ``image_seed``, ``render_person_image``, ``generate_dataset``: COCO json + JPEGs.

Coordinates: the body frame has +x = the person's left, +y = down, +z = the person's front, in units of
standing height (head top to sole ~ 1). The camera looks along -z, so a person with yaw 0 faces the
camera and their left shoulder is on the image right. Image points use cv2's convention (integer
coordinates are pixel centres).

Randomness: one seed -> a ``SeedSequence`` split into a *geometry* stream (people, poses, clothing
colours, occluders) and a *look* stream (background, textures, lighting), so the same seed gives the
same people in every style and only the looks differ (a controlled domain shift).
"""
from __future__ import annotations

from posekit.data.synth.camera import View
from posekit.data.synth.poses import sample_pose
from posekit.data.synth.render import render_scene
from posekit.data.synth.scene import Occluder, Person, sample_person
from posekit.data.synth.writer import STYLES, generate_dataset, image_seed, render_person_image

__all__ = ["STYLES", "Occluder", "Person", "View", "generate_dataset", "image_seed", "render_person_image",
           "render_scene", "sample_person", "sample_pose"]
