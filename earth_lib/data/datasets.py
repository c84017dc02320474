"""Named public data sets (EuroSAT RGB / MS, UC Merced) and the embedded synthetic set.

One function owns the ladder: extracted class folders present -> done; archive present ->
verify and extract; download allowed -> download (resuming a partial file), verify,
extract; otherwise raise an error that says where to put the archive by hand.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import urllib.error
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from earth_lib.data.folders import DATASET_FILE
from earth_lib.data.multilabel import build_mosaics
from earth_lib.data.splits import SPLITS
from earth_lib.data.synthetic import generate_synthetic_dataset
from earth_lib.errors import ArchiveError, ChecksumMismatchError, DatasetNotFoundError
from earth_lib.io import atomic_write_json, file_digest
from earth_lib.paths import MARKER, MOSAIC_LABELS, mark
from earth_lib.progress import progress_bar


@dataclass(frozen=True)
class RemoteDataset:
    """Where a public data set is published, its checksum and where its class folders sit.

    ``mirrors`` serve the same file (the same checksum), tried in order when ``url`` fails.
    """

    url: str
    filename: str
    md5: str
    base_dir: str
    size: str
    mirrors: tuple[str, ...] = ()

    @property
    def urls(self) -> tuple[str, ...]:
        """The address, then the mirrors: the order a download tries them in."""
        return (self.url, *self.mirrors)


REMOTE: dict[str, RemoteDataset] = {
    "eurosat": RemoteDataset(
        "https://madm.dfki.de/files/sentinel/EuroSAT.zip", "EuroSAT.zip",
        "c8fa014336c82ac7804f0398fcb19387", "2750", "about 94 MB",
        mirrors=("https://hf.co/datasets/torchgeo/eurosat/resolve/"
                 "c877bcd43f099cd0196738f714544e355477f3fd/EuroSAT.zip",)),
    "eurosat_ms": RemoteDataset(
        "https://hf.co/datasets/torchgeo/eurosat/resolve/"
        "1ce6f1bfb56db63fd91b6ecc466ea67f2509774c/EuroSATallBands.zip", "EuroSATallBands.zip",
        "5ac12b3b2557aa56e1826e981e8e200e",
        "ds/images/remote_sensing/otherDatasets/sentinel_2/tif", "about 2.0 GB"),
    "ucmerced": RemoteDataset(
        "https://hf.co/datasets/torchgeo/ucmerced/resolve/"
        "7c5ef3454d9b1cccfa7ccde0c01fc8f00a45909a/UCMerced_LandUse.zip", "UCMerced_LandUse.zip",
        "5b7ec56793786b6dc8a908e8854ac0e4", "UCMerced_LandUse/Images", "about 318 MB"),
}


def download(url: str, dest: str | Path, timeout: float = 30.0) -> Path:
    """Download to ``dest`` with a progress bar, resuming from ``dest.part`` when present."""
    dest = Path(dest)
    part = dest.with_name(dest.name + ".part")
    dest.parent.mkdir(parents=True, exist_ok=True)
    start = part.stat().st_size if part.exists() else 0
    req = urllib.request.Request(url, headers={"Range": f"bytes={start}-"} if start else {})
    try:
        resp = urllib.request.urlopen(req, timeout=timeout)
    except urllib.error.HTTPError as err:
        total = (err.headers.get("Content-Range") or "").rpartition("/")[2]
        if err.code == 416 and total.isdigit() and int(total) == start:
            part.replace(dest)  # the partial file was already whole
            return dest
        if err.code == 416:  # the partial file is not a prefix of this one: start again
            part.unlink()
            return download(url, dest, timeout)
        raise
    with resp:
        if start and resp.getcode() != 206:  # server (or file://) ignored the range: restart
            start = 0
        length = resp.headers.get("Content-Length")
        total = int(length) + start if length else None
        with open(part, "ab" if start else "wb") as fh, progress_bar(
                total=total, initial=start, unit="B", unit_scale=True, desc=dest.name) as bar:
            while block := resp.read(1 << 20):
                fh.write(block)
                bar.update(len(block))
    part.replace(dest)
    return dest


def extract(archive: str | Path, root: str | Path, base_dir: str) -> Path:
    """Extract a zip's ``base_dir`` tree into ``root``, through a temporary folder beside it.

    Only the archive's top folder (the first part of ``base_dir``) is put in place, by one
    rename; anything else in ``root`` (other data sets) stays. A folder of that name that
    earth-resnet did not extract is never replaced: the error says so.
    """
    archive, root = Path(archive), Path(root)
    root.mkdir(parents=True, exist_ok=True)
    top = Path(base_dir).parts[0]
    target, stamp = root / top, root / f".{top}{MARKER}"
    if target.exists() and not stamp.is_file():
        raise ArchiveError(f"{target} exists and was not extracted by earth-resnet; move it "
                           f"away (or set data.raw_dir elsewhere) to extract {archive.name}.")
    tmp = Path(tempfile.mkdtemp(prefix=f".{top}.extracting.", dir=root))
    try:
        with zipfile.ZipFile(archive) as zf:
            zf.extractall(tmp)
        if not (tmp / base_dir).is_dir():
            raise ArchiveError(f"{archive} did not contain the expected folder {base_dir}.")
        stamp.unlink(missing_ok=True)
        if target.exists():
            shutil.rmtree(target)  # an earlier extraction of ours
        (tmp / top).replace(target)
        stamp.write_text(f"{archive.name}\n", encoding="utf-8")
    except zipfile.BadZipFile as err:
        raise ArchiveError(f"{archive}: not a valid zip archive ({err}). Delete it and download "
                           "again.") from err
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def fetch_dataset(name: str, root: str | Path, archive_dir: str | Path,
                  allow_download: bool = False, remote: RemoteDataset | None = None) -> Path:
    """Return the folder of class sub-folders of a public data set, getting it if needed.

    Raises:
        DatasetNotFoundError: not present, and no archive or download allowed; the message
            says where to put the archive.
        ChecksumMismatchError: the archive is not the published file (corrupt or incomplete).
        ArchiveError: the archive is not a zip, or lacks the data set's folder.
    """
    if remote is None:
        if name not in REMOTE:
            raise ValueError(f"Unknown data set {name!r}; known: {', '.join(REMOTE)}.")
        remote = REMOTE[name]
    root, archive_dir = Path(root), Path(archive_dir)
    classes = root / remote.base_dir
    if (root / f".{Path(remote.base_dir).parts[0]}{MARKER}").is_file() and classes.is_dir():
        return classes
    archive = archive_dir / remote.filename
    if not archive.is_file():
        if not allow_download:
            raise DatasetNotFoundError(
                f"{name} not found in {root} and no archive at {archive}. Download "
                f"{' or '.join(remote.urls)} ({remote.size}) and place it at {archive}, or "
                "set data.download: true (make data DATASET=...)."
            )
        download_from_any(name, remote, archive)
    got = file_digest(archive, "md5")
    if got != remote.md5:
        raise ChecksumMismatchError(
            f"{archive}: checksum mismatch (md5 {got}, expected {remote.md5}); the file is "
            "corrupt or incomplete. Delete it and download again."
        )
    extract(archive, root, remote.base_dir)
    return classes


def download_from_any(name: str, remote: RemoteDataset, archive: Path) -> Path:
    """Download from the data set's address, then from each mirror, until one answers."""
    failures = []
    for url in remote.urls:
        try:
            return download(url, archive)
        except OSError as err:
            failures.append(f"{url} ({err})")
            if url != remote.urls[-1]:
                print(f"{name}: {url} failed ({err}); trying the next mirror")
    raise DatasetNotFoundError(
        f"Could not download {name} from {'; nor from '.join(failures)}. A partial download "
        f"is kept and resumed next time. Offline: download it elsewhere and place it at "
        f"{archive}.")


def local_copy(params: dict[str, Any]) -> Path | None:
    """``data.local_copy`` when that folder exists (it then replaces raw_dir), else None."""
    copy = params["data"]["local_copy"]
    return Path(copy) if copy and Path(copy).is_dir() else None


def prepare_raw(params: dict[str, Any], progress: bool = True) -> Path:
    """The raw class-folder directory for a run: a local copy, generated, fetched, or a folder.

    ``data.local_copy``, when that folder exists, wins: the same experiment runs from a
    shared copy here and from the download elsewhere (``data.file_list`` keeps the images).
    """
    d = params["data"]
    if (copy := local_copy(params)) is not None:
        return copy
    if d["dataset"] == "mosaic":
        return prepare_mosaics(params, progress)
    if d["dataset"] == "synthetic":
        generate_synthetic_dataset(d["raw_dir"], d["synthetic_images_per_class"],
                                   d["synthetic_image_size"], d["synthetic_classes"],
                                   params["seed"], progress=progress)
        mark(d["raw_dir"], "synthetic")
        return Path(d["raw_dir"])
    if d["dataset"] == "folder":
        if not Path(d["raw_dir"]).is_dir():
            raise DatasetNotFoundError(
                f"Data folder not found: {d['raw_dir']} (data.raw_dir). Put one sub-folder of "
                "images per class there."
            )
        return Path(d["raw_dir"])
    return fetch_dataset(d["dataset"], d["raw_dir"], d["archive_dir"], d["download"])


def prepare_mosaics(params: dict[str, Any], progress: bool = True) -> Path:
    """``data.dataset: mosaic``: multi-label mosaics of a class-folder set, built once.

    The tiles come from ``data.mosaic_source`` or, when that is null, from the embedded
    synthetic set (generated into ``<raw_dir>_tiles``). The mosaics, their labels CSV (with
    the split of each, tile-disjoint) and ``mosaics.json`` (what built them) go to
    ``raw_dir``; they are rebuilt only when those settings change.
    """
    d, sp = params["data"], params["split"]
    if d["mosaic_source"]:
        source = Path(d["mosaic_source"])
        if not source.is_dir():
            raise DatasetNotFoundError(
                f"Mosaic source not found: {source} (data.mosaic_source). Point it to a "
                "folder of class sub-folders, e.g. EuroSAT RGB (make data DATASET=eurosat).")
    else:
        source = Path(d["raw_dir"].rstrip("/") + "_tiles")
        generate_synthetic_dataset(source, d["synthetic_images_per_class"],
                                   d["synthetic_image_size"], d["synthetic_classes"],
                                   params["seed"], progress=progress)
        mark(source, "synthetic")
    out = Path(d["raw_dir"])
    mark(out, "mosaic")
    fractions = {s: sp[s] for s in SPLITS}
    counts = {s: int(round(f * d["mosaic_count"])) for s, f in fractions.items()}
    counts["train"] = d["mosaic_count"] - counts["val"] - counts["test"]
    made = source / DATASET_FILE  # the generated tiles' settings: new tiles, new mosaics
    settings = {"source": source.as_posix(),
                "tiles": json.loads(made.read_text()) if made.is_file() else None,
                "grid": d["mosaic_grid"],
                "labels_per_mosaic": list(d["mosaic_labels"]), "counts": counts,
                "seed": params["seed"], "builder": "earth_lib.multilabel.build_mosaics v1"}
    stamp = out / "mosaics.json"
    if stamp.is_file() and (out / MOSAIC_LABELS).is_file() \
            and json.loads(stamp.read_text()) == settings:
        return out
    for stale in SPLITS:  # generated here: replaced whole, never mixed
        shutil.rmtree(out / stale, ignore_errors=True)
    stamp.unlink(missing_ok=True)
    build_mosaics(source, out, counts=counts, grid=d["mosaic_grid"],
                  labels_per_mosaic=tuple(d["mosaic_labels"]), fractions=fractions,
                  seed=params["seed"], progress=progress)
    atomic_write_json(stamp, settings)
    return out
