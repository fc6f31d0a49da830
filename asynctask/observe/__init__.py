"""What the daemon counts and how it is read out: per-minute series, latency histograms,
per-attempt stage traces, and the Prometheus text exposition.

Everything here is pure (times are arguments, nothing reads a clock or does I/O), so the
counting promises get property tests without a daemon, and the daemon pays only for arithmetic
on its hot path.
"""
