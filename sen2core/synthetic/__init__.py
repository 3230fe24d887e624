"""Synthetic Sentinel-2 Level-1C products with known truth (``sen2core synth``).

:func:`synthesize` writes a SAFE product that real Level-1C readers open like ESA's,
whose top-of-atmosphere reflectance is made from a known surface through the project's
6S LUT and forward model, and a ``.truth`` folder beside it with the surface
reflectance, aerosol and water vapour maps, class map, cloud heights and every
parameter. See ``sen2core/synthetic/generator.py`` for the physics.
"""

from __future__ import annotations

from sen2core.synthetic.config import Acquisition, SynthConfig, acquisition
from sen2core.synthetic.generator import ProgressFn, SynthResult, synthesize
from sen2core.synthetic.mgrs import TileGrid, tile_grid

__all__ = [
    "Acquisition",
    "ProgressFn",
    "SynthConfig",
    "SynthResult",
    "TileGrid",
    "acquisition",
    "synthesize",
    "tile_grid",
]
