"""``sjscc device``: load the bundle's device half and serve the REST endpoint with uvicorn.

Only :mod:`argparse` and the settings table load when the root parser is built; FastAPI, uvicorn and the model
load when the command runs (so ``sjscc edge`` never loads the web stack).
"""

from __future__ import annotations

import argparse
import dataclasses

from sjscc.common.cli_support import DEFAULT_BUNDLE
from sjscc.device.settings import DeviceSettings, add_arguments

# Requests in flight get this long to finish after SIGTERM (uvicorn stops accepting connections first).
GRACEFUL_SHUTDOWN_S = 10


def add_command(sub: argparse._SubParsersAction) -> None:
    """Register ``sjscc device`` on the root parser's subcommands."""
    device = sub.add_parser("device", help="run the device REST endpoint (head, encoder, pack, channel)")
    add_arguments(device)
    device.set_defaults(func=run_device)


def add_export_command(sub: argparse._SubParsersAction) -> None:
    """Register ``sjscc export-device``: the device half as ONNX (+ .ort, mobile report) for phones and ONNX Runtime."""
    export = sub.add_parser(
        "export-device", help="write the device half (head + encoder) as an ONNX model, its .ort form and a mobile "
                              "usability report",
        description="Export the device half of a bundle to ONNX: preprocessed image [B,3,S,S] float32 in, bits "
                    "[B,T,c2,h2,w2] uint8 out (packed outside the graph), batch axis dynamic, batch norm folded, the "
                    "T spiking steps unrolled. Beside FILE.onnx it writes FILE.ort and FILE.required_operators.config "
                    "(ONNX Runtime Mobile, reduced build) and FILE.mobile_usability.txt. See docs/MOBILE.md.")
    export.add_argument("--bundle", default=DEFAULT_BUNDLE, help="model bundle folder")
    export.add_argument("--out", required=True, metavar="FILE.onnx", help="where to write the ONNX model")
    export.add_argument("--target-platform", choices=["arm", "amd64"], default="arm",
                        help="platform the .ort file's fixed optimisations are made for (phones: arm)")
    export.add_argument("--no-ort", action="store_true", help="skip the .ort conversion")
    export.add_argument("--no-mobile-report", action="store_true", help="skip the mobile usability check")
    export.add_argument("--record", action="store_true",
                        help="name FILE and its SHA-256 in the bundle's manifest (FILE must be inside the bundle "
                             "folder; the model id does not change); `sjscc device --runtime onnx` then loads it "
                             "instead of exporting at start")
    export.set_defaults(func=run_export_device)


def run_export_device(args: argparse.Namespace) -> int:
    from sjscc.device.export import run_export

    return run_export(args)


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
        runtime=settings.runtime,
        threads=settings.torch_threads,
    )
    pipeline.warmup()
    defaults = ChannelSettings(settings.channel, settings.p, settings.erasure_policy,
                               burst=parse_burst(settings.burst), interleave=parse_interleave(settings.interleave),
                               snr_db=settings.snr_db, modulation=settings.modulation, coherence=settings.coherence,
                               decisions=settings.decisions, soft_bits=settings.soft_bits)
    expected = ExpectedModel(pipeline.model_id, pipeline.codec, pipeline.timesteps, pipeline.latent_shape)
    code = None
    if bundle.manifest.get("channel_code") is not None:  # separate coding: the link sends one LDPC block per image
        from sjscc.common.channels.coding import link_for
        from sjscc.device.link import check_coded_settings

        code = link_for(bundle.manifest)
        check_coded_settings(dataclasses.replace(defaults, modulation=code.modulation), code)  # refuse at startup
    client = EdgeClient(settings.edge, expected, defaults, seed=parse_seed(settings.seed),
                        rpc_timeout_s=settings.rpc_timeout, tls=tls, keepalive_s=settings.keepalive, code=code)
    logging.getLogger("sjscc.device").info(
        "device model %s (%d payload bits, runtime %s), edge %s (%s), channel %s p=%g burst=%g interleave=%s "
        "seed=%s, API %s", pipeline.model_id, pipeline.payload_bits, pipeline.runtime.name, settings.edge,
        "TLS" if tls.ca else "plaintext", defaults.kind,
        defaults.p, defaults.burst, defaults.interleave, settings.seed,
        "token required" if settings.api_token else "open",
    )
    app = create_app(pipeline, client, model_card(bundle), max_in_flight=settings.max_in_flight,
                     api_token=settings.api_token)
    uvicorn.run(app, host=settings.host, port=settings.port, log_level="info",
                timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S)
    return 0
