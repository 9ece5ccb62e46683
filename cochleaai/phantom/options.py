"""The phantom's choices: its fields of view (with menu labels) and the seed range.

Plain Python (no torch), so the Slicer panels show them before the optional packages are
installed; :func:`~cochleaai.phantom.core.make_phantom` checks its inputs with the same rules.
"""
from __future__ import annotations

import numbers
from typing import Dict

from cochleaai.errors import CochleaAIError

#: Fields of view: ITK size (x, y, z) and isotropic spacing (mm).
FOVS: Dict[str, dict] = {
    "roi": {"size": (60, 50, 50), "spacing": 0.2},
    "temporal": {"size": (140, 140, 100), "spacing": 0.3},
}
#: The fields of view as menus show them (a label for each key of :data:`FOVS`).
FIELDS_OF_VIEW: Dict[str, str] = {
    "roi": "Cochlea region (small, fast)",
    "temporal": "Temporal bone (large)",
}
#: The seed a module's "Generate phantom" starts with.
DEFAULT_SEED = 1
#: The largest phantom seed (the seed spin box of the modules holds a 32-bit int).
MAX_SEED = 2**31 - 1


def check_seed(seed, text: bool = False) -> int:
    """``seed`` as an int in [0, :data:`MAX_SEED`], or a CochleaAIError.

    A whole number: an int (numpy's too) or a float with no fraction; never a bool. With
    ``text=True`` a string holding such a number (a typed or stored setting) is read first.
    """
    message = f"The phantom seed must be a whole number between 0 and {MAX_SEED}, got {seed!r}."
    value = seed
    if text and isinstance(seed, str):
        try:
            value = int(seed)
        except ValueError:
            raise CochleaAIError(message) from None
    if isinstance(value, bool):
        raise CochleaAIError(message)
    if isinstance(value, float) and value.is_integer():  # novm (float's; vermin takes value for the int above)
        value = int(value)
    if not isinstance(value, numbers.Integral) or not 0 <= int(value) <= MAX_SEED:
        raise CochleaAIError(message)
    return int(value)


def check_field_of_view(fov) -> str:
    """The key of ``fov`` in :data:`FOVS` (any letter case), or a CochleaAIError naming the choices."""
    if not isinstance(fov, str) or fov.lower() not in FOVS:
        raise CochleaAIError(f"Unknown phantom field of view {fov!r}; choose one of: {', '.join(FOVS)}.")
    return fov.lower()
