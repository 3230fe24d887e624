"""SceneClassificationConfig: Sen2Cor 2.8 defaults, Sen2Cor GIPP files, project TOML/JSON files."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import dask.base
import pytest

from sen2core.config import SC_GIPP_TAGS, SceneClassificationConfig
from sen2core.errors import ConfigurationError
from sen2core.io.read.gipp import scene_classification_from_gipp

GIPP = Path(__file__).parents[1] / "data" / "gipp"

# The L2A_CAL_SC_GIPP.xml defaults of Sen2Cor 2.8 (the file as Sen2Cor 2.8 ships it).
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
    # Hard-coded constants of Sen2Cor 2.8's L2A_SceneClass.py and the default of its user L2A_GIPP.xml.
    assert config.shadow_reference == (0.12, 0.08, 0.06, 0.10, 0.0545, 0.0255)
    assert config.median_filter == 0
    assert config.cloud_buffer_m == 0.0


def test_sen2cor_preset_turns_improvements_off() -> None:
    config = SceneClassificationConfig.sen2cor()
    assert not (config.bright_surface_fix or config.thin_cloud_fix or config.view_parallax)
    assert SceneClassificationConfig.sen2cor(cloud_buffer_m=100).cloud_buffer_m == 100.0


def test_from_sc_gipp_reads_thresholds() -> None:
    config = scene_classification_from_gipp(GIPP / "L2A_CAL_SC_GIPP.xml")
    assert config.t2_b04 == 0.30
    assert config.t_cloud_mp == 0.25
    assert config.t2_ndvi == 0.40
    assert config.t1_b04 == 0.06
    # Fields no GIPP entry sets keep their value.
    assert config.cloud_buffer_m == SceneClassificationConfig().cloud_buffer_m


@pytest.mark.parametrize("name", ["sen2cor_L2A_GIPP_DEM_ON.xml", "sen2cor_L2A_GIPP_DEM_OFF.xml"])
def test_from_user_gipp_reads_switches(name: str) -> None:
    config = scene_classification_from_gipp(GIPP / name)
    assert config.median_filter == 0
    assert config.handle_l1c_quality_mask is True


def test_gipps_apply_in_order(tmp_path: Path) -> None:
    user = (GIPP / "sen2cor_L2A_GIPP_DEM_ON.xml").read_text(encoding="utf-8")
    user = user.replace("<Median_Filter>0</Median_Filter>", "<Median_Filter>3</Median_Filter>")
    user = user.replace("<Handle_L1C_QLT_Mask>TRUE<", "<Handle_L1C_QLT_Mask>FALSE<")
    path = tmp_path / "L2A_GIPP.xml"
    path.write_text(user, encoding="utf-8")
    config = scene_classification_from_gipp(GIPP / "L2A_CAL_SC_GIPP.xml", path)
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
        scene_classification_from_gipp(path)


def test_missing_gipp_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="cannot read"):
        scene_classification_from_gipp(tmp_path / "absent.xml")
    with pytest.raises(ConfigurationError, match="at least one"):
        scene_classification_from_gipp()


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


# One breach of each rule of the settings tables, and the message it gives (a rule is
# identified by its table and its place in it, so that a rule without a case is seen).
def _rule_cases() -> list[tuple[str, int, object, str]]:
    from sen2core.correction import CorrectionConfig
    from sen2core.kernels.aot import DDVSettings
    from sen2core.kernels.cirrus import CirrusSettings
    from sen2core.run import ProcessingConfig

    sc = SceneClassificationConfig
    sc_cases = [(f"t1_{b}", f"t2_{b}") for b in ("b02", "b04", "b8a", "b10", "ndsi_cld", "ndsi_snw", "ndvi",
                                                  "r_b02_b04", "r_b8a_b03", "r_b8a_b11")]  # fmt: skip
    sc_cases += [("t11_r_b02_b11", "t12_r_b02_b11"), ("t21_r_b02_b11", "t22_r_b02_b11"),
                 ("t1_r_b04_b11", "t2_r_b04_b11"), ("cloud_height_min_m", "cloud_height_max_m")]  # fmt: skip
    cases: list[tuple[str, int, object, str]] = []
    for i, (a, b) in enumerate(sc_cases):
        high = getattr(sc(), b)
        # The start moved just above the end (both in range): the ramp is inverted.
        low = high + 0.01 if a != "cloud_height_min_m" else high + 100.0
        message = f"scene classification: {a} ({low}) must be below {b} ({high})"
        cases.append(("sc", i, lambda a=a, low=low: sc(**{a: low}), message))
    n = len(sc_cases)
    cases += [
        ("sc", n, lambda: sc(t_cloud_lp=0.5), "scene classification: need t_cloud_lp <= t_cloud_mp <= t_cloud_hp"),
        ("sc", n + 1, lambda: sc(median_filter=4),
         "scene classification: median_filter must be 0 or an odd size, got 4"),
        ("sc", n + 2, lambda: sc(shadow_reference=(0.1,) * 5),  # type: ignore[arg-type]
         "scene classification: shadow_reference needs 6 values (B2 B3 B4 B8A B11 B12)"),
        ("sc", n + 3, lambda: sc(shadow_match_window_px=4),
         "scene classification: shadow_match_window_px must be odd, got 4"),
        ("ac", 0, lambda: CorrectionConfig(aerosol="desert"),
         "atmospheric correction: aerosol must be continental, maritime or auto, not 'desert'"),
        ("ac", 1, lambda: CorrectionConfig(ddv=DDVSettings(b12_lower=0.2, b12_upper=(0.25, 0.15))),
         "atmospheric correction: ddv.b12_upper needs thresholds above ddv.b12_lower (0.2), got (0.25, 0.15)"),
        ("ac", 1, lambda: CorrectionConfig(ddv=DDVSettings(b12_upper=())),
         r"atmospheric correction: ddv.b12_upper needs thresholds above ddv.b12_lower \(.*\), got \(\)"),
        ("ac", 2, lambda: CorrectionConfig(cirrus=CirrusSettings(clear_range=(0.3, 0.2))),
         "atmospheric correction: cirrus.clear_range must be (low, high) with low below high, got (0.3, 0.2)"),
        ("run", 0, lambda: ProcessingConfig(resolution=30), "processing: resolution must be 10, 20 or 60, not 30"),
        ("run", 1, lambda: ProcessingConfig(format="zarr"), "processing: format must be cog or safe, not 'zarr'"),
    ]  # fmt: skip
    return cases


RULE_CASES = _rule_cases()


@pytest.mark.parametrize(("table", "index", "build", "message"), RULE_CASES, ids=[c[3][:60] for c in RULE_CASES])
def test_each_rule_refuses_its_breach(table: str, index: int, build: object, message: str) -> None:
    import re

    assert callable(build)
    with pytest.raises(ConfigurationError) as raised:
        build()
    pattern = message if "\\" in message else re.escape(message)
    assert re.fullmatch(pattern, str(raised.value)), str(raised.value)


def test_every_rule_has_a_case_and_names_real_settings() -> None:
    from sen2core.config import SCENE_CLASSIFICATION_RULES
    from sen2core.correction import CORRECTION_RULES, CorrectionConfig
    from sen2core.run import PROCESSING_RULES, ProcessingConfig
    from sen2core.settings import Ordered

    tables = {"sc": SCENE_CLASSIFICATION_RULES, "ac": CORRECTION_RULES, "run": PROCESSING_RULES}
    covered = {(t, i) for t, i, _, _ in RULE_CASES}
    assert covered == {(t, i) for t, rules in tables.items() for i in range(len(rules))}
    # The defaults satisfy every rule, and every name a rule reads is a setting.
    defaults = {"sc": SceneClassificationConfig(), "ac": CorrectionConfig(), "run": ProcessingConfig()}
    for t, rules in tables.items():
        for rule in rules:
            assert rule.problem(defaults[t]) is None
            for name in rule.names if isinstance(rule, Ordered) else (rule.name,):
                obj: object = defaults[t]
                for part in name.split("."):
                    obj = getattr(obj, part)


def test_an_ozone_of_zero_means_the_products_own() -> None:
    from sen2core.correction import CorrectionConfig
    from sen2core.errors import SettingRangeError

    assert CorrectionConfig(ozone_cm_atm=0.0).ozone_cm_atm == 0.0
    with pytest.raises(SettingRangeError, match=r"ozone_cm_atm must be in \[0.2, 0.5\] cm-atm"):
        CorrectionConfig(ozone_cm_atm=0.1)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("cloud_buffer_classes = ['eight', 9]", "cloud_buffer_classes must be a list of integers, got ['eight', 9]"),
        ("cloud_buffer_classes = [8.5]", "cloud_buffer_classes must be a list of integers, got [8.5]"),
        ("cloud_buffer_classes = 8", "cloud_buffer_classes must be a list, got 8"),
        (
            "shadow_reference = ['a', 1, 1, 1, 1, 1]",
            "shadow_reference must be a list of numbers, got ['a', 1, 1, 1, 1, 1]",
        ),
        ("median_filter = true", "median_filter must be an integer, got True"),
        ("cloud_buffer_m = true", "cloud_buffer_m must be a number, got True"),
        ("view_parallax = 'maybe'", "view_parallax must be a boolean, got 'maybe'"),
    ],
)
def test_values_of_the_wrong_type_name_the_setting(tmp_path: Path, text: str, message: str) -> None:
    """Every converter refuses with the file, the setting and what it expected (words in a list of
    integers once escaped as a bare ValueError)."""
    path = tmp_path / "config.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigurationError) as raised:
        SceneClassificationConfig.from_file(path)
    assert str(raised.value) == f"{path}: {message}"
    assert SceneClassificationConfig().replace(cloud_buffer_classes=["8", 9.0]).cloud_buffer_classes == (8, 9)
