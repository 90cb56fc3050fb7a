"""pack / unpack: bit order, round trips over random shapes, exact lengths, zero padding, bad payloads."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sjscc.common.bitstream import (
    PayloadError,
    pack,
    pack_batch,
    payload_bits,
    payload_bytes,
    unpack,
    unpack_batch,
)


def test_bit_order_is_row_major_msb_first() -> None:
    assert pack(torch.tensor([1, 0, 0, 0, 0, 0, 0, 0, 1])) == b"\x80\x80"
    assert pack(torch.tensor([0, 0, 0, 0, 0, 0, 0, 1])) == b"\x01"
    # [T=2, 4]: step 1 then step 2 -> 1100 0001
    assert pack(torch.tensor([[1, 1, 0, 0], [0, 0, 0, 1]])) == bytes([0b1100_0001])
    assert unpack(b"\xc1", [2, 4]).tolist() == [[1, 1, 0, 0], [0, 0, 0, 1]]


def test_round_trip_over_random_shapes() -> None:
    rng = np.random.default_rng(0)
    for _ in range(200):
        shape = [int(d) for d in rng.integers(1, 8, size=int(rng.integers(1, 5)))]
        bits = torch.from_numpy(rng.integers(0, 2, size=shape).astype(np.float32))
        payload = pack(bits)
        n_bits = int(np.prod(shape))
        assert len(payload) == -(-n_bits // 8) == payload_bytes(shape)
        assert payload_bits(shape) == n_bits
        assert not np.unpackbits(np.frombuffer(payload, np.uint8))[n_bits:].any()  # padding is zero
        back = unpack(payload, shape)
        assert back.dtype == torch.float32 and back.shape == bits.shape
        assert torch.equal(back, bits)


def test_paper_payload_size() -> None:
    bits = torch.randint(0, 2, (8, 32, 4, 4))
    assert len(pack(bits)) == 512  # 4096 bits per image at T = 8
    assert torch.equal(unpack(pack(bits), [8, 32, 4, 4], dtype=torch.uint8), bits.to(torch.uint8))


@pytest.mark.parametrize("dtype", [torch.bool, torch.uint8, torch.int64, torch.float32, torch.float16])
def test_pack_accepts_any_binary_dtype(dtype: torch.dtype) -> None:
    bits = torch.tensor([1, 0, 1, 1, 0, 0, 1, 0, 1, 1]).to(dtype)
    assert pack(bits) == bytes([0b1011_0010, 0b1100_0000])
    assert pack(bits.numpy()) == pack(bits)


def test_pack_follows_logical_order_not_memory_layout() -> None:
    bits = torch.randint(0, 2, (2, 4, 3, 3)).float()
    assert pack(bits.contiguous(memory_format=torch.channels_last)) == pack(bits)
    assert pack(bits.transpose(0, 1)) == pack(bits.transpose(0, 1).contiguous())


def test_pack_detaches_tensors_that_require_grad() -> None:
    bits = torch.ones(9, requires_grad=True)
    assert pack(bits) == b"\xff\x80"


def test_batch_round_trip() -> None:
    bits = torch.randint(0, 2, (5, 3, 2, 3, 3)).float()
    payloads = pack_batch(bits)
    assert len(payloads) == 5 and all(len(p) == 7 for p in payloads)  # 54 bits -> 7 bytes
    assert payloads[2] == pack(bits[2])
    assert torch.equal(unpack_batch(payloads, [3, 2, 3, 3]), bits)


# --- bad input ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("bad", [2.0, 0.5, -1.0, float("nan")])
def test_pack_refuses_non_binary_values(bad: float) -> None:
    bits = torch.zeros(16)
    bits[5] = bad
    with pytest.raises(PayloadError, match="binary values 0/1"):
        pack(bits)


def test_pack_refuses_empty() -> None:
    with pytest.raises(PayloadError, match="empty"):
        pack(torch.zeros(0))


@pytest.mark.parametrize("length", [0, 1, 13, 15, 512])
def test_unpack_refuses_wrong_length(length: int) -> None:
    with pytest.raises(PayloadError, match=rf"payload is {length} bytes but shape \[4, 3, 3, 3\] needs 108 bits = 14"):
        unpack(bytes(length), [4, 3, 3, 3])


def test_unpack_refuses_nonzero_padding() -> None:
    payload = bytearray(pack(torch.zeros(108)))
    payload[-1] |= 0b0000_0001  # the last of the 4 padding bits
    with pytest.raises(PayloadError, match="padding bits"):
        unpack(bytes(payload), [108])


@pytest.mark.parametrize("shape", [[0, 4], [4, -1]])
def test_unpack_refuses_bad_shape(shape: list[int]) -> None:
    with pytest.raises(PayloadError, match="positive dimensions"):
        unpack(b"\x00", shape)


@pytest.mark.parametrize("payload", ["\x00\x00", [0, 0], None, 7])
def test_unpack_refuses_non_bytes(payload: object) -> None:
    with pytest.raises(PayloadError, match="payload must be bytes"):
        unpack(payload, [16])  # type: ignore[arg-type]


def test_unpack_accepts_bytearray_and_memoryview() -> None:
    assert unpack(bytearray(b"\xf0"), [8]).tolist() == [1, 1, 1, 1, 0, 0, 0, 0]
    assert unpack(memoryview(b"\x0f"), [8]).tolist() == [0, 0, 0, 0, 1, 1, 1, 1]
