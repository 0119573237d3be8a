"""Slot LEDs through gpiozero's MockFactory, and the simulated backends."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TypeVar

import pytest
from gpiozero.pins.mock import MockFactory, MockPWMPin

from device.display import GpioIndicator, NullIndicator, TerminalIndicator, create_indicator
from smartshelf.core.config import LedsConfig
from smartshelf.core.errors import ConfigError, HardwareUnavailable

T = TypeVar("T")


@pytest.fixture
def factory() -> MockFactory:
    return MockFactory(pin_class=MockPWMPin)


def test_show_lights_only_the_recommended_slots(factory: MockFactory) -> None:
    leds = create_indicator(LedsConfig(type="gpio", pwm=True), {"A1": 17, "A2": 27, "B1": 22}, pin_factory=factory)
    leds.show(["A2", "B1"])
    assert factory.pin(27).state == 1 and factory.pin(22).state == 1
    assert factory.pin(17).state == 0
    leds.show(["A1"])
    assert factory.pin(17).state == 1 and factory.pin(27).state == 0
    leds.close()
    leds.close()  # safe twice


def poll(read: Callable[[], T], done: Callable[[T], bool], timeout_s: float = 10.0) -> T:
    """Read until ``done`` (the LEDs' own threads run on the wall clock); the last value at the deadline."""
    deadline = time.monotonic() + timeout_s
    value = read()
    while not done(value) and time.monotonic() < deadline:
        time.sleep(0.02)
        value = read()
    return value


def test_idle_breathes_and_identify_blinks(factory: MockFactory) -> None:
    leds = GpioIndicator({"A1": 17, "A2": 27}, pwm=True, idle_mode="breathe", pin_factory=factory)
    factory.pin(17).clear_states()
    leds.idle()
    values = poll(lambda: {round(s.state, 2) for s in factory.pin(17).states}, lambda v: len(v) > 2)
    assert len(values) > 2, f"breathing changes the brightness, got {values}"
    leds.show([])
    factory.pin(27).clear_states()
    leds.identify("A2", seconds=0.8)
    states = poll(lambda: [s.state for s in factory.pin(27).states], lambda v: v.count(1) >= 2)
    assert states.count(1) >= 2, f"identify blinks the slot: {states}"
    with pytest.raises(ConfigError, match="B9"):
        leds.identify("B9")
    leds.close()


def test_plain_leds_and_active_low(factory: MockFactory) -> None:
    leds = GpioIndicator({"A1": 17}, pwm=False, active_high=False, idle_mode="off", pin_factory=factory)
    leds.show(["A1"])
    assert factory.pin(17).state == 0, "active-low LED is lit by driving the pin low"
    leds.idle()
    assert factory.pin(17).state == 1
    leds.close()


def test_rewiring_moves_an_led_to_its_new_pin(factory: MockFactory) -> None:
    leds = GpioIndicator({"A1": 17}, pwm=False, pin_factory=factory)
    leds.set_slots({"A1": 5, "A2": 6})
    leds.show(["A1", "A2"])
    assert factory.pin(5).state == 1 and factory.pin(6).state == 1
    assert factory.pin(17).state == 0
    leds.close()


def test_pin_in_use_names_the_slot(factory: MockFactory) -> None:
    from gpiozero import LED

    busy = LED(17, pin_factory=factory)
    with pytest.raises(HardwareUnavailable, match="slot A1: LED on GPIO17"):
        GpioIndicator({"A1": 17}, pwm=False, pin_factory=factory)
    busy.close()


def test_terminal_and_null_backends(caplog: pytest.LogCaptureFixture) -> None:
    leds = create_indicator(LedsConfig(type="terminal"), {"A1": 5, "A2": 6})
    assert isinstance(leds, TerminalIndicator)
    with caplog.at_level(logging.INFO):
        leds.show(["A2"])
    assert "[A1 .] [A2 *]" in caplog.text
    assert isinstance(create_indicator(LedsConfig(type="none"), {}), NullIndicator)


def test_an_eperm_points_at_the_system_call_filter(caplog: pytest.LogCaptureFixture) -> None:
    """A GPIO library refused by smartshelf-device.service's SystemCallFilter=~@resources gets EPERM:
    the error and the log say so and how to check, instead of a bare "Operation not permitted"."""

    class Refusing(MockFactory):
        def pin(self, spec, **kwargs):  # type: ignore[override]
            raise PermissionError(1, "Operation not permitted")

    with caplog.at_level(logging.ERROR), pytest.raises(HardwareUnavailable, match="SystemCallFilter") as err:
        GpioIndicator({"A1": 17}, pwm=False, pin_factory=Refusing())
    assert "SystemCallLog=@resources" in str(err.value)
    assert any("EPERM" in r.getMessage() for r in caplog.records)
