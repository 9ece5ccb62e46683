"""Library of the Metal Artifact Reduction module; its Logic (``logic.py``) runs in Slicer and headless."""
import importlib.util
import os
import sys

# Installed extensions have ``cochleaai`` beside this package. When Slicer loads the module
# straight from a source checkout, the package is two folders up: put that on sys.path.
if importlib.util.find_spec("cochleaai") is None:
    _root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    if os.path.isfile(os.path.join(_root, "cochleaai", "__init__.py")):
        sys.path.append(_root)
