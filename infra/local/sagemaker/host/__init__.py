"""The local endpoint host: SageMaker Runtime + the fleets behind each endpoint.

A FastAPI/uvicorn server on 127.0.0.1 (``python -m infra.local.sagemaker.host --data-dir DIR --port N``,
started by the local stack as :mod:`infra.local.sagemaker.service` says; port 0 binds a free port and
reports it in the run dir):

- ``POST /endpoints/{name}/invocations`` is the SageMaker Runtime ``InvokeEndpoint`` API
  (path, ``Content-Type``, ``X-Amzn-SageMaker-Target-Variant`` / ``-Inference-Id`` / ... request
  headers, ``X-Amzn-Invoked-Production-Variant`` response header, rest-json error bodies with
  ``x-amzn-ErrorType``), so ``boto3.client("sagemaker-runtime", endpoint_url=...)`` works unchanged.
  Every request is checked against botocore's model of ``InvokeEndpoint`` as the service checks it
  (lengths, patterns: ``ValidationError``, 400, in the Coral wording). Requests are parsed with the
  DeepAR wire format (``deepar_format.parse_request``); a request the DeepAR container would refuse
  is a ``ModelError`` (HTTP 424, ``OriginalStatusCode`` 400) with the reason; an unknown endpoint or
  variant, a ``TargetModel`` (DeepAR endpoints are not multi-model endpoints) or an oversize body a
  ``ValidationError`` (400); a host shutting down ``ServiceUnavailable`` (503). A client's mistake
  is never a 5xx.
- ``GET /ping`` (container-style health), ``GET /metrics`` (Prometheus text: per-variant
  invocations, errors, latency percentiles, blue/green traffic share).

The parts, one module each:

- :mod:`.invocations`: the ``InvokeEndpoint`` request's checks and the Runtime's errors.
- :mod:`.routing`: which fleet (blue/green) and variant answer, and the fault-injection chaos hook.
- :mod:`.reconciler`: the control plane's desired state made real, and the blue/green state machine
  with alarm-driven rollback.
- :mod:`.capture`: Data Capture records in exactly SageMaker's format.
- :mod:`.metrics`: samples for the alarms, minutes for the local CloudWatch, ``/metrics``.
- :mod:`.server`: :class:`~.server.EndpointHost` (the parts together), the HTTP app, ``serve``.
"""
