"""Glue stand-in: the Data Catalog (JSON files), crawlers, job runs of the job script on local Spark,
triggers, and the Glue service process that keeps a warm Spark session.

- :mod:`.config`: what the local Glue serves (jobs, crawlers, triggers), as a stack declares them
- :mod:`.client`: ``LocalGlueClient``, the Glue API in boto3's shapes (in-process or served)
- :mod:`.catalog`, :mod:`.jobs`, :mod:`.crawlers`, :mod:`.triggers`, :mod:`.store`: the parts
- :mod:`.service`: ``python -m infra.local.glue.service --config FILE`` (the warm session, the
  triggers' timer, Glue's JSON protocol on 127.0.0.1)
- :mod:`.session`: local Spark sessions (``get_spark``)
"""

from infra.local.glue.session import get_spark

__all__ = ["get_spark"]
