"""Helpers of bench/devnet.py: a control connection kept open for polling, and readers of node logs."""
