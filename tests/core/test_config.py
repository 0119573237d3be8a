"""Config validation: every bad key or value is named in the error."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from smartshelf.core.config import Config, ConfigError, load_config, parse_config

REPO = Path(__file__).resolve().parents[2]


def test_defaults_are_valid() -> None:
    config = load_config(None)
    assert config.camera.type == "picamera2"
    assert config.kiosk.host == "127.0.0.1"
    assert config.factors_path == config.data_dir / "factors.npz"


@pytest.mark.parametrize(
    ("raw", "named"),
    [
        ({"camera": {"fps": "fast"}}, "camera.fps"),
        ({"camera": {"fps": 0}}, "camera.fps"),
        ({"camera": {"type": "webcam"}}, "camera.type"),
        ({"camera": {"colour": True}}, "camera.colour"),
        ({"cameras": {}}, "[cameras]"),
        ({"slots": {"A1": 99}}, "slots.A1"),
        ({"slots": {"A1": 17, "A2": 17}}, "pin 17"),
        ({"slots": {"A1": True}}, "slots.A1"),
        ({"presence": {"type": "pir", "pin": 1}}, "presence.pin"),
        ({"presence": {"type": "pir", "pin": 17}, "slots": {"A1": 17}}, "slots.A1"),
        ({"visit": {"min_confidence": 1.5}}, "visit.min_confidence"),
        ({"leds": {"pwm": "yes"}}, "leds.pwm"),
        ({"kiosk": {"host": "0.0.0.0"}}, "kiosk.host"),
        ({"camera": {"type": "replay"}}, "camera.source"),
        ({"recommend": {"top_n": 0}}, "recommend.top_n"),
    ],
)
def test_bad_values_name_the_key(raw: dict, named: str) -> None:
    with pytest.raises(ConfigError, match=named.replace("[", r"\[").replace("]", r"\]")):
        parse_config(raw)


def test_file_errors_name_the_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope.toml"
    with pytest.raises(ConfigError, match="nope.toml"):
        load_config(missing)
    bad = tmp_path / "bad.toml"
    bad.write_text("[camera\nfps = 3")
    with pytest.raises(ConfigError, match="bad.toml: not valid TOML"):
        load_config(bad)
    wrong = tmp_path / "wrong.toml"
    wrong.write_text("[camera]\nfps = -1\n")
    with pytest.raises(ConfigError, match=r"wrong.toml: camera.fps"):
        load_config(wrong)


def test_example_config_is_valid_and_documents_every_key() -> None:
    example = REPO / "config.example.toml"
    config = load_config(example)
    assert isinstance(config, Config)
    text = example.read_text()
    raw = tomllib.loads(text)
    import dataclasses

    for section in dataclasses.fields(Config):
        if section.name in ("source", "slots"):
            continue
        assert f"[{section.name}]" in text, f"config.example.toml lacks [{section.name}]"
        for key in dataclasses.fields(getattr(Config(), section.name)):
            assert f"{key.name} =" in text, f"config.example.toml does not document {section.name}.{key.name}"
    assert "slots" in raw


@pytest.mark.parametrize(
    ("camera", "message"),
    [
        ("full_height = 0", "must both be set"),
        ("full_width = 320\nfull_height = 240", "must be at least"),
        ("full_width = 1920\nfull_height = 1080", "aspect ratio"),
        ("hfov_deg = 5", "camera.hfov_deg"),
    ],
)
def test_two_stream_sizes_are_checked(tmp_path: Path, camera: str, message: str) -> None:
    path = tmp_path / "c.toml"
    path.write_text(f"[camera]\n{camera}\n")
    with pytest.raises(ConfigError, match=message):
        load_config(path)
    path.write_text("[camera]\nfull_width = 1280\nfull_height = 960\n")
    assert load_config(path).camera.full_size == (1280, 960)


def test_one_resolver_and_a_source_that_reloads_on_change(tmp_path, monkeypatch, caplog) -> None:
    from smartshelf.core import config as cfgmod

    missing = tmp_path / "etc" / "config.toml"
    monkeypatch.setattr(cfgmod, "DEFAULT_CONFIG_PATH", missing)
    assert cfgmod.resolve_config_path(None) is None  # no file: the defaults
    assert cfgmod.resolve_config_path("x.toml") == cfgmod.Path("x.toml")
    missing.parent.mkdir()
    missing.write_text('[shelf]\nname = "A"\n')
    assert cfgmod.resolve_config_path(None) == missing

    source = cfgmod.ConfigSource()
    assert source.get().shelf.name == "A"
    missing.write_text('[shelf]\nname = "Bb"\n')  # a different size: seen as a change
    assert source.get().shelf.name == "Bb" and source.error is None
    missing.write_text("[shelf]\nname = 3\n")
    assert source.get().shelf.name == "Bb"  # the last good config stays
    assert source.error is not None and "shelf.name" in source.error
    assert "keeping the last good one" in caplog.text
