"""Writer: seeds -> images -> a COCO keypoints dataset on disk (what ``posekit synth`` runs).

One seed is a ``SeedSequence`` split into a *geometry* stream (people, poses, clothing colours,
occluders), a *look* stream (background, textures, lighting) and a *pick* stream (the style of a
``mixed`` image), so the same seed gives the same people in every style and only the looks differ.
"""
from __future__ import annotations

import json
import multiprocessing
import os
import pathlib

import cv2
import numpy as np

from posekit.data.synth.looks import encode_jpeg
from posekit.data.synth.parts import MAX_PEOPLE
from posekit.data.synth.render import Annotation, check_size, render_scene, skeleton_of
from posekit.data.synth.scene import sample_scene

#: ``mixed`` picks ``flat`` or ``textured`` per image (from the seed's pick stream).
STYLES: tuple[str, ...] = ("flat", "textured", "mixed")


def _check_style(style: str) -> None:
    """Raise ValueError unless ``style`` is one of ``STYLES``."""
    if style not in STYLES:
        raise ValueError(f"unknown synth style {style!r}; known: {STYLES}")


def image_seed(seed: int, index: int) -> int:
    """The seed of image ``index`` in a dataset generated with ``seed`` (independent of the count)."""
    if seed < 0 or index < 0:
        raise ValueError(f"seed and index must be >= 0, got {seed}, {index}")
    return int(np.random.SeedSequence([seed, index]).generate_state(1, np.uint64)[0])


def _render(seed: int, size, style, skeleton, people_per_image) -> tuple[np.ndarray, list[Annotation]]:
    """One image from one seed: the scene from the geometry stream, its looks from the look stream."""
    _check_style(style)
    if int(seed) < 0:
        raise ValueError(f"seed must be >= 0, got {seed}")
    geometry, look, pick = np.random.SeedSequence(int(seed)).spawn(3)
    if style == "mixed":
        style = ("flat", "textured")[int(np.random.default_rng(pick).integers(2))]
    people, occluders = sample_scene(np.random.default_rng(geometry), check_size(size), people_per_image)
    return render_scene(people, occluders, size=size, style=style, skeleton=skeleton,
                        rng=np.random.default_rng(look))


def render_person_image(seed: int, *, size=(192, 192), style="flat",
                        skeleton="lsp") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One synthetic person. size: (width, height).

    Returns image (H, W, 3) uint8 RGB, keypoints (K, 3) float32 (x, y, v), box (4,) float32 xywh.
    The same seed gives the same person, pose and occluders in every style.
    """
    image, annotations = _render(seed, size, style, skeleton, 1)
    return image, annotations[0].keypoints, annotations[0].box


def _generate_one(task) -> list[dict]:
    """Worker: render image ``index``, write its JPEG, return its annotation records."""
    out_dir, seed, index, size, style, skeleton, people_per_image = task
    image, annotations = _render(image_seed(seed, index), size, style, skeleton, people_per_image)
    jpeg = encode_jpeg(image, 90, what=f"image {index}")
    (pathlib.Path(out_dir) / "images" / f"{index:06d}.jpg").write_bytes(jpeg.tobytes())
    records = []
    for j, ann in enumerate(annotations):
        kps = ann.keypoints
        records.append({
            "id": index * people_per_image + j + 1, "image_id": index + 1, "category_id": 1,
            "keypoints": [round(float(v), 2) for v in kps.reshape(-1)],
            "num_keypoints": int((kps[:, 2] > 0).sum()),
            "bbox": [round(float(v), 2) for v in ann.box], "area": round(ann.area, 2), "iscrowd": 0,
        })
    return records


def _init_worker() -> None:
    # one cv2 thread per worker process: the pool already has a process per core it may use
    cv2.setNumThreads(1)


def generate_dataset(out_dir, num: int, *, style="flat", skeleton="lsp", seed=0, size=(192, 192), workers=1,
                     progress=False, people_per_image: int = 1) -> pathlib.Path:
    """Write ``OUT/images/000000.jpg ...`` and ``OUT/annotations.json`` (COCO keypoints format).

    Image ``i`` has id ``i + 1`` and depends only on (seed, i, style, skeleton, size, people_per_image),
    so datasets of different lengths share their first images and any ``workers`` gives the same bytes.
    Returns the annotation json path.
    """
    _check_style(style)
    size = check_size(size)
    sk = skeleton_of(skeleton)
    if num < 0 or seed < 0:
        raise ValueError(f"num and seed must be >= 0, got num={num}, seed={seed}")
    if not 1 <= people_per_image <= MAX_PEOPLE:
        raise ValueError(f"people_per_image must be in [1, {MAX_PEOPLE}], got {people_per_image}")
    out = pathlib.Path(out_dir)
    (out / "images").mkdir(parents=True, exist_ok=True)
    tasks = [(str(out), int(seed), i, size, style, sk.name, int(people_per_image)) for i in range(num)]
    bar = None
    if progress:
        from tqdm import tqdm
        bar = tqdm(total=num, desc=f"synth {style}", unit="img")
    records: list[list[dict]] = []
    if workers > 1 and num > 1:
        # spawn, not fork: the caller may already run torch / OpenMP threads.
        with multiprocessing.get_context("spawn").Pool(workers, initializer=_init_worker) as pool:
            chunk = max(1, min(16, num // (4 * workers)))
            for recs in pool.imap(_generate_one, tasks, chunksize=chunk):
                records.append(recs)
                if bar:
                    bar.update()
    else:
        for task in tasks:
            records.append(_generate_one(task))
            if bar:
                bar.update()
    if bar:
        bar.close()

    coco = {
        "info": {"description": "posekit synthetic people", "style": style, "seed": int(seed),
                 "skeleton": sk.name, "size": list(size)},
        "images": [{"id": i + 1, "file_name": f"{i:06d}.jpg", "width": size[0], "height": size[1]}
                   for i in range(num)],
        "annotations": [r for recs in records for r in recs],
        "categories": [{"id": 1, "name": "person", "supercategory": "person", "keypoints": list(sk.keypoints),
                        "skeleton": [[a + 1, b + 1] for a, b in sk.limbs]}],
    }
    path = out / "annotations.json"
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(coco, separators=(",", ":")))
    os.replace(tmp, path)
    return path
