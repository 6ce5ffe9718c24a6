"""The attestation authority: certifies workers' platform keys on request (DESIGN.md section 7).

The genesis names the authorities' public keys; a node whose own key is one of them can run this role and
serve `/pocnet/attest/1`. A worker's node asks with its platform public key; the stream is authenticated
by Noise, so the requesting account is the peer's own key and cannot be forged. The decision is the pure
`decide_certification` under the role's `CertificationPolicy`, stated to every worker in its answer, and
every certificate issued or refused is logged.
"""

from __future__ import annotations

import logging

from node.net.identity import public_key_of
from node.net.streams import RequestHandler, RequestRejected
from node.roles.base import BaseRole, NodeAPI
from node.work_messages import ATTEST_PROTOCOL, CertificateGrant, CertifyRequest
from protocols.attestation import CertificationPolicy, decide_certification, issue_certificate
from protocols.crypto import address_of, hex_address
from protocols.encoding import DecodeError, decode, encode

log = logging.getLogger(__name__)


class AuthorityRole(BaseRole):
    name = "authority"

    def __init__(self, policy: CertificationPolicy | None = None) -> None:
        self.policy = policy or CertificationPolicy()
        self.issued = 0

    def is_authority(self, api: NodeAPI) -> bool:
        return api.keypair.public_key in api.genesis.attestation_authorities

    async def start(self, api: NodeAPI) -> None:
        if self.is_authority(api):
            log.info("event=role-started role=authority policy=%r", self.policy.describe())
        else:
            log.error("event=authority-idle reason=%r", self.notes(api)[0])

    def notes(self, api: NodeAPI) -> list[str]:
        if not self.is_authority(api):
            return [
                "authority: NOT AN AUTHORITY: this node's key is not among the genesis's attestation authorities,"
                " so its certificates would be refused; start the role on the node whose key the genesis names"
            ]
        return [f"authority: {self.issued} certificate(s) issued; policy: {self.policy.describe()}"]

    def request_handlers(self, api: NodeAPI) -> dict[str, RequestHandler]:
        async def serve(peer: str, data: bytes) -> bytes:
            return encode(self.certify(api, peer, data))

        return {ATTEST_PROTOCOL: serve}

    def certify(self, api: NodeAPI, peer: str, data: bytes) -> CertificateGrant:
        if not self.is_authority(api):
            raise RequestRejected("not-an-authority: this node's key is not an attestation authority of the genesis")
        try:
            request = decode(CertifyRequest, data)
        except DecodeError as exc:
            raise RequestRejected(f"malformed certification request: {exc.reason}") from None
        worker = address_of(public_key_of(peer))
        reason = decide_certification(self.policy, worker, request.platform_public_key)
        if reason is not None:
            log.warning("event=certification-refused worker=%s reason=%s", hex_address(worker), reason)
            raise RequestRejected(f"{reason}: {self.policy.describe()}")
        certificate = issue_certificate(api.keypair, api.genesis.chain_id, request.platform_public_key, worker)
        self.issued += 1
        log.info("event=platform-certified worker=%s platform=%s", hex_address(worker), request.platform_public_key.hex()[:16])
        return CertificateGrant(certificate, self.policy.describe())
