"""A terminal written in Python: completes one issuance against a running gateway over mutual
TLS, using stubs generated from proto/kiosk/v1 with grpcio-tools. It builds the login message
itself from the contract (an independent implementation) and signs it with the software card
file's key, as the card would.

Usage:
  python3 terminal_client.py PROTO_ROOT OUT_DIR ADDR SERVER_CA CERT KEY CARD_FILE [PDF_OUT]

CARD_FILE is TOML with the card's authentication key and certificate in PEM under [auth]
(`key`, `certificate`). With PDF_OUT, the first document received is written there.
Prints one JSON object with the outcome; exits non-zero on any failure.
"""
import hashlib
import importlib
import json
import os
import sys
import tomllib

import grpc
import grpc_tools
from grpc_tools import protoc
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding


def generate(proto_root: str, out_dir: str) -> None:
    files = sorted(os.path.join("kiosk/v1", n) for n in os.listdir(os.path.join(proto_root, "kiosk/v1"))
                   if n.endswith(".proto"))
    well_known = os.path.join(os.path.dirname(grpc_tools.__file__), "_proto")
    if protoc.main(["protoc", f"-I{proto_root}", f"-I{well_known}", f"--python_out={out_dir}",
                    f"--grpc_python_out={out_dir}", *files]) != 0:
        sys.exit("protoc failed")
    sys.path.insert(0, out_dir)


def main() -> None:
    proto_root, out_dir, addr, ca, cert, key, card_path = sys.argv[1:8]
    pdf_out = sys.argv[8] if len(sys.argv) > 8 else None
    generate(proto_root, out_dir)
    terminal = importlib.import_module("kiosk.v1.terminal_pb2")
    common = importlib.import_module("kiosk.v1.common_pb2")
    stubs = importlib.import_module("kiosk.v1.terminal_pb2_grpc")

    read = lambda p: open(p, "rb").read()
    credentials = grpc.ssl_channel_credentials(read(ca), read(key), read(cert))
    channel = grpc.secure_channel(addr, credentials,
                                  options=[("grpc.ssl_target_name_override", "localhost"),
                                           ("grpc.max_receive_message_length", 64 << 20)])
    stub = stubs.TerminalServiceStub(channel)

    opened = stub.OpenSession(terminal.OpenSessionRequest(locale="ja-JP"), timeout=10)
    assert opened.service_status.state == common.SERVICE_STATE_OPEN, opened.service_status

    # The login message, from the contract's text alone.
    context = "\n".join(["kiosk.v1/auth-context", opened.auth_context.gateway_id,
                         opened.auth_context.terminal_id, opened.auth_context.session_id]).encode()
    assert context == opened.auth_context_bytes, "auth_context_bytes differ from the documented encoding"
    message = (b"KIOSK-V1-CARD-AUTH\0" + hashlib.sha256(context).digest()
               + hashlib.sha256(opened.challenge).digest())
    card = tomllib.loads(open(card_path, encoding="utf-8").read())
    private_key = serialization.load_pem_private_key(card["auth"]["key"].encode(), password=None)
    signature = private_key.sign(message, padding.PKCS1v15(), hashes.SHA256())
    cert_der = x509.load_pem_x509_certificate(card["auth"]["certificate"].encode()).public_bytes(
        serialization.Encoding.DER)

    menu = stub.Authenticate(terminal.AuthenticateRequest(
        session_id=opened.session_id, card_certificate=cert_der, signature=signature), timeout=10).menu
    entry = next(e for e in menu.entries if e.type == common.RESIDENT_RECORD and e.available)
    item = common.RequestItem(type=common.RESIDENT_RECORD, copies=1)
    quote = stub.Quote(terminal.QuoteRequest(session_id=opened.session_id, items=[item]), timeout=10)
    assert quote.total_fee_yen == entry.fee_yen, (quote.total_fee_yen, entry.fee_yen)

    header, documents, trailer = None, {}, None
    for message in stub.Issue(terminal.IssueRequest(
            session_id=opened.session_id, client_request_id="python-" + opened.session_id[-16:],
            items=[item], expected_total_fee_yen=quote.total_fee_yen), timeout=60):
        kind = message.WhichOneof("event")
        if kind == "header":
            header = message.header
        elif kind == "chunk":
            doc = documents.setdefault(message.chunk.serial, {"data": b"", "sha": message.chunk.document_sha256})
            assert len(doc["data"]) == message.chunk.offset
            doc["data"] += message.chunk.data
        elif kind == "trailer":
            trailer = message.trailer
    assert header is not None and trailer is not None, "incomplete stream"
    for serial, doc in documents.items():
        assert hashlib.sha256(doc["data"]).digest() == doc["sha"], serial
        assert doc["data"].startswith(b"%PDF-"), serial
    if pdf_out is not None:
        with open(pdf_out, "wb") as out:
            out.write(documents[min(documents)]["data"])

    report = stub.ReportPrint(terminal.ReportPrintRequest(
        session_id=opened.session_id, issuance_id=header.issuance_id,
        outcome=terminal.PRINT_OUTCOME_PRINTED, collected_yen=header.total_fee_yen), timeout=10)
    stub.CloseSession(terminal.CloseSessionRequest(session_id=opened.session_id), timeout=10)
    print(json.dumps({
        "issuance_id": header.issuance_id,
        "documents": len(documents),
        "bytes": sum(len(d["data"]) for d in documents.values()),
        "fee_yen": header.total_fee_yen,
        "state": terminal.IssuanceState.Name(report.state),
        "municipality": menu.municipality_code,
    }))


if __name__ == "__main__":
    main()
