"""Runs messages through imported rule chains: the device profile's default chain, else root."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections import defaultdict
from dataclasses import dataclass, field

from ..model import id_of, now_ms
from .alarms import alarm_message
from .msg import TbMsg
from .nodes import RE, Context, Node, PassThroughNode, build

log = logging.getLogger(__name__)

# A message may not bounce around a chain forever (TB limits it with its own max hops).
MAX_HOPS = 64


@dataclass
class CompiledChain:
    nodes: list[Node]
    types: list[str]
    edges: dict[int, list[tuple[str, int]]]
    chain_edges: dict[int, list[tuple[str, uuid.UUID]]]
    first: int | None


@dataclass
class RuleEngine:
    """Transports and the REST API enqueue messages and carry on; one consumer runs them
    through the chains in arrival order. As with TB's queue, a device's PUBACK means "taken
    in", not "processed", so a slow chain does not throttle the gateway."""

    ctx: Context
    compiled: dict[uuid.UUID, CompiledChain] = field(default_factory=dict)
    unknown_logged: set[str] = field(default_factory=set)
    queue: asyncio.Queue[TbMsg] = field(default_factory=asyncio.Queue)

    def __post_init__(self) -> None:
        self.ctx.run_chain = self.run

    def invalidate(self, chain_id: uuid.UUID) -> None:
        self.compiled.pop(chain_id, None)

    def chain_for(self, msg: TbMsg) -> uuid.UUID | None:
        profile = self.ctx.profile_of(msg)
        chain_id = id_of(profile.get("defaultRuleChainId")) if profile else None
        if chain_id is not None and chain_id in self.ctx.service.store.rule_chain_metadata:
            return chain_id
        for chain in self.ctx.service.store.all("RULE_CHAIN", msg.tenant_id):
            if chain.get("root"):
                return id_of(chain["id"])
        return None

    def enqueue(self, msg: TbMsg) -> None:
        self.queue.put_nowait(msg)

    async def consume(self) -> None:
        """Process queued messages until cancelled; a failing message is logged and dropped."""
        while True:
            msg = await self.queue.get()
            try:
                await self.submit(msg)
            except Exception:  # one bad message must not stop the engine
                log.exception("Rule engine failed on %s of %s", msg.type, msg.originator_id)
            finally:
                self.queue.task_done()

    async def drain(self, timeout: float) -> None:
        """Wait for the queued messages to be processed, at most ``timeout`` seconds."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.queue.join(), timeout)

    async def submit(self, msg: TbMsg) -> None:
        chain_id = self.chain_for(msg)
        if chain_id is not None:
            await self.run(chain_id, msg)

    def _compile(self, chain_id: uuid.UUID) -> CompiledChain | None:
        compiled = self.compiled.get(chain_id)
        if compiled is not None:
            return compiled
        metadata = self.ctx.service.store.rule_chain_metadata.get(chain_id)
        if metadata is None:
            return None
        nodes: list[Node] = []
        types: list[str] = []
        for node in metadata.get("nodes") or []:
            node_type = str(node.get("type"))
            built = build(node_type, node.get("configuration") or {}, self.ctx)
            if built is None:
                if node_type not in self.unknown_logged:
                    self.unknown_logged.add(node_type)
                    log.warning(
                        "Rule node type %s is not emulated: passed on as Success", node_type
                    )
                built = PassThroughNode()
            nodes.append(built)
            types.append(node_type)
        edges: dict[int, list[tuple[str, int]]] = defaultdict(list)
        for conn in metadata.get("connections") or []:
            edges[int(conn["fromIndex"])].append((str(conn["type"]), int(conn["toIndex"])))
        chain_edges: dict[int, list[tuple[str, uuid.UUID]]] = defaultdict(list)
        for conn in metadata.get("ruleChainConnections") or []:
            target = id_of(conn.get("targetRuleChainId"))
            if target is not None:
                chain_edges[int(conn["fromIndex"])].append((str(conn["type"]), target))
        first = metadata.get("firstNodeIndex")
        compiled = CompiledChain(
            nodes,
            types,
            edges,
            chain_edges,
            first if isinstance(first, int) and 0 <= first < len(nodes) else None,
        )
        self.compiled[chain_id] = compiled
        return compiled

    async def run(self, chain_id: uuid.UUID, msg: TbMsg) -> None:
        chain = self._compile(chain_id)
        if chain is None or chain.first is None:
            return
        await self._walk(chain, [(chain.first, msg)])

    async def _walk(self, chain: CompiledChain, pending: list[tuple[int, TbMsg]]) -> None:
        hops = 0
        while pending and hops < MAX_HOPS:
            hops += 1
            index, msg = pending.pop(0)
            try:
                emitted = await chain.nodes[index].process(msg)
            except Exception as exc:
                log.exception("Rule node %s failed", chain.types[index])
                emitted = [("Failure", msg.with_(metadata={**msg.metadata, "error": str(exc)}))]
            pending += await self._route(chain, index, emitted)

    async def _route(
        self, chain: CompiledChain, index: int, emitted: list[tuple[str, TbMsg]]
    ) -> list[tuple[int, TbMsg]]:
        targets = []
        for relation, out in emitted:
            targets += [(to, out) for label, to in chain.edges.get(index, []) if label == relation]
            for label, target_chain in chain.chain_edges.get(index, []):
                if label == relation:
                    await self.run(target_chain, out)
        return targets

    async def harvest_alarms(self) -> None:
        """TbDeviceProfileNode's periodic re-check of DURATION rules between messages."""
        profile_alarms = self.ctx.profile_alarms
        store = self.ctx.service.store
        for device_id, metadata in list(profile_alarms.last_metadata.items()):
            if not profile_alarms.has_running_duration(device_id):
                continue
            device = store.get(device_id, "DEVICE")
            tenant_id = id_of(device.get("tenantId")) if device else None
            if device is None or tenant_id is None:
                continue
            msg = TbMsg("POST_TELEMETRY_REQUEST", tenant_id, "DEVICE", device_id, dict(metadata))
            profile = self.ctx.profile_of(msg)
            chain_id = self.chain_for(msg)
            chain = self._compile(chain_id) if chain_id else None
            if profile is None or chain is None:
                continue
            outcomes = await profile_alarms.on_tick(msg, profile, now_ms())
            for index, node_type in enumerate(chain.types):
                if node_type == RE + "profile.TbDeviceProfileNode" and outcomes:
                    emitted = [(o.relation, alarm_message(msg, o, metadata)) for o in outcomes]
                    await self._walk(chain, await self._route(chain, index, emitted))
