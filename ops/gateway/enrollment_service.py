"""The Enrollment service (server-only TLS): a token and a CSR in, a certificate out."""

from __future__ import annotations

import logging

import grpc

from ops.gateway.blocking import db_call
from ops.gateway.messages import inventory_dict, unix_seconds
from ops.rpc import runner_pb2, runner_pb2_grpc
from shared.runner_keys import RunnerCA
from shared.runners import enrollment
from shared.runners.enrollment import EnrollmentRefused
from shared.settings import Settings

log = logging.getLogger(__name__)


class EnrollmentService(runner_pb2_grpc.EnrollmentServicer):
    """Enrolls runners with single-use tokens; re-enrolls them with their identity key's proof."""

    def __init__(self, settings: Settings, ca: RunnerCA) -> None:
        self.settings = settings
        self.ca = ca

    async def Enroll(  # noqa: N802 - the name is the RPC's
        self, request: runner_pb2.EnrollRequest, context: grpc.aio.ServicerContext
    ) -> runner_pb2.EnrollResponse:
        """Consume the token and answer with the runner's certificate, the CA and its session token."""
        inventory = inventory_dict(request.inventory)
        asked = enrollment.EnrollmentRequest(
            token=request.token,
            csr_pem=request.csr_pem,
            identity_public_key=request.identity_public_key,
            inventory=inventory,
            labels=dict(request.labels),
            runner_id=request.runner_id,
            proof=request.proof,
        )
        try:
            enrolled = await db_call(enrollment.enroll, self.settings, self.ca, asked)
        except EnrollmentRefused as refusal:
            log.warning(
                "refused enrollment from %s (host %r%s): %s",
                context.peer(),
                inventory.get("hostname", ""),
                f", runner {request.runner_id}" if request.runner_id else "",
                refusal,
            )
            await context.abort(grpc.StatusCode.PERMISSION_DENIED, str(refusal))
        log.info(
            "%s runner %s (tenant %s, host %r)",
            "re-enrolled" if enrolled.reenrolled else "enrolled",
            enrolled.runner_id,
            enrolled.tenant_id,
            inventory.get("hostname", ""),
        )
        return runner_pb2.EnrollResponse(
            runner_id=enrolled.runner_id,
            tenant_id=enrolled.tenant_id,
            certificate_pem=enrolled.certificate_pem,
            ca_certificate_pem=enrolled.ca_certificate_pem,
            job_signing_public_key=enrolled.job_signing_public_key,
            session_token=enrolled.session_token,
            not_after=unix_seconds(enrolled.not_after),
            gateway_address=enrolled.gateway_address,
        )
