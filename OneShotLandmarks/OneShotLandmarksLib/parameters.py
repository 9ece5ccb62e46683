"""The One-Shot Landmarks panel's settings: its parameter node class.

Each attribute is the parameter of the same name in the module's ``vtkMRMLScriptedModuleNode``
(saved with the scene) and is bound to the widget of the .ui file whose ``SlicerParameterName``
names it. Nothing here needs torch, so the panel opens before the packages are installed.
"""
from typing import Annotated

from slicer import vtkMRMLMarkupsFiducialNode, vtkMRMLScalarVolumeNode, vtkMRMLSegmentationNode
from slicer.parameterNodeWrapper import WithinRange, parameterNodeWrapper

from cochleaai.slicer.gui.panels import ComboChoice, JobParameters, PhantomParameters

#: Which ear the volumes show (``none``: unknown, both are tried).
EarSide = ComboChoice("EarSide", [("none", "Auto (try both)"), ("left", "Left"), ("right", "Right")],
                      module=__name__)


@parameterNodeWrapper
class OneShotLandmarksParameterNode(PhantomParameters, JobParameters):
    volume: vtkMRMLScalarVolumeNode
    # Reference and training
    referenceVolume: vtkMRMLScalarVolumeNode
    referenceSegmentation: vtkMRMLSegmentationNode
    referenceLandmarks: vtkMRMLMarkupsFiducialNode
    referenceSide: EarSide = EarSide.none
    validationVolume: vtkMRMLScalarVolumeNode
    validationSegmentation: vtkMRMLSegmentationNode
    segmentName: str = "Cochlea"
    maxSteps: Annotated[int, WithinRange(10, 100000)] = 800
    # Detect
    targetSide: EarSide = EarSide.none
