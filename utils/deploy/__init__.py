"""Deployment: export (export.py), the runners of every engine (runners.py, accelerators.py for GPUs and custom
devices), tiling, the one restoration and evaluation loop (restoration.py, evaluation.py), self-ensemble,
INT8 quantisation, benchmarks and their logs, the model card, and forward alignment."""
