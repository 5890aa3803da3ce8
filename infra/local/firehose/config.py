"""The configuration of one local delivery stream (the IoT rule's Firehose action and the stream)."""

from __future__ import annotations

import argparse
from dataclasses import dataclass

from infra.local.core.config import LocalConfig


@dataclass(frozen=True)
class DeliveryConfig:
    """Stream ``stream`` delivering to ``s3://bucket``, reading the local IoT Core at ``mqtt_host:mqtt_port``,
    with Firehose's buffering hints (size in MiB, interval in seconds)."""

    local: LocalConfig
    stream: str
    bucket: str
    mqtt_host: str = "127.0.0.1"
    mqtt_port: int = 8883
    buffer_mib: float = 5.0
    buffer_seconds: float = 300.0

    def argv(self) -> list[str]:
        """The arguments that give the delivery process exactly this configuration."""
        return [*self.local.argv(), *self.stream_arguments()]

    def stream_arguments(self) -> list[str]:
        """The stream's own arguments (:meth:`argv` without the emulator's)."""
        return ["--stream", self.stream, "--bucket", self.bucket, "--mqtt-host", self.mqtt_host,
                "--mqtt-port", str(self.mqtt_port), "--buffer-mib", repr(float(self.buffer_mib)),
                "--buffer-seconds", repr(float(self.buffer_seconds))]

    @staticmethod
    def add_arguments(parser: argparse.ArgumentParser) -> None:
        """Add the emulator's arguments and the stream's to ``parser``."""
        LocalConfig.add_arguments(parser)
        parser.add_argument("--stream", required=True, help="delivery stream name")
        parser.add_argument("--bucket", required=True, help="destination bucket (local S3)")
        parser.add_argument("--mqtt-host", default="127.0.0.1", help="the local IoT Core's host")
        parser.add_argument("--mqtt-port", type=int, default=8883, help="the local IoT Core's port")
        parser.add_argument("--buffer-mib", type=float, default=5.0, help="buffering hint: size (MiB)")
        parser.add_argument("--buffer-seconds", type=float, default=300.0, help="buffering hint: interval (s)")

    @classmethod
    def from_arguments(cls, args: argparse.Namespace) -> DeliveryConfig:
        """The configuration :meth:`add_arguments` parsed."""
        return cls(LocalConfig.from_arguments(args), args.stream, args.bucket, args.mqtt_host, args.mqtt_port,
                   args.buffer_mib, args.buffer_seconds)
