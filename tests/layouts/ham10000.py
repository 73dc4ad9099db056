"""A tiny HAM10000 copy: ``HAM10000_metadata`` and ``HAM10000_images_part_{1,2}/<image_id>.jpg``."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

CLASSES = ("akiec", "bcc", "bkl", "df", "mel", "nv", "vasc")

# lesion_id, then its images: (image_id, dx, dx_type, age, sex, localization); blank = None.
LESIONS = [
    ("HAM_0000118", [("ISIC_0027419", "bkl", "histo", 80.0, "male", "scalp"),
                     ("ISIC_0025030", "bkl", "histo", 80.0, "male", "scalp")]),
    ("HAM_0002730", [("ISIC_0026769", "bkl", "histo", 45.0, "female", "back"),
                     ("ISIC_0025661", "bkl", "histo", 50.0, "female", "back"),
                     ("ISIC_0031633", "bkl", "histo", 50.0, "female", "back")]),
    ("HAM_0005132", [("ISIC_0028498", "mel", "histo", None, "unknown", "unknown")]),
    ("HAM_0001466", [("ISIC_0027850", "nv", "follow_up", 5.0, None, "lower extremity"),
                     ("ISIC_0029176", "nv", "follow_up", 5.0, None, "lower extremity")]),
    ("HAM_0000724", [("ISIC_0029687", "akiec", "histo", 70.0, "male", "face")]),
    ("HAM_0003301", [("ISIC_0024329", "bcc", "histo", 19.0, "female", "trunk"),
                     ("ISIC_0024372", "bcc", "histo", 20.0, "female", "trunk")]),
    ("HAM_0000949", [("ISIC_0031029", "df", "consensus", 39.0, "male", "upper extremity")]),
    ("HAM_0001162", [("ISIC_0033029", "vasc", "consensus", 60.0, "female", "abdomen"),
                     ("ISIC_0032950", "vasc", "consensus", 60.0, "female", "abdomen")]),
    ("HAM_0004813", [("ISIC_0033180", "nv", "histo", 100.0, "male", "acral")]),
]
#: Each lesion's subgroups, from its first image (written by hand).
ATTRIBUTES = {
    "HAM_0000118": ("male", "80-89", "scalp"),
    "HAM_0002730": ("female", "40-49", "back"),
    "HAM_0005132": ("unknown", "missing", "unknown"),
    "HAM_0001466": ("missing", "0-9", "lower extremity"),
    "HAM_0000724": ("male", "70-79", "face"),
    "HAM_0003301": ("female", "10-19", "trunk"),
    "HAM_0000949": ("male", "30-39", "upper extremity"),
    "HAM_0001162": ("female", "60-69", "abdomen"),
    "HAM_0004813": ("male", "100-109", "acral"),
}
ATTRIBUTE_NAMES = ("sex", "age_group", "localization")


@dataclass
class Expected:
    record_ids: list[str]
    patient_ids: list[str]  # per record
    labels: list[int]
    class_names: tuple[str, ...]
    attributes: dict[str, list[str]]  # per record
    holdout: None
    images: dict[str, np.ndarray]  # image_id → [H, W, 3] uint8 as written
    paths: dict[str, Path]  # image_id → its file


def write(root: Path, metadata: str = "HAM10000_metadata", single_folder: bool = False) -> Expected:
    """The metadata (``metadata``: its file name) and one 24×20 JPEG per image, alternately
    in part 1 and part 2 (``single_folder``: all in images/)."""
    from PIL import Image

    root.mkdir(parents=True, exist_ok=True)
    rows, images, paths = [], {}, {}
    flat = [(lesion, image) for lesion, items in LESIONS for image in items]
    for i, (lesion, (image_id, dx, dx_type, age, sex, localization)) in enumerate(flat):
        rows.append({"lesion_id": lesion, "image_id": image_id, "dx": dx, "dx_type": dx_type,
                     "age": age if age is not None else np.nan,
                     "sex": sex if sex is not None else np.nan, "localization": localization})
        folder = "images" if single_folder else f"HAM10000_images_part_{1 + i % 2}"
        (root / folder).mkdir(exist_ok=True)
        pixels = np.zeros((24, 20, 3), dtype=np.uint8)
        pixels[..., 0] = 20 + 12 * i
        pixels[..., 1] = 230 - 11 * i
        pixels[: 3 + i, :, 2] = 200  # a band whose height differs per image
        paths[image_id] = root / folder / f"{image_id}.jpg"
        Image.fromarray(pixels).save(paths[image_id], quality=95)
        images[image_id] = pixels
    pd.DataFrame(rows).to_csv(root / metadata, index=False)
    return Expected(
        record_ids=[image[0] for _, image in flat],
        patient_ids=[lesion for lesion, _ in flat],
        labels=[CLASSES.index(image[1]) for _, image in flat],
        class_names=CLASSES,
        attributes={a: [ATTRIBUTES[lesion][k] for lesion, _ in flat]
                    for k, a in enumerate(ATTRIBUTE_NAMES)},
        holdout=None,
        images=images,
        paths=paths,
    )
