"""The local development kit: emulators, provisioning, load, the process harness, the demo.

Everything here runs a pipeline on one machine for development, tests and benchmarks; none of
it is part of the consumer image or the box's. The production packages never import it.
"""
