"""``sjscc edge``: load the bundle's edge half and serve it over gRPC until SIGTERM/SIGINT.

Only :mod:`argparse` and the settings table load when the root parser is built; the model and gRPC load when the
command runs (and FastAPI never: the edge has no web stack).
"""

from __future__ import annotations

import argparse

from sjscc.edge.settings import EdgeSettings, add_arguments


def add_command(sub: argparse._SubParsersAction) -> None:
    """Register ``sjscc edge`` on the root parser's subcommands."""
    edge = sub.add_parser("edge", help="run the edge gRPC server (reconstructor, converter, tail)")
    add_arguments(edge)
    edge.set_defaults(func=run_edge)


def run_edge(args: argparse.Namespace) -> int:
    import asyncio
    import logging

    from sjscc.common.bundle import load_bundle
    from sjscc.common.devices import set_torch_threads
    from sjscc.common.tls import TLSSettings
    from sjscc.edge.pipeline import EdgePipeline
    from sjscc.edge.server import serve

    settings = EdgeSettings.from_args(args)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    tls = TLSSettings(cert=settings.tls_cert, key=settings.tls_key, ca=settings.tls_client_ca)
    tls.server_credentials()  # refuse a bad certificate setting before spending time on the model
    set_torch_threads(settings.torch_threads)
    bundle = load_bundle(settings.bundle)
    pipeline = EdgePipeline(bundle, device=settings.compute_device)
    asyncio.run(serve(
        pipeline,
        host=settings.host,
        port=settings.port,
        max_batch_size=settings.max_batch_size,
        max_wait_ms=settings.max_wait_ms,
        max_queue=settings.max_queue,
        drain_delay_s=settings.drain_delay,
        tls=tls,
    ))
    return 0
