"""The lineage around a dataset: the preprocessing chain up and down, the experiments trained on it,
their models and the endpoints serving them (docs/architecture.md).

Takes the :class:`~airflow_mltrack.store.TrackingStore` first; rows of DAGs the reader may not see are
left out in SQL (``visible_dag_ids``).
"""

from __future__ import annotations

from collections.abc import Collection
from typing import TYPE_CHECKING, Any, TypedDict

from sqlalchemy import func, select

from airflow_mltrack.errors import MLTrackError, NotFoundError
from airflow_mltrack.store import tables
from airflow_mltrack.store import validation as v
from airflow_mltrack.store.base import rows
from airflow_mltrack.store.visibility import only_readable

if TYPE_CHECKING:
    from airflow_mltrack.store import TrackingStore

LINEAGE_EXPERIMENTS = 100  # experiments listed in a lineage (the newest); the rest are counted

datasets, experiments, jobs = tables.datasets, tables.experiments, tables.preprocessing_jobs
endpoints, endpoint_models = tables.deployment_endpoints, tables.endpoint_models


class Lineage(TypedDict):
    """The graph around ``dataset``; ``experiments`` are the newest, ``experiments_total`` counts all."""

    dataset: dict[str, Any]
    upstream_jobs: list[dict[str, Any]]
    downstream_jobs: list[dict[str, Any]]
    datasets: list[dict[str, Any]]
    experiments: list[dict[str, Any]]
    experiments_total: int
    models: list[dict[str, Any]]
    deployments: list[dict[str, Any]]


def _walk(all_jobs: list[dict[str, Any]], start: int, source: str, target: str) -> tuple[list[dict[str, Any]], set[int]]:  # fmt: skip
    """The jobs reachable from dataset ``start`` following ``source`` -> ``target`` columns, and the
    datasets met on the way (``start`` included)."""
    seen, found, frontier = {start}, [], [start]
    while frontier:
        current = frontier.pop()
        for job in all_jobs:
            if job[source] == current and job not in found:
                found.append(job)
                following = job[target]
                if following is not None and following not in seen:
                    seen.add(following)
                    frontier.append(following)
    return found, seen


def lineage(
    store: TrackingStore,
    dataset_id: int,
    visible_dag_ids: Collection[str] | None = None,
    experiment_limit: int = LINEAGE_EXPERIMENTS,
) -> Lineage:
    """The lineage around a dataset.

    Upstream: the preprocessing chain that produced it. Downstream: preprocessing jobs from it and from
    every dataset derived from it (transitively), the experiments trained on any of these datasets, their
    models and the endpoints serving those models (every assignment, active or retired).

    Experiments: the newest ``experiment_limit`` (``experiments_total`` counts them all); the models and
    endpoints are those of every experiment, shown or not.
    """
    dataset_id = v.entity_id("dataset_id", dataset_id)
    with store.read() as conn:
        root = conn.execute(select(datasets).where(datasets.c.dataset_id == dataset_id)).first()
        if root is None:
            raise NotFoundError("dataset_id", dataset_id, "no dataset with this id")
        all_jobs = rows(
            conn.execute(
                only_readable(
                    select(jobs).where(jobs.c.project_id == root.project_id), jobs.c.dag_id, visible_dag_ids
                ).order_by(jobs.c.job_id)
            )
        )
        down_jobs, downstream_ids = _walk(all_jobs, dataset_id, "input_dataset_id", "output_dataset_id")
        up_jobs, upstream_ids = _walk(all_jobs, dataset_id, "output_dataset_id", "input_dataset_id")
        dataset_rows = {
            r["dataset_id"]: r
            for r in rows(
                conn.execute(select(datasets).where(datasets.c.dataset_id.in_(downstream_ids | upstream_ids)))
            )
        }
        trained = only_readable(
            select(experiments.c.experiment_id).where(experiments.c.dataset_id.in_(downstream_ids)),
            experiments.c.dag_id,
            visible_dag_ids,
        ).subquery()
        of_trained = experiments.c.experiment_id.in_(select(trained.c.experiment_id))
        newest = (
            select(
                experiments.c.experiment_id,
                experiments.c.name,
                experiments.c.status,
                experiments.c.dataset_id,
                experiments.c.model_id,
                experiments.c.dag_id,
                experiments.c.run_id,
            )
            .where(of_trained)
            .order_by(experiments.c.experiment_id.desc())
            .limit(experiment_limit)
        )
        exp_rows = rows(conn.execute(newest))
        total = int(conn.execute(select(func.count()).select_from(trained)).scalar_one())
        model_ids = set(conn.execute(select(experiments.c.model_id).where(of_trained).distinct()).scalars())
        models = tables.models
        model_rows = rows(
            conn.execute(select(models).where(models.c.model_id.in_(model_ids)).order_by(models.c.model_id))
        )
        deployments = rows(
            conn.execute(
                only_readable(
                    select(endpoint_models, endpoints.c.name.label("endpoint"), endpoints.c.url)
                    .join(endpoints, endpoints.c.endpoint_id == endpoint_models.c.endpoint_id)
                    .where(endpoint_models.c.model_id.in_(model_ids)),
                    endpoint_models.c.dag_id,
                    visible_dag_ids,
                ).order_by(endpoint_models.c.endpoint_model_id)
            )
        )
    return {
        "dataset": dict(root._mapping),
        "upstream_jobs": up_jobs,
        "downstream_jobs": down_jobs,
        "datasets": [dataset_rows[i] for i in sorted(dataset_rows)],
        "experiments": exp_rows,
        "experiments_total": total,
        "models": model_rows,
        "deployments": deployments,
    }


# -- the drawn graph ---------------------------------------------------------------------------------------
GRAPH_PER_LAYER = 25  # nodes per layer of a drawn lineage graph; the rest are counted ("+k more")
GRAPH_DEPTH = 4  # preprocessing hops followed upstream and downstream
GRAPH_KINDS = ("dataset", "experiment", "model")  # the entities a graph can be centred on


class LineageGraph(TypedDict):
    """A bounded lineage graph around ``root`` (``"<kind>:<id>"``), layered left to right.

    ``nodes``: ``{id, kind, ref, name, version, status, layer}`` (kind dataset, job, experiment, model,
    endpoint or more; ``ref`` the entity id; a ``more`` node's ``count`` is how many were left out there);
    ``edges``: ``{source, target, traffic, active}`` (traffic on model -> endpoint edges); ``deeper``: the
    preprocessing chain goes on beyond ``depth`` hops.
    """

    root: str
    nodes: list[dict[str, Any]]
    edges: list[dict[str, Any]]
    per_layer: int
    depth: int
    deeper: bool


class _Graph:
    """Nodes and edges as they are found, then layered (longest path) and cut to ``per_layer`` a layer."""

    def __init__(self, per_layer: int) -> None:
        self.per_layer = per_layer
        self.nodes: dict[str, dict[str, Any]] = {}
        self.edges: dict[tuple[str, str], dict[str, Any]] = {}
        self.left_out: dict[str, int] = {}  # kind -> count not fetched (past the SQL limits)

    def node(
        self, kind: str, ref: int, name: str, version: str | None = None, status: str | None = None
    ) -> str:
        key = f"{kind}:{ref}"
        self.nodes.setdefault(key, {"id": key, "kind": kind, "ref": ref, "name": name, "version": version, "status": status})  # fmt: skip
        return key

    def edge(self, source: str, target: str, **extra: Any) -> None:
        self.edges.setdefault(
            (source, target), {"source": source, "target": target, "traffic": None, "active": None}
        )
        self.edges[(source, target)].update({k: v for k, v in extra.items() if v is not None})

    def refs(self, kind: str) -> set[int]:
        """The ids of the ``kind`` nodes found so far."""
        return {n["ref"] for n in self.nodes.values() if n["kind"] == kind}

    def more(self, kind: str, count: int) -> None:
        if count > 0:
            self.left_out[kind] = self.left_out.get(kind, 0) + count

    def layered(self, root: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        layer = dict.fromkeys(self.nodes, 0)
        for _ in range(len(self.nodes)):  # longest path from the sources (a cycle stops after n rounds)
            changed = False
            for source, target in self.edges:
                if layer[target] < layer[source] + 1:
                    layer[target], changed = layer[source] + 1, True
            if not changed:
                break
        by_layer: dict[int, list[str]] = {}
        for key in self.nodes:  # found order: root first, then newest first within each query
            by_layer.setdefault(layer[key], []).append(key)
        kept: list[dict[str, Any]] = []
        for number in sorted(by_layer):
            keys = sorted(by_layer[number], key=lambda k: k != root)
            cut = keys[self.per_layer :]
            for key in cut:
                self.more(self.nodes[key]["kind"], 1)
            kept.extend({**self.nodes[k], "layer": number} for k in keys[: self.per_layer])
        ids = {n["id"] for n in kept}
        layers_of = {n["id"]: n["layer"] for n in kept}
        for kind, count in self.left_out.items():  # one "+k more" node in the last layer of that kind
            where = [layers_of[k] for k in ids if self.nodes[k]["kind"] == kind] or [0]
            kept.append({"id": f"more:{kind}", "kind": "more", "ref": 0, "name": kind, "version": None,
                         "status": None, "layer": max(where), "count": count})  # fmt: skip
        edges = [e for (s, t), e in self.edges.items() if s in ids and t in ids]
        return kept, edges


def _walk_jobs(conn: Any, graph: _Graph, start: set[int], upstream: bool, depth: int, visible: Any) -> bool:
    """Preprocessing jobs ``depth`` hops from the datasets ``start`` (producing them when ``upstream``),
    at most ``per_layer`` a hop (the newest); True when the chain goes on beyond ``depth``."""
    near, far = (jobs.c.output_dataset_id, jobs.c.input_dataset_id) if upstream else (jobs.c.input_dataset_id, jobs.c.output_dataset_id)  # fmt: skip
    seen, frontier = set(start), set(start)
    for _ in range(depth):
        if not frontier:
            return False
        hop = only_readable(select(jobs).where(near.in_(frontier)), jobs.c.dag_id, visible)
        found = rows(conn.execute(hop.order_by(jobs.c.job_id.desc()).limit(graph.per_layer)))
        total = conn.execute(select(func.count()).select_from(hop.subquery())).scalar_one()
        graph.more("job", int(total) - len(found))
        following = {j[far.name] for j in found if j[far.name] is not None}
        for d in _dataset_rows(conn, following - seen):
            graph.node("dataset", d["dataset_id"], d["name"], d["version"])
        for j in found:
            key = graph.node("job", j["job_id"], j["name"], status=j["status"])
            if j["input_dataset_id"] in graph.refs("dataset"):
                graph.edge(f"dataset:{j['input_dataset_id']}", key)
            if j["output_dataset_id"] in graph.refs("dataset"):
                graph.edge(key, f"dataset:{j['output_dataset_id']}")
        frontier = following - seen
        seen |= following
    return bool(frontier) and bool(
        conn.execute(
            only_readable(select(jobs.c.job_id).where(near.in_(frontier)), jobs.c.dag_id, visible).limit(1)
        ).first()
    )


def _dataset_rows(conn: Any, ids: Collection[int]) -> list[dict[str, Any]]:
    if not ids:
        return []
    query = select(datasets.c.dataset_id, datasets.c.name, datasets.c.version)
    return rows(conn.execute(query.where(datasets.c.dataset_id.in_(ids)).order_by(datasets.c.dataset_id)))


def _experiments(conn: Any, graph: _Graph, condition: Any, visible: Any) -> None:
    """The newest ``per_layer`` readable experiments matching ``condition``, with their models; the rest
    counted. Edges dataset -> experiment -> model."""
    query = only_readable(select(experiments).where(condition), experiments.c.dag_id, visible)
    found = rows(conn.execute(query.order_by(experiments.c.experiment_id.desc()).limit(graph.per_layer)))
    total = conn.execute(select(func.count()).select_from(query.subquery())).scalar_one()
    graph.more("experiment", int(total) - len(found))
    models = tables.models
    model_ids = {e["model_id"] for e in found}
    model_rows = rows(conn.execute(select(models.c.model_id, models.c.name, models.c.version).where(models.c.model_id.in_(model_ids)).order_by(models.c.model_id)))  # fmt: skip
    for e in found:
        key = graph.node("experiment", e["experiment_id"], e["name"], status=e["status"])
        if e["dataset_id"] in graph.refs("dataset"):
            graph.edge(f"dataset:{e['dataset_id']}", key)
    for m in model_rows:
        graph.node("model", m["model_id"], m["name"], m["version"])
    for e in found:
        graph.edge(f"experiment:{e['experiment_id']}", f"model:{e['model_id']}")


def _endpoints(conn: Any, graph: _Graph, model_ids: Collection[int], visible: Any) -> None:
    """Endpoints that serve or served ``model_ids`` (at most ``per_layer``), edges model -> endpoint with
    the traffic of the latest assignment and whether it is active."""
    if not model_ids:
        return
    query = only_readable(
        select(endpoint_models, endpoints.c.name.label("endpoint"))
        .join(endpoints, endpoints.c.endpoint_id == endpoint_models.c.endpoint_id)
        .where(endpoint_models.c.model_id.in_(model_ids)),
        endpoint_models.c.dag_id,
        visible,
    )
    assignments = query.subquery()
    shown = select(assignments.c.endpoint_id).distinct().order_by(assignments.c.endpoint_id)
    endpoint_ids = list(conn.execute(shown.limit(graph.per_layer)).scalars())
    total = conn.execute(select(func.count()).select_from(shown.subquery())).scalar_one()
    graph.more("endpoint", int(total) - len(endpoint_ids))
    assigned = rows(conn.execute(query.where(endpoint_models.c.endpoint_id.in_(endpoint_ids)).order_by(endpoint_models.c.endpoint_model_id)))  # fmt: skip
    for a in assigned:  # in order: the latest assignment of a model to an endpoint wins
        key = graph.node("endpoint", a["endpoint_id"], a["endpoint"])
        graph.edge(
            f"model:{a['model_id']}", key, traffic=a["traffic_percentage"], active=a["retired_at"] is None
        )


def lineage_graph(
    store: TrackingStore,
    kind: str,
    entity_id: int,
    visible_dag_ids: Collection[str] | None = None,
    per_layer: int = GRAPH_PER_LAYER,
    depth: int = GRAPH_DEPTH,
) -> LineageGraph:
    """The lineage graph around a dataset, an experiment or a model, bounded at any scale.

    Dataset: the preprocessing chain that produced it and the one from it (``depth`` hops each way), the
    experiments trained on it or on a dataset derived from it, their models and the endpoints serving
    them. Experiment: its dataset's chain upstream, its model and endpoints. Model: the experiments that
    trained it, their datasets' chains upstream, its endpoints. Each query fetches at most ``per_layer``
    rows (the newest) and counts the rest; the layers are then cut to ``per_layer`` nodes
    (``"+k more"`` nodes count what was left out). Rows of DAGs the reader may not see are left out.
    """
    if kind not in GRAPH_KINDS:
        raise MLTrackError("kind", kind, f"must be one of {', '.join(GRAPH_KINDS)}")
    entity_id = v.entity_id(f"{kind}_id", entity_id)
    per_layer, depth = max(1, min(int(per_layer), 200)), max(0, min(int(depth), 20))
    graph = _Graph(per_layer)
    with store.read() as conn:
        if kind == "dataset":
            [root] = _dataset_rows(conn, [entity_id]) or [None]
            if root is None:
                raise NotFoundError("dataset_id", entity_id, "no dataset with this id")
            graph.node("dataset", entity_id, root["name"], root["version"])
            deeper = _walk_jobs(conn, graph, {entity_id}, True, depth, visible_dag_ids)
            upstream = graph.refs("dataset")
            deeper |= _walk_jobs(conn, graph, {entity_id}, False, depth, visible_dag_ids)
            trained_on = {entity_id} | (graph.refs("dataset") - upstream)
            _experiments(conn, graph, experiments.c.dataset_id.in_(trained_on), visible_dag_ids)
        elif kind == "experiment":
            query = only_readable(select(experiments).where(experiments.c.experiment_id == entity_id), experiments.c.dag_id, visible_dag_ids)  # fmt: skip
            root_row = conn.execute(query).first()
            if root_row is None:
                raise NotFoundError("experiment_id", entity_id, "no experiment with this id")
            [ds] = _dataset_rows(conn, [root_row.dataset_id])
            graph.node("dataset", ds["dataset_id"], ds["name"], ds["version"])
            deeper = _walk_jobs(conn, graph, {ds["dataset_id"]}, True, depth, visible_dag_ids)
            _experiments(conn, graph, experiments.c.experiment_id == entity_id, visible_dag_ids)
        else:
            models = tables.models
            model = conn.execute(select(models).where(models.c.model_id == entity_id)).first()
            if model is None:
                raise NotFoundError("model_id", entity_id, "no model with this id")
            query = only_readable(select(experiments.c.dataset_id).where(experiments.c.model_id == entity_id), experiments.c.dag_id, visible_dag_ids)  # fmt: skip
            used = list(conn.execute(query.distinct().order_by(experiments.c.dataset_id.desc()).limit(per_layer)).scalars())  # fmt: skip
            for d in _dataset_rows(conn, used):
                graph.node("dataset", d["dataset_id"], d["name"], d["version"])
            deeper = _walk_jobs(conn, graph, set(used), True, depth, visible_dag_ids)
            graph.node("model", entity_id, model.name, model.version)
            _experiments(conn, graph, experiments.c.model_id == entity_id, visible_dag_ids)
        _endpoints(conn, graph, graph.refs("model"), visible_dag_ids)
    root_key = f"{kind}:{entity_id}"
    nodes, edges = graph.layered(root_key)
    return {"root": root_key, "nodes": nodes, "edges": edges, "per_layer": per_layer, "depth": depth, "deeper": deeper}  # fmt: skip


__all__ = ["GRAPH_DEPTH", "GRAPH_PER_LAYER", "LINEAGE_EXPERIMENTS", "Lineage", "LineageGraph", "lineage", "lineage_graph"]  # fmt: skip
