"""Compiled kernel: closest point of the cochlea surface to many points (numba).

The surface is ``S(tau, s) = (R cos th, R sin th, Z)`` with ``th, r, z, M`` tabulated
along ``tau`` (see ``sdf.build_table``): ``R = r + M11 cos s + M12 sin s``,
``Z = z + M21 cos s + M22 sin s``. For each point, Newton's method with backtracking
minimises the squared distance over (tau, s). Starts: the turns of the spiral in the
point's polar direction (several directions near the modiolar axis) and the two end caps,
ranked by a cheap distance estimate; a turn is refined only while it could beat the best
distance found; the cross-section angle starts at the lowest minima of a scan around the
ellipse (and, on a cap, along it).

The kernel releases the GIL while it runs (``nogil``), so other Python threads, Slicer's
GUI among them, keep running during a fit in a worker thread. Calls are serialised by a
lock: numba's default "workqueue" threading layer must not be entered from two threads at
once.
"""
from __future__ import annotations

import math
import threading

import numpy as np
from numba import njit, prange

TWO_PI = 2.0 * math.pi
N_SCAN = 12  # cross-section angles tried to start Newton (deep points have several minima)
SCAN_ANGLE = np.arange(N_SCAN) * (2.0 * math.pi / N_SCAN)
SCAN_COS = np.cos(SCAN_ANGLE)
SCAN_SIN = np.sin(SCAN_ANGLE)
N_AXIS_DIRECTIONS = 8  # polar directions tried for points close to the modiolar axis
MAX_CANDIDATES = 3     # starting turns refined by Newton per point (fewer when clearly worse)
WALL_SLACK = 0.15      # mm: the other wall of a cross-section is refined if its scan value is this close
N_CAP_SCAN = 6         # positions along a cap tried to start Newton there
FAR_MM = 2.5           # beyond this distance one turn is refined, not all plausible ones
CHUNK = 512            # points per parallel work item (scratch arrays are allocated per chunk)


@njit(cache=True, inline="always")
def _nearest_row(tau0, step, tau, n_rows):
    """Index of the table row nearest to tau and the offset (in tau) from it."""
    x = (tau - tau0) / step
    j = min(max(int(math.floor(x + 0.5)), 0), n_rows - 1)
    return j, (x - j) * step


@njit(cache=True, inline="always")
def _row(table, tau0, step, tau, out):
    """Second-order Taylor step from the nearest table row: out[0:21] = F, F', F''."""
    j, d = _nearest_row(tau0, step, tau, table.shape[0])
    for i in range(7):
        f1 = table[j, 7 + i]
        f2 = table[j, 14 + i]
        out[i] = table[j, i] + d * (f1 + 0.5 * d * f2)
        out[7 + i] = f1 + d * f2
        out[14 + i] = f2


@njit(cache=True, inline="always")
def _row0(table, tau0, step, tau, out):
    """Like _row, values only (out[0:7])."""
    j, d = _nearest_row(tau0, step, tau, table.shape[0])
    for i in range(7):
        out[i] = table[j, i] + d * (table[j, 7 + i] + 0.5 * d * table[j, 14 + i])


@njit(cache=True)
def _theta_to_tau(theta, theta_max, cap_base, cap_apex):
    if theta < 0.0:
        return math.asin(max(theta / cap_base, -1.0))
    if theta > theta_max:
        return theta_max + math.asin(min((theta - theta_max) / cap_apex, 1.0))
    return theta


@njit(cache=True, inline="always")
def _value_trig(F, cs, sn, cd, rho, w):
    """Squared distance with cos/sin of s and cos of (theta - psi) given."""
    R = F[1] + F[3] * cs + F[4] * sn
    wz = w - (F[2] + F[5] * cs + F[6] * sn)
    return rho * rho + R * R - 2.0 * rho * R * cd + wz * wz


@njit(cache=True)
def _newton(table, tau0, step, tau_lo, tau_hi, rho, psi, w, tau, s, max_steps, F):
    """Minimise the squared distance from (tau, s); returns (tau, s, f).

    Newton steps on the 2x2 Hessian (shifted to be positive definite) with backtracking.
    On return F holds the table row at the returned tau.
    """
    _row(table, tau0, step, tau, F)
    cs = math.cos(s)
    sn = math.sin(s)
    cd = math.cos(F[0] - psi)
    f = _value_trig(F, cs, sn, cd, rho, w)
    for _ in range(max_steps):
        sd = math.sin(F[0] - psi)
        xi = F[3] * cs + F[4] * sn
        eta = F[5] * cs + F[6] * sn
        R = F[1] + xi
        Z = F[2] + eta
        wz = w - Z
        th_t = F[7]
        th_tt = F[14]
        R_t = F[8] + F[10] * cs + F[11] * sn
        Z_t = F[9] + F[12] * cs + F[13] * sn
        R_s = -F[3] * sn + F[4] * cs
        Z_s = -F[5] * sn + F[6] * cs
        R_tt = F[15] + F[17] * cs + F[18] * sn
        Z_tt = F[16] + F[19] * cs + F[20] * sn
        R_ts = -F[10] * sn + F[11] * cs
        Z_ts = -F[12] * sn + F[13] * cs
        rcd = rho * cd
        rsd = rho * sd
        g_t = 2.0 * (R * R_t - rcd * R_t + rsd * R * th_t - wz * Z_t)
        g_s = 2.0 * (R * R_s - rcd * R_s - wz * Z_s)
        h_tt = 2.0 * (R_t * R_t + R * R_tt - rcd * (R_tt - R * th_t * th_t)
                      + rsd * (2.0 * R_t * th_t + R * th_tt) + Z_t * Z_t - wz * Z_tt)
        h_ts = 2.0 * (R_s * R_t + R * R_ts - rcd * R_ts + rsd * R_s * th_t + Z_s * Z_t - wz * Z_ts)
        h_ss = 2.0 * (R_s * R_s - R * xi + rcd * xi + Z_s * Z_s + wz * eta)
        # make the 2x2 Hessian positive definite (Levenberg shift)
        lam_min = 0.5 * (h_tt + h_ss) - math.sqrt(0.25 * (h_tt - h_ss) ** 2 + h_ts * h_ts)
        mu = 1e-3 * abs(h_tt + h_ss) - lam_min
        if mu < 0.0:
            mu = 0.0
        mu += 1e-12
        a = h_tt + mu
        c = h_ss + mu
        det = a * c - h_ts * h_ts
        d_tau = -(c * g_t - h_ts * g_s) / det
        d_s = -(-h_ts * g_t + a * g_s) / det
        d_tau = min(max(d_tau, -0.3), 0.3)
        d_s = min(max(d_s, -0.8), 0.8)
        # converged when the predicted decrease of the squared distance is negligible
        if -(g_t * d_tau + g_s * d_s) <= 1e-14 + 1e-11 * f:
            break
        lam = 1.0
        accepted = False
        for _ in range(6):
            t_new = min(max(tau + lam * d_tau, tau_lo), tau_hi)
            s_new = s + lam * d_s
            _row(table, tau0, step, t_new, F)
            cs_new = math.cos(s_new)
            sn_new = math.sin(s_new)
            cd_new = math.cos(F[0] - psi)
            f_new = _value_trig(F, cs_new, sn_new, cd_new, rho, w)
            if f_new <= f * (1.0 + 1e-12) + 1e-18:
                accepted = True
                break
            lam *= 0.5
        if not accepted:
            _row(table, tau0, step, tau, F)
            break
        moved = lam * (6.0 * abs(d_tau) + abs(d_s))
        tau = t_new
        s = s_new
        f = f_new
        cs = cs_new
        sn = sn_new
        cd = cd_new
        if moved < 1e-3:
            break
    return tau, s, f


@njit(cache=True, inline="always")
def _lerp(table, j, a, col):
    return (1.0 - a) * table[j, col] + a * table[j + 1, col]


@njit(cache=True, inline="always")
def _foot(F, s, x, y, w, orientation):
    """Signed distance (positive inside) and outward unit normal at the surface point (F, s)."""
    cs = math.cos(s)
    sn = math.sin(s)
    ct = math.cos(F[0])
    st = math.sin(F[0])
    R = F[1] + F[3] * cs + F[4] * sn
    Z = F[2] + F[5] * cs + F[6] * sn
    R_t = F[8] + F[10] * cs + F[11] * sn
    Z_t = F[9] + F[12] * cs + F[13] * sn
    R_s = -F[3] * sn + F[4] * cs
    Z_s = -F[5] * sn + F[6] * cs
    tx = R_t * ct - R * st * F[7]
    ty = R_t * st + R * ct * F[7]
    tz = Z_t
    ux = R_s * ct
    uy = R_s * st
    uz = Z_s
    nx = orientation * (ty * uz - tz * uy)
    ny = orientation * (tz * ux - tx * uz)
    nz = orientation * (tx * uy - ty * ux)
    nn = math.sqrt(nx * nx + ny * ny + nz * nz)
    if nn > 0.0:
        nx /= nn
        ny /= nn
        nz /= nn
    ex = x - R * ct
    ey = y - R * st
    ez = w - Z
    dist = math.sqrt(ex * ex + ey * ey + ez * ez)
    if ex * nx + ey * ny + ez * nz < 0.0:
        return dist, nx, ny, nz, ct, st, cs, sn
    return -dist, nx, ny, nz, ct, st, cs, sn


_KERNEL_LOCK = threading.Lock()


def closest_points(*args) -> None:
    """:func:`_closest_points` (same arguments, results written into the ``out_*`` arrays),
    one call at a time in the process."""
    with _KERNEL_LOCK:
        _closest_points(*args)


@njit(cache=True, parallel=True, nogil=True)
def _closest_points(points, table, tau0, step, tau_lo, tau_hi, theta_max, cap_base, cap_apex,
                    orientation, max_steps, second_margin, axis_radius, param_table, rot, rot_derivs,
                    out_sdf, out_normal, out_jac, out_ts):
    """Signed distance (positive inside), outward normal and closest (tau, s) of model-frame
    points; when ``param_table`` has rows, also the Jacobian (N, 10) w.r.t. the shape
    parameters: n . dS/dp for a, b, alpha, phi (envelope theorem), then the rotation vector
    (``rot_derivs[k] = dR_k^T R``) and the translation, for the pose ``rot``."""
    n = points.shape[0]
    n_chunks = (n + CHUNK - 1) // CHUNK
    for chunk in prange(n_chunks):
        F = np.empty(21)
        scan = np.empty(N_SCAN)
        cand_tau = np.empty(N_AXIS_DIRECTIONS * 4 + 2)
        cand_score = np.empty(N_AXIS_DIRECTIONS * 4 + 2)
        top = np.empty(MAX_CANDIDATES, dtype=np.int64)
        for p in range(chunk * CHUNK, min(n, (chunk + 1) * CHUNK)):
            _one_point(points, p, table, tau0, step, tau_lo, tau_hi, theta_max, cap_base, cap_apex,
                       orientation, max_steps, second_margin, axis_radius, param_table, rot, rot_derivs,
                       out_sdf, out_normal, out_jac, out_ts, F, scan, cand_tau, cand_score, top)


@njit(cache=True)
def _one_point(points, p, table, tau0, step, tau_lo, tau_hi, theta_max, cap_base, cap_apex,
               orientation, max_steps, second_margin, axis_radius, param_table, rot, rot_derivs,
               out_sdf, out_normal, out_jac, out_ts, F, scan, cand_tau, cand_score, top):
    x = points[p, 0]
    y = points[p, 1]
    w = points[p, 2]
    rho = math.sqrt(x * x + y * y)
    psi = math.atan2(y, x)
    # rank the turns in the point's polar direction by centreline distance minus size;
    # near the modiolar axis the polar direction says little, so try several directions
    n_dir = N_AXIS_DIRECTIONS if rho < axis_radius else 1
    n_try = n_dir * 4 + 2
    for m in range(n_try):
        if m < n_dir * 4:
            t = _theta_to_tau(psi + TWO_PI * (m % 4 + (m // 4) / n_dir), theta_max, cap_base, cap_apex)
        elif m == n_dir * 4:
            t = -0.25 * math.pi                  # middle of the basal cap
        else:
            t = theta_max + 0.25 * math.pi       # middle of the apical cap
        _row0(table, tau0, step, t, F)
        if m < 4 and 0.0 <= t <= theta_max:
            # on the duct in the point's own polar direction: a distance in the meridian plane
            dist = math.sqrt((rho - F[1]) ** 2 + (w - F[2]) ** 2)
        else:
            cx = F[1] * math.cos(F[0])
            cy = F[1] * math.sin(F[0])
            dist = math.sqrt((x - cx) ** 2 + (y - cy) ** 2 + (w - F[2]) ** 2)
        semi = 0.5 * (math.sqrt(F[3] ** 2 + F[5] ** 2) + math.sqrt(F[4] ** 2 + F[6] ** 2))
        cand_tau[m] = t
        cand_score[m] = dist - semi
    # the best few candidates, in order (a partial selection sort)
    n_top = min(MAX_CANDIDATES, n_try)
    for ci in range(n_top):
        bi = -1
        for m in range(n_try):
            taken = False
            for cj in range(ci):
                if top[cj] == m:
                    taken = True
            if not taken and (bi < 0 or cand_score[m] < cand_score[bi]):
                bi = m
        top[ci] = bi
    best_f = 1e30
    best_t = 0.0
    best_s = 0.0
    for ci in range(n_top):
        # another turn is refined only if its estimate could beat the best distance so far
        if ci > 0 and (cand_score[top[ci]] > math.sqrt(best_f) + second_margin
                       or best_f > FAR_MM * FAR_MM):
            break
        t = cand_tau[top[ci]]
        if top[ci] >= n_dir * 4:
            # an end cap: its end wall and side walls meet at different tau, so pick
            # the start tau by scanning along the cap as well as around it
            base_cap = t < 0.0
            best_scan = 1e30
            t_best = t
            for q in range(N_CAP_SCAN):
                om = (0.5 + q) * (0.5 * math.pi / N_CAP_SCAN)
                tq = -om if base_cap else theta_max + om
                _row0(table, tau0, step, tq, F)
                cdq = math.cos(F[0] - psi)
                for m in range(N_SCAN):
                    R = F[1] + F[3] * SCAN_COS[m] + F[4] * SCAN_SIN[m]
                    wz = w - (F[2] + F[5] * SCAN_COS[m] + F[6] * SCAN_SIN[m])
                    fq = rho * rho + R * R - 2.0 * rho * R * cdq + wz * wz
                    if fq < best_scan:
                        best_scan = fq
                        t_best = tq
            t = t_best
        else:
            # start away from a cap pole, where the cross-section angle is undefined
            t = min(max(t, tau_lo + 0.5), tau_hi - 0.5)
        _row(table, tau0, step, t, F)
        # start angles: the two lowest local minima of a scan around the ellipse
        # (a point deep inside the duct has one towards each wall)
        cd = math.cos(F[0] - psi)
        for m in range(N_SCAN):
            R = F[1] + F[3] * SCAN_COS[m] + F[4] * SCAN_SIN[m]
            wz = w - (F[2] + F[5] * SCAN_COS[m] + F[6] * SCAN_SIN[m])
            scan[m] = rho * rho + R * R - 2.0 * rho * R * cd + wz * wz
        m1 = -1
        m2 = -1
        for m in range(N_SCAN):
            fm = scan[m]
            if fm <= scan[(m - 1) % N_SCAN] and fm <= scan[(m + 1) % N_SCAN]:
                if m1 < 0 or fm < scan[m1]:
                    m2 = m1
                    m1 = m
                elif m2 < 0 or fm < scan[m2]:
                    m2 = m
        for start in range(2):
            if start == 1 and (m2 < 0 or math.sqrt(scan[m2]) - WALL_SLACK > math.sqrt(best_f)
                               or best_f > FAR_MM * FAR_MM):
                break
            s0 = SCAN_ANGLE[m1] if start == 0 else SCAN_ANGLE[m2]
            tt, ss, f = _newton(table, tau0, step, tau_lo, tau_hi, rho, psi, w, t, s0, max_steps, F)
            if f < best_f:
                best_f = f
                best_t = tt
                best_s = ss
    # final surface point, outward normal and signed distance
    _row(table, tau0, step, best_t, F)
    sdf, nx, ny, nz, ct, st, cs, sn = _foot(F, best_s, x, y, w, orientation)
    out_sdf[p] = sdf
    out_normal[p, 0] = nx
    out_normal[p, 1] = ny
    out_normal[p, 2] = nz
    out_ts[p, 0] = best_t
    out_ts[p, 1] = best_s
    if param_table.shape[0] > 1:
        x = (best_t - tau0) / step
        j = min(max(int(math.floor(x)), 0), param_table.shape[0] - 2)
        a = x - j
        for q in range(4):
            # columns 4 i + q hold dF_i/dp_q; F_1 = r, F_2 = z, F_3..6 = M (theta has none)
            dR = _lerp(param_table, j, a, 4 + q) + _lerp(param_table, j, a, 12 + q) * cs \
                + _lerp(param_table, j, a, 16 + q) * sn
            dZ = _lerp(param_table, j, a, 8 + q) + _lerp(param_table, j, a, 20 + q) * cs \
                + _lerp(param_table, j, a, 24 + q) * sn
            out_jac[p, q] = nx * dR * ct + ny * dR * st + nz * dZ
        # pose: the model point is local = R^T (x - t); d sdf / d local = -n
        for i in range(3):
            out_jac[p, 7 + i] = rot[i, 0] * nx + rot[i, 1] * ny + rot[i, 2] * nz
        for k in range(3):
            # d local / d r_k = (dR_k^T R) local
            g = 0.0
            for i in range(3):
                g += (nx * rot_derivs[k, 0, i] + ny * rot_derivs[k, 1, i] + nz * rot_derivs[k, 2, i]) \
                    * points[p, i]
            out_jac[p, 4 + k] = -g


BALLS_PER_GROUP = 8  # bounding balls per enclosing ball of the reach test


@njit(cache=True, parallel=True, nogil=True)
def _within_reach(points, centres, radii, group_centres, group_radii, reach, out):
    """out[p] = whether point p may lie within ``reach`` of the surface: whether it is
    within ``radii[i] + reach`` of any ball's centre (the balls cover the surface). Balls
    come in groups of ``BALLS_PER_GROUP``, each group inside a larger ball tested first."""
    n = points.shape[0]
    for p in prange(n):
        near = False
        x = points[p, 0]
        y = points[p, 1]
        w = points[p, 2]
        for g in range(group_centres.shape[0]):
            lim = group_radii[g] + reach
            if (x - group_centres[g, 0]) ** 2 + (y - group_centres[g, 1]) ** 2 \
                    + (w - group_centres[g, 2]) ** 2 > lim * lim:
                continue
            for i in range(g * BALLS_PER_GROUP, min((g + 1) * BALLS_PER_GROUP, centres.shape[0])):
                lim = radii[i] + reach
                if (x - centres[i, 0]) ** 2 + (y - centres[i, 1]) ** 2 + (w - centres[i, 2]) ** 2 <= lim * lim:
                    near = True
                    break
            if near:
                break
        out[p] = near


def within_reach(points, centres, radii, reach) -> np.ndarray:
    """Whether each point may lie within ``reach`` of the surface held by the balls
    (``centres`` (K, 3), ``radii`` (K,)): false only where it certainly does not."""
    groups = [slice(g, g + BALLS_PER_GROUP) for g in range(0, len(radii), BALLS_PER_GROUP)]
    group_centres = np.array([centres[g].mean(axis=0) for g in groups])
    group_radii = np.array([np.max(np.linalg.norm(centres[g] - c, axis=1) + radii[g])
                            for g, c in zip(groups, group_centres)])
    out = np.empty(points.shape[0], dtype=np.bool_)
    with _KERNEL_LOCK:
        _within_reach(np.ascontiguousarray(points, dtype=np.float64), centres, radii, group_centres,
                      group_radii, float(reach), out)
    return out
