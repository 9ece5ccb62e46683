"""Shape-function benchmark: our signed distance vs VTK on a fine mesh of the same shape.

The grid is the thesis ROI: 60 x 50 x 50 voxels at 0.2 mm around the cochlea at the
initial parameters. VTK gets a mesh of the same surface with every edge <= 0.05 mm and
evaluates ``vtkImplicitPolyDataDistance`` on the whole grid in one call (its C++ loop).
"""
from __future__ import annotations

import time

import numpy as np
from vtkmodules.util.numpy_support import numpy_to_vtk, vtk_to_numpy
from vtkmodules.vtkCommonCore import vtkDoubleArray
from vtkmodules.vtkFiltersCore import vtkImplicitPolyDataDistance

from cochleaai.bench import median_time
from cochleaai.progress import Progress
from cochleaai.shape import ShapeFunction, default_params
from cochleaai.shape.mesh import arrays_to_polydata, surface_arrays

NAME = "sdf"
DESCRIPTION = "cochlea shape function and Jacobian vs vtkImplicitPolyDataDistance on a fine mesh"


def roi_grid(theta: np.ndarray, size=(60, 50, 50), spacing: float = 0.2) -> np.ndarray:
    """Voxel centres (N, 3) of a grid of ITK ``size`` centred on the cochlea's bounding box."""
    v, _ = surface_arrays(theta, 0.2)
    centre = 0.5 * (v.min(0) + v.max(0))
    axes = [(np.arange(n) - (n - 1) / 2.0) * spacing + c for n, c in zip(size, centre)]
    z, y, x = np.meshgrid(axes[2], axes[1], axes[0], indexing="ij")
    return np.stack([x, y, z], axis=-1).reshape(-1, 3)


def run(quick: bool = False, seed: int = 0, progress=None, out_dir=None, tiny: bool = False) -> dict:
    p = Progress.wrap(progress)
    theta = default_params()
    pts = roi_grid(theta)
    sf = ShapeFunction()
    p(0.02, "compiling the shape function")
    sf(pts[:10], theta)                                   # compile + table
    repeats = 1 if tiny else 3 if quick else 7
    p(0.05, "timing the shape function")
    t_eval = median_time(lambda: sf(pts, theta), repeats)
    p(0.15, "timing the Jacobian")
    t_jac = median_time(lambda: sf.evaluate(pts, theta, jacobian=True), repeats)
    rng = np.random.default_rng(seed)

    def new_shape():
        th = theta.copy()
        th[:4] += rng.normal(0, [0.05, 0.002, 0.05, 0.05])
        sf(pts, th)

    t_new = median_time(new_shape, 1 if tiny else 3 if quick else 5)    # table rebuild + evaluation
    ours = sf(pts, theta)

    p(0.25, "meshing the surface (edge <= 0.05 mm)")
    t0 = time.perf_counter()
    verts, tris = surface_arrays(theta, edge_mm=0.05)
    t_mesh = time.perf_counter() - t0
    edges = np.concatenate([np.linalg.norm(verts[tris[:, i]] - verts[tris[:, (i + 1) % 3]], axis=1) for i in range(3)])
    implicit = vtkImplicitPolyDataDistance()
    implicit.SetInput(arrays_to_polydata(verts, tris))
    # quick: VTK on a random tenth of the grid (its cost is linear in the number of points); tiny: a hundredth
    share = 100 if tiny else 10 if quick else 1
    sel = rng.choice(len(pts), len(pts) // share, replace=False) if share > 1 else np.arange(len(pts))
    p(0.35, f"VTK distance on {len(sel)} points (slow)")
    out = vtkDoubleArray()
    t0 = time.perf_counter()
    implicit.FunctionValue(numpy_to_vtk(np.ascontiguousarray(pts[sel]), deep=True), out)
    t_vtk = (time.perf_counter() - t0) * len(pts) / len(sel)
    ref = -vtk_to_numpy(out)                               # VTK is negative inside
    err = np.abs(ours[sel] - ref)
    band = np.abs(ref) <= 1.0
    p(1.0, "done")
    return {
        "grid_points": int(len(pts)),
        "ms_per_eval": 1e3 * t_eval,
        "ms_per_jacobian": 1e3 * t_jac,
        "ms_per_eval_new_shape": 1e3 * t_new,
        "vtk_ms_per_eval": 1e3 * t_vtk,
        "speedup_vs_vtk": t_vtk / t_eval,
        "max_abs_err_mm_band1mm": float(err[band].max()),
        "median_abs_err_mm_band1mm": float(np.median(err[band])),
        "max_abs_err_mm_all": float(err.max()),
        "sign_disagreements_outside_0.01mm": int(np.sum(((ours[sel] > 0) != (ref > 0)) & (np.abs(ref) > 0.01))),
        "vtk_mesh_triangles": int(len(tris)),
        "vtk_mesh_max_edge_mm": float(edges.max()),
        "mesh_build_s": t_mesh,
        "vtk_points_timed": int(len(sel)),
    }
