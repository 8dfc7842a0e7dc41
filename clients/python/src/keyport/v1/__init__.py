"""Generated code for the ``keyport.v1`` protobuf package. Do not edit.

Regenerate with ``clients/python/generate.sh``. Messages live in the
``*_pb2`` modules, gRPC stubs and servicers in the ``*_service_pb2_grpc``
modules.
"""
