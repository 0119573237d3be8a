"""Display: slot LEDs (Indicator) and the shelf screen (Screen), each behind a small Protocol."""

from __future__ import annotations

from device.display.leds import (
    GpioIndicator,
    Indicator,
    NullIndicator,
    RecordingIndicator,
    TerminalIndicator,
    create_indicator,
)
from device.display.screen import KioskScreen, NullScreen, Screen

__all__ = [
    "GpioIndicator",
    "Indicator",
    "KioskScreen",
    "NullIndicator",
    "NullScreen",
    "RecordingIndicator",
    "Screen",
    "TerminalIndicator",
    "create_indicator",
]
