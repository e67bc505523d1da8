"""`tend-audit serve`: consumes audit events into the log in batches, signs tree heads at intervals, and serves the
AuditService over gRPC."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence

import pika
import pika.exceptions
import psycopg
from psycopg_pool import ConnectionPool
from tend.audit.v1 import audit_pb2, audit_pb2_grpc

from tend_audit import metrics, records, tree_heads
from tend_audit.access import assertion_verifier
from tend_audit.grpc_api import SERVICE_NAME, AuditServicer
from tend_audit.settings import Settings
from tend_audit.signing import SigningKey, load_signing_key
from tend_common.identity_access import IdentityAccessChecker
from tend_common.messaging.batch_consumer import BatchConsumer, PoisonReasons
from tend_common.messaging.consumer import Delivery, PoisonMessage
from tend_common.runtime import ServiceRuntime
from tend_common.service_auth import MethodPolicy

log = logging.getLogger(__name__)

QUEUE_PURPOSE = "records"


def batch_handler(pool: ConnectionPool) -> Callable[[Sequence[Delivery]], PoisonReasons]:
    """Appends a batch of events in one transaction, committed before the consumer acknowledges the batch. An event
    that can never be read is reported as poison and the rest are appended."""

    def handle(deliveries: Sequence[Delivery]) -> PoisonReasons:
        readable: list[records.AuditRecord] = []
        poison: dict[int, str] = {}
        for position, delivery in enumerate(deliveries):
            try:
                readable.append(records.parse_delivery(delivery))
            except PoisonMessage as exc:
                poison[position] = str(exc)
        if readable:
            with pool.connection() as conn, conn.transaction(), conn.cursor() as cur:
                seqs = records.append_batch(cur, readable)
            appended = [seq for seq in seqs if seq is not None]
            metrics.BATCH_SIZE.observe(len(deliveries))
            metrics.RECORDS_APPENDED.inc(len(appended))
            metrics.EVENTS_DUPLICATED.inc(len(seqs) - len(appended))
            if appended:
                metrics.LOG_SIZE.set(appended[-1])
        return poison

    return handle


class TreeHeadSigner:
    """Signs a tree head when one is due: after each batch (by count) and on a timer (by age, when traffic stops)."""

    def __init__(self, pool: ConnectionPool, key: SigningKey, settings: Settings) -> None:
        self._pool = pool
        self._key = key
        self._every_records = settings.tree_head_every_records
        self._every_seconds = settings.tree_head_every_seconds
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="tree-head-signer", daemon=True)

    def sign_if_due(self) -> None:
        with self._pool.connection() as conn:
            head = tree_heads.sign_if_due(conn, self._key, self._every_records, self._every_seconds)
        if head is not None:
            metrics.TREE_HEADS_SIGNED.inc()
            log.info("tree head signed", extra={"fields": {"tree_size": head.tree_size, "key_id": head.key_id}})

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        self._thread.join(10)

    def _run(self) -> None:
        pause = min(self._every_seconds, 5.0)
        while not self._stopping.wait(pause):
            try:
                self.sign_if_due()
            except psycopg.Error as exc:
                log.warning("tree head not signed; will retry", extra={"fields": {"error": type(exc).__name__}})


# Proofs, tree heads and keys hold only hashes and public keys, so any Tend service may fetch them to check the log;
# the DPO's and students' queries come through the portal only.
PROOF_METHODS = frozenset({"GetSignedTreeHead", "GetPublicKeys", "GetInclusionProof", "GetConsistencyProof"})
METHOD_POLICY = MethodPolicy(
    {
        f"/{SERVICE_NAME}/{method.name}": frozenset({"portal", "identity", "checkin", "indicators", "notify"})
        if method.name in PROOF_METHODS
        else frozenset({"portal"})
        for method in audit_pb2.DESCRIPTOR.services_by_name["AuditService"].methods
    }
)


def serve(settings: Settings) -> None:
    runtime = ServiceRuntime("audit", settings)
    pool = runtime.open_pool()
    with pool.connection() as conn:
        key = load_signing_key(conn, settings.signing_key)
    signer = TreeHeadSigner(pool, key, settings)
    consumer = BatchConsumer(
        settings.amqp_url,
        runtime.topology,
        runtime.topology.queue("audit", QUEUE_PURPOSE),
        [records.ROUTING_KEY],
        batch_handler(pool),
        max_batch=settings.batch_size,
        max_wait_seconds=settings.batch_max_wait_ms / 1000,
        after_batch=signer.sign_if_due,
    )
    try:
        consumer.declare()
    except (pika.exceptions.AMQPError, OSError):
        # The broker may be down while audit starts; the consumer declares its queue again each time it connects.
        log.warning("broker unreachable at start-up; the consumer will keep trying")
    consumer.start()
    runtime.shutdown.on_stop(f"consumer {consumer.queue}", consumer.stop)
    signer.start()
    runtime.shutdown.on_stop("tree head signer", signer.stop)
    identity_channel = runtime.channel_to(settings.identity_target, "identity")
    runtime.shutdown.on_stop("identity channel", identity_channel.close)
    servicer = AuditServicer(pool, key, assertion_verifier(identity_channel), IdentityAccessChecker(identity_channel))
    runtime.start_grpc(
        lambda server: audit_pb2_grpc.add_AuditServiceServicer_to_server(servicer, server),
        service_names=[SERVICE_NAME],
        policy=METHOD_POLICY,
    )
    log.info("audit serving", extra={"fields": {"key_id": key.key_id}})
    runtime.run()
