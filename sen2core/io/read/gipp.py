"""Sen2Cor's configuration files (GIPP): ``L2A_CAL_SC_GIPP.xml`` and the user ``L2A_GIPP.xml``.

The files are parsed safely (:func:`sen2core.io.xmlutil.safe_fromstring`: no entity is
ever resolved) and recognised by their root element. The scene-classification settings
they hold become a :class:`~sen2core.config.SceneClassificationConfig`
(:func:`scene_classification_from_gipp`); the atmospheric-correction settings of the user
file are read by :func:`sen2core.correction.correction_config_from_gipp` from
:func:`read_gipp`'s tree.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from xml.etree.ElementTree import Element, ParseError

from defusedxml import DefusedXmlException

from sen2core.config import SC_GIPP_ROOT, SC_GIPP_TAGS, USER_GIPP_ROOT, SceneClassificationConfig
from sen2core.errors import ConfigurationError
from sen2core.io.xmlutil import local_name, safe_fromstring

__all__ = ["read_gipp", "scene_classification_from_gipp"]

# Entries of L2A_CAL_SC_GIPP.xml that Sen2Cor 2.8's classification does not use: the
# legacy shadow reference vector RV_* (replaced by a hard-coded spectrum, here
# ``shadow_reference``), T_SDW, and the second snow and B12 thresholds. They are
# accepted so that any genuine Sen2Cor file loads, and have no effect.
_SC_GIPP_UNUSED = frozenset({"T2_SNOW", "T2_B12", "RV_B2", "RV_B3", "RV_B4", "RV_B8", "RV_B11", "RV_B12", "T_SDW"})

# Switches of the user L2A_GIPP.xml that concern the scene classification (path
# below the root element) and the field each sets.
_USER_GIPP_PATHS: Mapping[str, str] = {
    "Scene_Classification/Filters/Median_Filter": "median_filter",
    "Common_Section/Handle_L1C_QLT_Mask": "handle_l1c_quality_mask",
}

# A setting's name in Sen2Cor's files, for messages about those files.
_SC_GIPP_LABELS = {name: tag for tag, name in SC_GIPP_TAGS.items()}
_USER_GIPP_LABELS = {name: rel.rsplit("/", 1)[-1] for rel, name in _USER_GIPP_PATHS.items()}


def read_gipp(path: str | os.PathLike[str]) -> Element:
    """Parse a Sen2Cor configuration file safely; tags keep their namespaces (compare :func:`local_name`).

    Raises
    ------
    ConfigurationError
        The file cannot be read, is not well-formed XML, or declares entities or
        external references.
    """
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigurationError(f"{path}: cannot read Sen2Cor configuration: {exc}") from exc
    try:
        return safe_fromstring(raw)
    except DefusedXmlException as exc:
        raise ConfigurationError(f"{path}: unsafe XML refused ({type(exc).__name__})") from exc
    except ParseError as exc:
        raise ConfigurationError(f"{path}: not well-formed XML: {exc}") from exc


def scene_classification_from_gipp(
    *paths: str | os.PathLike[str], base: SceneClassificationConfig | None = None
) -> SceneClassificationConfig:
    """Read Sen2Cor configuration files, applied in the order given.

    Each file is recognised by its root element: ``L2A_CAL_SC_GIPP.xml`` sets the
    thresholds of ``Scene_Classification/Thresholds`` (see
    :data:`sen2core.config.SC_GIPP_TAGS`); the user ``L2A_GIPP.xml`` sets
    ``Median_Filter`` and ``Handle_L1C_QLT_Mask`` (its other settings concern the
    atmospheric correction and are ignored here).

    Parameters
    ----------
    *paths
        The files.
    base
        The configuration the files change (default: Sen2Cor 2.8's).

    Returns
    -------
    SceneClassificationConfig

    Raises
    ------
    ConfigurationError
        If a file cannot be read, is not well-formed or unsafe XML, is neither of
        the two Sen2Cor files, has an unknown threshold or a value that is not a
        number, or gives inconsistent thresholds.
    """
    if not paths:
        raise ConfigurationError("scene_classification_from_gipp needs at least one file")
    config = base or SceneClassificationConfig()
    for path in paths:
        root = read_gipp(path)
        tag = local_name(root.tag)
        if tag == SC_GIPP_ROOT:
            changes, labels = _read_sc_gipp(root, Path(path)), _SC_GIPP_LABELS
        elif tag == USER_GIPP_ROOT:
            changes, labels = _read_user_gipp(root, Path(path)), _USER_GIPP_LABELS
        else:
            raise ConfigurationError(
                f"{path}: not a Sen2Cor L2A_CAL_SC_GIPP.xml or L2A_GIPP.xml (root element {tag!r})"
            )
        config = config.updated_from(changes, source=str(path), labels=labels)
    return config


def _child(element: Element, name: str) -> Element | None:
    for child in element:
        if local_name(child.tag) == name:
            return child
    return None


def _read_sc_gipp(root: Element, path: Path) -> dict[str, Any]:
    sc = _child(root, "Scene_Classification")
    thresholds = _child(sc, "Thresholds") if sc is not None else None
    if thresholds is None:
        raise ConfigurationError(f"{path}: no Scene_Classification/Thresholds in L2A_CAL_SC_GIPP.xml")
    changes: dict[str, Any] = {}
    for element in thresholds:
        if not isinstance(element.tag, str):
            continue  # comments and processing instructions
        tag = local_name(element.tag)
        if tag in _SC_GIPP_UNUSED:
            continue
        name = SC_GIPP_TAGS.get(tag)
        if name is None:
            raise ConfigurationError(f"{path}: unknown threshold {tag} in L2A_CAL_SC_GIPP.xml")
        text = (element.text or "").strip()
        try:
            changes[name] = float(text)
        except ValueError:
            raise ConfigurationError(f"{path}: threshold {tag} is not a number: {text!r}") from None
    return changes


def _read_user_gipp(root: Element, path: Path) -> dict[str, Any]:
    changes: dict[str, Any] = {}
    for rel, name in _USER_GIPP_PATHS.items():
        node: Element | None = root
        for part in rel.split("/"):
            node = _child(node, part) if node is not None else None
        if node is None:
            continue
        text = (node.text or "").strip()
        if not text:
            raise ConfigurationError(f"{path}: {rel} is empty")
        changes[name] = text
    return changes
