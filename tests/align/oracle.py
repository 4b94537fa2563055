"""An exact GDTW solve written from the problem statement, independent of seqvpr's forward.

One item in numpy: the objective and its constraints are written here, scipy SLSQP polishes a
start point, and the exact local optimum is then the minimiser of the objective on the face
SLSQP's answer lies on (knots held at bounds or at reference sample times, intervals held at
slope bounds; every other knot inside one reference segment, where the objective is an exact
quadratic), found by a dense KKT solve and accepted only when it satisfies the optimality
conditions: feasibility, every free knot inside its segment, inequality multipliers >= 0, and
for a knot held at a sample time tau_k a multiplier between the data term's one-sided
derivatives there. Finite differences of that solution are the gradient oracle.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
from scipy.optimize import minimize

__all__ = ["Face", "GDTWItem", "exact_solve", "face_solve", "finite_difference", "random_item", "slsqp"]


@dataclass(frozen=True)
class GDTWItem:
    """One GDTW problem: reference (tau, R), query knots t with values Q, lambda, constraints.

    ``expected`` is e; ``step_min`` / ``step_max`` (slope_min e dt_i, slope_max e dt_i) bound
    phi_{i+1} - phi_i; ``lower`` / ``upper`` bound each phi_i (the reference's span and the
    band |phi_i - c(t_i)| <= band T_ref around the diagonal c); full alignment pins the ends.
    """

    ref_times: np.ndarray
    ref_values: np.ndarray
    knots: np.ndarray
    query_values: np.ndarray
    lam: float
    subsequence: bool
    slope_min: float = 0.0
    slope_max: float = np.inf
    band: float | None = None

    @property
    def dt(self) -> np.ndarray:
        return np.diff(self.knots)

    @property
    def weights(self) -> np.ndarray:
        dt = self.dt
        return np.concatenate([[0.0], dt / 2]) + np.concatenate([dt / 2, [0.0]])

    @property
    def expected(self) -> float:
        if self.subsequence:
            return 1.0
        return (self.ref_times[-1] - self.ref_times[0]) / (self.knots[-1] - self.knots[0])

    @property
    def step_min(self) -> np.ndarray:
        return self.slope_min * self.expected * self.dt

    @property
    def step_max(self) -> np.ndarray:
        return self.slope_max * self.expected * self.dt

    def _band(self) -> tuple[np.ndarray, np.ndarray]:
        tau = self.ref_times
        lower = np.full(len(self.knots), tau[0])
        upper = np.full(len(self.knots), tau[-1])
        if self.band is not None:
            span = tau[-1] - tau[0]
            centre = tau[0] + (self.knots - self.knots[0]) * span / (self.knots[-1] - self.knots[0])
            lower = np.maximum(lower, centre - self.band * span)
            upper = np.minimum(upper, centre + self.band * span)
        if not self.subsequence:
            lower[0] = upper[0] = tau[0]
            lower[-1] = upper[-1] = tau[-1]
        return lower, upper

    @property
    def lower(self) -> np.ndarray:
        return self._band()[0]

    @property
    def upper(self) -> np.ndarray:
        return self._band()[1]

    def objective(self, warp: np.ndarray) -> float:
        values = np.stack([np.interp(warp, self.ref_times, v) for v in self.ref_values.T], -1)
        data = (self.weights * ((values - self.query_values) ** 2).sum(-1)).sum()
        excess = np.diff(warp) - self.expected * self.dt
        return float(data + self.lam * (excess**2 / self.dt).sum())

    def segments(self, warp: np.ndarray) -> np.ndarray:
        index = np.searchsorted(self.ref_times, warp, side="right") - 1
        return np.clip(index, 0, len(self.ref_times) - 2)

    def data_slope(self, warp: np.ndarray, segment: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """d/dphi_i and d2/dphi_i^2 of w_i ||R(phi_i) - Q_i||^2 on the given segments."""
        length = self.ref_times[segment + 1] - self.ref_times[segment]
        delta = self.ref_values[segment + 1] - self.ref_values[segment]
        alpha = (warp - self.ref_times[segment]) / length
        error = self.ref_values[segment] + alpha[:, None] * delta - self.query_values
        slope = 2 * self.weights * (error * delta).sum(-1) / length
        return slope, 2 * self.weights * (delta**2).sum(-1) / length**2

    def regulariser_gradient(self, warp: np.ndarray) -> np.ndarray:
        excess = (np.diff(warp) - self.expected * self.dt) / self.dt
        return 2 * self.lam * (np.concatenate([[0.0], excess]) - np.concatenate([excess, [0.0]]))

    def gradient(self, warp: np.ndarray) -> np.ndarray:
        return self.data_slope(warp, self.segments(warp))[0] + self.regulariser_gradient(warp)


def slsqp(item: GDTWItem, start: np.ndarray) -> np.ndarray:
    """scipy SLSQP on the objective from ``start`` (bounds and monotone steps)."""
    size = len(start)
    jac = np.eye(size)[1:] - np.eye(size)[:-1]
    step_min, step_max = item.step_min, item.step_max
    constraints = [{"type": "ineq", "fun": lambda p: np.diff(p) - step_min, "jac": lambda p: jac}]
    if np.isfinite(step_max).all():
        constraints.append({"type": "ineq", "fun": lambda p: step_max - np.diff(p), "jac": lambda p: -jac})
    result = minimize(
        item.objective, np.clip(start, item.lower, item.upper), jac=item.gradient, method="SLSQP",
        bounds=list(zip(item.lower, item.upper)), constraints=constraints,
        options={"ftol": 1e-16, "maxiter": 1000},
    )
    return result.x


@dataclass(frozen=True)
class Face:
    """Knots held at a reference sample (``vertex``: index or -1), at the lower / upper bound,
    intervals held at step_min / step_max, and each knot's segment."""

    vertex: np.ndarray
    at_lower: np.ndarray
    at_upper: np.ndarray
    at_step_min: np.ndarray
    at_step_max: np.ndarray
    segment: np.ndarray


def _face_of(item: GDTWItem, warp: np.ndarray, snap: float, tol: float) -> Face:
    tau = item.ref_times
    nearest = np.abs(warp[:, None] - tau[None, 1:-1])
    vertex = np.where(nearest.min(1) <= snap, nearest.argmin(1) + 1, -1)
    at_lower = warp - item.lower <= tol
    at_upper = (item.upper - warp <= tol) & ~at_lower
    vertex = np.where(at_lower | at_upper, -1, vertex)
    at_step_min = np.diff(warp) - item.step_min <= tol
    at_step_max = (item.step_max - np.diff(warp) <= tol) & ~at_step_min
    return Face(vertex, at_lower, at_upper, at_step_min, at_step_max, item.segments(warp))


def face_solve(item: GDTWItem, face: Face, start: np.ndarray, margin: float = 0.0) -> np.ndarray | None:
    """The minimiser of the objective on ``face`` (dense KKT solve), or None unless it is a
    KKT point of the whole problem: feasible, free knots inside their segments, inequality
    multipliers >= -margin, vertex multipliers within the one-sided derivatives (+- margin)."""
    size = len(start)
    tau = item.ref_times
    held_vertex = face.vertex >= 0
    segment = face.segment.copy()
    slope, curvature = item.data_slope(start, segment)
    slope = np.where(held_vertex, 0.0, slope)
    curvature = np.where(held_vertex, 0.0, curvature)
    coupling = 2 * item.lam / item.dt
    hessian = np.diag(curvature + np.concatenate([coupling, [0.0]]) + np.concatenate([[0.0], coupling]))
    hessian -= np.diag(coupling, 1) + np.diag(coupling, -1)
    gradient = slope + item.regulariser_gradient(start)
    rows, targets, kinds = [], [], []
    eye = np.eye(size)
    for i in range(size):
        if held_vertex[i]:
            rows.append(eye[i]), targets.append(tau[face.vertex[i]]), kinds.append(("vertex", i))
        elif face.at_lower[i]:
            rows.append(eye[i]), targets.append(item.lower[i]), kinds.append(("lower", i))
        elif face.at_upper[i]:
            rows.append(eye[i]), targets.append(item.upper[i]), kinds.append(("upper", i))
    for i in np.flatnonzero(face.at_step_min):
        rows.append(eye[i + 1] - eye[i]), targets.append(item.step_min[i]), kinds.append(("step_min", i))
    for i in np.flatnonzero(face.at_step_max):
        rows.append(eye[i + 1] - eye[i]), targets.append(item.step_max[i]), kinds.append(("step_max", i))
    a = np.array(rows).reshape(len(rows), size)
    b = np.array(targets)
    kkt = np.block([[hessian, a.T], [a, np.zeros((len(rows), len(rows)))]])
    rhs = np.concatenate([-gradient, b - a @ start])
    try:
        solution = np.linalg.solve(kkt, rhs)
    except np.linalg.LinAlgError:  # dependent active constraints
        solution = np.linalg.lstsq(kkt, rhs, rcond=None)[0]
    warp = start + solution[:size]
    multipliers = solution[size:]  # H d + grad + A^T mu = 0
    if not np.allclose(kkt @ solution, rhs, rtol=0, atol=1e-9 * (1 + np.abs(rhs).max())):
        return None
    span = tau[-1] - tau[0]
    feasible_tol = 1e-10 * (1 + span)
    if (warp < item.lower - feasible_tol).any() or (warp > item.upper + feasible_tol).any():
        return None
    if (np.diff(warp) < item.step_min - feasible_tol).any() or (np.diff(warp) > item.step_max + feasible_tol).any():
        return None
    free = ~held_vertex & ~face.at_lower & ~face.at_upper
    inside = (warp >= tau[segment] - feasible_tol) & (warp <= tau[segment + 1] + feasible_tol)
    if not inside[free].all():
        return None
    for (kind, i), mu in zip(kinds, multipliers):
        if kind == "vertex":
            # Stationarity with a subgradient s of the data term in [left, right]: s = mu.
            right = _one_sided(item, i, face.vertex[i], face.vertex[i])
            left = _one_sided(item, i, face.vertex[i], face.vertex[i] - 1)
            scale = margin + 1e-9 * (abs(left) + abs(right))
            if not (left - scale <= mu <= right + scale):
                return None
        elif kind == "lower" and item.lower[i] == item.upper[i]:
            continue  # a pinned end: either sign
        elif kind == "lower" or kind == "step_min":
            if mu > margin:  # a.phi >= b written as -a.phi <= -b: multiplier -mu >= 0
                return None
        elif kind == "upper" or kind == "step_max":
            if mu < -margin:
                return None
    return warp


def _one_sided(item: GDTWItem, knot: int, vertex: int, segment: int) -> float:
    """The data term's derivative at tau_vertex for knot ``knot`` on ``segment``."""
    tau = item.ref_times
    length = tau[segment + 1] - tau[segment]
    delta = item.ref_values[segment + 1] - item.ref_values[segment]
    error = item.ref_values[vertex] - item.query_values[knot]
    return float(2 * item.weights[knot] * (error * delta).sum() / length)


def exact_solve(item: GDTWItem, start: np.ndarray) -> tuple[np.ndarray, Face] | None:
    """SLSQP from ``start``, then the exact minimiser on SLSQP's face; None when no snapping
    tolerance gives a point that passes the KKT check."""
    polished = slsqp(item, start)
    span = item.ref_times[-1] - item.ref_times[0]
    for snap in (1e-9, 1e-8, 1e-7, 1e-6):
        face = _face_of(item, polished, snap * (1 + span), 1e-9 * (1 + span))
        warp = face_solve(item, face, polished)
        if warp is not None and item.objective(warp) <= item.objective(polished) * (1 + 1e-12) + 1e-15:
            return warp, face
    return None


def finite_difference(item: GDTWItem, face: Face, exact: np.ndarray, name: str, direction, weights: np.ndarray,
                      epsilons: tuple[float, float, float] = (1e-4, 1e-5, 1e-6)) -> float | None:
    """Central difference of v . phi* along ``direction`` in the field ``name`` of ``item``, at
    the middle eps; each perturbed problem is re-solved exactly on ``face`` and re-checked.

    None when it is unstable: a perturbed solve at the two smaller eps leaves the face (its
    KKT check fails), or the differences at the eps where the face holds (the largest may not)
    disagree by more than 1e-4 relative.
    """
    values = {}
    for eps in epsilons:
        moved = []
        for sign in (1.0, -1.0):
            perturbed = replace(item, **{name: getattr(item, name) + sign * eps * direction})
            moved.append(face_solve(perturbed, face, exact))
        if all(solution is not None for solution in moved):
            values[eps] = weights @ (moved[0] - moved[1]) / (2 * eps)
    if epsilons[1] not in values or epsilons[2] not in values:
        return None
    spread = max(values.values()) - min(values.values())
    if spread > 1e-4 * abs(values[epsilons[1]]) + 1e-12 * np.abs(weights).sum():
        return None
    return values[epsilons[1]]


def random_item(
    rng: np.random.Generator, family: str, ref_length: int, query_length: int, dim: int, subsequence: bool,
    lam: float = 0.1,
) -> GDTWItem:
    """A random problem whose query is the reference seen along a warp, plus noise.

    ``family`` is ``"smooth"`` (random-walk features: many optima inside segments) or
    ``"descriptors"`` (unit-norm random vectors, like VPR descriptors: many optima on the
    reference's sample times). Reference sample spacing is 0.8-1.2 s, query spacing 0.8-1.0 s
    (subsequence, starting a few samples in) or 0.8-1.2 s (full).
    """
    ref_times = np.concatenate([[0.0], np.cumsum(rng.uniform(0.8, 1.2, ref_length - 1))])
    if family == "smooth":
        ref_values = np.cumsum(rng.normal(size=(ref_length, dim)), 0) / np.sqrt(dim)
    else:
        ref_values = rng.normal(size=(ref_length, dim))
        ref_values /= np.linalg.norm(ref_values, axis=1, keepdims=True)
    steps = rng.uniform(0.8, 1.0 if subsequence else 1.2, query_length - 1)
    knots = np.concatenate([[0.0], np.cumsum(steps)])
    if subsequence:
        truth = ref_times[min(3, ref_length - 1)] * (ref_length - query_length > 5) + knots
    else:
        truth = ref_times[0] + knots * (ref_times[-1] - ref_times[0]) / knots[-1]
    truth = np.clip(truth, ref_times[0], ref_times[-1])
    query = np.stack([np.interp(truth, ref_times, v) for v in ref_values.T], -1)
    noise = (0.3 if family == "smooth" else 0.5) * rng.normal(size=query.shape) / np.sqrt(dim)
    query = query + noise
    if family != "smooth":
        query /= np.linalg.norm(query, axis=1, keepdims=True)
    return GDTWItem(ref_times, ref_values, knots, query, lam, subsequence)
