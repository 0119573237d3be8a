"""Sensors: cameras and presence sensors behind small Protocols, picked by the config's ``type``.

Backends are imported lazily by the factories, so importing this package never touches hardware.
"""

from __future__ import annotations

from device.sensors.camera import Camera, ReconnectingCamera, create_camera
from device.sensors.presence import PresenceSensor, create_presence

__all__ = ["Camera", "PresenceSensor", "ReconnectingCamera", "create_camera", "create_presence"]
