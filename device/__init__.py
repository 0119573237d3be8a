"""smartshelf device: camera -> face -> age/gender -> recommendation -> LEDs and screen."""
