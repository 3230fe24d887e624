"""Scene classification (SCL) kernels: Sen2Cor 2.8's rules, step by step, and a few fixes.

Pure numpy (and scipy.ndimage): top-of-atmosphere reflectance arrays in (float32,
NaN = no data, all on one grid: 20 m or 60 m), arrays out; no I/O, no dask. The
steps follow Sen2Cor 2.8's scene classification as ESA publishes it (the Sen2Cor Level-2A
ATBD, ESA S2-PDGS-MPC-ATBD-L2A, and the defaults of Sen2Cor's ``L2A_CAL_SC_GIPP.xml``)
and are named in comments (``step 1.1``, ``R5``...). Thresholds come from
:class:`~sen2core.config.SceneClassificationConfig`.

The classification is split into passes at the points where a neighbourhood
operation reaches far, so that a chunked caller (:mod:`sen2core.scl`) can give each
pass exactly the overlap it needs; each pass documents its *reach* in pixels.
:func:`scene_classification` (:mod:`.whole_image`) chains the passes on whole arrays
and is the reference the chunked result is tested against.

0. :func:`leakage_histogram` (:mod:`.leakage`) -- a scene-wide histogram: how much bright
   ground leaks into B10 through dry air (:func:`leakage_from_histogram`);
1. :func:`classify_pixels` (:mod:`.pixel_tests`) -- steps 0 to 7 (reach: snow-ring
   dilations), and :func:`calibrated_cloud_probability` (:mod:`.probability`, reach 0);
2. :func:`shadow_inputs` (:mod:`.shadows`) -- radiometric shadow tests and the cloud mask
   to project (reach 2);
3. :func:`project_cloud_shadow` -- Sen2Cor's geometric projection over the cloud heights
   on the shadow grid (reach :func:`shadow_reach`), :func:`match_cloud_shadow` -- the
   cloud heights matched with dark pixels on the matching grid (reach
   :func:`match_zone_reach`), and terrain cast shadows;
4. :func:`scene_statistics` (:mod:`.statistics`) -- sums for the scene-wide thresholds of
   R7/R8 (only with a land-cover map);
5. :func:`finalize` (:mod:`.finalize`) -- cloud shadows, recovery steps R1-R9
   (:mod:`.recovery`), post-processing and the improvements (cloud buffer, thin-cloud and
   bright-surface fixes).

The codes, names and colours of the classes are in :mod:`.legend`; the pixel counts
and ``Image_Content_QI`` percentages in :mod:`.counts`.

Improvements over Sen2Cor 2.8 (each a switch of the configuration; all off in
:meth:`~sen2core.config.SceneClassificationConfig.sen2cor`): B10 corrected for ground
leakage (bright deserts under dry air are not cirrus), bright red surfaces with SWIR
above NIR and no high-cloud signal are not cloud, a calibrated cloud probability whose
verdict catches thin cloud, cloud heights matched with shadows plus a shadow test that
keeps shadowed sand and snow and tells shadows from water by geometry, per-pixel view
parallax, cloud heights up to 12 km, grey shadows found by their darkness relative to the
local sunlit ground inside the projected zone (:func:`relative_shadow`), cloud masks grown
into their dim edges (:func:`grow_cloud_edges`), and an optional cloud buffer.
"""

from __future__ import annotations

from sen2core.kernels.scene_class.common import (
    CLOUDY_CODES,
    LOW,
    NC,
    OPTIONAL_BANDS,
    REQUIRED_BANDS,
    background_window_px,
    cloud_edge_growth_px,
    probability_to_uint8,
    ramp,
)
from sen2core.kernels.scene_class.counts import class_counts, class_percentages
from sen2core.kernels.scene_class.finalize import finalize, finalize_reach, grow_cloud_edges
from sen2core.kernels.scene_class.leakage import LEAKAGE_BINS, cirrus_signal, leakage_from_histogram, leakage_histogram
from sen2core.kernels.scene_class.legend import PERCENTAGE_NAMES, SCL
from sen2core.kernels.scene_class.parameters import ClassificationParameters
from sen2core.kernels.scene_class.pixel_tests import classify_pixels, snow_condition_mean
from sen2core.kernels.scene_class.probability import (
    CIRRUS_KNOTS,
    CLOUD_PROBABILITY_MODEL,
    FEATURES,
    CloudProbabilityModel,
    calibrated_cloud_probability,
    cloud_features,
)
from sen2core.kernels.scene_class.shadows import (
    coarse_sun,
    match_cloud_shadow,
    match_counts,
    match_grid_factor,
    match_zone_reach,
    project_cloud_shadow,
    relative_shadow,
    shadow_displacement_field,
    shadow_grid_factor,
    shadow_inputs,
    shadow_reach,
    sun_components,
    terrain_shadow_reach,
)
from sen2core.kernels.scene_class.statistics import (
    N_STATISTICS,
    SceneStatistics,
    hpc_blob_mask,
    hpc_blob_reach,
    scene_statistics,
    statistics_from_sums,
)
from sen2core.kernels.scene_class.whole_image import SceneClassificationArrays, scene_classification

__all__ = [
    "CIRRUS_KNOTS",
    "CLOUDY_CODES",
    "CLOUD_PROBABILITY_MODEL",
    "ClassificationParameters",
    "CloudProbabilityModel",
    "FEATURES",
    "LEAKAGE_BINS",
    "LOW",
    "NC",
    "N_STATISTICS",
    "OPTIONAL_BANDS",
    "PERCENTAGE_NAMES",
    "REQUIRED_BANDS",
    "SCL",
    "SceneClassificationArrays",
    "SceneStatistics",
    "background_window_px",
    "calibrated_cloud_probability",
    "cirrus_signal",
    "class_counts",
    "class_percentages",
    "classify_pixels",
    "cloud_edge_growth_px",
    "cloud_features",
    "coarse_sun",
    "finalize",
    "finalize_reach",
    "grow_cloud_edges",
    "hpc_blob_mask",
    "hpc_blob_reach",
    "leakage_from_histogram",
    "leakage_histogram",
    "match_cloud_shadow",
    "match_counts",
    "match_grid_factor",
    "match_zone_reach",
    "probability_to_uint8",
    "project_cloud_shadow",
    "ramp",
    "relative_shadow",
    "scene_classification",
    "scene_statistics",
    "shadow_displacement_field",
    "shadow_grid_factor",
    "shadow_inputs",
    "shadow_reach",
    "snow_condition_mean",
    "statistics_from_sums",
    "sun_components",
    "terrain_shadow_reach",
]
