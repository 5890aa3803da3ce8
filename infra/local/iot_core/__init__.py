"""Local AWS IoT Core stand-in: mosquitto with mutual TLS and a per-thing ACL."""
