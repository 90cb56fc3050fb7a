"""A channel code on the radio link: CRC + 5G LDPC (Sionna), then modulation and an AWGN or block-Rayleigh channel.

Separate source and channel coding (SSCC) sends a source code's bits through a *channel code*; the code belongs to
the link, not to the codec, so any bit source (a CNN-q<n> latent, a compressed picture) rides the same
:class:`CodedLink`. One block per image: ``k`` source bits get a CRC (``CRC16`` by default, 3GPP TS 38.212), the
``k + crc`` bits are 5G-LDPC encoded and rate-matched to ``n`` coded bits (Sionna's :class:`LDPC5GEncoder`), mapped
to ``n / bits_per_symbol`` complex channel uses (BPSK, Gray QPSK or Gray 16-QAM), sent over AWGN or Rayleigh block
fading (one complex gain per ``coherence`` symbols, perfect channel knowledge at the receiver), demapped to LLRs
(``soft``) or to hard bits that the decoder sees as LLRs of fixed magnitude (``hard``), BP-decoded
(:class:`LDPC5GDecoder`) and CRC-checked. The receiver learns the decoded bits and whether the block decoded.

SNR convention (Sionna's :func:`ebnodb2no`): ``snr_db`` is Eb/N0 per *information* bit (source + CRC bits), so
``Es/N0 = Eb/N0 * rate * bits_per_symbol``; :func:`esno_db` converts. Noise and fades are drawn from the caller's
``torch.Generator``: the same seed gives the same channel in evaluation and serving.

What the edge does with a block whose CRC fails is a policy (:data:`FAILURE_POLICIES`): ``erase`` fills the
block's bits by an erasure policy (``random``: fair coins, ``zero``: zeros) and classifies them anyway;
``misclassify`` counts the image as wrong without classifying it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from sionna.phy.fec.crc import CRCDecoder, CRCEncoder
from sionna.phy.fec.ldpc import LDPC5GDecoder, LDPC5GEncoder
from sionna.phy.mapping import Demapper, Mapper
from sionna.phy.utils import complex_normal, ebnodb2no

MODULATIONS = {"bpsk": ("pam", 1), "qpsk": ("qam", 2), "16qam": ("qam", 4)}
LINK_CHANNELS = ("awgn", "rayleigh")
DECISIONS = ("hard", "soft")
FAILURE_POLICIES = ("erase", "misclassify")
FILL_POLICIES = ("random", "zero")
CRC_BITS = {"CRC24A": 24, "CRC24B": 24, "CRC24C": 24, "CRC16": 16, "CRC11": 11, "CRC6": 6}
MIN_RATE, MAX_RATE = 0.2, 0.92  # 5G base graph 2 reaches 1/5; Sionna refuses r > 0.95 after rate matching


def bits_per_symbol(modulation: str) -> int:
    """Coded bits carried by one complex channel use."""
    if modulation not in MODULATIONS:
        raise ValueError(f"unknown modulation {modulation!r}; known: {sorted(MODULATIONS)}")
    return MODULATIONS[modulation][1]


def esno_db(snr_db: float, rate: float, modulation: str) -> float:
    """Es/N0 (energy per channel use) for Eb/N0 ``snr_db`` per information bit at code ``rate``."""
    return float(snr_db) + 10.0 * math.log10(rate * bits_per_symbol(modulation))


@dataclass(frozen=True)
class CodedOutput:
    """What the receiver gets for ``B`` blocks: decoded source bits ``[B, k]``, CRC verdict ``[B]`` (bool), and
    the channel's hard-decision errors before decoding ``[B]`` (for display: what the link did)."""

    bits: torch.Tensor
    decoded: torch.Tensor
    channel_bit_errors: torch.Tensor


class CodedLink:
    """CRC + 5G LDPC + modulation + channel for blocks of ``k`` source bits sent in ``n`` coded bits.

    ``link(bits [B, k] in {0,1}, snr_db, generator) -> CodedOutput``. ``n`` must be a multiple of the
    modulation's bits per symbol and the rate ``(k + crc) / n`` within [:data:`MIN_RATE`, :data:`MAX_RATE`].
    ``coherence`` is the number of channel uses that share one Rayleigh fade (``None``: the whole block).
    """

    def __init__(self, k: int, n: int, modulation: str = "bpsk", channel: str = "awgn", decisions: str = "soft",
                 coherence: int | None = None, crc: str = "CRC16", num_iter: int = 20) -> None:
        bps = bits_per_symbol(modulation)
        if channel not in LINK_CHANNELS:
            raise ValueError(f"unknown link channel {channel!r}; known: {LINK_CHANNELS}")
        if decisions not in DECISIONS:
            raise ValueError(f"unknown decisions {decisions!r}; known: {DECISIONS}")
        if crc not in CRC_BITS:
            raise ValueError(f"unknown CRC {crc!r}; known: {sorted(CRC_BITS)}")
        k, n = int(k), int(n)
        if k < 1 or n < 1 or n % bps:
            raise ValueError(f"need k >= 1 and n a positive multiple of {bps} ({modulation}), got k={k}, n={n}")
        rate = (k + CRC_BITS[crc]) / n
        if not MIN_RATE <= rate <= MAX_RATE:
            raise ValueError(f"code rate (k + {CRC_BITS[crc]}) / n = {rate:.3f} is outside "
                             f"[{MIN_RATE}, {MAX_RATE}] (k={k}, n={n})")
        if coherence is not None and int(coherence) < 1:
            raise ValueError(f"coherence must be a positive number of channel uses, got {coherence}")
        self.k, self.n, self.rate, self.crc = k, n, rate, crc
        self.modulation, self.channel, self.decisions = modulation, channel, decisions
        self.coherence = None if coherence is None else int(coherence)
        self.symbols = n // bps
        self._crc_encoder = CRCEncoder(crc)
        self._crc_decoder = CRCDecoder(self._crc_encoder)
        self._encoder = LDPC5GEncoder(k + CRC_BITS[crc], n)
        self._decoder = LDPC5GDecoder(self._encoder, hard_out=True, num_iter=num_iter)
        kind, bps = MODULATIONS[modulation]
        self._mapper = Mapper(kind, bps)
        self._demapper = Demapper("app", kind, bps)

    def encode(self, bits: torch.Tensor) -> torch.Tensor:
        """Source bits ``[B, k]`` -> coded bits ``[B, n]`` (float 0/1)."""
        if bits.ndim != 2 or bits.shape[1] != self.k:
            raise ValueError(f"expected source bits of shape [B, {self.k}], got {list(bits.shape)}")
        return self._encoder(self._crc_encoder(bits.float()))

    def decode(self, llr: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Channel LLRs ``[B, n]`` (Sionna's sign: log P(1)/P(0)) -> (source bits ``[B, k]``, CRC ok ``[B]``)."""
        bits, ok = self._crc_decoder(self._decoder(llr))
        return bits, ok[..., 0]

    def _fades(self, batch: int, generator: torch.Generator | None) -> torch.Tensor:
        per_fade = self.symbols if self.coherence is None else self.coherence
        count = -(-self.symbols // per_fade)
        gains = complex_normal([batch, count], device="cpu", generator=generator)
        return gains.repeat_interleave(per_fade, dim=1)[:, : self.symbols]

    def channel_llrs(self, coded: torch.Tensor, snr_db: float,
                     generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Modulate, add noise (and fades), demap: coded bits ``[B, n]`` -> (LLRs ``[B, n]``, hard errors ``[B]``)."""
        no = float(ebnodb2no(float(snr_db), bits_per_symbol(self.modulation), self.rate))
        symbols = self._mapper(coded)
        noise = complex_normal(list(symbols.shape), var=no, device="cpu", generator=generator)
        if self.channel == "rayleigh":
            gains = self._fades(coded.shape[0], generator)
            equalised = (gains * symbols + noise) / gains
            noise_var = no / gains.abs().square().clamp_min(1e-12)
        else:
            equalised, noise_var = symbols + noise, torch.full(symbols.shape, no)
        llr = self._demapper(equalised, noise_var)
        hard = (llr > 0).float()
        errors = (hard != coded).sum(dim=1)
        if self.decisions == "hard":
            llr = (2.0 * hard - 1.0) * hard_llr_magnitude(llr)
        return llr, errors

    def __call__(self, bits: torch.Tensor, snr_db: float, generator: torch.Generator | None = None) -> CodedOutput:
        coded = self.encode(bits)
        llr, errors = self.channel_llrs(coded, snr_db, generator)
        decoded, ok = self.decode(llr)
        return CodedOutput(decoded, ok, errors)


def hard_llr_magnitude(llr: torch.Tensor) -> torch.Tensor:
    """What a hard-decision receiver tells BP, per block of ``llr [B, n]`` (``[B, 1]``): each bit's reliability
    ``log((1-p)/p)`` with ``p`` the block's mean bit-error probability implied by the SNR (``E[sigmoid(-|llr|)]``);
    the per-bit soft values are discarded."""
    p = torch.sigmoid(-llr.abs()).mean(dim=1, keepdim=True).clamp(1e-6, 0.5 - 1e-6)
    return torch.log((1 - p) / p)


def block_hard_llr(llr: torch.Tensor) -> float:
    """The reliability a hard-decision receiver gives every bit of one block, from the block's LLRs (it knows its
    SNR and, on Rayleigh, its fades): :func:`hard_llr_magnitude`, the rule the evaluation's hard links use."""
    return float(hard_llr_magnitude(llr.reshape(1, -1))[0, 0])


def recover(bits: torch.Tensor, decoded: torch.Tensor, on_failure: str = "erase", fill: str = "random",
            generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """The edge's handling of failed blocks: returns (bits to classify ``[B, k]``, counted-wrong mask ``[B]``).

    ``erase``: a failed block's bits are replaced by ``fill`` (fair coins or zeros) and classified like any other;
    ``misclassify``: the bits are left as decoded and the image is counted wrong whatever its label.
    """
    if on_failure not in FAILURE_POLICIES:
        raise ValueError(f"unknown on_failure {on_failure!r}; known: {FAILURE_POLICIES}")
    if fill not in FILL_POLICIES:
        raise ValueError(f"unknown fill {fill!r}; known: {FILL_POLICIES}")
    failed = ~decoded.bool()
    if on_failure == "misclassify":
        return bits, failed
    if fill == "random":
        filler = (torch.rand(bits.shape, generator=generator) < 0.5).to(bits.dtype)
    else:
        filler = torch.zeros_like(bits)
    return torch.where(failed.unsqueeze(1), filler, bits), torch.zeros_like(failed)


def link_for(manifest: dict, channel: str = "awgn", decisions: str = "soft",
             coherence: int | None = None) -> CodedLink:
    """The :class:`CodedLink` a bundle's manifest names in ``channel_code`` (``kind: ldpc``), for a given channel.

    The code (k, n, CRC, modulation) is fixed by the bundle; the channel and the receiver's decisions are the
    link's. A manifest without a channel code, or with another kind, is a ValueError that says so.
    """
    code = manifest.get("channel_code") if isinstance(manifest, dict) else None
    if not isinstance(code, dict) or code.get("kind") != "ldpc":
        raise ValueError(f"this bundle names no LDPC channel code (channel_code = {code!r})")
    try:
        k, n, crc, modulation = int(code["k"]), int(code["n"]), str(code.get("crc", "CRC16")), str(code["modulation"])
    except (KeyError, TypeError, ValueError) as error:
        raise ValueError(f"channel_code must give k, n and modulation: {error}") from None
    return CodedLink(k, n, modulation, channel, decisions, coherence, crc)


HARD_LLR_MAX = 20.0
"""The largest reliability a hard-decision receiver claims for a bit (a noiseless link: p -> 0)."""


def hard_llr(p: float) -> float:
    """The reliability ``ln((1-p)/p)`` a hard-decision receiver with bit error rate ``p`` gives each decided bit
    (what BP reads for a hard bit, its sign set by the bit), capped at :data:`HARD_LLR_MAX`; 0 at p >= 0.5."""
    p = min(max(float(p), 0.0), 0.5)
    if p <= 0.0:
        return HARD_LLR_MAX
    return min(math.log((1.0 - p) / p), HARD_LLR_MAX)


def failure_policy(manifest: dict) -> tuple[str, str]:
    """The bundle's ``(on_failure, fill)`` for a failed block (defaults ``erase``, ``random``), checked."""
    code = manifest.get("channel_code") or {}
    on_failure, fill = str(code.get("on_failure", "erase")), str(code.get("fill", "random"))
    if on_failure not in FAILURE_POLICIES or fill not in FILL_POLICIES:
        raise ValueError(f"channel_code on_failure/fill must be one of {FAILURE_POLICIES} / {FILL_POLICIES}, "
                         f"got {on_failure!r} / {fill!r}")
    return on_failure, fill
