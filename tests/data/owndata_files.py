"""Small files in the exact on-disk formats of "your own data" (tables, image folders)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

PENGUIN_COLUMNS = [
    "species",
    "island",
    "bill_length_mm",
    "bill_depth_mm",
    "flipper_length_mm",
    "body_mass_g",
    "sex",
    "year",
]


def penguins_frame(n: int = 120, seed: int = 0) -> pd.DataFrame:
    """A palmerpenguins-shaped table: species/island strings, measurements, sex with missing cells."""
    rng = np.random.default_rng(seed)
    species = rng.choice(["Adelie", "Chinstrap", "Gentoo"], size=n, p=[0.45, 0.2, 0.35])
    base = {
        "Adelie": (38.8, 18.3, 190.0, 3700.0),
        "Chinstrap": (48.8, 18.4, 196.0, 3733.0),
        "Gentoo": (47.5, 15.0, 217.0, 5076.0),
    }
    island = np.where(species == "Gentoo", "Biscoe", rng.choice(["Dream", "Torgersen", "Biscoe"], size=n))
    sex = rng.choice(["female", "male"], size=n)
    rows = []
    for i in range(n):
        bill_l, bill_d, flipper, mass = base[species[i]]
        male = sex[i] == "male"
        rows.append(
            {
                "species": species[i],
                "island": island[i],
                "bill_length_mm": round(bill_l + 2 * male + rng.normal(0, 2), 1),
                "bill_depth_mm": round(bill_d + 1 * male + rng.normal(0, 0.8), 1),
                "flipper_length_mm": float(round(flipper + 5 * male + rng.normal(0, 5))),
                "body_mass_g": float(round(mass + 400 * male + rng.normal(0, 250))),
                "sex": sex[i],
                "year": int(rng.choice([2007, 2008, 2009])),
            }
        )
    frame = pd.DataFrame(rows, columns=PENGUIN_COLUMNS)
    frame.loc[rng.choice(n, size=max(1, n // 12), replace=False), "sex"] = np.nan  # NA cells, as in the real file
    frame.loc[rng.choice(n, size=2, replace=False), "bill_length_mm"] = np.nan
    return frame


def write_penguins(path: Path, n: int = 120, seed: int = 0) -> pd.DataFrame:
    frame = penguins_frame(n, seed)
    frame.to_csv(path, index=False, na_rep="NA")
    return frame


def write_image_folder(root: Path, n: int = 40, size: int = 12, seed: int = 0) -> pd.DataFrame:
    """PNG files whose colour and brightness carry the labels, plus ``labels.csv``."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    rows = []
    for i in range(n):
        colour = int(rng.integers(0, 3))
        bright = float(rng.uniform(0.2, 1.0))
        pixels = (rng.uniform(0, 40, size=(size, size, 3))).astype(np.uint8)
        pixels[:, :, colour] = np.clip(pixels[:, :, colour] + 255 * bright * 0.8, 0, 255).astype(np.uint8)
        name = f"img_{i:03d}.png"
        Image.fromarray(pixels, "RGB").save(root / name)
        label = ["red", "green", "blue"][colour]
        rows.append({"file": name, "colour": label, "bright": bright, "big": int(bright > 0.6)})
    frame = pd.DataFrame(rows)
    frame.loc[[1, 5], "colour"] = np.nan  # missing labels
    frame.to_csv(root / "labels.csv", index=False)
    return frame
