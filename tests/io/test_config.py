"""SceneClassificationConfig: Sen2Cor 2.8 defaults, Sen2Cor GIPP files, project TOML/JSON files."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import dask.base
import pytest

from sen2core.config import SC_GIPP_TAGS, SceneClassificationConfig
from sen2core.errors import ConfigurationError

GIPP = Path(__file__).parents[1] / "data" / "gipp"

# The L2A_CAL_SC_GIPP.xml defaults of Sen2Cor 2.8 (SEN2COR_REFERENCE.md A3, GIPP table).
SEN2COR_28 = {
    "T1_B02": 0.18,
    "T2_B02": 0.22,
    "T1_B04": 0.06,
    "T2_B04": 0.25,
    "T1_B8A": 0.15,
    "T2_B8A": 0.35,
    "T1_B10": 0.012,
    "T2_B10": 0.035,
    "T1_B12": 0.25,
    "T_B02_B12": 0.018,
    "T_CLOUD_LP": 0.0,
    "T_CLOUD_MP": 0.20,
    "T_CLOUD_HP": 0.80,
    "T1_NDSI_CLD": -0.24,
    "T2_NDSI_CLD": -0.16,
    "T1_NDSI_SNW": 0.35,
    "T2_NDSI_SNW": 0.50,
    "T1_NDVI": 0.36,
    "T2_NDVI": 0.42,
    "T1_SNOW": 0.12,
    "T1_R_B02_B04": 0.85,
    "T2_R_B02_B04": 0.95,
    "T1_R_B8A_B03": 1.50,
    "T2_R_B8A_B03": 2.50,
    "T1_R_B8A_B11": 0.90,
    "T2_R_B8A_B11": 1.10,
    "T11_B02": -0.40,
    "T12_B02": 0.46,
    "T11_R_B02_B11": 0.70,
    "T12_R_B02_B11": 1.0,
    "T21_R_B02_B11": 2.00,
    "T22_R_B02_B11": 4.00,
    "T21_B12": 0.1,
    "T22_B12": -0.09,
}


def test_defaults_are_sen2cor_28() -> None:
    config = SceneClassificationConfig()
    assert set(SEN2COR_28) == set(SC_GIPP_TAGS)
    for tag, value in SEN2COR_28.items():
        assert getattr(config, SC_GIPP_TAGS[tag]) == pytest.approx(value), tag
    # Hard-coded constants of L2A_SceneClass.py and the user GIPP default (A3, A6).
    assert config.shadow_reference == (0.12, 0.08, 0.06, 0.10, 0.0545, 0.0255)
    assert config.median_filter == 0
    assert config.cloud_buffer_m == 0.0


def test_sen2cor_preset_turns_improvements_off() -> None:
    config = SceneClassificationConfig.sen2cor()
    assert not (config.bright_surface_fix or config.thin_cloud_fix or config.view_parallax)
    assert SceneClassificationConfig.sen2cor(cloud_buffer_m=100).cloud_buffer_m == 100.0


def test_from_sc_gipp_reads_thresholds() -> None:
    config = SceneClassificationConfig.from_gipp(GIPP / "L2A_CAL_SC_GIPP.xml")
    assert config.t2_b04 == 0.30
    assert config.t_cloud_mp == 0.25
    assert config.t2_ndvi == 0.40
    assert config.t1_b04 == 0.06
    # Fields no GIPP entry sets keep their value.
    assert config.cloud_buffer_m == SceneClassificationConfig().cloud_buffer_m


@pytest.mark.parametrize("name", ["sen2cor_L2A_GIPP_DEM_ON.xml", "sen2cor_L2A_GIPP_DEM_OFF.xml"])
def test_from_user_gipp_reads_switches(name: str) -> None:
    config = SceneClassificationConfig.from_gipp(GIPP / name)
    assert config.median_filter == 0
    assert config.handle_l1c_quality_mask is True


def test_gipps_apply_in_order(tmp_path: Path) -> None:
    user = (GIPP / "sen2cor_L2A_GIPP_DEM_ON.xml").read_text(encoding="utf-8")
    user = user.replace("<Median_Filter>0</Median_Filter>", "<Median_Filter>3</Median_Filter>")
    user = user.replace("<Handle_L1C_QLT_Mask>TRUE<", "<Handle_L1C_QLT_Mask>FALSE<")
    path = tmp_path / "L2A_GIPP.xml"
    path.write_text(user, encoding="utf-8")
    config = SceneClassificationConfig.from_gipp(GIPP / "L2A_CAL_SC_GIPP.xml", path)
    assert (config.median_filter, config.handle_l1c_quality_mask, config.t2_b04) == (3, False, 0.30)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("<Other_File><A>1</A></Other_File>", "not a Sen2Cor"),
        (
            "<Level-2A_CAL_SC_Ground_Image_Processing_Parameter><Scene_Classification><Thresholds>"
            "<T1_B99>0.1</T1_B99></Thresholds></Scene_Classification>"
            "</Level-2A_CAL_SC_Ground_Image_Processing_Parameter>",
            "unknown threshold T1_B99",
        ),
        (
            "<Level-2A_CAL_SC_Ground_Image_Processing_Parameter><Scene_Classification><Thresholds>"
            "<T1_B04>low</T1_B04></Thresholds></Scene_Classification>"
            "</Level-2A_CAL_SC_Ground_Image_Processing_Parameter>",
            "not a number",
        ),
        (
            "<Level-2A_CAL_SC_Ground_Image_Processing_Parameter><Scene_Classification><Thresholds>"
            "<T1_B04>0.3</T1_B04></Thresholds></Scene_Classification>"
            "</Level-2A_CAL_SC_Ground_Image_Processing_Parameter>",
            r"t1_b04 \(0.3\) must be below t2_b04",
        ),
        ("<Level-2A_CAL_SC_Ground_Image_Processing_Parameter/>", "no Scene_Classification/Thresholds"),
        (
            "<Level-2A_Ground_Image_Processing_Parameter><Scene_Classification><Filters>"
            "<Median_Filter>4</Median_Filter></Filters></Scene_Classification>"
            "</Level-2A_Ground_Image_Processing_Parameter>",
            "median_filter must be 0 or an odd size",
        ),
        ("<Level-2A_CAL_SC_Ground_Image_Processing_Parameter><unclosed>", "not well-formed"),
        ('<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaa">]><x>&a;</x>', "unsafe XML"),
    ],
)
def test_bad_gipp(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "gipp.xml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigurationError, match=message):
        SceneClassificationConfig.from_gipp(path)


def test_missing_gipp_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="cannot read"):
        SceneClassificationConfig.from_gipp(tmp_path / "absent.xml")
    with pytest.raises(ConfigurationError, match="at least one"):
        SceneClassificationConfig.from_gipp()


def test_from_toml_and_json(tmp_path: Path) -> None:
    toml = tmp_path / "sen2core.toml"
    toml.write_text(
        "[scene_classification]\ncloud_buffer_m = 120\nt2_b04 = 0.3\nview_parallax = false\n"
        "cloud_buffer_classes = [8, 9, 10]\n",
        encoding="utf-8",
    )
    config = SceneClassificationConfig.from_file(toml)
    assert (config.cloud_buffer_m, config.t2_b04, config.view_parallax) == (120.0, 0.3, False)
    assert config.cloud_buffer_classes == (8, 9, 10)
    flat = tmp_path / "flat.json"
    flat.write_text(json.dumps({"median_filter": 3, "shadow_reference": [0.1] * 6}), encoding="utf-8")
    config = SceneClassificationConfig.from_file(flat, base=config)
    assert (config.median_filter, config.cloud_buffer_m, config.shadow_reference) == (3, 120.0, (0.1,) * 6)


def test_round_trip_through_json(tmp_path: Path) -> None:
    original = SceneClassificationConfig(cloud_buffer_m=60.0, median_filter=5)
    path = tmp_path / "c.json"
    path.write_text(json.dumps(original.to_dict()), encoding="utf-8")
    assert SceneClassificationConfig.from_file(path) == original


@pytest.mark.parametrize(
    ("suffix", "text", "message"),
    [
        (".toml", "cloud_buffer_m = 'wide'", "cloud_buffer_m must be a number"),
        (".toml", "no_such_threshold = 1", "unknown scene classification setting 'no_such_threshold'"),
        (".toml", "median_filter = 2.5", "median_filter must be an integer"),
        (".toml", "view_parallax = 1", "view_parallax must be a boolean"),
        (".toml", "[other]\nx = 1\n[scene_classification]\n", "unknown configuration section"),
        (".toml", "cloud_buffer_m = -5", r"config.toml: cloud_buffer_m must be in \[0, 5000\] m, got -5.0"),
        (".json", "[1, 2]", "must be a table/object"),
        (".json", "{", "cannot parse"),
        (".yaml", "a: 1", "must be .toml or .json"),
    ],
)
def test_bad_config_file(tmp_path: Path, suffix: str, text: str, message: str) -> None:
    path = tmp_path / f"config{suffix}"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigurationError, match=message):
        SceneClassificationConfig.from_file(path)


def test_replace_checks_values() -> None:
    config = SceneClassificationConfig()
    assert config.replace(t2_b04="0.3").t2_b04 == 0.3
    with pytest.raises(ConfigurationError, match="unknown"):
        config.replace(t9=1)
    with pytest.raises(ConfigurationError, match="must be finite"):
        config.replace(t2_b04=float("nan"))
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.t1_b04 = 0.1  # type: ignore[misc]


def test_dask_token_follows_values() -> None:
    a, b = SceneClassificationConfig(), SceneClassificationConfig()
    assert dask.base.tokenize(a) == dask.base.tokenize(b)
    assert dask.base.tokenize(a) != dask.base.tokenize(a.replace(cloud_buffer_m=10))
