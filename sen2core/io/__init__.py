"""Input/output of products, split by direction.

- :mod:`sen2core.io.read`: product stores (directory, zip, remote), the product model,
  one parser per metadata file, the lazy band reader, GIPP files, DEM and auxiliary data.
- :mod:`sen2core.io.write`: raster staging with COG and JPEG 2000 encoding, the SAFE
  layout and its metadata files, quicklook, checksums, remote publication.
- :mod:`sen2core.io.stac`: the STAC item and collection, their offline validation, the
  ``sen2core`` STAC extension and loading items with odc-stac.

Modules directly under ``sen2core.io`` serve every direction: I/O failure reporting
(:mod:`~sen2core.io.failures`), safe XML parsing (:mod:`~sen2core.io.xmlutil`), strict
JSON (:mod:`~sen2core.io.jsonutil`), remote object access (:mod:`~sen2core.io.remote`). The scene
classification legend lives with the kernels (:mod:`~sen2core.kernels.scene_class.legend`).

Imports run one way, ``read`` < ``write`` < ``stac``: ``read`` imports none of the others;
``write`` (the encoders, the metadata builders and the SAFE layout, :mod:`~sen2core.io.write.safe`)
imports ``read``; ``stac`` imports both: it describes what the encoders wrote, and holds the
cloud-native layout (:mod:`~sen2core.io.stac.cog_product`), whose last file is the STAC item.
"""
