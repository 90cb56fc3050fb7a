"""``sjscc device``: load the bundle's device half and serve the REST endpoint with uvicorn.

Only :mod:`argparse` and the settings table load when the root parser is built; FastAPI, uvicorn and the model
load when the command runs (so ``sjscc edge`` never loads the web stack).
"""

from __future__ import annotations

import argparse

from sjscc.device.settings import DeviceSettings, add_arguments

# Requests in flight get this long to finish after SIGTERM (uvicorn stops accepting connections first).
GRACEFUL_SHUTDOWN_S = 10


def add_command(sub: argparse._SubParsersAction) -> None:
    """Register ``sjscc device`` on the root parser's subcommands."""
    device = sub.add_parser("device", help="run the device REST endpoint (head, encoder, pack, channel)")
    add_arguments(device)
    device.set_defaults(func=run_device)


def run_device(args: argparse.Namespace) -> int:
    import logging

    import uvicorn

    from sjscc.common.bundle import load_bundle
    from sjscc.common.devices import set_torch_threads
    from sjscc.common.params import parse_burst, parse_interleave, parse_seed
    from sjscc.common.tls import TLSSettings
    from sjscc.device.app import create_app
    from sjscc.device.client import EdgeClient, ExpectedModel
    from sjscc.device.link import ChannelSettings
    from sjscc.device.model_card import model_card
    from sjscc.device.pipeline import DevicePipeline

    settings = DeviceSettings.from_args(args)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    tls = TLSSettings(cert=settings.tls_cert, key=settings.tls_key, ca=settings.edge_ca,
                      server_name=settings.edge_server_name)
    tls.channel_credentials()  # refuse a bad certificate setting before spending time on the model
    set_torch_threads(settings.torch_threads)
    bundle = load_bundle(settings.bundle)
    pipeline = DevicePipeline(
        bundle,
        device=settings.compute_device,
        max_image_bytes=settings.max_image_bytes,
        max_image_pixels=settings.max_image_pixels,
        max_batch_size=settings.max_batch_size,
    )
    pipeline.warmup()
    defaults = ChannelSettings(settings.channel, settings.p, settings.erasure_policy,
                               burst=parse_burst(settings.burst), interleave=parse_interleave(settings.interleave))
    expected = ExpectedModel(pipeline.model_id, pipeline.codec, pipeline.timesteps, pipeline.latent_shape)
    client = EdgeClient(settings.edge, expected, defaults, seed=parse_seed(settings.seed),
                        rpc_timeout_s=settings.rpc_timeout, tls=tls, keepalive_s=settings.keepalive)
    logging.getLogger("sjscc.device").info(
        "device model %s (%d payload bits), edge %s (%s), channel %s p=%g burst=%g interleave=%s seed=%s, API %s",
        pipeline.model_id, pipeline.payload_bits, settings.edge, "TLS" if tls.ca else "plaintext", defaults.kind,
        defaults.p, defaults.burst, defaults.interleave, settings.seed,
        "token required" if settings.api_token else "open",
    )
    app = create_app(pipeline, client, model_card(bundle), max_in_flight=settings.max_in_flight,
                     api_token=settings.api_token)
    uvicorn.run(app, host=settings.host, port=settings.port, log_level="info",
                timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S)
    return 0
