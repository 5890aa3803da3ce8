"""AWS's documented request rules, as pure functions over request values.

Both sides of the project check the same rules, so they live here, apart from both: the local AWS
emulator (``infra/local``) enforces them server-side, as the service does, and the code that runs on
AWS (``deployment/``) checks its own requests against them before sending (so a bad request fails fast
on AWS too, with the same words). This package imports nothing but the standard library: the emulator
may not import aircast, and the AWS path may not import the emulator (``pyproject.toml``'s import
contracts).

- :mod:`awsrules.sagemaker_endpoints`: ``CreateEndpointConfig`` / ``UpdateEndpoint`` (production
  variants, ``DeploymentConfig``, blue/green traffic steps, resource names).
"""
