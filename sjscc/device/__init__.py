"""The device process: image in, packed spikes out (head, SNN encoder, pack), sent to the edge over gRPC."""
