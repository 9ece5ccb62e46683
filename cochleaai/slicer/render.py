"""Pictures of a MRML scene drawn offscreen by Slicer's own view code (no Slicer application).

What draws what, as in Slicer's qMRMLSliceView / qMRMLThreeDView, without Qt:

* **Slicer's displayable managers** (``slicer-core``), in a :class:`vtkMRMLDisplayableManagerGroup`
  bound to a view node: in the 3D view the camera, view (background, box, axis labels),
  model, segmentation (closed surface) and markups managers; in a slice view the model
  intersections, segmentation (outline and fill of the binary labelmap) and markups managers.
* **Slicer's vtkMRMLSliceLogic** reslices and colours the volume (window/level of its
  display node, as the Volumes module sets it) for each slice node.
* **Plain vtk**: the render windows (offscreen, EGL), the 2D image actor that shows the slice
  logic's output (in Slicer, CTK's lightbox manager does this with the same vtkImageMapper),
  the view-controller bars with their labels, the composition of the four views and the PNG.

The view, slice, composite and camera nodes made for a picture are removed again afterwards,
so the scene is left as it was (apart from a closed-surface representation added to a
segmentation shown in 3D, as Slicer's "Show 3D" adds it).
"""
from __future__ import annotations

import contextlib
import subprocess
import sys
from dataclasses import dataclass
from typing import Iterator, Optional, Sequence, Tuple

import numpy as np
import vtk
from vtk.util.numpy_support import numpy_to_vtk, vtk_to_numpy

from cochleaai.errors import CochleaAIError
from cochleaai.io.outputs import written_whole
from cochleaai.slicer.logic import remove_nodes_added_since
from cochleaai.slicer.mrml import check_scene, node_ids
from cochleaai.slicer.mrml.scene import slicer_module

#: Displayable managers of the 3D view (the camera manager first: the others use its camera).
THREE_D_MANAGERS = ("vtkMRMLCameraDisplayableManager", "vtkMRMLViewDisplayableManager",
                    "vtkMRMLModelDisplayableManager", "vtkMRMLSegmentationsDisplayableManager3D",
                    "vtkMRMLMarkupsDisplayableManager")
#: Displayable managers of a slice view.
SLICE_MANAGERS = ("vtkMRMLModelSliceDisplayableManager", "vtkMRMLSegmentationsDisplayableManager2D",
                  "vtkMRMLMarkupsDisplayableManager")
#: Slicer's slice views: orientation -> (layout colour, label), as in the four-up layout.
SLICE_VIEWS = {"Axial": ((0.953, 0.290, 0.200), "R"), "Sagittal": ((0.929, 0.835, 0.298), "Y"),
               "Coronal": ((0.431, 0.690, 0.294), "G")}
THREE_D_BAR_COLOR = (0.455, 0.514, 0.835)
BAR_HEIGHT = 22
GAP = 2                          # dark lines between the views, as between Slicer's view frames


@dataclass
class SliceView:
    """A rendered slice view: ``image`` (rows from the top, RGB uint8) and the slice node's
    XY-to-RAS matrix at the time of the picture (XY: pixels from the bottom-left corner)."""

    image: np.ndarray
    xy_to_ras: np.ndarray

    def pixel(self, ras) -> Tuple[int, int]:
        """(row, column) of ``image`` where the RAS point ``ras`` (on the slice) is drawn."""
        xy = np.linalg.solve(self.xy_to_ras, np.append(np.asarray(ras, float), 1.0))
        return int(round(self.image.shape[0] - 1 - xy[1])), int(round(xy[0]))


#: Run in a child process: where no offscreen context can be made, vtk may abort the process.
_PROBE = ("import vtk; w = vtk.vtkRenderWindow(); w.SetOffScreenRendering(1); w.SetSize(8, 8); w.Render(); "
          "raise SystemExit(0 if w.SupportsOpenGL() else 1)")


def offscreen_rendering_available() -> bool:
    """Whether vtk can render offscreen here (EGL or OSMesa; no X needed)."""
    try:
        return subprocess.run([sys.executable, "-c", _PROBE], capture_output=True, timeout=120,
                              check=False).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def _render_window(size):
    window = vtk.vtkRenderWindow()
    window.SetOffScreenRendering(1)
    window.SetMultiSamples(0)          # the same pixels on every graphics stack
    window.SetSize(int(size[0]), int(size[1]))
    return window


def _check_size(size) -> Tuple[int, int]:
    try:
        width, height = (int(v) for v in size)
    except (TypeError, ValueError) as exc:
        raise CochleaAIError(f"The picture size must be (width, height) in pixels, got {size!r}.") from exc
    if not (16 <= width <= 8192 and 16 <= height <= 8192):
        raise CochleaAIError(f"The picture size must be 16 to 8192 pixels a side, got {width} x {height}.")
    return width, height


def _capture(window) -> np.ndarray:
    """The window's pixels, RGB uint8, first row at the top."""
    window.Render()
    grab = vtk.vtkWindowToImageFilter()
    grab.SetInput(window)
    grab.SetInputBufferTypeToRGB()
    grab.ReadFrontBufferOff()
    grab.Update()
    image = grab.GetOutput()
    width, height, _ = image.GetDimensions()
    pixels = vtk_to_numpy(image.GetPointData().GetScalars()).reshape(height, width, -1)[:, :, :3]
    return np.ascontiguousarray(pixels[::-1])


def _application_logic(scene):
    """An application logic for the views, with the Markups logic that the markups manager
    asks for its widget types (Slicer's application provides both). The Markups logic fills
    its widget registry when given a scene: it gets an empty one of its own, so that it
    neither observes nor re-registers node classes in ``scene``."""
    slicer = slicer_module()
    app = slicer.vtkSlicerApplicationLogic()
    app.SetMRMLScene(scene)
    own_scene = slicer.vtkMRMLScene()
    own_scene.AddNode(slicer.vtkMRMLSelectionNode())      # where the logic lists placeable types
    markups = slicer.vtkSlicerMarkupsLogic()
    markups.SetMRMLScene(own_scene)
    markups.SetMRMLApplicationLogic(app)
    app.SetModuleLogic("Markups", markups)
    return app, markups


@contextlib.contextmanager
def _view_session(scene) -> Iterator[object]:
    """Application logic for views; every node the views add is removed on the way out."""
    scene = check_scene(scene)
    before = node_ids(scene)
    app, markups = _application_logic(scene)
    try:
        yield app
    finally:
        remove_nodes_added_since(scene, before)
        markups.SetMRMLScene(None)
        app.SetMRMLScene(None)


def _manager_group(slicer, names: Sequence[str], renderer, app, view_node):
    """Slicer's displayable managers ``names`` on ``renderer``, bound to ``view_node`` (what
    qMRMLThreeDView / qMRMLSliceView do, without the global factories, so that Slicer's own
    views are not touched when this runs inside the application)."""
    group = slicer.vtkMRMLDisplayableManagerGroup()
    group.SetRenderer(renderer)
    for name in names:
        # made here, not by the group's InstantiateDisplayableManager, whose new reference the
        # Python wrapping never releases: a leaked manager keeps observing the scene's nodes
        # after its view and application logic are gone, and crashes on the next change
        if not hasattr(slicer, name):
            raise CochleaAIError(f"Slicer's {name} is not available in this Slicer or slicer-core.")
        manager = getattr(slicer, name)()
        manager.SetMRMLApplicationLogic(app)
        group.AddDisplayableManager(manager)
    group.SetMRMLDisplayableNode(view_node)
    return group


def _show_segmentation_in_3d(scene) -> None:
    # the 3D manager draws the closed surface only; Slicer's "Show 3D" makes it the same way
    for node in (scene.GetNthNodeByClass(i, "vtkMRMLSegmentationNode")
                 for i in range(scene.GetNumberOfNodesByClass("vtkMRMLSegmentationNode"))):
        display = node.GetDisplayNode()
        if display is not None and display.GetVisibility() and display.GetVisibility3D():
            node.CreateClosedSurfaceRepresentation()


def _render_three_d(slicer, scene, app, size, focus, direction, view_up, distance, box) -> np.ndarray:
    window = _render_window(size)
    renderer = vtk.vtkRenderer()
    window.AddRenderer(renderer)
    window.SetInteractor(vtk.vtkRenderWindowInteractor())     # the managers' widgets want one
    view = slicer.vtkMRMLViewNode()
    view.SetName("CochleaAI offscreen 3D view")
    view.SetLayoutName("CochleaAI3D")
    view.SetBoxVisible(bool(box))
    view.SetAxisLabelsVisible(bool(box))
    scene.AddNode(view)
    # what qMRMLThreeDView takes from the view node itself (the managers leave it to the widget)
    window.SetAlphaBitPlanes(1)
    renderer.SetUseDepthPeeling(bool(view.GetUseDepthPeeling()))
    renderer.SetMaximumNumberOfPeels(100)
    _show_segmentation_in_3d(scene)
    group = _manager_group(slicer, THREE_D_MANAGERS, renderer, app, view)
    camera = group.GetDisplayableManagerByClassName("vtkMRMLCameraDisplayableManager").GetCameraNode()
    direction = np.asarray(direction, float) / np.linalg.norm(direction)
    camera.SetFocalPoint(*(float(v) for v in focus))
    camera.SetPosition(*(float(v) for v in np.asarray(focus, float) + distance * direction))
    camera.SetViewUp(*(float(v) for v in view_up))
    camera.SetViewAngle(30.0)
    renderer.ResetCameraClippingRange()
    try:
        return _capture(window)
    finally:
        group.SetMRMLDisplayableNode(None)
        window.Finalize()


def _scene_bounds(scene) -> Optional[np.ndarray]:
    """RAS bounds (xmin, xmax, ...) of the visible segmentations, models and markups."""
    bounds = np.array([np.inf, -np.inf] * 3)
    for class_name in ("vtkMRMLSegmentationNode", "vtkMRMLModelNode", "vtkMRMLMarkupsNode"):
        for i in range(scene.GetNumberOfNodesByClass(class_name)):
            node = scene.GetNthNodeByClass(i, class_name)
            display = node.GetDisplayNode()
            if display is None or not display.GetVisibility() or node.GetHideFromEditors():
                continue
            if node.IsA("vtkMRMLSegmentationNode"):      # its own bounds are its labelmap grid's
                b = segment_bounds(node)
                b = [1.0, 0.0] * 3 if b is None else b
            else:
                b = [0.0] * 6
                node.GetRASBounds(b)
            if b[0] <= b[1]:
                bounds[0::2] = np.minimum(bounds[0::2], b[0::2])
                bounds[1::2] = np.maximum(bounds[1::2], b[1::2])
    return bounds if np.all(np.isfinite(bounds)) else None


def render_three_d(scene, size=(640, 400), focus=None, direction=(0.0, 1.0, 0.0), view_up=(0.0, 0.0, 1.0),
                   distance: Optional[float] = None, box: bool = True) -> np.ndarray:
    """The 3D view of ``scene`` (RGB uint8, rows from the top), as Slicer's 3D view draws it.

    The camera looks at ``focus`` (RAS; default the centre of what is shown) from
    ``direction`` (default anterior, Slicer's default view), at ``distance`` mm (default:
    what fits the shown objects in the view). ``box``: Slicer's bounding box and axis labels."""
    slicer = slicer_module()
    size = _check_size(size)
    bounds = _scene_bounds(check_scene(scene))
    if focus is None:
        if bounds is None:
            raise CochleaAIError("Nothing visible to show in 3D: no segmentation, model or markups.")
        focus = (bounds[0::2] + bounds[1::2]) / 2
    if distance is None:
        radius = 0.5 * np.linalg.norm(bounds[1::2] - bounds[0::2]) if bounds is not None else 50.0
        distance = 1.15 * max(radius, 1.0) / np.tan(np.radians(15.0))
    with _view_session(scene) as app:
        return _render_three_d(slicer, scene, app, size, focus, direction, view_up, float(distance), box)


def _render_slice(slicer, scene, app, volume_node, orientation, ras, size, field_of_view) -> SliceView:
    width, height = size
    logic = slicer.vtkMRMLSliceLogic()
    logic.SetMRMLApplicationLogic(app)
    logic.SetMRMLScene(scene)
    color, label = SLICE_VIEWS[orientation]
    node = logic.AddSliceNode(f"CochleaAI{orientation}")
    node.SetName(f"CochleaAI offscreen {orientation.lower()} view")
    node.SetOrientation(orientation)
    node.SetLayoutColor(*color)
    node.SetLayoutLabel(label)
    logic.GetSliceCompositeNode().SetBackgroundVolumeID(volume_node.GetID())
    logic.ResizeSliceNode(width, height)
    logic.FitSliceToAll()
    ras = [float(v) for v in ras]
    if field_of_view is None:                  # Slicer's "fit to window", then move to the point's slice
        node.JumpSliceByOffsetting(*ras)
    else:                                      # height in mm, centred on the point
        node.SetFieldOfView(field_of_view * width / height, field_of_view, node.GetFieldOfView()[2])
        node.JumpSliceByCentering(*ras)
    window = _render_window(size)
    renderer = vtk.vtkRenderer()
    renderer.SetBackground(0.0, 0.0, 0.0)
    window.AddRenderer(renderer)
    window.SetInteractor(vtk.vtkRenderWindowInteractor())
    mapper = vtk.vtkImageMapper()               # the slice logic's RGBA image, pixel for pixel
    mapper.SetInputConnection(logic.GetImageDataConnection())
    mapper.SetColorWindow(255.0)
    mapper.SetColorLevel(127.5)
    image_actor = vtk.vtkActor2D()
    image_actor.SetMapper(mapper)
    renderer.AddViewProp(image_actor)          # first, so the managers draw over the image
    annotation = vtk.vtkCornerAnnotation()     # the background's name, as Slicer's slice annotations show it
    annotation.SetText(0, f"B: {volume_node.GetName()}")
    annotation.SetMaximumFontSize(14)
    annotation.GetTextProperty().SetColor(1.0, 1.0, 1.0)
    renderer.AddViewProp(annotation)
    group = _manager_group(slicer, SLICE_MANAGERS, renderer, app, node)
    try:
        image = _capture(window)
        xy_to_ras = np.array([[node.GetXYToRAS().GetElement(r, c) for c in range(4)] for r in range(4)])
        return SliceView(image, xy_to_ras)
    finally:
        group.SetMRMLDisplayableNode(None)
        window.Finalize()
        logic.SetMRMLScene(None)


def render_slice(scene, volume_node, orientation: str, ras, size=(640, 400),
                 field_of_view: Optional[float] = None) -> SliceView:
    """A slice view (``"Axial"``, ``"Sagittal"`` or ``"Coronal"``) through the RAS point ``ras``,
    with ``volume_node`` as background and the visible segmentations, models and markups
    drawn by Slicer's slice-view managers. ``field_of_view``: the view's height in mm,
    centred on ``ras``; by default the whole volume, as Slicer's "fit to window" shows it."""
    slicer = slicer_module()
    size = _check_size(size)
    if orientation not in SLICE_VIEWS:
        raise CochleaAIError(f"Slice orientation must be one of {', '.join(SLICE_VIEWS)}, got {orientation!r}.")
    if volume_node is None or not volume_node.IsA("vtkMRMLScalarVolumeNode"):
        raise CochleaAIError("A slice view needs a scalar volume node as background.")
    with _view_session(scene) as app:
        return _render_slice(slicer, scene, app, volume_node, orientation, ras, size, field_of_view)


def controller_bar(width: int, color, text: str) -> np.ndarray:
    """A view-controller bar like Slicer's above each view: the view's colour and its label
    (plain vtk text)."""
    window = _render_window((width, BAR_HEIGHT))
    renderer = vtk.vtkRenderer()
    renderer.SetBackground(*color)
    window.AddRenderer(renderer)
    label = vtk.vtkTextActor()
    label.SetInput(text)
    label.GetTextProperty().SetFontSize(14)
    label.GetTextProperty().SetBold(True)
    label.GetTextProperty().SetColor(0.08, 0.08, 0.08)
    label.GetTextProperty().SetVerticalJustificationToCentered()
    label.SetPosition(8, BAR_HEIGHT / 2)
    renderer.AddViewProp(label)
    try:
        return _capture(window)
    finally:
        window.Finalize()


def segment_bounds(segmentation_node) -> Optional[np.ndarray]:
    """RAS bounds (xmin, xmax, ymin, ...) of the visible segments' closed surfaces (made if
    missing), or None when nothing is visible. A segmentation's own bounds are those of its
    labelmap grid, often much larger than what is segmented."""
    segmentation_node.CreateClosedSurfaceRepresentation()
    display = segmentation_node.GetDisplayNode()
    ids = vtk.vtkStringArray()
    if display is not None:
        display.GetVisibleSegmentIDs(ids)
    bounds = np.array([np.inf, -np.inf] * 3)
    for k in range(ids.GetNumberOfValues()):
        surface = segmentation_node.GetClosedSurfaceInternalRepresentation(ids.GetValue(k))
        if surface is not None and surface.GetNumberOfPoints():
            b = np.array(surface.GetBounds())
            bounds[0::2] = np.minimum(bounds[0::2], b[0::2])
            bounds[1::2] = np.maximum(bounds[1::2], b[1::2])
    return bounds if np.all(np.isfinite(bounds)) else None


def compose_layout(views, size) -> np.ndarray:
    """Four (bar, image) views in Slicer's four-up grid: axial | 3D over sagittal | coronal."""
    width, height = size
    canvas = np.full((height, width, 3), 40, np.uint8)
    cell_w, cell_h = (width - GAP) // 2, (height - GAP) // 2
    for k, (bar, image) in enumerate(views):
        row, col = divmod(k, 2)
        top, left = row * (cell_h + GAP), col * (cell_w + GAP)
        canvas[top:top + BAR_HEIGHT, left:left + cell_w] = bar[:, :cell_w]
        canvas[top + BAR_HEIGHT:top + cell_h, left:left + cell_w] = image[:cell_h - BAR_HEIGHT, :cell_w]
    return canvas


def write_png(pixels: np.ndarray, path) -> None:
    """Write RGB uint8 pixels (rows from the top) as a PNG, whole or not at all."""
    height, width, _ = pixels.shape
    image = vtk.vtkImageData()
    image.SetDimensions(width, height, 1)
    scalars = numpy_to_vtk(np.ascontiguousarray(pixels[::-1]).reshape(-1, 3), deep=True)
    image.GetPointData().SetScalars(scalars)
    with written_whole(path) as partial:
        writer = vtk.vtkPNGWriter()
        writer.SetFileName(str(partial))
        writer.SetInputData(image)
        writer.Write()
        if writer.GetErrorCode() or not partial.is_file():
            raise CochleaAIError(f"Could not write the PNG '{path}' (vtk error {writer.GetErrorCode()}).")


def render_catalog_screenshot(scene, volume_node, segmentation_node, points_node, path, size=(1280, 800),
                              field_of_view: Optional[float] = None, camera_direction=(0.0, 1.0, 0.0),
                              camera_view_up=(0.0, 0.0, 1.0)) -> np.ndarray:
    """Slicer's four-up layout of ``scene`` written as a PNG at ``path`` (whole, or nothing):
    axial, sagittal and coronal views of ``volume_node`` through the centre of
    ``segmentation_node`` (with the segmentation, models and markups such as ``points_node``
    drawn over it) and the 3D view, looking at the segmentation from ``camera_direction``.
    Returns the pixels."""
    size = _check_size(size)
    if segmentation_node is None or not segmentation_node.IsA("vtkMRMLSegmentationNode"):
        raise CochleaAIError("The screenshot needs the segmentation node to look at.")
    bounds = segment_bounds(segmentation_node)
    if bounds is None:
        raise CochleaAIError(f"'{segmentation_node.GetName()}' shows no segment; nothing to look at.")
    centre = (bounds[0::2] + bounds[1::2]) / 2
    extent = max(float(np.max(bounds[1::2] - bounds[0::2])), 1.0)
    # the slices cross at the first point (the cochlea's centre, when the points are the
    # segmentation's inputs), so that it shows in all three; else at the segment's centre
    cross = centre
    if points_node is not None and points_node.GetNumberOfControlPoints():
        cross = np.array(points_node.GetNthControlPointPositionWorld(0))
    if field_of_view is None:                  # the segment with its surroundings
        field_of_view = 1.8 * extent
    cell = ((size[0] - GAP) // 2, (size[1] - GAP) // 2 - BAR_HEIGHT)
    views = {}
    for orientation, (color, label) in SLICE_VIEWS.items():
        view = render_slice(scene, volume_node, orientation, cross, cell, field_of_view)
        axis, index = {"Axial": ("S", 2), "Sagittal": ("R", 0), "Coronal": ("A", 1)}[orientation]
        text = f"{label}   {axis}: {cross[index]:.1f} mm"
        views[orientation] = (controller_bar(cell[0], color, text), view.image)
    three_d = render_three_d(scene, cell, focus=centre, direction=camera_direction, view_up=camera_view_up,
                             distance=0.95 * extent / np.tan(np.radians(15.0)), box=False)
    views["3D"] = (controller_bar(cell[0], THREE_D_BAR_COLOR, "1"), three_d)
    pixels = compose_layout([views["Axial"], views["3D"], views["Sagittal"], views["Coronal"]], size)
    write_png(pixels, path)
    return pixels
