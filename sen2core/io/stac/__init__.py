"""STAC metadata of Level-2A products: item, collection, offline validation, the ``sen2core``
extension, and loading items back as physical values."""
