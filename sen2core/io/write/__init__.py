"""Writing Level-2A products: rasters (COG or JPEG 2000), metadata files, quicklook, checksums.

Rasters are staged chunk by chunk into tiled GeoTIFFs (:mod:`~sen2core.io.write.raster`),
then encoded; :mod:`~sen2core.io.write.safe` and :mod:`~sen2core.io.write.mtd_l2a` build
Sen2Cor's SAFE layout and its XML files; :mod:`~sen2core.io.write.upload` publishes a
finished product folder to object storage.
"""
