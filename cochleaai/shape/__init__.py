"""The parametric cochlea shape model (thesis chapter 3).

* :mod:`.params`   the 10 parameters, initial values and bounds
* :mod:`.geometry` centreline and swept cross-section (torch, differentiable)
* :mod:`.sdf`      fast signed distance and its Jacobian (the shape function)
* :mod:`.mesh`     surface mesh (vtkPolyData)
* :mod:`.model`    :class:`CochleaModel`: one posed shape and what derives from it
"""
from cochleaai.shape.model import LABEL_OUTSIDE, LABEL_SCALA_TYMPANI, LABEL_SCALA_VESTIBULI, CochleaModel
from cochleaai.shape.params import (DEFAULT_DEFORMABLE, DEFORMABLE_LOWER, DEFORMABLE_UPPER, PARAM_NAMES, bounds,
                                    default_params)
from cochleaai.shape.sdf import ShapeFunction

__all__ = ["CochleaModel", "ShapeFunction", "PARAM_NAMES", "DEFAULT_DEFORMABLE", "DEFORMABLE_LOWER",
           "DEFORMABLE_UPPER", "bounds", "default_params", "LABEL_OUTSIDE", "LABEL_SCALA_TYMPANI",
           "LABEL_SCALA_VESTIBULI"]
