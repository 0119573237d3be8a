"""STAND-IN for Raspberry Pi's picamera2, built by smartshelf's tests/arm64/run.sh (no camera)."""

STANDIN = True
MESSAGE = "python3-picamera2 here is the smartshelf arm64 stage's stand-in package: no camera behind it"


class Picamera2:
    def __init__(self, *args, **kwargs):
        raise RuntimeError(MESSAGE)
