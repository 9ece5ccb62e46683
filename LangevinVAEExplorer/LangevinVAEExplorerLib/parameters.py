"""The Langevin VAE Explorer panel's settings: its parameter node class.

Each attribute is the parameter of the same name in the module's ``vtkMRMLScriptedModuleNode``
(saved with the scene) and is bound to the widget of the .ui file whose ``SlicerParameterName``
names it. Nothing here needs torch, so the panel opens before the packages are installed.
"""
from typing import Annotated

from slicer import vtkMRMLScalarVolumeNode
from slicer.parameterNodeWrapper import WithinRange, parameterNodeWrapper

from cochleaai.slicer.gui.panels import JobParameters, PhantomParameters

#: The largest seed of "Random sample" (each sample takes the next seed).
MAX_SAMPLE_SEED = 1000000


@parameterNodeWrapper
class LangevinVAEExplorerParameterNode(PhantomParameters, JobParameters):
    volume: vtkMRMLScalarVolumeNode
    # Explore
    sampleSeed: Annotated[int, WithinRange(0, MAX_SAMPLE_SEED)] = 0
    latentMapSize: Annotated[int, WithinRange(2, 15)] = 7
    interpolateFrom: vtkMRMLScalarVolumeNode
    interpolateTo: vtkMRMLScalarVolumeNode
    interpolationSteps: Annotated[int, WithinRange(2, 50)] = 8
    # Train
    trainEpochs: Annotated[int, WithinRange(1, 5000)] = 100
