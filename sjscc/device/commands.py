"""``sjscc device``: load the bundle's device half and serve the REST endpoint with uvicorn."""

from __future__ import annotations

import argparse
import logging

import uvicorn

from sjscc.common.bundle import load_bundle
from sjscc.common.devices import set_torch_threads
from sjscc.device.app import create_app
from sjscc.device.client import ChannelSettings, EdgeClient, ExpectedModel, parse_seed
from sjscc.device.pipeline import DEFAULT_MAX_IMAGE_BYTES, DEFAULT_MAX_IMAGE_PIXELS, DevicePipeline


def run_device(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    set_torch_threads(getattr(args, "torch_threads", 0))
    bundle = load_bundle(args.bundle)
    pipeline = DevicePipeline(
        bundle,
        device=getattr(args, "compute_device", "cpu"),
        max_image_bytes=getattr(args, "max_image_bytes", DEFAULT_MAX_IMAGE_BYTES),
        max_image_pixels=getattr(args, "max_image_pixels", DEFAULT_MAX_IMAGE_PIXELS),
        max_batch_size=getattr(args, "max_batch_size", 32),
    )
    pipeline.warmup()
    defaults = ChannelSettings(args.channel, args.p, getattr(args, "erasure_policy", "random"))
    expected = ExpectedModel(pipeline.model_id, pipeline.codec, pipeline.timesteps, pipeline.latent_shape)
    client = EdgeClient(args.edge, expected, defaults, seed=parse_seed(args.seed),
                        rpc_timeout_s=getattr(args, "rpc_timeout", 5.0))
    logging.getLogger("sjscc.device").info(
        "device model %s (%d payload bits), edge %s, channel %s p=%g seed=%s",
        pipeline.model_id, pipeline.payload_bits, args.edge, defaults.kind, defaults.p, args.seed,
    )
    uvicorn.run(create_app(pipeline, client), host=args.host, port=args.port, log_level="info",
                timeout_graceful_shutdown=5)
    return 0
