"""Inbound HTTP services: an ASGI app built once from a project's service specs.

A request passes security → mapping → activity → response; the response rules considered
depend on how far it got (see `interlink.services.rules`). The activity and `from: function`
sources are injected (`ActivityRunner`, `FunctionCaller`), so this package depends on no
flow engine or script pool.
"""

from interlink.services.activity import ActivityResult, ActivityRunner, FunctionCaller
from interlink.services.app import ServicesApp, build_services_app
from interlink.services.client import CallResult, call_app
from interlink.services.failures import ServiceError
from interlink.services.queueing import QUEUE_KIND, replay_request

__all__ = [
    "QUEUE_KIND",
    "ActivityResult",
    "ActivityRunner",
    "CallResult",
    "FunctionCaller",
    "ServiceError",
    "ServicesApp",
    "build_services_app",
    "call_app",
    "replay_request",
]
