"""CochleaAI common library: generative learning for inner-ear CT.

Core modules know nothing of Slicer; ``cochleaai.mrml`` is the only bridge to MRML.
"""
from .errors import CochleaAIError
from .progress import Cancelled, Progress
from .volume import Volume

__version__ = "0.1.0"
__all__ = ["CochleaAIError", "Cancelled", "Progress", "Volume", "__version__"]
