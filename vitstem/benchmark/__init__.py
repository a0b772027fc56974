"""Benchmarks of the stem: every engine timed, interleaved, against a bare MatMul of the same shape.

`vitstem bench` is the command (cli.py); `benchmarks/` holds the scripts for the measurements that
need fresh processes or graph prototypes. Nothing here imports a framework until it is used.
"""
