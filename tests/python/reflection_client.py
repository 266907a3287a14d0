"""grpcio-reflection's own client (ProtoReflectionDescriptorDatabase, which speaks
grpc.reflection.v1alpha) against a running gateway over TLS: lists the services and resolves
TerminalService's descriptor, as Python tools and many others do.

Usage:
  python3 reflection_client.py ADDR SERVER_CA

Prints one JSON object: the services listed and TerminalService's methods; exits non-zero on
any failure (UNIMPLEMENTED when the gateway does not serve v1alpha).
"""
import json
import sys

import grpc
from google.protobuf.descriptor_pool import DescriptorPool
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
    ProtoReflectionDescriptorDatabase,
)


def main() -> None:
    addr, ca = sys.argv[1:3]
    credentials = grpc.ssl_channel_credentials(open(ca, "rb").read())
    channel = grpc.secure_channel(addr, credentials,
                                  options=[("grpc.ssl_target_name_override", "localhost")])
    database = ProtoReflectionDescriptorDatabase(channel)
    services = sorted(database.get_services())
    pool = DescriptorPool(database)
    terminal = pool.FindServiceByName("kiosk.v1.TerminalService")
    print(json.dumps({"services": services,
                      "terminal_methods": sorted(m.name for m in terminal.methods)}))


if __name__ == "__main__":
    main()
