"""The edge process: bits in, prediction out (reconstructor, converter, tail), served over gRPC."""
