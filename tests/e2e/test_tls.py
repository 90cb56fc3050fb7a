"""TLS and mutual TLS between the device's client and the edge's server, in-process over loopback, with
certificates made here by the ``cryptography`` package (no key is ever committed)."""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from edge_support import running

from sjscc.common.tls import TLSConfigError, TLSSettings
from sjscc.device.client import EdgeClient, EdgeUnavailableError, ExpectedModel
from sjscc.device.link import ChannelSettings
from sjscc.edge.pipeline import EdgePipeline


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _write(folder: Path, stem: str, key: ec.EllipticCurvePrivateKey, cert: x509.Certificate) -> tuple[str, str]:
    key_path, cert_path = folder / f"{stem}.key", folder / f"{stem}.pem"
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return str(cert_path), str(key_path)


def _certificate(subject: str, issuer_key, issuer_name: x509.Name | None, key, ca: bool,
                 names: list[x509.GeneralName] | None = None) -> x509.Certificate:
    now = datetime.datetime.now(datetime.timezone.utc)
    builder = (x509.CertificateBuilder().subject_name(_name(subject)).issuer_name(issuer_name or _name(subject))
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if names:
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


@pytest.fixture(scope="module")
def pki(tmp_path_factory) -> dict[str, tuple[str, str]]:
    """A CA with a server (localhost, 127.0.0.1) and a client certificate, and a rogue CA with its own client."""
    folder = tmp_path_factory.mktemp("pki")
    out = {}
    for ca_name in ("ca", "rogue"):
        ca_key = ec.generate_private_key(ec.SECP256R1())
        ca_cert = _certificate(f"sjscc test {ca_name}", ca_key, None, ca_key, ca=True)
        out[ca_name] = _write(folder, ca_name, ca_key, ca_cert)
        prefix = "" if ca_name == "ca" else "rogue-"
        server_key = ec.generate_private_key(ec.SECP256R1())
        names = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
        out[f"{prefix}server"] = _write(folder, f"{prefix}server", server_key,
                                        _certificate("edge", ca_key, ca_cert.subject, server_key, False, names))
        client_key = ec.generate_private_key(ec.SECP256R1())
        out[f"{prefix}client"] = _write(folder, f"{prefix}client", client_key,
                                        _certificate("device", ca_key, ca_cert.subject, client_key, False))
    return out


@pytest.fixture(scope="module")
def edge(tiny_bundle) -> EdgePipeline:
    return EdgePipeline(tiny_bundle, device="cpu")


async def _check(edge: EdgePipeline, server: TLSSettings, client: TLSSettings) -> str:
    """``ok`` when the client's model check succeeds through TLS, else ``refused``."""
    async with running(edge, tls=server) as address:
        expected = ExpectedModel(edge.model_id, edge.codec, edge.timesteps, edge.latent_shape)
        edge_client = EdgeClient(address, expected, ChannelSettings(), rpc_timeout_s=3.0, tls=client)
        await edge_client.open()
        try:
            await edge_client.check_model()
            return "ok"
        except EdgeUnavailableError:
            return "refused"
        finally:
            await edge_client.close()


def test_tls_server_accepts_a_client_that_trusts_its_ca_and_refuses_plaintext(edge, pki) -> None:
    server = TLSSettings(cert=pki["server"][0], key=pki["server"][1])
    assert asyncio.run(_check(edge, server, TLSSettings(ca=pki["ca"][0]))) == "ok"
    assert asyncio.run(_check(edge, server, TLSSettings())) == "refused"


def test_a_server_whose_certificate_does_not_match_is_refused(edge, pki) -> None:
    rogue_server = TLSSettings(cert=pki["rogue-server"][0], key=pki["rogue-server"][1])
    assert asyncio.run(_check(edge, rogue_server, TLSSettings(ca=pki["ca"][0]))) == "refused"  # other CA
    server = TLSSettings(cert=pki["server"][0], key=pki["server"][1])
    other_name = TLSSettings(ca=pki["ca"][0], server_name="edge.elsewhere.example")
    assert asyncio.run(_check(edge, server, other_name)) == "refused"  # right CA, wrong name


def test_mutual_tls_refuses_clients_without_a_valid_certificate(edge, pki) -> None:
    server = TLSSettings(cert=pki["server"][0], key=pki["server"][1], ca=pki["ca"][0])
    with_cert = TLSSettings(ca=pki["ca"][0], cert=pki["client"][0], key=pki["client"][1])
    assert asyncio.run(_check(edge, server, with_cert)) == "ok"
    assert asyncio.run(_check(edge, server, TLSSettings(ca=pki["ca"][0]))) == "refused"
    rogue_cert = TLSSettings(ca=pki["ca"][0], cert=pki["rogue-client"][0], key=pki["rogue-client"][1])
    assert asyncio.run(_check(edge, server, rogue_cert)) == "refused"


def test_tls_settings_errors_name_the_problem(tmp_path) -> None:
    with pytest.raises(TLSConfigError, match="give both --tls-cert and --tls-key"):
        TLSSettings(cert="a.pem")
    with pytest.raises(TLSConfigError, match="cannot read the TLS private key .*none.pem"):
        TLSSettings(cert=str(tmp_path / "none.pem"), key=str(tmp_path / "none.pem")).server_credentials()
    not_pem = tmp_path / "x.pem"
    not_pem.write_text("hello")
    with pytest.raises(TLSConfigError, match="is not a PEM file"):
        TLSSettings(ca=str(not_pem)).channel_credentials()
    with pytest.raises(TLSConfigError, match="--tls-client-ca needs"):
        TLSSettings(ca=str(not_pem)).server_credentials()
