"""Several edges behind one device: :func:`edge_target` turns the edge address into gRPC's own client-side
``round_robin`` (exact targets checked by hand), and two real edge processes on loopback share the requests,
each answer naming its replica; one edge stopped, the other carries on."""

from __future__ import annotations

import asyncio
import json
import os
import signal
from collections import Counter
from collections.abc import Iterator

import pytest
import torch

from sjscc.common import bitstream
from sjscc.device.client import EdgeClient, EdgeUnavailableError, ExpectedModel
from sjscc.device.edge_target import ROUND_ROBIN_CONFIG, edge_target
from sjscc.device.link import ChannelSettings
from sjscc.tools.services import Service, edge_is_serving, free_port, start_service, wait_until

STARTUP_TIMEOUT_S = 120.0


def option(target, name: str):
    return dict(target.options).get(name)


@pytest.mark.parametrize("address, expected", [
    ("127.0.0.1:5001,127.0.0.1:5002", "ipv4:127.0.0.1:5001,127.0.0.1:5002"),
    (" 10.0.0.1:1 , 10.0.0.2:2 ", "ipv4:10.0.0.1:1,10.0.0.2:2"),
    ("[::1]:5001,[::1]:5002", "ipv6:[::1]:5001,[::1]:5002"),
    ("localhost:5001,127.0.0.2:5002", "ipv4:127.0.0.1:5001,127.0.0.2:5002"),
])
def test_an_address_list_becomes_one_round_robin_target(address: str, expected: str) -> None:
    target = edge_target(address)
    assert target.target == expected and target.balanced
    assert json.loads(option(target, "grpc.service_config")) == {"loadBalancingConfig": [{"round_robin": {}}]}


def test_a_dns_name_is_resolved_by_grpc_and_balanced_over_every_record() -> None:
    target = edge_target("edge:50051")
    assert target.target == "dns:///edge:50051" and target.balanced
    assert option(target, "grpc.service_config") == ROUND_ROBIN_CONFIG
    assert option(target, "grpc.dns_min_time_between_resolutions_ms") == 1000


@pytest.mark.parametrize("address", ["127.0.0.1:50051", "[::1]:50051", "unix:/tmp/edge.sock", "dns:///edge:1",
                                     "ipv4:10.0.0.1:1,10.0.0.2:2"])
def test_a_single_ip_or_an_explicit_grpc_target_is_used_as_given(address: str) -> None:
    target = edge_target(address)
    assert target.target == address and not target.balanced
    assert option(target, "grpc.service_config") is None
    assert option(target, "grpc.max_reconnect_backoff_ms") == 1000  # the reconnect options stay


@pytest.mark.parametrize("address, words", [
    ("", "empty"),
    ("edge", "not host:port"),
    ("edge:http", "not a number"),
    ("edge:70000", "outside 1..65535"),
    ("::1:50051", "brackets"),
    ("127.0.0.1:1,,127.0.0.1:2", "empty entry"),
    ("127.0.0.1:1,[::1]:2", "mixes IPv4 and IPv6"),
    ("127.0.0.1:1,no-such-host.invalid:2", "does not resolve"),
])
def test_bad_addresses_are_refused_with_the_reason(address: str, words: str) -> None:
    with pytest.raises(ValueError, match=words):
        edge_target(address)


def test_the_client_refuses_a_bad_address_before_dialling(tiny_bundle) -> None:
    with pytest.raises(ValueError, match="not a number"):
        EdgeClient("edge:x", ExpectedModel("m", "snn", 4, (2, 8, 8)), ChannelSettings())


@pytest.fixture(scope="module")
def two_edges(tiny_bundle, tmp_path_factory) -> Iterator[list[tuple[Service, str]]]:
    log_dir = tmp_path_factory.mktemp("balancing-logs")
    base = {k: v for k, v in os.environ.items() if not k.startswith("SJSCC_")}
    edges = []
    try:
        for name in ("edge-a", "edge-b"):
            address = f"127.0.0.1:{free_port()}"
            env = {**base, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1", "SJSCC_INSTANCE": name}
            edges.append((start_service(name, ["edge", "--bundle", str(tiny_bundle.path), "--host", "127.0.0.1",
                                               "--port", address.rsplit(":", 1)[1]], log_dir, env), address))
        for service, address in edges:
            wait_until(lambda a=address: edge_is_serving(a), service, STARTUP_TIMEOUT_S)
        yield edges
    finally:
        for service, _ in edges:
            service.stop()


@pytest.mark.slow
def test_requests_spread_over_both_edges_and_survive_losing_one(two_edges, tiny_bundle) -> None:
    (edge_a, address_a), (_, address_b) = two_edges
    expected = ExpectedModel(tiny_bundle.model_id, "snn", 4, (2, 8, 8))
    payload = bitstream.pack(torch.zeros(4, 2, 8, 8))

    async def scenario() -> tuple[Counter, Counter, int]:
        client = EdgeClient(f"{address_a},{address_b}", expected, ChannelSettings(), rpc_timeout_s=10.0)
        await client.open()
        try:
            await client.check_model()
            await asyncio.sleep(0.5)  # round_robin connects to every address; let both subchannels get READY
            before = Counter()
            for i in range(40):
                before[(await client.infer(payload, f"r{i}")).prediction.instance] += 1
            edge_a.process.send_signal(signal.SIGTERM)
            assert edge_a.process.wait(30) == 0, edge_a.log_tail()
            after, failures = Counter(), 0
            for i in range(20):
                try:
                    after[(await client.infer(payload, f"s{i}")).prediction.instance] += 1
                except EdgeUnavailableError:
                    failures += 1  # at most the requests already on their way to the stopped edge
            return before, after, failures
        finally:
            await client.close()

    before, after, failures = asyncio.run(scenario())
    # round_robin over two READY subchannels alternates, so 40 requests split 20/20 (a reconnect may shift one).
    assert set(before) == {"edge-a", "edge-b"} and abs(before["edge-a"] - before["edge-b"]) <= 2, before
    assert failures <= 1 and after == Counter({"edge-b": 20 - failures}), (after, failures)


def test_an_edge_names_itself_by_host_name_unless_told(monkeypatch) -> None:
    import socket

    from sjscc.edge.server import edge_instance

    monkeypatch.delenv("SJSCC_INSTANCE", raising=False)
    assert edge_instance() == socket.gethostname()
    monkeypatch.setenv("SJSCC_INSTANCE", "  ")
    assert edge_instance() == socket.gethostname()
    monkeypatch.setenv("SJSCC_INSTANCE", "edge-7")
    assert edge_instance() == "edge-7"
