"""Generates Python stubs for kiosk.v1 with grpcio-tools and checks that they import and
describe the contract; also recomputes the card-login test vector with hashlib.

Usage: python3 check_stubs.py PROTO_ROOT OUT_DIR
"""
import hashlib
import importlib
import json
import os
import sys

from grpc_tools import protoc
import grpc_tools


def main() -> None:
    proto_root, out_dir = sys.argv[1], sys.argv[2]
    files = sorted(
        os.path.join("kiosk/v1", name)
        for name in os.listdir(os.path.join(proto_root, "kiosk/v1"))
        if name.endswith(".proto")
    )
    well_known = os.path.join(os.path.dirname(grpc_tools.__file__), "_proto")
    status = protoc.main(
        ["grpc_tools.protoc", f"-I{proto_root}", f"-I{well_known}",
         f"--python_out={out_dir}", f"--grpc_python_out={out_dir}", *files]
    )
    if status != 0:
        sys.exit(f"protoc failed with {status}")
    sys.path.insert(0, out_dir)

    terminal = importlib.import_module("kiosk.v1.terminal_pb2")
    terminal_grpc = importlib.import_module("kiosk.v1.terminal_pb2_grpc")
    audit_grpc = importlib.import_module("kiosk.v1.audit_pb2_grpc")
    verify_grpc = importlib.import_module("kiosk.v1.verify_pb2_grpc")
    issuer_grpc = importlib.import_module("kiosk.v1.issuer_pb2_grpc")
    errors = importlib.import_module("kiosk.v1.errors_pb2")
    common = importlib.import_module("kiosk.v1.common_pb2")

    for module, stub in [(terminal_grpc, "TerminalServiceStub"), (audit_grpc, "AuditServiceStub"),
                         (verify_grpc, "VerifyServiceStub"), (issuer_grpc, "IssuerServiceStub")]:
        assert hasattr(module, stub), stub

    service = terminal.DESCRIPTOR.services_by_name["TerminalService"]
    methods = {m.name for m in service.methods}
    assert {"OpenSession", "Authenticate", "Issue", "ReportPrint", "CloseSession"} <= methods, methods
    assert service.methods_by_name["Issue"].server_streaming

    request = terminal.IssueRequest(
        session_id="s-1", client_request_id="req-0123456789abcdef",
        items=[common.RequestItem(type=common.RESIDENT_RECORD, copies=1)],
        expected_total_fee_yen=200,
    )
    again = terminal.IssueRequest.FromString(request.SerializeToString())
    assert again == request
    assert errors.ErrorReason.Name(errors.PIN_BLOCKED) == "PIN_BLOCKED"

    with open(os.path.join(proto_root, "kiosk/v1/testdata/card_auth_vector.json")) as f:
        vector = json.load(f)
    context = "\n".join(["kiosk.v1/auth-context", vector["gateway_id"], vector["terminal_id"],
                         vector["session_id"]]).encode()
    challenge = bytes.fromhex(vector["challenge_hex"])
    message = (b"KIOSK-V1-CARD-AUTH\0" + hashlib.sha256(context).digest()
               + hashlib.sha256(challenge).digest())
    digest_info = bytes.fromhex("3031300d060960864801650304020105000420") + hashlib.sha256(message).digest()
    assert context.hex() == vector["auth_context_bytes_hex"]
    assert message.hex() == vector["signed_message_hex"]
    assert digest_info.hex() == vector["digest_info_hex"]
    print("python stubs ok:", len(files), "files,", len(methods), "terminal RPCs")


if __name__ == "__main__":
    main()
