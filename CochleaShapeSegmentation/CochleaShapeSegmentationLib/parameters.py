"""The Cochlea Shape Segmentation panel's settings: its parameter node class.

Each attribute is the parameter of the same name in the module's ``vtkMRMLScriptedModuleNode``
(saved with the scene) and is bound to the widget of the .ui file whose ``SlicerParameterName``
names it. Nothing here needs torch, so the panel opens before the packages are installed: the
defaults are :class:`cochleaai.segmentation.config.SegmentConfig`'s, the sides
``cochleaai.segmentation.options.SIDES``. The coverage an implant plan aims for is
``cochleaai.planning.plan.DEFAULT_TARGET_COVERAGE`` in percent, written out here: that module
needs torch.
"""
from typing import Annotated

from slicer import vtkMRMLMarkupsFiducialNode, vtkMRMLScalarVolumeNode
from slicer.parameterNodeWrapper import WithinRange, parameterNodeWrapper

from cochleaai.segmentation.config import SegmentConfig
from cochleaai.segmentation.options import SIDES
from cochleaai.slicer.gui.panels import ComboChoice, JobParameters, PhantomParameters

#: The ear the volume shows ("Right ear", "Left ear").
Side = ComboChoice("Side", [(side, f"{side.capitalize()} ear") for side in SIDES], module=__name__)


@parameterNodeWrapper
class CochleaShapeSegmentationParameterNode(PhantomParameters, JobParameters):
    volume: vtkMRMLScalarVolumeNode
    points: vtkMRMLMarkupsFiducialNode
    side: Side = Side.right
    # Advanced
    lRefFit: Annotated[float, WithinRange(0.05, 2.0)] = SegmentConfig.l_ref_fit
    lRefFinal: Annotated[float, WithinRange(0.01, 2.0)] = SegmentConfig.l_ref_final
    iterations: Annotated[int, WithinRange(1, 100)] = SegmentConfig.outer_iterations
    samples: Annotated[int, WithinRange(0, 2000)] = SegmentConfig.samples
    vestibuleWedge: Annotated[float, WithinRange(0.0, 90.0)] = SegmentConfig.vestibule_wedge_deg
    # Implant plan: the share of the organ of Corti (%) the arrays are ranked for
    targetCoverage: Annotated[float, WithinRange(5.0, 100.0)] = 75.0
