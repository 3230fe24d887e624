"""Vectorised multilinear interpolation on regular (not necessarily uniform) grids."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import ArrayLike, NDArray


def locate(nodes: NDArray[np.float64], x: ArrayLike) -> tuple[NDArray[np.intp], NDArray[np.float64]]:
    """Lower node index and fractional position of ``x`` on ascending ``nodes``.

    Values outside the nodes are clamped to the end nodes (no extrapolation).
    A single-node axis gives index 0 and fraction 0.
    """
    xa = np.asarray(x, dtype=np.float64)
    if len(nodes) == 1:
        return np.zeros(xa.shape, dtype=np.intp), np.zeros(xa.shape)
    xc = np.clip(xa, nodes[0], nodes[-1])
    i = np.clip(np.searchsorted(nodes, xc, side="right") - 1, 0, len(nodes) - 2)
    frac = (xc - nodes[i]) / (nodes[i + 1] - nodes[i])
    return i.astype(np.intp), frac


Corners = list[tuple[tuple[NDArray[np.intp], ...], NDArray[np.float64]]]


def corners(nodes: Sequence[NDArray[np.float64]], coords: Sequence[ArrayLike]) -> Corners:
    """Index tuples and weights of the grid-cell corners around ``coords``.

    Locating a query costs more than gathering from a table; when several tables
    share their axes and query points, locate once and :func:`gather` from each.
    """
    if len(nodes) != len(coords):
        raise ValueError("nodes and coords must have one entry per axis")
    located = [locate(n, c) for n, c in zip(nodes, coords, strict=True)]
    out: Corners = []
    for corner in range(1 << len(nodes)):
        idx = []
        w: NDArray[np.float64] | float = 1.0
        for axis, (i, f) in enumerate(located):
            if (corner >> axis) & 1:
                if len(nodes[axis]) == 1:
                    break
                idx.append(i + 1)
                w = w * f
            else:
                idx.append(i)
                w = w * (1.0 - f)
        else:
            out.append((tuple(idx), np.asarray(w)))
    return out


def gather(table: NDArray[np.floating], cell: Corners) -> NDArray[np.float64]:
    """Interpolated values of ``table`` at the corners from :func:`corners`."""
    out: NDArray[np.float64] = np.zeros(())
    for idx, w in cell:
        out = out + w * table[idx]
    return out


def multilinear(
    table: NDArray[np.floating], nodes: Sequence[NDArray[np.float64]], coords: Sequence[ArrayLike]
) -> NDArray[np.float64]:
    """Interpolate ``table`` (one dimension per axis) at broadcast ``coords``.

    Parameters
    ----------
    table
        Values at the grid nodes, shape ``(len(nodes[0]), len(nodes[1]), ...)``.
    nodes
        Ascending node coordinates per axis.
    coords
        Query coordinates per axis; they broadcast against each other.

    Returns
    -------
    numpy.ndarray
        Interpolated values with the broadcast shape of ``coords``.
    """
    if table.ndim != len(nodes):
        raise ValueError("table, nodes and coords must have one entry per axis")
    shape = np.broadcast_shapes(*(np.shape(c) for c in coords))
    out = gather(table, corners(nodes, coords))
    return out if out.shape == shape else np.broadcast_to(out, shape).copy()


def lagrange_weights(nodes: NDArray[np.float64], x: ArrayLike) -> list[NDArray[np.float64]]:
    """Weights of the polynomial through all ``nodes`` at ``x`` (clamped to the node range).

    With three nodes this is quadratic interpolation: exact for functions like
    ``a + b cos(phi) + c cos(2 phi)`` sampled at ``cos(phi) = -1, 0, 1``.
    """
    xc = np.clip(np.asarray(x, dtype=np.float64), nodes[0], nodes[-1])
    weights = []
    for j, xj in enumerate(nodes):
        w = np.ones_like(xc)
        for k, xk in enumerate(nodes):
            if k != j:
                w = w * (xc - xk) / (xj - xk)
        weights.append(w)
    return weights
