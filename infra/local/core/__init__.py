"""What every local AWS stand-in shares: AWS-shaped errors and real botocore clients
answered in-process (request validation and modeled exceptions from botocore's own
service models)."""

from infra.local.core.botoclient import local_client, response_metadata
from infra.local.core.errors import ServiceError

__all__ = ["ServiceError", "local_client", "response_metadata"]
