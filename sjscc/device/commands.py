"""``sjscc device``: load the bundle's device half and serve the REST endpoint with uvicorn."""

from __future__ import annotations

import argparse
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
from sjscc.device.pipeline import DEFAULT_MAX_IMAGE_BYTES, DevicePipeline

# Requests in flight get this long to finish after SIGTERM (uvicorn stops accepting connections first).
GRACEFUL_SHUTDOWN_S = 10


def run_device(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    tls = TLSSettings(cert=getattr(args, "tls_cert", None), key=getattr(args, "tls_key", None),
                      ca=getattr(args, "edge_ca", None), server_name=getattr(args, "edge_server_name", None))
    tls.channel_credentials()  # refuse a bad certificate setting before spending time on the model
    set_torch_threads(getattr(args, "torch_threads", 0))
    bundle = load_bundle(args.bundle)
    pipeline = DevicePipeline(
        bundle,
        device=getattr(args, "compute_device", "cpu"),
        max_image_bytes=getattr(args, "max_image_bytes", DEFAULT_MAX_IMAGE_BYTES),
        max_image_pixels=getattr(args, "max_image_pixels", None),
        max_batch_size=getattr(args, "max_batch_size", 32),
    )
    pipeline.warmup()
    defaults = ChannelSettings(args.channel, args.p, getattr(args, "erasure_policy", "random"),
                               burst=parse_burst(getattr(args, "burst", "8")),
                               interleave=parse_interleave(getattr(args, "interleave", None)))
    expected = ExpectedModel(pipeline.model_id, pipeline.codec, pipeline.timesteps, pipeline.latent_shape)
    client = EdgeClient(args.edge, expected, defaults, seed=parse_seed(args.seed),
                        rpc_timeout_s=getattr(args, "rpc_timeout", 5.0), tls=tls,
                        keepalive_s=getattr(args, "keepalive", 10.0))
    logging.getLogger("sjscc.device").info(
        "device model %s (%d payload bits), edge %s (%s), channel %s p=%g burst=%g interleave=%s seed=%s, API %s",
        pipeline.model_id, pipeline.payload_bits, args.edge, "TLS" if tls.ca else "plaintext", defaults.kind,
        defaults.p, defaults.burst, defaults.interleave, args.seed,
        "token required" if getattr(args, "api_token", None) else "open",
    )
    app = create_app(pipeline, client, model_card(bundle), max_in_flight=getattr(args, "max_in_flight", 32),
                     api_token=getattr(args, "api_token", None))
    uvicorn.run(app, host=args.host, port=args.port, log_level="info",
                timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S)
    return 0
