"""The declared search space: its dimensions, designs, encoding and tightening."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
from scipy.stats import qmc

DESIGNS = ("lhs", "random")


@dataclass(frozen=True)
class Dimension:
    """One searched hyperparameter: continuous (bounds, maybe log scale) or discrete (values)."""

    name: str
    type: str
    bounds: tuple[float, float] | None = None
    values: tuple[float, ...] | None = None
    log: bool = False

    def internal_bounds(self) -> tuple[float, float]:
        """Bounds in the coordinates the optimiser sees (log10 for log dimensions)."""
        lo, hi = self.bounds
        return (math.log10(lo), math.log10(hi)) if self.log else (lo, hi)


@dataclass(frozen=True)
class SearchSpace:
    """An ordered list of dimensions with encode/decode between dicts and optimiser vectors."""

    dims: tuple[Dimension, ...]

    @classmethod
    def from_dict(cls, space: dict[str, dict]) -> SearchSpace:
        """Build from the params-file form ``{name: {type, bounds | values, log}}``."""
        dims = []
        for name, s in space.items():
            if s["type"] == "continuous":
                lo, hi = (float(v) for v in s["bounds"])
                if not lo < hi:
                    raise ValueError(f"search space '{name}': bounds must have low < high, "
                                     f"got [{lo}, {hi}].")
                dims.append(Dimension(name, "continuous", (lo, hi), log=bool(s.get("log"))))
            else:
                vals = tuple(sorted({float(v) for v in s["values"]}))
                if not vals:
                    raise ValueError(f"search space '{name}': values must not be empty.")
                dims.append(Dimension(name, "discrete", values=vals))
        return cls(tuple(dims))

    def to_dict(self) -> dict[str, dict]:
        """The params-file form of this space (for display and records)."""
        out = {}
        for d in self.dims:
            if d.type == "continuous":
                out[d.name] = {"type": "continuous", "bounds": list(d.bounds), "log": d.log}
            else:
                out[d.name] = {"type": "discrete", "values": list(d.values)}
        return out

    @property
    def names(self) -> list[str]:
        """Dimension names in order."""
        return [d.name for d in self.dims]

    def gpyopt_domain(self) -> list[dict[str, Any]]:
        """The domain in GPyOpt's format (continuous ranges in internal coordinates)."""
        return [{"name": d.name, "type": "continuous", "domain": d.internal_bounds()}
                if d.type == "continuous" else
                {"name": d.name, "type": "discrete", "domain": d.values} for d in self.dims]

    def encode(self, hp: dict[str, float]) -> np.ndarray:
        """Vector in internal coordinates for a hyperparameter dict."""
        return np.array([math.log10(hp[d.name]) if d.log else float(hp[d.name])
                         for d in self.dims])

    def decode(self, x: np.ndarray) -> dict[str, float | int]:
        """Hyperparameter dict for an internal vector (whole discrete values become ints)."""
        out: dict[str, float | int] = {}
        for d, v in zip(self.dims, np.ravel(x), strict=True):
            if d.type == "discrete":
                v = min(d.values, key=lambda c: abs(c - v))
                out[d.name] = int(v) if float(v).is_integer() else float(v)
            else:
                out[d.name] = float(10 ** v) if d.log else float(v)
        return out

    def contains(self, hp: dict[str, float]) -> bool:
        """Whether a point lies inside this space (with a small tolerance)."""
        for d in self.dims:
            v = float(hp[d.name])
            if d.type == "discrete":
                if not any(abs(v - c) <= 1e-9 * max(1.0, abs(c)) for c in d.values):
                    return False
            elif not d.bounds[0] * (1 - 1e-9) - 1e-12 <= v <= d.bounds[1] * (1 + 1e-9) + 1e-12:
                return False
        return True

    def latin_hypercube(self, n: int, seed: int) -> list[dict[str, float | int]]:
        """A seeded Latin-hypercube design of n points (discrete dims: LHS over value indices)."""
        return self._from_unit(qmc.LatinHypercube(d=len(self.dims), seed=seed).random(n))

    def random_points(self, n: int, seed: int) -> list[dict[str, float | int]]:
        """Draw n points uniformly and independently (plain random search), seeded."""
        return self._from_unit(np.random.default_rng(seed).random((n, len(self.dims))))

    def _from_unit(self, u: np.ndarray) -> list[dict[str, float | int]]:
        """Points for rows of the unit cube (discrete dims: equal shares of the cube)."""
        points = []
        for row in u:
            x = []
            for d, ui in zip(self.dims, row, strict=True):
                if d.type == "discrete":
                    x.append(d.values[min(int(ui * len(d.values)), len(d.values) - 1)])
                else:
                    lo, hi = d.internal_bounds()
                    x.append(lo + ui * (hi - lo))
            points.append(self.decode(np.array(x)))
        return points

    def tighten(self, best: dict[str, float], shrink: float,
                settled: set[str] | frozenset[str] = frozenset()) -> SearchSpace:
        """A smaller space around ``best`` by the rule in the module docstring.

        Discrete dimensions named in ``settled`` are fixed to the best value.
        """
        dims = []
        for d in self.dims:
            if d.name in settled and d.type == "discrete":
                dims.append(replace(d, values=(float(best[d.name]),)))
                continue
            if d.type == "discrete":
                i = min(range(len(d.values)), key=lambda j: abs(d.values[j] - best[d.name]))
                dims.append(replace(d, values=d.values[max(0, i - 1): i + 2]))
                continue
            lo, hi = d.internal_bounds()
            c = math.log10(best[d.name]) if d.log else float(best[d.name])
            half = (hi - lo) * shrink / 2
            new_lo, new_hi = c - half, c + half
            if new_lo < lo:
                new_lo, new_hi = lo, lo + 2 * half
            if new_hi > hi:
                new_lo, new_hi = hi - 2 * half, hi
            b = (10 ** new_lo, 10 ** new_hi) if d.log else (new_lo, new_hi)
            dims.append(replace(d, bounds=(float(b[0]), float(b[1]))))
        return SearchSpace(tuple(dims))
