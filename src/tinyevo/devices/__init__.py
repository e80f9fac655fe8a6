"""Device profiles, byte sizes and resource limits.

Importing this package registers the built-in profiles (``builtin.toml``): ``stm32f746``, ``stm32f412``,
``stm32h743``, ``nrf52840``, ``rp2040``, ``esp32s3``. Add your own with :func:`load_devices`.
"""

from __future__ import annotations

from tinyevo.devices.limits import METRICS, Limits, describe_bound
from tinyevo.devices.profiles import (
    COEFFICIENTS,
    CORES,
    DEVICES,
    CoreModel,
    DeviceProfile,
    get_core,
    get_device,
    load_devices,
    parse_devices,
    read_device_file,
    register_device_text,
)
from tinyevo.devices.sizes import format_size, parse_size

__all__ = [
    "COEFFICIENTS", "CORES", "DEVICES", "METRICS", "CoreModel", "DeviceProfile", "Limits", "describe_bound",
    "format_size", "get_core", "get_device", "load_devices", "parse_devices", "parse_size", "read_device_file",
    "register_device_text",
]
