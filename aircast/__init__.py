"""aircast: IoT air-quality forecasting MLOps on AWS and on one machine."""

__version__ = "0.1.0"
