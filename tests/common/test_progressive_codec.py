"""The progressive SNN codec: causal prefixes, one converter per prefix, registry, bundle export, warm start."""

from __future__ import annotations

import pytest
import torch

from sjscc.common.bundle import load_bundle, save_bundle
from sjscc.common.channels import BinarySymmetricChannel
from sjscc.common.codecs import CodecConfig, build_codec, is_progressive, parse_codec_name
from sjscc.common.codecs.progressive import converters_from_fixed
from sjscc.common.model import build_split_model
from tests.conftest import tiny_spec

TINY = CodecConfig(in_channels=16, c1=8, c2=4, timesteps=4)


def _feature(batch: int = 3, seed: int = 0) -> torch.Tensor:
    return torch.randn(batch, 16, 4, 4, generator=torch.Generator().manual_seed(seed)) * 2


def test_registry_and_name() -> None:
    assert parse_codec_name("snn-progressive") == ("snn-progressive", None)
    codec = build_codec("snn-progressive", TINY)
    assert codec.name == "snn-progressive" and is_progressive(codec)
    assert not is_progressive(build_codec("snn", TINY)) and not is_progressive(None)
    with pytest.raises(ValueError, match="snn-progressive"):
        parse_codec_name("snn-progresive")


def test_one_converter_per_prefix_with_2t_inputs() -> None:
    codec = build_codec("snn-progressive", TINY)
    sizes = [conv.linear.in_features for conv in codec.decoder.converters]
    assert sizes == [2, 4, 6, 8]  # IHF: (S, M) per step


def test_prefix_decoding_is_causal_and_matches_batched_prefixes() -> None:
    """Decoding the first t steps alone equals reading them off one reconstructor run over all T."""
    torch.manual_seed(0)
    codec = build_codec("snn-progressive", TINY).eval()
    bits = codec.encoder(_feature())
    assert bits.shape == (3, 4, 4, 4, 4)
    with torch.no_grad():
        batched = codec.decoder.prefix_features(bits, [1, 2, 3, 4])
        for t in range(1, 5):
            alone = codec.decoder(bits[:, :t])
            assert alone.shape == (3, 16, 4, 4)
            torch.testing.assert_close(alone, batched[t - 1], rtol=0, atol=1e-6)
        # the full-T forward of the codec is the t = T prefix
        torch.testing.assert_close(codec(_feature()).feature, batched[-1], rtol=0, atol=1e-6)
        # a later step does not change what an earlier prefix decodes to (causality of the reconstructor)
        changed = bits.clone()
        changed[:, 2:] = 1 - changed[:, 2:]
        torch.testing.assert_close(codec.decoder(changed[:, :2]), batched[1], rtol=0, atol=1e-6)


def test_converter_t_uses_only_its_prefix_weights() -> None:
    """Hand-computed: converter 1 on one step is sigmoid(w_S * S^1 + w_M * M^1 + b)."""
    torch.manual_seed(0)
    codec = build_codec("snn-progressive", TINY).eval()
    bits = codec.encoder(_feature())
    with torch.no_grad():
        spikes, membrane = codec.decoder.reconstructor(bits[:, :1])
        linear = codec.decoder.converters[0].linear
        expected = torch.sigmoid(linear.weight[0, 0] * spikes[0] + linear.weight[0, 1] * membrane[0] + linear.bias)
        torch.testing.assert_close(codec.decoder(bits[:, :1]), expected)


@pytest.mark.parametrize("steps", [0, 5])
def test_prefix_out_of_range_is_refused(steps: int) -> None:
    codec = build_codec("snn-progressive", TINY)
    with pytest.raises(ValueError, match="1 to 4"):
        codec.decoder(torch.zeros(1, steps, 4, 4, 4))
    with pytest.raises(ValueError, match="1 to 4"):
        codec.decoder.prefix_features(torch.zeros(1, 4, 4, 4, 4), [steps])


def test_gradient_reaches_encoder_through_every_prefix() -> None:
    torch.manual_seed(0)
    codec = build_codec("snn-progressive", TINY).train()
    bits = BinarySymmetricChannel()(codec.encoder(_feature()), 0.1, torch.Generator().manual_seed(0))
    features = codec.decoder.prefix_features(bits, [1, 4])
    (features[0].sum() + features[1].sum()).backward()
    assert codec.encoder.block1[0].weight.grad is not None
    assert torch.isfinite(codec.encoder.block1[0].weight.grad).all()
    assert codec.decoder.converters[0].linear.weight.grad is not None
    assert codec.decoder.converters[3].linear.weight.grad is not None
    assert codec.decoder.converters[1].linear.weight.grad is None  # prefix 2 was not in the loss


def test_warm_start_converters_from_fixed_snn() -> None:
    weight = torch.arange(1.0, 9.0).view(1, 8)  # T = 4, K = 2
    bias = torch.tensor([0.5])
    out = converters_from_fixed({"codec.decoder.converter.linear.weight": weight,
                                 "codec.decoder.converter.linear.bias": bias}, timesteps=4)
    torch.testing.assert_close(out["codec.decoder.converters.0.linear.weight"], torch.tensor([[4.0, 8.0]]))
    torch.testing.assert_close(out["codec.decoder.converters.1.linear.weight"], torch.tensor([[2.0, 4.0, 6.0, 8.0]]))
    torch.testing.assert_close(out["codec.decoder.converters.3.linear.weight"], weight)
    assert all(torch.equal(out[f"codec.decoder.converters.{i}.linear.bias"], bias) for i in range(4))
    codec = build_codec("snn-progressive", TINY)
    codec_state = {k.removeprefix("codec."): v for k, v in out.items()}
    codec.load_state_dict(codec_state, strict=False)  # shapes fit the codec
    assert converters_from_fixed({}, 4) == {}


def test_fixed_snn_weights_load_into_the_progressive_codec() -> None:
    """Encoder and reconstructor keep the snn codec's parameter names, so a fixed-T bundle warm-starts them."""
    fixed = build_split_model(tiny_spec("snn")).state_dict()
    progressive = build_split_model(tiny_spec("snn-progressive")).state_dict()
    shared = [k for k in fixed if k.startswith(("codec.encoder.", "codec.decoder.reconstructor."))]
    assert shared and all(k in progressive and progressive[k].shape == fixed[k].shape for k in shared)


def test_bundle_manifest_says_progressive(tmp_path) -> None:
    torch.manual_seed(0)
    spec = tiny_spec("snn-progressive")
    model = build_split_model(spec).eval()
    bundle = save_bundle(model, spec, tmp_path / "p", [f"c{i}" for i in range(10)], {"kind": "bsc", "p": 0.1},
                         {"note": "random weights, untrained"})
    assert bundle.manifest["codec"] == "snn-progressive"
    assert bundle.manifest["progressive"] == {"prefixes": [1, 2, 3, 4], "bits_per_step": 128}
    assert load_bundle(tmp_path / "p").progressive
    rebuilt = load_bundle(tmp_path / "p").build()
    image = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(rebuilt(image)[0], model(image)[0])


def test_fixed_bundle_is_not_progressive(tiny_bundle) -> None:
    assert not tiny_bundle.progressive and "progressive" not in tiny_bundle.manifest


def test_shipped_progressive_bundle() -> None:
    """bundles/progressive: hashes verified on load, the progressive manifest, its committed val sweep."""
    import json
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    bundle = load_bundle(root / "bundles" / "progressive")
    assert bundle.progressive and bundle.manifest["codec"] == "snn-progressive" and bundle.timesteps == 8
    assert bundle.manifest["progressive"] == {"prefixes": list(range(1, 9)), "bits_per_step": 64}
    assert bundle.manifest["metrics"]["split"] == "val" and bundle.manifest["metrics"]["n_images"] == 5000
    report = json.loads((root / "docs" / "results" / "wide" / "progressive" / "progressive.json").read_text())
    assert report["bundle"] == bundle.model_id
    assert {row.get("mode") for row in report["results"]} == {None, "prefix", "progressive"}
