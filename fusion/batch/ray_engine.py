"""``fusion batch --engine ray``: the same worker as Ray actors, models loaded once per actor.

The driver keeps the output file (so its crash-safety and resume are those of the local engine);
actors read the recordings by path, so on a cluster the paths must be visible to every node.
"""

from __future__ import annotations

from collections.abc import Iterator

from fusion.batch.worker import Worker
from fusion.config import Config
from fusion.errors import MissingExtra


class _RayWorker:
    def __init__(self, config_json: str, threads: int):
        self.worker = Worker(Config.model_validate_json(config_json), threads)

    def run(self, items: list, baseline: str | None) -> list:
        return [r for chunk in self.worker.run(items, baseline) for r in chunk]


def run_ray(chunks: list[list], config: Config, baseline: str | None, address: str | None) -> Iterator[list]:
    """Finished chunks, as actors complete them; a local Ray starts (and stops) unless one is running or named."""
    try:
        import ray
        from ray.util import ActorPool
    except ImportError as exc:
        raise MissingExtra("ray", "ray", "the ray engine") from exc

    if not chunks:
        return
    started = not ray.is_initialized()
    if started:
        ray.init(address=address, include_dashboard=False, log_to_driver=False)
    actors = []
    try:
        cpus = config.batch.ray_actor_cpus
        n = config.batch.ray_actors or max(1, int(ray.cluster_resources().get("CPU", 1) // cpus))
        actor_class = ray.remote(num_cpus=cpus)(_RayWorker)
        actors = [actor_class.remote(config.model_dump_json(), max(1, int(cpus))) for _ in range(min(n, len(chunks)))]
        pool = ActorPool(actors)
        yield from pool.map_unordered(lambda actor, chunk: actor.run.remote(chunk, baseline), chunks)
    finally:
        for actor in actors:
            ray.kill(actor)
        if started:
            ray.shutdown()
