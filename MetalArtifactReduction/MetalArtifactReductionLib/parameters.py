"""The Metal Artifact Reduction panel's settings: its parameter node class.

Each attribute is the parameter of the same name in the module's ``vtkMRMLScriptedModuleNode``
(saved with the scene) and is bound to the widget of the .ui file whose ``SlicerParameterName``
names it. Plain Python and Slicer: nothing here needs torch, so the panel opens before the
packages are installed; the choices are built from the core's torch-free tables
(``cochleaai.mar.methods.METHODS``, ``cochleaai.simulation.arrays.ARRAYS``).
"""
from typing import Annotated

from slicer import vtkMRMLMarkupsROINode, vtkMRMLScalarVolumeNode, vtkMRMLTableNode
from slicer.parameterNodeWrapper import Default, WithinRange, parameterNodeWrapper

from cochleaai.mar import methods
from cochleaai.simulation.arrays import ARRAYS, DEFAULT_ARRAY
from cochleaai.slicer.gui.panels import ComboChoice, JobParameters, PhantomParameters

#: The artifact reduction methods (``cochleaai.mar.methods.METHODS``).
MarMethod = ComboChoice("MarMethod", list(methods.METHODS.items()), module=__name__)
#: The electrode arrays a simulation can insert (``cochleaai.simulation.arrays.ARRAYS``).
ElectrodeArray = ComboChoice("ElectrodeArray", [(key, array.name) for key, array in ARRAYS.items()],
                             module=__name__)
#: The implanted array, when known (``none``: find the contacts as bright spots).
ImplantedArray = ComboChoice("ImplantedArray", [("none", "Unknown")] + [(a.name, a.value) for a in ElectrodeArray],
                             module=__name__)


def default_method():
    """MARGAN when its shipped model is installed, else NMAR (``cochleaai.mar.methods.default_method``)."""
    return MarMethod[methods.default_method()]


@parameterNodeWrapper
class MetalArtifactReductionParameterNode(PhantomParameters, JobParameters):
    volume: vtkMRMLScalarVolumeNode
    # Reduce artifacts
    postopVolume: vtkMRMLScalarVolumeNode
    roi: vtkMRMLMarkupsROINode
    method: Annotated[MarMethod, Default(generator=default_method)]
    thresholdHU: Annotated[float, WithinRange(500.0, methods.THRESHOLD_RANGE[1])] = methods.DEFAULT_THRESHOLD_HU
    outputVolume: vtkMRMLScalarVolumeNode
    implantedArray: ImplantedArray = ImplantedArray.none
    # Simulate implant
    preopVolume: vtkMRMLScalarVolumeNode
    shapeTable: vtkMRMLTableNode
    array: ElectrodeArray = ElectrodeArray[DEFAULT_ARRAY]
    depthDeg: Annotated[float, WithinRange(0.0, 900.0)] = 450.0
    simulationSeed: Annotated[int, WithinRange(0, 2**31 - 1)] = 0
    # Train MARGAN on your scans
    trainPairs: Annotated[int, WithinRange(2, 10000)] = 12
    trainSteps: Annotated[int, WithinRange(1, 100000)] = 300
