"""STAND-IN for Raspberry Pi's lgpio, built by smartshelf's tests/arm64/run.sh (no GPIO)."""

STANDIN = True
MESSAGE = "python3-lgpio here is the smartshelf arm64 stage's stand-in package: no GPIO chip behind it"


class error(Exception):  # the real module's name
    pass


def gpiochip_open(*args, **kwargs):
    raise error(MESSAGE)


def __getattr__(name):
    # the real module's constants (SET_BIAS_DISABLE, ...) that gpiozero reads before opening the chip
    if name.isupper():
        return 0
    raise AttributeError(name)
