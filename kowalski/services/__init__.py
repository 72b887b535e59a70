"""Locally managed services (`kowalski up|down|status|logs`)."""

from __future__ import annotations

from kowalski.config import Config
from kowalski.services.api import ApiService
from kowalski.services.base import Service, ServiceError, Status
from kowalski.services.broker import BrokerService
from kowalski.services.dashboards import DashboardsService
from kowalski.services.database import DatabaseService
from kowalski.services.hub import HubService
from kowalski.services.kafka import KafkaService

# Start order; stop runs in reverse. Later components (broker, api, hub) append here.
SERVICE_CLASSES: list[type[Service]] = [DatabaseService, KafkaService, ApiService, BrokerService, HubService,
                                          DashboardsService]


def all_services(config: Config) -> list[Service]:
    return [cls(config) for cls in SERVICE_CLASSES]


def get_service(config: Config, name: str) -> Service:
    for svc in all_services(config):
        if svc.name == name:
            return svc
    names = ", ".join(c.name for c in SERVICE_CLASSES)
    raise ServiceError(f"unknown service {name!r}; known: {names}")


__all__ = ["Service", "ServiceError", "Status", "all_services", "get_service", "SERVICE_CLASSES"]
