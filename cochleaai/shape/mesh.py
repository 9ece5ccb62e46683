"""Triangle mesh of the cochlea surface (vtkPolyData) for display and reference."""
from __future__ import annotations

import math

import numpy as np
import torch
# the vtk modules needed, not all of vtk (a second less at every batch worker's start)
from vtkmodules.util.numpy_support import numpy_to_vtk, numpy_to_vtkIdTypeArray
from vtkmodules.vtkCommonCore import vtkPoints
from vtkmodules.vtkCommonDataModel import vtkCellArray, vtkPolyData
from vtkmodules.vtkFiltersCore import vtkPolyDataNormals

from cochleaai.shape import geometry as G
from cochleaai.shape.params import ROTATION, TRANSLATION, deformable_of
from cochleaai.shape.rotation import rotation_matrix


def _tau_samples(deformable: torch.Tensor, edge_mm: float) -> np.ndarray:
    """Tube parameters spaced so that no edge along the duct exceeds ``edge_mm``."""
    tau = torch.linspace(G.TAU_MIN, G.TAU_MAX, 20001, dtype=torch.float64)
    h = 1e-4        # the duct speed |d surface / d tau| by central differences (smooth in tau)
    lo, hi = torch.clamp(tau - h, min=G.TAU_MIN), torch.clamp(tau + h, max=G.TAU_MAX)
    speed = torch.zeros_like(tau)
    for s0 in np.linspace(0.0, 2.0 * math.pi, 16, endpoint=False):
        s = torch.full_like(tau, s0)
        diff = G.surface_points(hi, s, deformable) - G.surface_points(lo, s, deformable)
        speed = torch.maximum(speed, torch.linalg.norm(diff, dim=-1) / (hi - lo))
    arc = np.concatenate([[0.0], np.cumsum(0.5 * (speed[1:] + speed[:-1]).numpy() * np.diff(tau.numpy()))])
    n = max(int(math.ceil(arc[-1] / edge_mm)), 8)
    return np.interp(np.linspace(0.0, arc[-1], n + 1), arc, tau.numpy())


def surface_arrays(theta, edge_mm: float = 0.2):
    """Vertices (V, 3) in image LPS mm and triangles (T, 3), outward-oriented, closed."""
    with G.single_threaded_torch():
        return _surface_arrays(theta, edge_mm)


def _surface_arrays(theta, edge_mm: float):
    theta = np.asarray(theta, dtype=float)
    d = torch.as_tensor(deformable_of(theta), dtype=torch.float64)
    spacing = edge_mm / 1.5                                  # quad diagonals stay <= edge_mm
    taus = _tau_samples(d, spacing)[1:-1]                    # poles added separately
    sec = G.tube_functions(torch.as_tensor(taus), d).numpy()
    half_axes = np.hypot(sec[:, 3:5], sec[:, 5:7]).max()
    n_s = max(int(math.ceil(2.0 * math.pi * half_axes / spacing)), 12)
    s = np.linspace(0.0, 2.0 * math.pi, n_s, endpoint=False)
    T, S = np.meshgrid(taus, s, indexing="ij")
    ring = G.surface_points(torch.as_tensor(T.ravel()), torch.as_tensor(S.ravel()), d).numpy()
    poles = G.surface_points(torch.tensor([G.TAU_MIN, G.TAU_MAX], dtype=torch.float64),
                             torch.zeros(2, dtype=torch.float64), d).numpy()
    verts = np.vstack([ring, poles])
    n_t = len(taus)
    idx = np.arange(n_t * n_s).reshape(n_t, n_s)
    a = idx[:-1, :]
    b = idx[1:, :]
    c = np.roll(idx[1:, :], -1, axis=1)
    e = np.roll(idx[:-1, :], -1, axis=1)
    tris = [np.stack([a, b, c], -1).reshape(-1, 3), np.stack([a, c, e], -1).reshape(-1, 3)]
    p0, p1 = n_t * n_s, n_t * n_s + 1
    first, last = idx[0], idx[-1]
    tris.append(np.stack([np.full(n_s, p0), first, np.roll(first, -1)], -1))
    tris.append(np.stack([np.full(n_s, p1), np.roll(last, -1), last], -1))
    tris = np.vstack(tris)
    # orient outward: the enclosed volume must be positive
    v = verts[tris]
    signed_volume = np.einsum("ij,ij->i", v[:, 0], np.cross(v[:, 1], v[:, 2])).sum() / 6.0
    if signed_volume < 0:
        tris = tris[:, ::-1]
    R = rotation_matrix(theta[ROTATION])
    return verts @ R.T + theta[TRANSLATION], np.ascontiguousarray(tris)


def arrays_to_polydata(vertices: np.ndarray, triangles: np.ndarray):
    """vtkPolyData from vertex and triangle arrays (with point normals)."""
    pts = vtkPoints()
    pts.SetData(numpy_to_vtk(np.ascontiguousarray(vertices, dtype=np.float64), deep=True))
    offsets = np.arange(0, 3 * len(triangles) + 1, 3, dtype=np.int64)
    cells = vtkCellArray()
    cells.SetData(numpy_to_vtkIdTypeArray(offsets, deep=True),
                  numpy_to_vtkIdTypeArray(np.ascontiguousarray(triangles, dtype=np.int64).ravel(), deep=True))
    poly = vtkPolyData()
    poly.SetPoints(pts)
    poly.SetPolys(cells)
    normals = vtkPolyDataNormals()
    normals.SetInputData(poly)
    normals.ConsistencyOff()
    normals.AutoOrientNormalsOff()
    normals.SplittingOff()
    normals.Update()
    return normals.GetOutput()


def surface_mesh(theta, edge_mm: float = 0.2):
    """The cochlea surface as vtkPolyData in image (LPS) coordinates."""
    return arrays_to_polydata(*surface_arrays(theta, edge_mm))
