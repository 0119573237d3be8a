"""smartshelf device: camera -> face -> age/gender -> recommendation -> LEDs and screen."""

__version__ = "0.1.0"
