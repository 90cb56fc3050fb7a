"""TLS and mutual TLS between device and edge: settings read from PEM files, turned into gRPC credentials.

One place for both sides, so the edge's server credentials and the device's channel credentials are built
from the same typed settings (flags or ``SJSCC_*``) and fail the same way: a missing or unreadable file is a
:class:`TLSConfigError` that names it, raised at startup, never at the first request.

- Edge: ``cert`` + ``key`` turn TLS on; ``ca`` (client CA) additionally *requires* every client to present a
  certificate signed by it (mutual TLS).
- Device: ``ca`` (the roots that sign the edge's certificate) turns TLS on; ``cert`` + ``key`` are its client
  certificate for mutual TLS; ``server_name`` overrides the name checked against the edge's certificate (when
  the address is an IP or a Compose service name that the certificate does not list).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import grpc


class TLSConfigError(ValueError):
    """A TLS setting that cannot be used (missing file, half a key pair)."""


def _read(path: str | None, what: str) -> bytes | None:
    if not path:
        return None
    try:
        data = Path(path).read_bytes()
    except OSError as error:
        raise TLSConfigError(f"cannot read the {what} {path}: {error.strerror}") from None
    if b"-----BEGIN" not in data:
        raise TLSConfigError(f"the {what} {path} is not a PEM file")
    return data


@dataclass(frozen=True)
class TLSSettings:
    """PEM file paths; all empty means plaintext (the default, for loopback and trusted networks)."""

    cert: str | None = None
    key: str | None = None
    ca: str | None = None
    server_name: str | None = None

    def __post_init__(self) -> None:
        if bool(self.cert) != bool(self.key):
            raise TLSConfigError("a TLS certificate and its private key go together: give both --tls-cert and "
                                 "--tls-key, or neither")

    def server_credentials(self) -> grpc.ServerCredentials | None:
        """The edge's credentials, or None for plaintext; with ``ca`` a client certificate is required."""
        if not self.cert:
            if self.ca:
                raise TLSConfigError("--tls-client-ca needs the server's own --tls-cert and --tls-key")
            return None
        key, cert = _read(self.key, "TLS private key"), _read(self.cert, "TLS certificate")
        roots = _read(self.ca, "client CA bundle")
        return grpc.ssl_server_credentials([(key, cert)], root_certificates=roots,
                                           require_client_auth=roots is not None)

    def channel_credentials(self) -> grpc.ChannelCredentials | None:
        """The device's credentials for its channel to the edge, or None for plaintext."""
        if not self.ca and not self.cert:
            return None
        if not self.ca:
            raise TLSConfigError("a client certificate (--tls-cert) needs --edge-ca, the CA that signs the edge's "
                                 "certificate")
        return grpc.ssl_channel_credentials(
            root_certificates=_read(self.ca, "edge CA bundle"),
            private_key=_read(self.key, "TLS private key"),
            certificate_chain=_read(self.cert, "TLS certificate"),
        )

    def channel_options(self) -> list[tuple[str, str]]:
        return [("grpc.ssl_target_name_override", self.server_name)] if self.server_name and self.ca else []
