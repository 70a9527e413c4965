"""Office-31 (Saenko et al., ECCV 2010) and Office-Home (Venkateswara et al., CVPR 2017): one task per domain.

Multi-input benchmarks (LibMTL's ``multi_input`` set-up): each domain is a classification task over
the shared class list, with its own images. Office-31 has the domains ``amazon``, ``dslr``,
``webcam`` (31 classes), Office-Home ``Art``, ``Clipart``, ``Product``, ``Real_World`` (65 classes).

Layout under the data root: ``ROOT/<domain>/[images/]<class>/*.jpg`` (Office-31 ships the
``images/`` level; Office-Home's original ``Real World`` folder with a space is accepted too).
Class ``c`` has the index of its folder name among the sorted class folders of all domains.

Splits: LibMTL's list files ``<domain>_{train,val,test}.txt`` (lines ``<path relative to ROOT>
<label>``, from LibMTL's ``examples/office/data_txt/``) when they are in ``ROOT`` (or in
``ROOT/data_txt/<office-31|office-home>/``); their integer labels are LibMTL's own (not
alphabetical) ids and are checked to name one class folder each. Without list files, each domain
gets a seeded 60/20/20 split (``dataset.seed``). ``dataset.verify=true`` checks the published
per-domain counts (and class count); ``false`` accepts smaller folders in the same format.

Images are converted to RGB, resized to ``dataset.size`` squared (LibMTL uses 224; the default 64
keeps CPU runs practical) and kept in memory as uint8, normalised per batch with the ImageNet
mean and std as LibMTL does. Decoding Office-Home's 15,588 JPEGs takes a while, so the decoded
array of a large folder is cached in ``~/.cache/mtlrun/<name>/`` (see :func:`cached_images`).
"""

from __future__ import annotations

import hashlib
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from mtlrun.data.base import DATASETS, split_indices
from mtlrun.data.formats import benchmark_files as bf
from mtlrun.data.formats.byte_images import ByteImageSplit
from mtlrun.data.multi_input import MultiInputDataset, MultiInputSplit
from mtlrun.data.own.image_folder import load_image
from mtlrun.data.tasks import classification_task
from mtlrun.errors import ConfigError
from mtlrun.registry import in_range

MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
SPLITS = ("train", "val", "test")
EXTENSIONS = (".jpg", ".jpeg", ".png")
#: folders with at least this many images keep their decoded array in the user cache
CACHE_MIN_IMAGES = 1000


@dataclass(frozen=True)
class OfficeSpec:
    """What differs between the two benchmarks: domains, class count, published counts, sources."""

    name: str
    domains: tuple[str, ...]
    num_classes: int
    #: per domain: (train, val, test) as in LibMTL's list files
    counts: dict[str, tuple[int, int, int]]
    list_folder: str
    #: other folder names a domain may have on disk
    aliases: dict[str, tuple[str, ...]]
    how: str


OFFICE31 = OfficeSpec(
    name="office31",
    domains=("amazon", "dslr", "webcam"),
    num_classes=31,
    counts={"amazon": (1680, 552, 585), "dslr": (287, 89, 122), "webcam": (466, 149, 180)},
    list_folder="office-31",
    aliases={},
    how=(
        "get it: download Office-31 from https://www.cc.gatech.edu/~judy/domainadapt/#datasets_code and unpack "
        "it as ROOT/{amazon,dslr,webcam}/images/<class>/*.jpg (optionally with LibMTL's list files "
        "<domain>_{train,val,test}.txt from examples/office/data_txt/office-31/); point dataset.root "
        "(or $MTLRUN_DATA) at ROOT"
    ),
)
OFFICE_HOME = OfficeSpec(
    name="office_home",
    domains=("Art", "Clipart", "Product", "Real_World"),
    num_classes=65,
    counts={
        "Art": (1435, 465, 527),
        "Clipart": (2596, 846, 923),
        "Product": (2635, 860, 944),
        "Real_World": (2586, 846, 925),
    },
    list_folder="office-home",
    aliases={"Real_World": ("Real World",)},
    how=(
        "get it: download Office-Home from https://www.hemanthdv.org/officeHomeDataset.html and unpack it as "
        "ROOT/{Art,Clipart,Product,Real_World}/<class>/*.jpg (optionally with LibMTL's list files "
        "<domain>_{train,val,test}.txt from examples/office/data_txt/office-home/); point dataset.root "
        "(or $MTLRUN_DATA) at ROOT"
    ),
)


def _error(spec: OfficeSpec, root: Path, problem: str) -> ConfigError:
    return bf.data_error(spec.name, root, problem, spec.how)


def domain_folders(spec: OfficeSpec, root: Path) -> dict[str, Path]:
    """Each domain's class-folder parent (``<domain>/images`` or ``<domain>``), else a one-line error."""
    found = {}
    for domain in spec.domains:
        for name in (domain, *spec.aliases.get(domain, ())):
            base = root / name
            if (base / "images").is_dir():
                base = base / "images"
            if base.is_dir():
                found[domain] = base
                break
        else:
            raise _error(spec, root, f"missing folder {domain}/")
    return found


def scan_domain(spec: OfficeSpec, root: Path, domain: str, folder: Path) -> dict[str, list[Path]]:
    """class name -> sorted image files of one domain."""
    classes = {}
    for entry in sorted(p for p in folder.iterdir() if p.is_dir()):
        files = sorted(f for f in entry.iterdir() if f.is_file() and f.suffix.lower() in EXTENSIONS)
        if files:
            classes[entry.name] = files
    if not classes:
        raise _error(spec, root, f"folder {folder.relative_to(root)}/ holds no <class>/*.jpg images")
    return classes


def list_files(spec: OfficeSpec, root: Path) -> dict[str, list[Path]] | None:
    """Per domain, the paths of LibMTL's train/val/test list files; ``None`` when none is present."""
    bases = (root, root / "data_txt" / spec.list_folder)
    names = {d: [f"{d}_{s}.txt" for s in SPLITS] for d in spec.domains}
    if not any(bf.locate(b, [n]) for ns in names.values() for n in ns for b in bases):
        return None
    out = {}
    for domain, files in names.items():
        paths = []
        for name in files:
            path = next((p for p in (bf.locate(b, [name]) for b in bases) if p is not None), None)
            if path is None:
                raise _error(spec, root, f"missing list file {name} (the other LibMTL list files are present)")
            paths.append(path)
        out[domain] = paths
    return out


def read_list(
    spec: OfficeSpec, root: Path, path: Path, domain: str, folder: Path, libmtl_ids: dict[int, str]
) -> list[tuple[Path, str]]:
    """``(image path, class name)`` per line of a list file; LibMTL's ids must name one class each."""
    text = bf.read_bytes(spec.name, root, path, spec.how).decode("utf-8", errors="replace")
    out = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        fields = line.rsplit(maxsplit=1)
        where = f"{path.name} line {number}"
        if len(fields) != 2 or not fields[1].lstrip("-").isdigit():
            raise _error(spec, root, f"{where} must be '<image path> <integer label>', got {line.strip()!r}")
        parts = Path(fields[0]).parts
        rest = parts[1:]
        if rest[:1] == ("images",) and len(rest) == 3:
            rest = rest[1:]
        if not parts or parts[0] != domain or len(rest) != 2:
            raise _error(spec, root, f"{where}: {fields[0]} is not a {domain}/[images/]<class>/<file> path")
        label, name = int(fields[1]), rest[0]
        if label < 0:
            raise _error(spec, root, f"{where}: label {label} must be >= 0")
        if libmtl_ids.setdefault(label, name) != name:
            raise _error(spec, root, f"{where}: label {label} names class {name}, earlier {libmtl_ids[label]}")
        other = next((i for i, c in libmtl_ids.items() if c == name and i != label), None)
        if other is not None:
            raise _error(spec, root, f"{where}: class {name} has label {label}, earlier {other}")
        out.append((folder / rest[0] / rest[1], name))
    if not out:
        raise _error(spec, root, f"list file {path.name} is empty")
    return out


def load_images(spec: OfficeSpec, root: Path, paths: list[Path], size: int) -> torch.Tensor:
    """uint8 (N, 3, size, size); decoded in a few threads, each image at its own index."""
    out = np.empty((len(paths), size, size, 3), dtype=np.uint8)

    def load(i: int, path: Path) -> None:
        if not path.is_file():
            raise _error(spec, root, f"missing image {path.relative_to(root)}")
        try:
            out[i] = load_image(path, "RGB", size, i + 1)
        except ConfigError as ex:
            raise _error(spec, root, str(ex)) from None

    with ThreadPoolExecutor(max(1, min(8, os.cpu_count() or 1))) as pool:
        for job in [pool.submit(load, i, p) for i, p in enumerate(paths)]:
            job.result()
    return torch.from_numpy(out).permute(0, 3, 1, 2).contiguous()


def cached_images(spec: OfficeSpec, root: Path, paths: list[Path], size: int) -> torch.Tensor:
    """:func:`load_images`, cached as ``images_<size>_<key>.npy`` in ``~/.cache/mtlrun/<name>/``.

    The key digests every image's path, byte size and modification time, so any change to the
    folder or the split rebuilds the cache. Small folders (tests, sub-samples) are not cached.
    """
    if len(paths) < CACHE_MIN_IMAGES:
        return load_images(spec, root, paths, size)
    listing = "\n".join(f"{p} {p.stat().st_size} {p.stat().st_mtime_ns}" if p.is_file() else str(p) for p in paths)
    key = hashlib.md5(listing.encode(), usedforsecurity=False).hexdigest()[:12]
    cache = bf.data_root(spec.name, None) / f"images_{size}_{key}.npy"
    if cache.is_file():
        try:
            array = np.load(cache)
        except (OSError, ValueError):
            array = None
        if array is not None and array.shape == (len(paths), 3, size, size) and array.dtype == np.uint8:
            return torch.from_numpy(array)
    images = load_images(spec, root, paths, size)
    bf.save_npy(cache, images.numpy())
    return images


def build_office(spec: OfficeSpec, root: str | None, verify: bool, size: int, seed: int) -> MultiInputDataset:
    """Read, check and split one of the Office benchmarks (see the module docstring)."""
    in_range("dataset", "size", size, 8, 512)
    folder = bf.data_root(spec.name, root)
    if not folder.is_dir():
        raise _error(spec, folder, "data folder not found")
    domains = domain_folders(spec, folder)
    scanned = {d: scan_domain(spec, folder, d, f) for d, f in domains.items()}
    classes = sorted(set().union(*scanned.values()))
    if verify and len(classes) != spec.num_classes:
        raise _error(
            spec,
            folder,
            f"found {len(classes)} class folders, not {spec.num_classes}; set dataset.verify=false for a subset",
        )
    index = {c: i for i, c in enumerate(classes)}
    lists = list_files(spec, folder)
    members: dict[str, list[list[tuple[Path, str]]]] = {}
    libmtl_ids: dict[int, str] = {}
    for d, (domain, base) in enumerate(domains.items()):
        if lists is not None:
            members[domain] = [read_list(spec, folder, p, domain, base, libmtl_ids) for p in lists[domain]]
            for part in members[domain]:
                unknown = next((c for _, c in part if c not in index), None)
                if unknown is not None:
                    raise _error(spec, folder, f"list files name class {unknown}, which has no {domain} image folder")
        else:
            items = [(f, c) for c, files in scanned[domain].items() for f in files]
            g = torch.Generator().manual_seed(seed * 1000 + d)
            parts = split_indices(len(items), (0.2, 0.2), g)
            members[domain] = [[items[i] for i in sorted(p.tolist())] for p in parts]
        sizes = tuple(len(p) for p in members[domain])
        published = spec.counts[domain]
        # the seeded split rounds differently from LibMTL's lists: only the domain's total is published then
        if verify and (sizes != published if lists is not None else sum(sizes) != sum(published)):
            raise _error(
                spec,
                folder,
                f"domain {domain} has {sizes} train/val/test images, not the published {spec.counts[domain]}; "
                "set dataset.verify=false for a smaller folder",
            )
        if min(sizes) == 0:
            raise _error(spec, folder, f"domain {domain} has an empty split ({sizes} train/val/test images)")
    ordered = [p for parts in members.values() for part in parts for p, _ in part]
    images = cached_images(spec, folder, ordered, size)
    splits: list[dict[str, ByteImageSplit]] = [{}, {}, {}]
    start = 0
    for domain, parts in members.items():
        for k, part in enumerate(parts):
            x = images[start : start + len(part)]  # a view: the splits share one array
            start += len(part)
            y = torch.tensor([index[c] for _, c in part], dtype=torch.long)
            splits[k][domain] = ByteImageSplit(x, {domain: y}, MEAN, STD)
    shape = (3, size, size)
    return MultiInputDataset(
        tasks={d: classification_task(d, len(classes)) for d in spec.domains},
        train=MultiInputSplit(splits[0]),
        val=MultiInputSplit(splits[1]),
        test=MultiInputSplit(splits[2]),
        input_shape=shape,
        default_encoder="resnet18",
        info={
            "source": str(folder),
            "split": "libmtl_lists" if lists is not None else f"seeded_60_20_20 (seed {seed})",
            "classes": classes,
            "sizes": {d: [len(p) for p in parts] for d, parts in members.items()},
        },
        input_shapes={d: shape for d in spec.domains},
    )


@DATASETS.register("office31")
def office31(root: str | None = None, verify: bool = True, size: int = 64, seed: int = 0) -> MultiInputDataset:
    """Build Office-31: tasks amazon, dslr, webcam (31 classes each, one task per domain)."""
    return build_office(OFFICE31, root, verify, size, seed)


@DATASETS.register("office_home")
def office_home(root: str | None = None, verify: bool = True, size: int = 64, seed: int = 0) -> MultiInputDataset:
    """Build Office-Home: tasks Art, Clipart, Product, Real_World (65 classes each, one task per domain)."""
    return build_office(OFFICE_HOME, root, verify, size, seed)
