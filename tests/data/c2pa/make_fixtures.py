"""Made the C2PA fixtures beside this file: a 64×64 simulator PNG and JPEG, each signed with a
C2PA manifest by the C2PA tooling (c2pa-python), with a throwaway ES256 certificate chain made
here (root CA → intermediate CA → signing certificate; the keys are not kept).

    .venv/bin/pip install c2pa-python   # 0.38.1 (c2pa-rs 0.91.3) made the committed files
    .venv/bin/python -m tests.data.c2pa.make_fixtures

Not run by the tests: they read the committed files (README.md beside this file)."""

from __future__ import annotations

import datetime as dt
import io
import json
from pathlib import Path

import c2pa
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from batchgen.sim.render import ImageKey, render

HERE = Path(__file__).parent
_NOW = dt.datetime.now(dt.UTC)


def _name(cn: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, cn),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "batchgen test fixtures"),
            x509.NameAttribute(NameOID.COUNTRY_NAME, "US"),
        ]
    )


def _cert(
    subject: str,
    key: ec.EllipticCurvePrivateKey,
    issuer: x509.Certificate | None,
    issuer_key: ec.EllipticCurvePrivateKey,
    ca: bool,
) -> x509.Certificate:
    public = key.public_key()
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(issuer.subject if issuer else _name(subject))
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(_NOW - dt.timedelta(days=1))
        .not_valid_after(_NOW + dt.timedelta(days=7300))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()),
            critical=False,
        )
    )
    if ca:
        usage = dict(digital_signature=True, key_cert_sign=True, crl_sign=True)
    else:
        usage = dict(digital_signature=True, key_cert_sign=False, crl_sign=False)
        builder = builder.add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]), critical=False
        )
    builder = builder.add_extension(
        x509.KeyUsage(
            content_commitment=False,
            key_encipherment=False,
            data_encipherment=False,
            key_agreement=False,
            encipher_only=False,
            decipher_only=False,
            **usage,
        ),
        critical=True,
    )
    return builder.sign(issuer_key, hashes.SHA256())


def signer() -> c2pa.Signer:
    root_key, mid_key, leaf_key = (ec.generate_private_key(ec.SECP256R1()) for _ in range(3))
    root = _cert("batchgen fixture root CA", root_key, None, root_key, ca=True)
    mid = _cert("batchgen fixture intermediate CA", mid_key, root, root_key, ca=True)
    leaf = _cert("batchgen fixture signer", leaf_key, mid, mid_key, ca=False)
    chain = b"".join(c.public_bytes(serialization.Encoding.PEM) for c in (leaf, mid))
    key = leaf_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return c2pa.Signer.from_info(c2pa.C2paSignerInfo(c2pa.C2paSigningAlg.ES256, chain, key, None))


def manifest(title: str, fmt: str) -> dict[str, object]:
    return {
        "claim_generator_info": [{"name": "batchgen test fixture", "version": "1"}],
        "title": title,
        "format": fmt,
        "assertions": [
            {
                "label": "c2pa.actions",
                "data": {
                    "actions": [
                        {
                            "action": "c2pa.created",
                            "digitalSourceType": "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia",
                        }
                    ]
                },
            }
        ],
    }


def main() -> None:
    sign = signer()
    # no thumbnail (c2pa-rs adds a ~120 KB one by default): the fixtures stay a few KB
    context = c2pa.Context(c2pa.Settings.from_dict({"builder": {"thumbnail": {"enabled": False}}}))
    for fmt, mime, name in (
        ("png", "image/png", "signed.png"),
        ("jpeg", "image/jpeg", "signed.jpg"),
    ):
        key = ImageKey(64, 64, fmt, False, 0, 7, True, None, "quality=low;wrong=0")
        source, dest = io.BytesIO(render(key)), io.BytesIO()
        with c2pa.Builder(manifest(name, mime), context=context) as builder:
            builder.sign(sign, mime, source, dest)
        (HERE / name).write_bytes(dest.getvalue())
        with c2pa.Reader(mime, io.BytesIO(dest.getvalue())) as reader:
            state = reader.get_validation_state()
            print(name, len(dest.getvalue()), "bytes, validation state:", state)
            print(json.dumps(reader.get_validation_results(), indent=1)[:800])
    print("c2pa-python", c2pa.__version__, "c2pa-rs", c2pa.sdk_version())


if __name__ == "__main__":
    main()
