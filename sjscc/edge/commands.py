"""``sjscc edge``: load the bundle's edge half and serve it over gRPC until SIGTERM/SIGINT."""

from __future__ import annotations

import argparse
import asyncio
import logging

from sjscc.common.bundle import load_bundle
from sjscc.common.devices import set_torch_threads
from sjscc.common.tls import TLSSettings
from sjscc.edge.pipeline import EdgePipeline
from sjscc.edge.server import serve


def run_edge(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    tls = TLSSettings(cert=getattr(args, "tls_cert", None), key=getattr(args, "tls_key", None),
                      ca=getattr(args, "tls_client_ca", None))
    tls.server_credentials()  # refuse a bad certificate setting before spending time on the model
    set_torch_threads(getattr(args, "torch_threads", 0))
    bundle = load_bundle(args.bundle)
    pipeline = EdgePipeline(bundle, device=getattr(args, "compute_device", "auto"))
    asyncio.run(serve(
        pipeline,
        host=args.host,
        port=args.port,
        max_batch_size=getattr(args, "max_batch_size", 8),
        max_wait_ms=getattr(args, "max_wait_ms", 2.0),
        max_queue=getattr(args, "max_queue", 64),
        drain_delay_s=getattr(args, "drain_delay", 0.0),
        tls=tls,
    ))
    return 0
