"""dask-gateway pieces for the hub: a local-process backend with a per-user cluster limit, and the
cluster options (worker cores and memory within the configured maxima).

dask-gateway limits each cluster (``ClusterConfig.cluster_max_cores/_memory/_workers``); the
number of clusters a user may hold at once is ours: asking for one more is refused with a
message that says how to free one. Clusters run as local processes of the gateway (the embedded
default, ``UnsafeLocalBackend``: no separation between users' processes, like the local spawner).
"""

from __future__ import annotations

from dask_gateway_server.backends.base import PublicException
from dask_gateway_server.backends.local import UnsafeLocalBackend
from dask_gateway_server.models import ClusterStatus
from dask_gateway_server.options import Integer, Float, Options
from traitlets import Integer as IntegerTrait

ACTIVE = [ClusterStatus.PENDING, ClusterStatus.RUNNING]


class KowalskiLocalBackend(UnsafeLocalBackend):
    clusters_per_user = IntegerTrait(2, config=True, help="clusters a user may have pending or running at once")

    async def start_cluster(self, user, cluster_options):
        active = await self.list_clusters(username=user.name, statuses=ACTIVE)
        if len(active) >= self.clusters_per_user:
            names = ", ".join(sorted(c.name for c in active))
            raise PublicException(
                f"you already have {len(active)} Dask clusters running ({names}); the limit is "
                f"{self.clusters_per_user} per user: shut one down first (cluster.shutdown(), or "
                f"gateway.stop_cluster(name))")
        return await super().start_cluster(user, cluster_options)


def cluster_options(worker_cores: int, worker_cores_max: int, worker_memory_gb: float,
                    worker_memory_max_gb: float, idle_timeout_s: float) -> Options:
    """Worker cores and memory within the maxima; an idle timeout no longer than the configured one."""
    def to_config(options, user):
        return {"worker_cores": options.worker_cores, "worker_memory": int(options.worker_memory * 2**30),
                "idle_timeout": float(options.idle_timeout)}

    return Options(
        Integer("worker_cores", default=worker_cores, min=1, max=worker_cores_max, label="Worker cores"),
        Float("worker_memory", default=worker_memory_gb, min=0.25, max=worker_memory_max_gb,
              label="Worker memory (GiB)"),
        Float("idle_timeout", default=idle_timeout_s, min=1, max=idle_timeout_s,
              label="Shut down after this many idle seconds"),
        handler=to_config,
    )
