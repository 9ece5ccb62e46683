"""The Metal Artifact Reduction panel's settings: its parameter node class.

Each attribute is the parameter of the same name in the module's ``vtkMRMLScriptedModuleNode``
(saved with the scene) and is bound to the widget of the .ui file whose ``SlicerParameterName``
names it. Plain Python and Slicer: nothing here needs torch, so the panel opens before the
packages are installed; the choices repeat the core's tables (``cochleaai.mar.dispatch.METHODS``,
``cochleaai.simulation.electrodes.ARRAYS``), which need torch, and a test keeps them equal.
"""
from typing import Annotated

from slicer import vtkMRMLMarkupsROINode, vtkMRMLScalarVolumeNode, vtkMRMLTableNode
from slicer.parameterNodeWrapper import Default, WithinRange, parameterNodeWrapper

from cochleaai.model_files import model_paths, models_folder
from cochleaai.slicer.gui.panels import ComboChoice, PhantomParameters

#: The artifact reduction methods (``cochleaai.mar.dispatch.METHODS``).
MarMethod = ComboChoice("MarMethod", [
    ("margan", "MARGAN, 3D GAN trained on simulated pairs (Wang et al. 2021)"),
    ("nmar", "Normalized MAR (Meyer 2010)"),
    ("li", "Linear interpolation (Kalender 1987)"),
    ("bhc", "Metal beam-hardening correction (after Verburg & Seco 2012)")], module=__name__)
#: The electrode arrays a simulation can insert (``cochleaai.simulation.electrodes.ARRAYS``).
ElectrodeArray = ComboChoice("ElectrodeArray", [
    ("flex28", "MED-EL FLEX28 (lateral wall, 12 contacts)"),
    ("slim22", "Cochlear Slim Straight CI522 (lateral wall, 22 contacts)"),
    ("hifocus16", "Advanced Bionics HiFocus 1J (lateral wall, 16 contacts)")], module=__name__)
#: The implanted array, when known (``none``: find the contacts as bright spots).
ImplantedArray = ComboChoice("ImplantedArray", [("none", "Unknown")] + [(a.name, a.value) for a in ElectrodeArray],
                             module=__name__)
#: The MARGAN model shipped with the extension (``cochleaai.mar.margan.model_io.DEFAULT_MODEL_NAME``).
SHIPPED_MARGAN_MODEL = "margan_cochlea"


def default_method():
    """MARGAN when its shipped model is installed, else NMAR (as ``cochleaai.mar.dispatch.default_method``)."""
    weights, card = model_paths(models_folder() / f"{SHIPPED_MARGAN_MODEL}.pt")
    return MarMethod.margan if weights.is_file() and card.is_file() else MarMethod.nmar


@parameterNodeWrapper
class MetalArtifactReductionParameterNode(PhantomParameters):
    volume: vtkMRMLScalarVolumeNode
    # Reduce artifacts
    postopVolume: vtkMRMLScalarVolumeNode
    roi: vtkMRMLMarkupsROINode
    method: Annotated[MarMethod, Default(generator=default_method)]
    thresholdHU: Annotated[float, WithinRange(500.0, 40000.0)] = 3000.0
    outputVolume: vtkMRMLScalarVolumeNode
    implantedArray: ImplantedArray = ImplantedArray.none
    # Simulate implant
    preopVolume: vtkMRMLScalarVolumeNode
    shapeTable: vtkMRMLTableNode
    array: ElectrodeArray = ElectrodeArray.flex28
    depthDeg: Annotated[float, WithinRange(0.0, 900.0)] = 450.0
    simulationSeed: Annotated[int, WithinRange(0, 2**31 - 1)] = 0
    # Train MARGAN on your scans
    trainPairs: Annotated[int, WithinRange(2, 10000)] = 12
    trainSteps: Annotated[int, WithinRange(1, 100000)] = 300
