"""CochleaAI common library: generative learning for inner-ear CT.

Core modules know nothing of Slicer; ``cochleaai.slicer.mrml`` is the only bridge to MRML.
"""
from cochleaai.errors import CochleaAIError
from cochleaai.progress import Cancelled, Progress
from cochleaai.volume import Volume

__version__ = "0.1.0"
__all__ = ["CochleaAIError", "Cancelled", "Progress", "Volume", "__version__"]
