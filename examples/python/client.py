"""A producthub client in Python, from stubs generated from our protos.

Generate the stubs, then run against a server:

    mkdir -p gen
    python -m grpc_tools.protoc -I proto --python_out=gen --grpc_python_out=gen \
        proto/producthub/v1/product.proto proto/producthub/v1/product_service.proto
    PYTHONPATH=gen python examples/python/client.py 127.0.0.1:50051

It creates a product, updates one field with a mask, lists and reads, shows
how to handle the two errors every client meets: an etag conflict
(ABORTED, reason ETAG_MISMATCH) and a validation error (INVALID_ARGUMENT with a
google.rpc.BadRequest naming each bad field), and deletes what it created.
Needs grpcio, grpcio-status and
googleapis-common-protos. Exits non-zero if the server does not behave so.
"""

import sys
import uuid

import grpc
from google.protobuf import field_mask_pb2
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from producthub.v1 import product_pb2, product_service_pb2, product_service_pb2_grpc


def error_details(error: grpc.RpcError):
    """The ErrorInfo reason and the BadRequest violations of a failed call."""
    reason, violations = None, []
    status = rpc_status.from_call(error)
    for detail in status.details if status else []:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            reason = info.reason
        elif detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad_request = error_details_pb2.BadRequest()
            detail.Unpack(bad_request)
            violations = [(v.field, v.description) for v in bad_request.field_violations]
    return reason, violations


def main(address: str) -> None:
    product_id = "py-" + uuid.uuid4().hex[:12]
    with grpc.insecure_channel(address) as channel:
        products = product_service_pb2_grpc.ProductServiceStub(channel)

        # Create, safely retryable thanks to request_id.
        created = products.CreateProduct(
            product_service_pb2.CreateProductRequest(
                product_id=product_id,
                request_id=str(uuid.uuid4()),
                product=product_pb2.Product(
                    display_name="Thermostat",
                    description="First draft",
                    labels={"env": "dev"},
                ),
            ),
            timeout=10,
        )
        print(f"created {created.name} etag={created.etag}")

        # Change the description and nothing else.
        updated = products.UpdateProduct(
            product_service_pb2.UpdateProductRequest(
                product=product_pb2.Product(name=created.name, description="Reviewed", etag=created.etag),
                update_mask=field_mask_pb2.FieldMask(paths=["description"]),
            ),
            timeout=10,
        )
        assert updated.description == "Reviewed" and updated.display_name == "Thermostat"
        print(f"updated description, etag={updated.etag}")

        listed = products.ListProducts(
            product_service_pb2.ListProductsRequest(filter='labels.env = "dev"', page_size=100), timeout=10
        )
        assert created.name in [p.name for p in listed.products]
        fetched = products.GetProduct(product_service_pb2.GetProductRequest(name=created.name), timeout=10)
        assert fetched == updated
        print(f"listed {len(listed.products)} dev product(s); read back {fetched.name}")

        # An etag conflict: this update was based on the first version.
        try:
            products.UpdateProduct(
                product_service_pb2.UpdateProductRequest(
                    product=product_pb2.Product(name=created.name, description="Stale", etag=created.etag),
                    update_mask=field_mask_pb2.FieldMask(paths=["description"]),
                ),
                timeout=10,
            )
            raise SystemExit("a stale etag was accepted")
        except grpc.RpcError as error:
            reason, _ = error_details(error)
            assert error.code() == grpc.StatusCode.ABORTED, error.code()
            assert reason == "ETAG_MISMATCH", reason
            print(f"stale etag refused: {error.code().name} {reason}; read again and retry")

        # A validation error names each bad field.
        try:
            products.CreateProduct(
                product_service_pb2.CreateProductRequest(
                    product=product_pb2.Product(display_name="", version="one")
                ),
                timeout=10,
            )
            raise SystemExit("an invalid product was accepted")
        except grpc.RpcError as error:
            reason, violations = error_details(error)
            assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, error.code()
            fields = sorted(field for field, _ in violations)
            assert fields == ["product.display_name", "product.version"], fields
            for field, description in violations:
                print(f"bad field {field}: {description}")

        # Leave nothing behind; the etag makes sure it is the version we saw.
        products.DeleteProduct(
            product_service_pb2.DeleteProductRequest(name=created.name, etag=fetched.etag), timeout=10
        )
        print(f"deleted {created.name}")

    print("python client: OK")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        raise SystemExit("usage: client.py HOST:PORT")
    main(sys.argv[1])
