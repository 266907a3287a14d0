"""A kiosk.v1 terminal in Python that follows the conformance kit's environment contract
(docs/conformance.md) and, with `--break RULE`, breaks exactly that one rule. The kit's tests
run it once correct (it must pass) and once per rule (the report must name that rule and no
other). It is also a small example of a terminal in another language: stubs generated from
proto/kiosk/v1 with grpcio-tools, the login message built from the contract's text, the card's
key used as the card would use it.

Usage:
  python3 broken_terminal.py --proto-root proto --stubs DIR [--break RULE]
"""
import argparse
import hashlib
import os
import sys
import time
import tomllib
import uuid

import grpc
import grpc_tools
from grpc_tools import protoc
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding

RULES = ["closed-before-card", "issue-retry-same-id", "no-print-without-trailer",
         "no-print-on-digest-mismatch", "report-before-deadline", "close-session",
         "pin-never-sent", "reason-action"]
ATTEMPTS = 3


def stubs(proto_root, out_dir):
    if not os.path.exists(os.path.join(out_dir, "kiosk", "v1", "terminal_pb2_grpc.py")):
        files = sorted(os.path.join("kiosk/v1", n) for n in os.listdir(os.path.join(proto_root, "kiosk/v1"))
                       if n.endswith(".proto"))
        well_known = os.path.join(os.path.dirname(grpc_tools.__file__), "_proto")
        if protoc.main(["protoc", f"-I{proto_root}", f"-I{well_known}", f"--python_out={out_dir}",
                        f"--grpc_python_out={out_dir}", *files]) != 0:
            sys.exit("protoc failed")
    sys.path.insert(0, out_dir)
    from kiosk.v1 import common_pb2, terminal_pb2, terminal_pb2_grpc
    return common_pb2, terminal_pb2, terminal_pb2_grpc


class Terminal:
    def __init__(self, args):
        self.broken = args.broken
        env = os.environ
        self.env = env
        self.common, self.t, grpc_stubs = stubs(args.proto_root, args.stubs)
        read = lambda p: open(p, "rb").read()
        credentials = grpc.ssl_channel_credentials(read(env["KIOSK_CONFORMANCE_SERVER_CA"]),
                                                   read(env["KIOSK_CONFORMANCE_KEY"]),
                                                   read(env["KIOSK_CONFORMANCE_CERT"]))
        target = env["KIOSK_CONFORMANCE_GATEWAY"].removeprefix("https://")
        channel = grpc.secure_channel(target, credentials, options=[
            ("grpc.ssl_target_name_override", env["KIOSK_CONFORMANCE_SERVER_NAME"]),
            ("grpc.max_receive_message_length", 64 << 20)])
        self.stub = grpc_stubs.TerminalServiceStub(channel)
        # The one deliberate leak of `--break pin-never-sent`: the PIN in a request header.
        self.metadata = [("x-debug-pin", env["KIOSK_CONFORMANCE_PIN"])] if self.broken == "pin-never-sent" else []
        self.sessions = []

    def call(self, rpc, request, timeout=10):
        return getattr(self.stub, rpc)(request, timeout=timeout, metadata=self.metadata)

    def open_session(self):
        opened = self.call("OpenSession", self.t.OpenSessionRequest(locale="ja-JP"))
        self.sessions.append(opened.session_id)
        return opened

    def login(self, opened):
        """The card's side: the PIN goes to the card (here: unlocks the file's key) only."""
        card = tomllib.loads(open(self.env["KIOSK_CONFORMANCE_CARD"], encoding="utf-8").read())
        if card["auth"]["pin"] != self.env["KIOSK_CONFORMANCE_PIN"]:
            sys.exit("PIN_WRONG")
        message = (b"KIOSK-V1-CARD-AUTH\0" + hashlib.sha256(opened.auth_context_bytes).digest()
                   + hashlib.sha256(opened.challenge).digest())
        key = serialization.load_pem_private_key(card["auth"]["key"].encode(), password=None)
        signature = key.sign(message, padding.PKCS1v15(), hashes.SHA256())
        cert = x509.load_pem_x509_certificate(card["auth"]["certificate"].encode())
        return self.call("Authenticate", self.t.AuthenticateRequest(
            session_id=opened.session_id, signature=signature,
            card_certificate=cert.public_bytes(serialization.Encoding.DER))).menu

    def run(self):
        opened = self.open_session()
        if (opened.service_status.state == self.common.SERVICE_STATE_CLOSED
                and self.broken != "closed-before-card"):
            print(opened.service_status.message.en)
            return 1
        try:
            menu = self.login(opened)
        except grpc.RpcError as error:
            print("refused:", error.code())
            if self.broken == "reason-action":
                # After an expired challenge, logs in again on the spent session; after a
                # revoked card, tries the card once more in a new session.
                expired = error.code() == grpc.StatusCode.UNAUTHENTICATED
                try:
                    self.login(opened if expired else self.open_session())
                except grpc.RpcError:
                    pass
            return 1
        wanted = [getattr(self.common, name) for name in self.env["KIOSK_CONFORMANCE_TYPES"].split(",")]
        available = {e.type for e in menu.entries if e.available}
        if self.broken != "reason-action":
            # An entry the menu shows unavailable is left out; the rest stays orderable.
            wanted = [w for w in wanted if w in available]
        if not wanted:
            print("not available")
            return 1
        items = [self.common.RequestItem(type=w, copies=1) for w in wanted]
        quote = self.call("Quote", self.t.QuoteRequest(session_id=opened.session_id, items=items))
        return self.issue(opened.session_id, items, quote.total_fee_yen)

    def collect(self, session_id, request_id, items, fee):
        header, documents, trailer = None, [], None
        for message in self.call("Issue", self.t.IssueRequest(
                session_id=session_id, client_request_id=request_id, items=items,
                expected_total_fee_yen=fee), timeout=30):
            kind = message.WhichOneof("event")
            if kind == "header":
                header = message.header
            elif kind == "chunk":
                chunk = message.chunk
                if chunk.document_index == len(documents):
                    documents.append({"serial": chunk.serial, "data": b"", "sha": chunk.document_sha256})
                document = documents[chunk.document_index]
                document["data"] += chunk.data
                if chunk.last and self.broken == "no-print-without-trailer" and \
                        hashlib.sha256(document["data"]).digest() == document["sha"]:
                    # The bug: each document goes to the printer as soon as it is complete,
                    # before the trailer says the stream is.
                    self.write(document)
            elif kind == "trailer":
                trailer = message.trailer
        return header, documents, trailer

    def issue(self, session_id, items, fee):
        request_id = "py-" + uuid.uuid4().hex[:24]
        headers = {}
        for attempt in range(ATTEMPTS):
            if attempt > 0 and self.broken == "issue-retry-same-id":
                request_id = "py-" + uuid.uuid4().hex[:24]
            try:
                seen, documents, trailer = self.collect(session_id, request_id, items, fee)
            except grpc.RpcError as error:
                code = error.code()
                if code == grpc.StatusCode.FAILED_PRECONDITION and self.broken == "reason-action":
                    # After FEE_MISMATCH or ISSUANCE_FINISHED, sends the same order again
                    # (no new Quote, the finished id).
                    continue
                if code not in (grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.UNAVAILABLE,
                                grpc.StatusCode.RESOURCE_EXHAUSTED):
                    break
                time.sleep(1.5 if code == grpc.StatusCode.RESOURCE_EXHAUSTED else
                           1.0 if code == grpc.StatusCode.UNAVAILABLE else 0.2)
                continue
            if seen is not None:
                headers[seen.issuance_id] = seen
            if trailer is None:
                time.sleep(0.2)
                continue
            intact = all(hashlib.sha256(d["data"]).digest() == d["sha"] for d in documents)
            if not intact and self.broken != "no-print-on-digest-mismatch":
                time.sleep(0.2)
                continue
            return self.print_and_report(session_id, seen, documents)
        for issuance_id in headers:
            # Given up: nothing printed, nothing collected; each issuance seen is voided.
            self.report(session_id, issuance_id, self.t.PRINT_OUTCOME_FAILED, 0, "E-INCOMPLETE")
        return 1

    def print_and_report(self, session_id, header, documents):
        printer = self.env["KIOSK_CONFORMANCE_PRINTER"]
        printed = {"ok": documents, "fail": [], "partial": documents[:1]}[printer]
        for document in printed:
            self.write(document)
        outcome = {"ok": self.t.PRINT_OUTCOME_PRINTED, "fail": self.t.PRINT_OUTCOME_FAILED,
                   "partial": self.t.PRINT_OUTCOME_PARTLY_PRINTED}[printer]
        self.report(session_id, header.issuance_id, outcome, header.total_fee_yen,
                    "" if printer == "ok" else "E-PRINTER")
        return 0

    def write(self, document):
        path = os.path.join(self.env["KIOSK_CONFORMANCE_PRINT_DIR"], document["serial"] + ".pdf")
        with open(path, "wb") as out:
            out.write(document["data"])

    def report(self, session_id, issuance_id, outcome, collected, detail):
        if self.broken == "report-before-deadline":
            return
        self.call("ReportPrint", self.t.ReportPrintRequest(
            session_id=session_id, issuance_id=issuance_id, outcome=outcome,
            collected_yen=collected, failure_detail=detail))

    def close(self):
        if self.broken == "close-session":
            return
        for session_id in self.sessions:
            try:
                self.call("CloseSession", self.t.CloseSessionRequest(session_id=session_id), timeout=5)
            except grpc.RpcError:
                pass


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--proto-root", required=True)
    parser.add_argument("--stubs", required=True)
    parser.add_argument("--break", dest="broken", choices=RULES)
    terminal = Terminal(parser.parse_args())
    try:
        code = terminal.run()
    finally:
        terminal.close()
    sys.exit(code)


if __name__ == "__main__":
    main()
