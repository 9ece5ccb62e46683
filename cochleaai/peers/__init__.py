"""Peers: the tools users already have, run for real beside ours in the benchmarks
(:mod:`cochleaai.peers.atlas`: atlas registration with elastix, as SlicerCochlea does)."""
