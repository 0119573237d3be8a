"""Slot LEDs. One gpiozero LED or PWMLED per slot; patterns: idle, recommended, identify (blink).

gpiozero picks lgpio on a Pi 5 and RPi.GPIO on older Pis; tests pass ``pin_factory=MockFactory()``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any, Literal, Protocol, runtime_checkable

from smartshelf.core.config import LedsConfig
from smartshelf.core.errors import SYSCALL_FILTER_HINT, ConfigError, HardwareUnavailable, is_eperm

logger = logging.getLogger(__name__)

IdleMode = Literal["off", "breathe", "on"]


@runtime_checkable
class Indicator(Protocol):
    def show(self, slots: Sequence[str]) -> None:
        """Light these slots (the recommended pattern); all others off."""

    def idle(self) -> None:
        """Back to the idle pattern (nobody in front of the shelf)."""

    def identify(self, slot: str, seconds: float = 5.0) -> None:
        """Blink one slot so staff can find it."""

    def set_slots(self, slot_pins: Mapping[str, int | None]) -> None:
        """The slot map changed (admin page): rewire."""

    def close(self) -> None: ...


class NullIndicator:
    """No LEDs at all."""

    def show(self, slots: Sequence[str]) -> None:
        pass

    def idle(self) -> None:
        pass

    def identify(self, slot: str, seconds: float = 5.0) -> None:
        pass

    def set_slots(self, slot_pins: Mapping[str, int | None]) -> None:
        pass

    def close(self) -> None:
        pass


class RecordingIndicator(NullIndicator):
    """Remembers every call: the demo's simulated LEDs, and what tests assert on."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, tuple[str, ...]]] = []
        self.lit: tuple[str, ...] = ()

    def show(self, slots: Sequence[str]) -> None:
        self.lit = tuple(slots)
        self.calls.append(("show", self.lit))

    def idle(self) -> None:
        self.lit = ()
        self.calls.append(("idle", ()))

    def identify(self, slot: str, seconds: float = 5.0) -> None:
        self.calls.append(("identify", (slot,)))


class TerminalIndicator(RecordingIndicator):
    """Simulated LEDs for machines without GPIO: one log line per change, e.g. ``[A1 *] [A2 .]``."""

    def __init__(self, slot_pins: Mapping[str, int | None] | None = None) -> None:
        super().__init__()
        self.slots = sorted(slot_pins or {})

    def set_slots(self, slot_pins: Mapping[str, int | None]) -> None:
        self.slots = sorted(slot_pins)

    def render(self) -> str:
        return " ".join(f"[{s} {'*' if s in self.lit else '.'}]" for s in self.slots) or "(no slots)"

    def show(self, slots: Sequence[str]) -> None:
        super().show(slots)
        logger.info("LEDs: %s", self.render())

    def idle(self) -> None:
        super().idle()
        logger.info("LEDs: idle")

    def identify(self, slot: str, seconds: float = 5.0) -> None:
        super().identify(slot, seconds)
        logger.info("LEDs: identify %s for %.0f s", slot, seconds)


class GpioIndicator:
    """Real LEDs through gpiozero, one per slot with a pin."""

    def __init__(
        self,
        slot_pins: Mapping[str, int | None],
        *,
        pwm: bool = True,
        active_high: bool = True,
        idle_mode: IdleMode = "breathe",
        pin_factory: Any = None,
    ) -> None:
        try:
            import gpiozero
        except ImportError as exc:  # pragma: no cover - gpiozero is a hard dependency
            raise HardwareUnavailable(f"gpiozero is not installed ({exc}); run setup.sh again") from exc
        self._gpiozero = gpiozero
        self.pwm = pwm
        self.active_high = active_high
        self.idle_mode = idle_mode
        self.pin_factory = pin_factory
        self.leds: dict[str, Any] = {}
        self._pins: dict[str, int] = {}
        self.lit: tuple[str, ...] = ()
        self.set_slots(slot_pins)

    def _open(self, slot: str, pin: int) -> Any:
        cls = self._gpiozero.PWMLED if self.pwm else self._gpiozero.LED
        try:
            return cls(pin, active_high=self.active_high, initial_value=False, pin_factory=self.pin_factory)
        except (self._gpiozero.GPIOZeroError, OSError) as exc:
            if is_eperm(exc):
                logger.error("slot %s, GPIO%d: %s", slot, pin, SYSCALL_FILTER_HINT)
            raise HardwareUnavailable(
                f"slot {slot}: LED on GPIO{pin} could not be opened ({exc}); check the pin number, that it is "
                "not used twice, that the service user is in the 'gpio' group, and on a Pi 5 that "
                "python3-lgpio is installed" + (f"; {SYSCALL_FILTER_HINT}" if is_eperm(exc) else "")
            ) from exc

    def set_slots(self, slot_pins: Mapping[str, int | None]) -> None:
        wanted = {slot: pin for slot, pin in slot_pins.items() if pin is not None}
        for slot in list(self.leds):
            if wanted.get(slot) != self._pins.get(slot):
                self.leds.pop(slot).close()
                del self._pins[slot]
        for slot, pin in sorted(wanted.items()):
            if slot not in self.leds:
                self.leds[slot] = self._open(slot, pin)
                self._pins[slot] = pin

    def show(self, slots: Sequence[str]) -> None:
        self.lit = tuple(s for s in slots if s in self.leds)
        for slot, led in self.leds.items():
            if slot in self.lit:
                led.on()
            else:
                led.off()

    def idle(self) -> None:
        self.lit = ()
        for led in self.leds.values():
            if self.idle_mode == "breathe" and self.pwm:
                led.pulse(fade_in_time=1.5, fade_out_time=1.5)
            elif self.idle_mode == "on":
                led.on()
            else:
                led.off()

    def identify(self, slot: str, seconds: float = 5.0) -> None:
        led = self.leds.get(slot)
        if led is None:
            raise ConfigError(f"slot {slot!r} has no LED pin; known slots: {', '.join(sorted(self.leds)) or 'none'}")
        led.blink(on_time=0.2, off_time=0.2, n=max(1, int(seconds / 0.4)), background=True)

    def close(self) -> None:
        for led in self.leds.values():
            led.close()
        self.leds.clear()
        self._pins.clear()


def create_indicator(cfg: LedsConfig, slot_pins: Mapping[str, int | None], *, pin_factory: Any = None) -> Indicator:
    if cfg.type == "gpio":
        return GpioIndicator(
            slot_pins, pwm=cfg.pwm, active_high=cfg.active_high, idle_mode=cfg.idle, pin_factory=pin_factory
        )
    if cfg.type == "terminal":
        return TerminalIndicator(slot_pins)
    if cfg.type == "none":
        return NullIndicator()
    raise ConfigError(f"leds.type = {cfg.type!r} is not an LED backend")
