"""Tools around the system: demo, benchmarks, load generator, byte counter, process harness.

They import the parts (common, device, edge, training); none of the parts imports them.
"""
