"""The edge's gRPC server in-process on loopback: status codes with messages, health, reflection, batching
over real RPCs, and the device's client (model check, channel interceptor, unreachable edge) against it."""

from __future__ import annotations

import asyncio

import grpc
import pytest
import torch
from edge_support import expected_model, request_for, running
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from sjscc.common import bitstream
from sjscc.device.client import EdgeClient, EdgeModelMismatchError, EdgeUnavailableError
from sjscc.device.link import ChannelCall, ChannelSettings
from sjscc.edge.pipeline import EdgePipeline
from sjscc.proto import sjscc_pb2, sjscc_pb2_grpc
from sjscc.tools.services import free_port


@pytest.fixture(scope="module")
def edge(tiny_bundle) -> EdgePipeline:
    return EdgePipeline(tiny_bundle, device="cpu")


def test_status_codes_carry_a_message(edge) -> None:
    async def scenario():
        async with running(edge) as address, grpc.aio.insecure_channel(address) as channel:
            stub = sjscc_pb2_grpc.EdgeInferenceStub(channel)
            ok = await stub.Infer(request_for(edge), timeout=10)
            errors = {}
            for name, request in {
                "truncated": request_for(edge, payload=b"\x00" * 7),
                "shape": request_for(edge, latent_shape=[2, 8, 4]),
                "model": request_for(edge, model_id="ffffffffffffffff"),
            }.items():
                with pytest.raises(grpc.aio.AioRpcError) as raised:
                    await stub.Infer(request, timeout=10)
                errors[name] = raised.value
            return ok, errors

    ok, errors = asyncio.run(scenario())
    assert ok.model_id == edge.model_id and len(ok.top) == 5 and ok.compute_device == "cpu"
    assert errors["truncated"].code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "7 bytes" in errors["truncated"].details()
    assert errors["shape"].code() == grpc.StatusCode.INVALID_ARGUMENT
    assert errors["model"].code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "ffffffffffffffff" in errors["model"].details() and edge.model_id in errors["model"].details()


def test_health_reflection_and_model_info(edge) -> None:
    async def scenario():
        async with running(edge, max_batch_size=3) as address, grpc.aio.insecure_channel(address) as channel:
            health = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
            service = await health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service="sjscc.v1.EdgeInference"), timeout=5)
            info = await sjscc_pb2_grpc.EdgeInferenceStub(channel).ModelInfo(sjscc_pb2.ModelInfoRequest(), timeout=5)
            listed = []
            async for reply in reflection_pb2_grpc.ServerReflectionStub(channel).ServerReflectionInfo(
                    iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=5):
                listed = [s.name for s in reply.list_services_response.service]
            return health, service, info, listed

    health, service, info, listed = asyncio.run(scenario())
    assert health.status == service.status == health_pb2.HealthCheckResponse.SERVING
    assert info.model_id == edge.model_id and info.payload_bits == edge.payload_bits == 512
    assert list(info.latent_shape) == [2, 8, 8] and info.timesteps == 4 and info.max_batch_size == 3
    assert list(info.classes) == edge.classes
    assert {"sjscc.v1.EdgeInference", "grpc.health.v1.Health"} <= set(listed)


def test_concurrent_rpcs_are_batched(edge) -> None:
    async def scenario():
        async with running(edge, max_batch_size=8, max_wait_ms=100.0) as address, \
                grpc.aio.insecure_channel(address) as channel:
            stub = sjscc_pb2_grpc.EdgeInferenceStub(channel)
            return await asyncio.gather(*(stub.Infer(request_for(edge, request_id=str(i)), timeout=10)
                                          for i in range(8)))

    replies = asyncio.run(scenario())
    assert sorted(r.request_id for r in replies) == [str(i) for i in range(8)]
    assert max(r.batch_size for r in replies) > 1
    assert len({tuple(s.class_index for s in r.top) for r in replies}) == 1  # same bits, same answer


def test_client_checks_the_model_and_passes_through_the_channel(edge) -> None:
    async def scenario():
        async with running(edge) as address:
            client = EdgeClient(address, expected_model(edge), ChannelSettings("bsc", 0.25), seed=1)
            wrong = EdgeClient(address, expected_model(edge, "0000000000000000"), ChannelSettings())
            await client.open()
            await wrong.open()
            try:
                info = await client.check_model()
                answer = await client.infer(bitstream.pack(torch.zeros(edge.payload_shape)), "a")
                override = await client.infer(bitstream.pack(torch.zeros(edge.payload_shape)), "b",
                                              ChannelCall(ChannelSettings("none", 0.0)))
                with pytest.raises(EdgeModelMismatchError, match="0000000000000000"):
                    await wrong.infer(bitstream.pack(torch.zeros(edge.payload_shape)), "c")
                return info, answer, override, client.model_verified, wrong.model_verified
            finally:
                await client.close()
                await wrong.close()

    info, answer, override, verified, wrong_verified = asyncio.run(scenario())
    assert info.model_id == edge.model_id and verified and not wrong_verified
    assert answer.channel.kind == "bsc" and answer.channel.payload_bits == 512
    assert 0 < answer.channel.flipped_bits < 512 and answer.channel.erased_bits == 0
    assert answer.channel.wire_bytes > 512 // 8 and answer.prediction.request_id == "a"
    assert override.channel.kind == "none" and override.channel.flipped_bits == 0


def test_client_reports_an_unreachable_edge_fast(edge) -> None:
    async def scenario():
        client = EdgeClient(f"127.0.0.1:{free_port()}", expected_model(edge), ChannelSettings(), rpc_timeout_s=3.0)
        await client.open()
        try:
            loop = asyncio.get_running_loop()
            start = loop.time()
            with pytest.raises(EdgeUnavailableError, match="unavailable"):
                await client.infer(bitstream.pack(torch.zeros(edge.payload_shape)), "z")
            serving = await client.is_serving(timeout_s=0.5)
            return loop.time() - start, serving
        finally:
            await client.close()

    elapsed, serving = asyncio.run(scenario())
    assert elapsed < 3.0 and not serving


def test_a_failing_forward_pass_is_internal_and_the_server_keeps_serving(edge, monkeypatch) -> None:
    working = edge.predict
    calls = []

    def fails_once(batch):
        calls.append(len(batch))
        if len(calls) == 1:
            raise RuntimeError("CUDA out of memory (simulated)")
        return working(batch)

    monkeypatch.setattr(edge, "predict", fails_once)

    async def scenario():
        async with running(edge) as address, grpc.aio.insecure_channel(address) as channel:
            stub = sjscc_pb2_grpc.EdgeInferenceStub(channel)
            with pytest.raises(grpc.aio.AioRpcError) as failed:
                await stub.Infer(request_for(edge), timeout=10)
            return failed.value, await stub.Infer(request_for(edge), timeout=10)

    failed, recovered = asyncio.run(scenario())
    assert failed.code() == grpc.StatusCode.INTERNAL and "out of memory" in failed.details()
    assert recovered.model_id == edge.model_id
