"""MetalArtifactReductionLogic: MRML nodes in, MRML nodes out.

No ``qt``, ``ctk``, ``slicer.app`` or ``slicer.modules`` here: this runs inside Slicer and
headless on ``slicer-core`` (the tests run it on a real ``vtkMRMLScene``).

* ``reduce_artifacts(scene, volume_node, method="nmar", ...)`` -> ``{"volume", "contacts",
  "messages", "metal_voxels"}``: MAR (MARGAN, NMAR, LI, BHC) of a post-operative CT and the
  electrode contacts found in it as numbered markups;
* ``simulate_implant(scene, preop_node, array, depth_deg, ...)`` -> ``{"volume", "metal",
  "contacts", "target", "clean", "preop", "summary", "warnings"}``: an electrode array
  inserted along the scala tympani of a cochlea model and the post-operative CT simulated
  from X-ray physics;
* each of the two is also three steps, so that the long part runs in a worker process (the
  module does that): ``read_reduce_inputs`` / ``read_simulation_inputs`` (MRML -> a
  :class:`ReduceInputs` / :class:`SimulationInputs` of plain data, checked), ``compute``
  (the core function ``inputs.function(*inputs.args, **inputs.kwargs)``:
  :func:`cochleaai.mar.dispatch.reduce_and_find_contacts`,
  :func:`cochleaai.simulation.ct.simulate_postop`; no MRML) and ``add_reduce_nodes`` /
  ``add_simulation_nodes`` (the nodes);
* training MARGAN on the user's pre-op scans: ``read_training_scans`` (MRML -> plain data),
  then ``compute_training_pairs`` and ``compute_training`` (no MRML;
  :mod:`cochleaai.mar.margan.user_training`, whose ``simulate_user_pairs`` and
  ``train_user_model_file`` the module runs in a worker process: ``pairs_function``,
  ``training_function``, then ``use_trained_model``); the trained model is kept as ``model``
  (its file) and used by ``reduce_artifacts``;
* ``generate_phantom`` (inherited): the synthetic temporal-bone CT.

On cancellation or error the scene is left exactly as it was; the input nodes are only read.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Dict, Optional

import numpy as np

from cochleaai.errors import CochleaAIError
from cochleaai.mar.dispatch import reduce_and_find_contacts
from cochleaai.mar.margan.model_io import model_file
from cochleaai.mar.margan.user_training import (UserScan, check_scans, simulate_user_pairs, train_user_model,
                                                train_user_model_file)
from cochleaai.mar.methods import DEFAULT_THRESHOLD_HU
from cochleaai.phantom.core import drawn_theta
from cochleaai.progress import Progress
from cochleaai.shape import CochleaModel
from cochleaai.simulation.ct import ARTIFACT_MODE, SIMULATION_BOX_MM, ScanConfig, simulate_postop, simulation_roi
from cochleaai.simulation.projector import FanBeamGeometry
from cochleaai.slicer import mrml
from cochleaai.shape.params import theta_from_record
from cochleaai.slicer.logic import FOV_ATTRIBUTE, SEED_ATTRIBUTE, CochleaAIModuleLogic, scene_unchanged_on_failure

METHOD_ATTRIBUTE = "CochleaAI.MARMethod"
#: The share of the progress the computation fills (adding the nodes fills the rest).
COMPUTE_SHARE = 0.9


def model_from_table(table_node):
    """Cochlea shape parameters from a table node: Name/Value rows (as the demo and the shape
    fit write them) or one column per parameter."""
    data = mrml.table_to_dict(table_node)
    if "Name" in data and "Value" in data:
        values = dict(zip(data["Name"], data["Value"]))
    else:
        values = {k: v[0] for k, v in data.items() if v}
    theta = theta_from_record(values, f"The table '{table_node.GetName()}'",
                              "choose the cochlea shape table of the phantom or of Cochlea Shape Segmentation.")
    return CochleaModel(np.array(theta))


def model_from_phantom_node(node):
    """The true cochlea model of a phantom volume node (its shape draws redone from the recorded seed)."""
    seed = node.GetAttribute(SEED_ATTRIBUTE) if node is not None else None
    if seed is None:
        return None

    return CochleaModel(drawn_theta(int(seed), fov=node.GetAttribute(FOV_ATTRIBUTE) or "roi"))


def _still_in_scene(node, what: str) -> None:
    """Refuse to add results for a node removed from the scene while the job ran."""
    if node is not None and node.GetScene() is None:
        raise CochleaAIError(f"The {what} '{node.GetName()}' was removed from the scene while the job ran; nothing "
                             "was added. Select it again and run again.")


@dataclasses.dataclass(frozen=True)
class ReduceInputs:
    """One artifact reduction, read from MRML by :meth:`MetalArtifactReductionLogic.read_reduce_inputs`:
    the core call ``function(*args, **kwargs)`` (plain data: copies, picklable) and where its
    result goes (``volume_node``, ``output_node``, ``scene``: used on the MRML thread only)."""

    volume: object                   # cochleaai.volume.Volume, voxels copied from the node
    method: str
    threshold_hu: float
    roi: Optional[tuple]             # index box, or None
    model: Optional[str]             # the MARGAN weights file (None: the shipped model)
    find_contacts: bool
    max_contacts: Optional[int]
    array: Optional[str]
    volume_node: object
    output_node: object
    scene: object

    #: The core function that computes the result (the module runs it in a worker process).
    function = staticmethod(reduce_and_find_contacts)

    @property
    def args(self) -> tuple:
        return self.volume, self.method, self.threshold_hu

    @property
    def kwargs(self) -> dict:
        return {"roi": self.roi, "model": self.model, "find_contacts": self.find_contacts,
                "max_contacts": self.max_contacts, "array": self.array}


@dataclasses.dataclass(frozen=True)
class SimulationInputs:
    """One implant simulation, read from MRML by :meth:`MetalArtifactReductionLogic.read_simulation_inputs`
    (as :class:`ReduceInputs`): ``preop`` is the region simulated (``cropped``: smaller than
    the volume of ``preop_node``)."""

    preop: object                    # cochleaai.volume.Volume
    cropped: bool
    model: object                    # cochleaai.shape.CochleaModel
    array: str
    depth_deg: Optional[float]
    seed: int
    config: object                   # cochleaai.simulation.ct.ScanConfig
    artifact_mode: str
    preop_node: object
    scene: object
    prefix: str

    function = staticmethod(simulate_postop)

    @property
    def args(self) -> tuple:
        return self.preop, self.model, self.array, self.depth_deg

    @property
    def kwargs(self) -> dict:
        return {"seed": self.seed, "config": self.config, "artifact_mode": self.artifact_mode}


class MetalArtifactReductionLogic(CochleaAIModuleLogic):
    """Logic of the Metal Artifact Reduction module."""

    #: The MARGAN model chosen in this session (its weights file, or a MarganModel read from a
    #: file; None: the shipped one), e.g. the one trained in the module (:meth:`use_trained_model`).
    model = None
    compute_share = COMPUTE_SHARE

    @staticmethod
    def compute(inputs, progress=None):
        """The core call of a :class:`ReduceInputs` or :class:`SimulationInputs` (no MRML)."""
        return inputs.function(*inputs.args, progress=progress, **inputs.kwargs)

    # ------------------------------------------------------------------ reduce
    def reduce_artifacts(self, scene, volume_node, method: str = "nmar", output_node=None,
                         roi_node=None, threshold_hu: Optional[float] = None, detect_contacts: bool = True,
                         max_contacts: Optional[int] = None, progress=None, model=None,
                         array: Optional[str] = None) -> Dict[str, Any]:
        """Reduce metal artifacts in ``volume_node``; returns the output volume node, the
        contacts markups node (or None) and the messages (e.g. "no metal found").
        ``threshold_hu``: metal threshold (default ``cochleaai.mar.methods.DEFAULT_THRESHOLD_HU``).
        ``model``: the MARGAN model, a loaded one read from a file or its path (default:
        :attr:`model`, else the shipped one).
        ``array``: the implanted array's key when known (closely spaced contacts are then set at
        its pitch along the metal); None finds the contacts as bright spots.

        The same as :meth:`read_reduce_inputs`, :meth:`compute` and :meth:`add_reduce_nodes` in a row."""
        p = Progress.wrap(progress)
        p(0.0, "reading the volume")
        inputs = self.read_reduce_inputs(scene, volume_node, method, output_node, roi_node, threshold_hu,
                                         detect_contacts, max_contacts, model, array)
        result = self.compute(inputs, progress=p.stage(0.02, COMPUTE_SHARE))
        return self.add_reduce_nodes(inputs, result, progress=p.stage(COMPUTE_SHARE, 1.0))

    def read_reduce_inputs(self, scene, volume_node, method: str = "nmar", output_node=None, roi_node=None,
                           threshold_hu: Optional[float] = None, detect_contacts: bool = True,
                           max_contacts: Optional[int] = None, model=None,
                           array: Optional[str] = None) -> ReduceInputs:
        """Check the inputs of :meth:`reduce_artifacts` (same arguments) and copy them out of MRML;
        for MARGAN, the model's file is checked to be there."""
        if scene is None:
            raise CochleaAIError("No MRML scene was given.")
        if volume_node is None:
            raise CochleaAIError("Select the post-operative CT volume to correct.")
        mrml.check_not_an_input(output_node, [volume_node], "output volume")
        volume = mrml.node_to_volume(volume_node)
        roi = mrml.roi_index_box(roi_node, volume)
        margan = str(method).strip().lower() == "margan"
        weights = model_file(model if model is not None else self.model) if margan else None
        return ReduceInputs(volume, method, DEFAULT_THRESHOLD_HU if threshold_hu is None else float(threshold_hu),
                            roi, weights, bool(detect_contacts), max_contacts, array or None, volume_node,
                            output_node, scene)

    @staticmethod
    def add_reduce_nodes(inputs: ReduceInputs, result, progress=None) -> Dict[str, Any]:
        """Add the corrected volume and the contacts of a :meth:`compute` result (a
        :class:`cochleaai.mar.dispatch.MarResult`); on an error or Cancel nothing is left."""
        p = Progress.wrap(progress)
        scene, volume_node = inputs.scene, inputs.volume_node
        _still_in_scene(volume_node, "volume")
        _still_in_scene(inputs.output_node, "output volume")
        with scene_unchanged_on_failure(scene):
            p(0.0, "adding the result to the scene")
            name = f"{volume_node.GetName()} {inputs.method.upper()}"
            out = mrml.volume_to_node(scene, result.image.rounded_int16(), name, node=inputs.output_node)
            out.SetAttribute(METHOD_ATTRIBUTE, inputs.method.lower())
            contacts = None
            if result.contacts is not None:
                found = dataclasses.replace(result.contacts, name=f"{volume_node.GetName()} contacts")
                contacts = mrml.markups_from_points(scene, found)
            mrml.put_in_folder(scene, [out, contacts], name, beside=volume_node)
            p(1.0, "done")
        return {"volume": out, "contacts": contacts, "messages": list(result.messages),
                "metal_voxels": int(result.metal_mask.sum())}

    # ---------------------------------------------------------------- simulate
    def simulate_implant(self, scene, preop_node, array: str = "flex28", depth_deg: Optional[float] = None,
                         seed: int = 0, model=None, model_table_node=None, crop_mm: float = SIMULATION_BOX_MM,
                         config=None, progress=None, prefix: Optional[str] = None,
                         artifact_mode: str = ARTIFACT_MODE) -> Dict[str, Any]:
        """Simulate a cochlear implant in ``preop_node``.

        The cochlea comes from ``model`` (a CochleaModel or its 10 parameters), else from
        ``model_table_node`` (shape parameter table: the phantom's, or a fitted one), else
        from the phantom seed recorded on ``preop_node``. A volume wider than ``crop_mm`` is
        first cropped to a cube of that side around the cochlea (the simulation is of a
        region of interest); the cropped pre-op is added too. ``config``: a
        :class:`cochleaai.simulation.ct.ScanConfig` (default: the clinical scanner of the docs).
        ``artifact_mode``: "injected" (the pre-op plus the simulated artifact, so the image
        keeps its own resolution and noise) or "simulated" (the simulated scan itself); the
        simulated scan without the implant is added beside it either way.

        The same as :meth:`read_simulation_inputs`, :meth:`compute` and
        :meth:`add_simulation_nodes` in a row.
        """
        p = Progress.wrap(progress)
        p(0.0, "reading the pre-operative volume")
        inputs = self.read_simulation_inputs(scene, preop_node, array, depth_deg, seed, model, model_table_node,
                                             crop_mm, config, prefix, artifact_mode)
        sim = self.compute(inputs, progress=p.stage(0.05, COMPUTE_SHARE))
        return self.add_simulation_nodes(inputs, sim, progress=p.stage(COMPUTE_SHARE, 1.0))

    def read_simulation_inputs(self, scene, preop_node, array: str = "flex28", depth_deg: Optional[float] = None,
                               seed: int = 0, model=None, model_table_node=None, crop_mm: float = SIMULATION_BOX_MM,
                               config=None, prefix: Optional[str] = None,
                               artifact_mode: str = ARTIFACT_MODE) -> SimulationInputs:
        """Check the inputs of :meth:`simulate_implant` (same arguments), find the cochlea
        model and copy the region to simulate out of MRML."""
        if scene is None:
            raise CochleaAIError("No MRML scene was given.")
        if preop_node is None:
            raise CochleaAIError("Select the pre-operative CT volume.")
        if model is not None and not isinstance(model, CochleaModel):
            model = CochleaModel(np.asarray(model, dtype=float))
        if model is None and model_table_node is not None:
            model = model_from_table(model_table_node)
        if model is None:
            model = model_from_phantom_node(preop_node)
        if model is None:
            raise CochleaAIError("No cochlea model: choose the cochlea shape table (from Cochlea Shape "
                                 "Segmentation, or of a phantom), or use a phantom volume.")
        whole = mrml.node_to_volume(preop_node)
        preop = simulation_roi(whole, model, crop_mm)
        return SimulationInputs(preop, preop is not whole, model, array, depth_deg, seed, config or ScanConfig(),
                                artifact_mode, preop_node, scene, prefix or f"{preop_node.GetName()} CI")

    @staticmethod
    def add_simulation_nodes(inputs: SimulationInputs, sim, progress=None) -> Dict[str, Any]:
        """Add the nodes of a :meth:`compute` result (a
        :class:`cochleaai.simulation.ct.PostopSimulation`); on an error or Cancel nothing is left."""
        p = Progress.wrap(progress)
        scene, prefix, seed = inputs.scene, inputs.prefix, inputs.seed
        _still_in_scene(inputs.preop_node, "pre-operative volume")
        with scene_unchanged_on_failure(scene):
            p(0.0, "adding the simulated scan to the scene")
            nodes = {"preop": mrml.volume_to_node(scene, inputs.preop, f"{prefix} pre-op ROI")
                     if inputs.cropped else None,
                     "volume": mrml.volume_to_node(scene, sim.postop, f"{prefix} post-op (simulated)"),
                     "target": mrml.volume_to_node(scene, sim.target, f"{prefix} target (contacts marked)"),
                     "clean": mrml.volume_to_node(scene, sim.clean, f"{prefix} without implant (simulated)")}
            nodes["metal"] = mrml.segmentation_from_masks(
                scene, sim.metal_segments(), sim.metal,
                f"{prefix} metal", reference_volume_node=nodes["volume"])
            markups = sim.contacts_markups()
            markups.name = f"{prefix} contacts"
            nodes["contacts"] = mrml.markups_from_points(scene, markups)
            for node in nodes.values():
                if node is not None:
                    node.SetAttribute("CochleaAI.SimulationSeed", str(seed))
            mrml.put_in_folder(scene, nodes.values(), prefix, beside=inputs.preop_node)
            p(1.0, "done")
        nodes["summary"] = sim.summary()
        nodes["warnings"] = list(sim.warnings)
        return nodes

    # ---------------------------------------------------------------- training
    def read_training_scans(self, preop_node, model_table_node=None) -> list:
        """The pre-op scan of ``preop_node`` with its cochlea model (from the shape table, else
        the phantom's truth), copied out of MRML for :meth:`compute_training_pairs`."""
        if preop_node is None:
            raise CochleaAIError("Select the pre-operative CT volume to train on.")
        model = model_from_table(model_table_node) if model_table_node is not None else None
        if model is None:
            model = model_from_phantom_node(preop_node)
        if model is None:
            raise CochleaAIError("No cochlea model: choose the cochlea shape table fitted to the pre-operative "
                                 "scan (Cochlea Shape Segmentation), or use a phantom volume.")
        return check_scans([UserScan(preop_node.GetName(), mrml.node_to_volume(preop_node), model)])

    @staticmethod
    def compute_training_pairs(scans, pairs_dir, n: int, seed: int = 0, progress=None) -> dict:
        """Simulated pairs of ``scans`` into the new folder ``pairs_dir`` (no MRML)."""
        return simulate_user_pairs(scans, pairs_dir, n, seed=seed, progress=progress)

    @staticmethod
    def compute_training(pairs_dir, model_path, steps: int, progress=None):
        """A MARGAN model trained on ``pairs_dir`` and saved as ``model_path`` (no MRML); a run
        stopped earlier resumes from its checkpoint."""
        return train_user_model(pairs_dir, model_path, steps=steps, progress=progress)

    #: The core functions of :meth:`compute_training_pairs` and of :meth:`compute_training`
    #: (without loading the model: it returns ``{"model_path", "training"}``), which the
    #: module runs in a worker process.
    pairs_function = staticmethod(simulate_user_pairs)
    training_function = staticmethod(train_user_model_file)

    def use_trained_model(self, done: dict) -> dict:
        """Use the model a :attr:`training_function` run saved (its file checked) from now on;
        returns ``done``."""
        self.model = model_file(done["model_path"])
        return done

    def self_test(self, scene) -> list:
        """The Slicer self-test's checks (:func:`self_test_mar_logic`); the problems found."""
        return self_test_mar_logic(self, scene)


def self_test_mar_logic(logic, scene) -> list:
    """Checks run by the Slicer self-test (and the pytest suite): a phantom, a simulated
    implant, artifact reduction; returns the problems found. Uses a scanner with half the
    views to stay quick."""
    quick = ScanConfig(geometry=FanBeamGeometry(n_views=360))
    problems = []
    phantom = logic.generate_phantom(scene, seed=1, fov="roi")
    count = scene.GetNumberOfNodes()
    try:
        logic.simulate_implant(scene, phantom["volume"], array="no-such-array")
        problems.append("an unknown electrode array was accepted")
    except CochleaAIError:
        pass
    if scene.GetNumberOfNodes() != count:
        problems.append("a refused simulation changed the scene")
    sim = logic.simulate_implant(scene, phantom["volume"], array="flex28", depth_deg=450.0, seed=1,
                                 config=quick)
    if sim["contacts"].GetNumberOfControlPoints() != 12:
        problems.append("the simulated FLEX28 does not have 12 contacts")
    out = logic.reduce_artifacts(scene, sim["volume"], "nmar", max_contacts=12)
    if out["volume"] is None or out["contacts"] is None or out["contacts"].GetNumberOfControlPoints() < 6:
        problems.append("artifact reduction did not give a volume and the contacts")
    same = logic.reduce_artifacts(scene, phantom["volume"], "nmar")
    if not any("No metal" in m for m in same["messages"]):
        problems.append("a volume without metal was not reported as such")
    return problems
