"""TinyML device fleet simulator: virtual MCUs that infer locally and publish over MQTT."""

__version__ = "1.0.0"
