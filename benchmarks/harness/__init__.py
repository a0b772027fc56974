"""The benchmark harness behind `vitstem bench`: every engine timed, interleaved, against a bare MatMul
of the same shape. Development tooling of the source checkout, not part of the installed package
(vitstem/benchmark_cli.py loads it). Nothing here imports a framework until it is used.
"""
