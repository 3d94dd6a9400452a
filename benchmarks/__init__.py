"""Benchmarks (not tests): every figure is printed beside a baseline from the same run."""
