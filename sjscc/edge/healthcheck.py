"""``python -m sjscc.edge.healthcheck [H:P] [TLS flags]``: exit 0 when the edge's grpc.health.v1 says SERVING.

For container health checks and Kubernetes exec probes, where no grpc_health_probe binary is installed and
Kubernetes' own gRPC probe cannot speak TLS. It connects the way the device does, with the device's TLS flags
and ``SJSCC_*`` variables (``--edge-ca``, ``--tls-cert``, ``--tls-key``, ``--edge-server-name``), so a probe
inside the edge's container can present the edge's own certificate to an edge that requires mutual TLS.
Exit status: 0 serving, 1 not serving or unreachable, 2 a TLS setting that cannot be used.
"""

from __future__ import annotations

import argparse
import os
import sys

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from sjscc.common.tls import TLSConfigError, TLSSettings


def is_serving(address: str, timeout_s: float = 2.0, tls: TLSSettings | None = None) -> bool:
    """Whether the edge at ``address`` answers SERVING; plaintext unless ``tls`` turns TLS on."""
    tls = tls or TLSSettings()
    credentials = tls.channel_credentials()
    options = tls.channel_options()
    channel = (grpc.secure_channel(address, credentials, options=options) if credentials is not None
               else grpc.insecure_channel(address, options=options))
    with channel:
        try:
            reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=timeout_s)
        except grpc.RpcError:
            return False
    return reply.status == health_pb2.HealthCheckResponse.SERVING


def _env(name: str) -> str | None:
    return os.environ.get(f"SJSCC_{name}") or None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m sjscc.edge.healthcheck",
                                     description="Exit 0 when the edge's grpc.health.v1 service says SERVING.")
    parser.add_argument("address", nargs="?", default=None,
                        help="H:P of the edge (default 127.0.0.1:$SJSCC_EDGE_PORT, else 127.0.0.1:50051)")
    parser.add_argument("--edge-ca", default=_env("EDGE_CA"),
                        help="PEM CA bundle that signs the edge's certificate; turns TLS on (SJSCC_EDGE_CA)")
    parser.add_argument("--tls-cert", default=_env("TLS_CERT"),
                        help="PEM client certificate for an edge that requires mutual TLS (SJSCC_TLS_CERT)")
    parser.add_argument("--tls-key", default=_env("TLS_KEY"), help="PEM private key of --tls-cert (SJSCC_TLS_KEY)")
    parser.add_argument("--edge-server-name", default=_env("EDGE_SERVER_NAME"),
                        help="name to check in the edge's certificate, when the address is not one of its names "
                             "(SJSCC_EDGE_SERVER_NAME)")
    parser.add_argument("--timeout", type=float, default=2.0, help="seconds to wait for the answer (default 2)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(sys.argv[1:] if argv is None else argv)
    address = args.address or f"127.0.0.1:{os.environ.get('SJSCC_EDGE_PORT') or '50051'}"
    try:
        tls = TLSSettings(cert=args.tls_cert, key=args.tls_key, ca=args.edge_ca, server_name=args.edge_server_name)
        serving = is_serving(address, args.timeout, tls)
    except TLSConfigError as error:
        print(f"healthcheck: {error} (the probe takes the device's TLS settings: SJSCC_EDGE_CA, "
              f"SJSCC_TLS_CERT, SJSCC_TLS_KEY)", file=sys.stderr)
        return 2
    print(f"{address}{' (TLS)' if tls.ca else ''}: {'SERVING' if serving else 'NOT SERVING'}")
    return 0 if serving else 1


if __name__ == "__main__":
    sys.exit(main())
