"""The data sets offered in Slicer's Sample Data module (category "CochleaAI").

* A real temporal-bone CT: specimen T02 (right ear, fluid-filled labyrinth) of W. Wimmer,
  L. Anschuetz, S. Weder, F. Wagner, H. Delingette and M. Caversaccio, "Human bony labyrinth
  dataset: Co-registered CT and micro-CT images, surface models and anatomical landmarks",
  Data in Brief 27 (2019) 104782, doi:10.1016/j.dib.2019.104782, an open-access data set
  whose licence allows redistribution with this citation. The file (2.2 MB, NIfTI as the
  data set publishes it) ships with the extension in ``Resources/SampleData``, so the entry
  works offline; its SHA-256 is checked before it is loaded.
* The built-in phantom (temporal-bone field of view, seed 1): made on the user's machine
  when clicked (nothing to download; the seed makes it the same everywhere).

No Slicer here: the module shells register these (:mod:`cochleaai.slicer.gui.module`).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

from cochleaai.errors import CochleaAIError
from cochleaai.io import sha256_of

CATEGORY = "CochleaAI"
#: The extension's icon, the entries' thumbnail (installed with the common library, in the
#: same place relative to this package as in the source tree).
EXTENSION_ICON = Path(__file__).resolve().parents[2] / "Resources" / "Icons" / "CochleaAI.png"
#: Where the shipped data sets lie (installed with the common library, like the icon)
SAMPLE_FOLDER = Path(__file__).resolve().parents[2] / "Resources" / "SampleData"
WIMMER_2019 = ("W. Wimmer, L. Anschuetz, S. Weder, F. Wagner, H. Delingette, M. Caversaccio, "
               "Human bony labyrinth dataset: Co-registered CT and micro-CT images, surface models "
               "and anatomical landmarks, Data in Brief 27 (2019) 104782, doi:10.1016/j.dib.2019.104782")


@dataclass(frozen=True)
class ShippedSample:
    name: str                # shown in the Sample Data module
    file_name: str
    node_name: str
    sha256: str
    citation: str

    @property
    def path(self) -> Path:
        return SAMPLE_FOLDER / self.file_name


@dataclass(frozen=True)
class GeneratedSample:
    name: str
    seed: int
    fov: str


REAL_SPECIMEN = ShippedSample(
    name="Temporal bone CT (Wimmer 2019, T02)", file_name="T02_CT_RAW.nii.gz",
    node_name="T02 temporal bone CT",
    sha256="21d7952b53634d54be3572ee00f1ef136566b186f3741495f79c2897996e93f4", citation=WIMMER_2019)
PHANTOM = GeneratedSample(name="CochleaAI phantom (temporal bone, seed 1)", seed=1, fov="temporal")


def verify(path, sample: ShippedSample) -> Path:
    """``path`` when its SHA-256 is the sample's; a :class:`CochleaAIError` when not."""
    path = Path(path)
    if not path.is_file():
        raise CochleaAIError(f"The sample file {path} is missing; reinstall the CochleaAI extension.")
    digest = sha256_of(path)
    if digest != sample.sha256:
        raise CochleaAIError(f"{path.name} is not the published '{sample.name}' (SHA-256 {digest[:12]}... "
                             f"instead of {sample.sha256[:12]}...); reinstall the CochleaAI extension.")
    return path


def thumbnail() -> Optional[str]:
    """The entries' thumbnail: the extension's icon where it is installed."""
    return str(EXTENSION_ICON) if EXTENSION_ICON.is_file() else None


def registration(sample, load: Callable, thumbnail: Optional[str] = None) -> dict:
    """Keyword arguments of ``SampleData.SampleDataLogic.registerCustomSampleDataSource`` for a
    data set that ``load(source)`` reads or makes when its entry is clicked (nothing is
    downloaded). Slicer's ``SampleDataSource`` takes the length of ``uris`` and ``fileNames``
    (and refuses a source without them): nothing to download is empty lists."""
    return dict(category=CATEGORY, sampleName=sample.name, uris=[], fileNames=[], nodeNames=[],
                thumbnailFileName=thumbnail, customDownloader=load)
