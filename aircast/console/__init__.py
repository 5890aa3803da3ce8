"""The console for the people who approve models: pipeline executions, the evidence of each
model package, one-click approval, endpoints and their deployments, the lake and drift.

``aircast console`` serves it on 127.0.0.1 (``aircast local up`` starts it with the local stack);
it reads everything through :func:`aircast.clients.get_client`, so ``--backend aws`` reads AWS.
"""
